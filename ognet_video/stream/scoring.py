"""Frames -> patch scores -> frame scores -> decisions, one code path for offline eval and live streams.

``FrameScorer`` gives the model's raw scores only (no calibration); it keeps the previous frame between
calls, so feeding a clip in chunks of 16 (offline) or one frame at a time (a camera) gives the same numbers.
``StreamScorer`` applies the checkpoint's decision after them (``decide.Decider``: calibration, causal smoothing,
threshold, events).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ognet_video.calibrate.calibration import seconds_per_frame
from ognet_video.config import ScoreConfig
from ognet_video.decide import Box, Decider, Event, EventMessage, EventTracker
from ognet_video.health import CameraHealth, CameraMessage
from ognet_video.health.measure import Measurement
from ognet_video.models.detector import Detector
from ognet_video.objects import ObjectCue
from ognet_video.patches import PatchExtractor


@dataclass
class FrameScores:
    """Raw scores of T consecutive frames."""

    raw: np.ndarray  # (T,) frame score from the moving patches; NaN where no patch moved or the frame is unscored
    scored: np.ndarray  # (T,) bool; False for a frame with no predecessor (no motion can be known)
    patch: np.ndarray  # (T, N) D(G(x)) per cell, NaN for static cells
    motion: np.ndarray  # (T, N) mean |frame difference| per cell
    objects: np.ndarray | None = None  # (T,) the worst object's score (NaN: none); None without the object cue
    object_boxes: np.ndarray | None = None  # (T, 4) its box on the patches grid (-1: none)

    @staticmethod
    def concat(parts: list[FrameScores]) -> FrameScores:
        fields = ("raw", "scored", "patch", "motion")
        out = FrameScores(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))
        if parts and all(p.objects is not None for p in parts):
            out.objects = np.concatenate([p.objects for p in parts])
            out.object_boxes = np.concatenate([p.object_boxes for p in parts])
        return out


def aggregate(patch: np.ndarray, cfg: ScoreConfig) -> np.ndarray:
    """Frame score from patch scores (NaN = static): max, or the mean of the k highest."""
    has = ~np.all(np.isnan(patch), axis=1)
    out = np.full(patch.shape[0], np.nan)
    if not has.any():
        return out
    p = patch[has]
    if cfg.aggregate == "max":
        out[has] = np.nanmax(p, axis=1)
    else:
        filled = np.where(np.isnan(p), -np.inf, p)
        k = min(cfg.topk, p.shape[1])
        top = -np.sort(-filled, axis=1)[:, :k]
        top = np.where(np.isinf(top), np.nan, top)
        out[has] = np.nanmean(top, axis=1)
    return out


@dataclass
class PendingScores:
    """Frames prepared for the model: its input ``x`` (M, C, s, s) and where the M patches belong."""

    x: Any  # the model input (a torch tensor)
    moving: np.ndarray  # (T, N) bool: the cells in ``x``, row-major
    scored: np.ndarray  # (T,) bool
    motion: np.ndarray  # (T, N)
    objects: np.ndarray | None = None  # (T,) the object cue's scores, with it
    object_boxes: np.ndarray | None = None


class FrameScorer:
    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.extractor = PatchExtractor(detector.cfg.patches)
        self.prev: np.ndarray | None = None  # the last prepared frame seen
        self.objects = None if detector.objects is None else ObjectCue(detector.objects, detector.cfg.objects,
                                                                        self.extractor)  # fmt: skip

    def reset(self) -> None:
        """Start a new clip (or a stream after a gap): the next frame has no predecessor."""
        self.prev = None

    def follow(self, frame: np.ndarray) -> None:
        """The next frame comes after ``frame`` (raw, as decoded): a live source kept it when the frames between
        were dropped, so motion is measured over one interval, as from the file."""
        self.prev = self.extractor.prepare(frame)

    def prepare(self, frames: list[np.ndarray]) -> PendingScores:
        """Everything before the forward pass: the moving patches of consecutive raw frames (any size, gray
        or BGR). Several ``prepare``s (of this clip or others) can share one pass; see ``complete``."""
        ex = self.extractor
        prepared = np.stack([ex.prepare(f) for f in frames])
        scored = np.ones(len(frames), dtype=bool)
        scored[0] = self.prev is not None
        cp = ex.extract(prepared, self.prev)
        self.prev = prepared[-1].copy()
        moving = ex.moving(cp.motion)
        moving[~scored] = False
        p = PendingScores(ex.select(cp, moving), moving, scored, cp.motion)
        if self.objects is not None and cp.frame_flow is not None:
            p.objects, p.object_boxes = self.objects.score(cp.frame_flow, moving)
        return p

    def complete(self, p: PendingScores, patch_scores: np.ndarray) -> FrameScores:
        """The frame scores of ``p`` from its patches' scores (``detector.patch_scores(p.x)``)."""
        patch = np.full(p.moving.shape, np.nan)
        patch[p.moving] = patch_scores
        return FrameScores(aggregate(patch, self.detector.cfg.score), p.scored, patch, p.motion, p.objects,
                           p.object_boxes)  # fmt: skip

    def score(self, frames: list[np.ndarray]) -> FrameScores:
        """Score consecutive raw frames (any size, gray or BGR): all moving patches in one forward pass."""
        p = self.prepare(frames)
        return self.complete(p, self.detector.patch_scores(p.x))

    def score_stream(self, frames: Iterable[np.ndarray], batch: int | None = None) -> Iterator[FrameScores]:
        """Chunks of ``batch`` frames (default ``score.batch_frames``) from an iterable of frames."""
        batch = batch or self.detector.cfg.score.batch_frames
        chunk: list[np.ndarray] = []
        for f in frames:
            chunk.append(f)
            if len(chunk) == batch:
                yield self.score(chunk)
                chunk = []
        if chunk:
            yield self.score(chunk)

    def score_clip(self, frames: Iterable[np.ndarray], batch: int | None = None) -> FrameScores:
        """A whole clip from its first frame (resets first)."""
        self.reset()
        parts = list(self.score_stream(frames, batch))
        if not parts:
            n = self.extractor.num_cells
            return FrameScores(np.zeros(0), np.zeros(0, bool), np.zeros((0, n)), np.zeros((0, n), dtype=np.float32))
        return FrameScores.concat(parts)


def score_footage(detector: Detector, clips: list) -> tuple[dict[str, FrameScores], dict[str, float]]:
    """Raw scores of normal clips (anything with ``name`` and ``source()`` yielding frames) and each clip's
    frame interval from its timestamps (10 fps where they are unknown): what ``postprocess.fit_calibration`` takes."""
    scorer = FrameScorer(detector)
    scores, dt = {}, {}
    for clip in clips:
        times: list[float | None] = []

        def images(clip=clip, times=times):
            for f in clip.source():
                times.append(f.time)
                yield f.image

        scores[clip.name] = scorer.score_clip(images())
        dt[clip.name] = seconds_per_frame(times, 0.1)
    return scores, dt


@dataclass
class FrameResult:
    """One frame's decision: what ``watch`` and ``score`` write, draw and send."""

    index: int
    time: float | None  # seconds from the start of the source, when known
    raw: float  # the model's frame score; NaN where no patch moved or the frame is unscored
    score: float  # calibrated (normalised) score; NaN for an unscored frame (the first of a stream)
    smoothed: float  # causal trailing mean of ``score``: what the threshold is applied to
    anomalous: bool
    worst_box: list[int] | None  # x0 y0 x1 y1 of the highest-scoring patch, in the source frame's pixels
    patch: np.ndarray  # (N,) raw patch scores, NaN for static cells
    camera: str | None = None  # a camera problem (``health``) was open: the decision is suspended (False)
    cue: str | None = None  # with the object cue: "objects" where the worst object outscored the patches, or "patches"

    def to_dict(self) -> dict[str, Any]:
        d = {
            "frame": self.index,
            "time": None if self.time is None else round(self.time, 4),
            "raw": _finite(self.raw),
            "score": _finite(self.score),
            "smoothed": _finite(self.smoothed),
            "anomalous": self.anomalous,
            "box": self.worst_box,
        }
        if self.camera is not None:
            d["camera"] = self.camera
        if self.cue is not None:
            d["cue"] = self.cue
        return d


def _finite(v: float) -> float | None:
    """JSON has no NaN: a missing value is written as null."""
    return float(v) if np.isfinite(v) else None


@dataclass
class PendingPush:
    scores: PendingScores
    frames: list[np.ndarray]
    times: list[float | None]
    indices: list[int]
    steps: list[int] | None = None  # places on the analysis grid (None: consecutive)
    health: list[Measurement] | None = None  # the camera checks' measures of each frame (with ``health``)


class StreamScorer:
    """FrameScorer + the checkpoint's decision (``decide.Decider``): calibration, causal smoothing, threshold, events.

    The one streaming path behind ``watch`` and ``score``: feed frames in chunks of any size and get one
    ``FrameResult`` per frame; closed events are returned by ``push``/``finish`` and kept in ``events``.
    Its raw scores are ``FrameScorer``'s, so they equal ``eval``'s on the same frames.

    ``health``: run the camera checks (``ognet_video.health``) when the model holds a reference and
    ``health.enabled``; they never change a score, only suspend decisions while the camera does not see its
    scene, and leave ``camera`` messages next to the event messages. ``live``: the source is a live one.
    """

    def __init__(self, detector: Detector, update_every: float = 5.0, health: bool = False, live: bool = False) -> None:
        if detector.calibration is None:
            raise ValueError("StreamScorer needs a calibrated detector (a finished training run)")
        self.detector = detector
        self.frames = FrameScorer(detector)
        self.cal = detector.calibration
        self.update_every = update_every  # seconds of source time between an open event's update messages
        self.decider = Decider(self.cal, detector.cfg.score, update_every)
        self.use_health = health and detector.health is not None and detector.cfg.health.enabled
        self.live = live
        self.reset()

    def reset(self) -> None:
        self.frames.reset()
        self.decider.reset()
        self.messages: list[EventMessage] = []  # event messages of the last ``push``/``complete``/``finish``
        self.index = 0
        self.flagged = 0  # frames above the threshold since ``reset`` (see ``misfit_warning``)
        self.frame_shape: tuple[int, ...] | None = None
        self._boxes: np.ndarray | None = None
        self.health: CameraHealth | None = None
        if self.use_health:
            assert self.detector.health is not None
            self.health = CameraHealth(self.detector.health, self.detector.cfg.health, self.live, self.update_every)
        self.camera_messages: list[CameraMessage] = []  # camera messages of the last ``complete``/``finish``

    def break_motion(self, before: np.ndarray | None = None) -> None:
        """The next frame does not follow the last one scored: measure its motion from ``before`` (the frame the
        source delivered just before it, when kept) or, without one (a stream came back after a gap), score
        it as a first frame. Smoothing and open events carry on."""
        if before is None:
            self.frames.reset()
        else:
            self.frames.follow(before)

    @property
    def threshold(self) -> float:
        """The decision threshold: the calibration's, or an operator's own once set."""
        return self.decider.threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self.decider.threshold = value

    @property
    def tracker(self) -> EventTracker:
        """The event tracker (its ``open`` event is what a console shows)."""
        return self.decider.tracker

    @property
    def events(self) -> list[Event]:
        return self.decider.events

    def boxes_for(self, shape: tuple[int, ...]) -> np.ndarray:
        """Cell boxes in the pixels of a source frame of ``shape`` (cached for the last shape seen)."""
        if self._boxes is None or shape[:2] != self.frame_shape:
            self.frame_shape = shape[:2]
            self._boxes = self.frames.extractor.boxes_for(shape)
        return self._boxes

    def push(self, frames: list[np.ndarray], times: list[float | None] | None = None, indices: list[int] | None = None,
             steps: list[int] | None = None) -> tuple[list[FrameResult], list[Event]]:  # fmt: skip
        """Score consecutive frames: their results and any events that closed on them.

        ``indices``: the frames' own numbers in their source (with a stride or dropped live frames they are
        not consecutive); results and events carry them. Default: a count from 0 since ``reset``. ``steps``:
        their places on the analysis grid when frames between them are missing (see ``prepare``).
        """
        if not frames:
            return [], []
        p = self.prepare(frames, times, indices, steps)
        return self.complete(p, self.detector.patch_scores(p.scores.x))

    def prepare(self, frames: list[np.ndarray], times: list[float | None] | None = None,
                indices: list[int] | None = None, steps: list[int] | None = None) -> PendingPush:  # fmt: skip
        """``push`` up to the forward pass, so the patches of several streams can share one (``complete``).
        ``steps``: the frames' places on the analysis grid when some were dropped (see ``decide.CausalSmoother``)."""
        times = times or [None] * len(frames)
        indices = indices or list(range(self.index, self.index + len(frames)))
        self.index += len(frames)
        measures = [self.health.measure(f) for f in frames] if self.health is not None else None
        return PendingPush(self.frames.prepare(frames), frames, times, indices, steps, measures)

    def complete(self, p: PendingPush, patch_scores: np.ndarray) -> tuple[list[FrameResult], list[Event]]:
        """``push``'s results from the scores of ``p``'s patches; ``messages`` holds the event messages."""
        fs = self.frames.complete(p.scores, patch_scores)
        camera = self._camera(p)
        boxes, object_boxes = self._frame_boxes(fs, p.frames)
        d = self.decider.push(fs, p.indices, p.times, p.steps, boxes, object_boxes, p.frames,
                              [c is not None for c in camera])  # fmt: skip
        out = []
        for i in range(len(p.frames)):
            cue = None if d.cue is None or fs.object_boxes is None else "objects" if d.cue[i] else "patches"
            out.append(FrameResult(p.indices[i], p.times[i], float(fs.raw[i]), float(d.calibrated[i]),
                                   float(d.smoothed[i]), bool(d.flags[i]), d.boxes[i], fs.patch[i], camera[i],
                                   cue))  # fmt: skip
        self.flagged += int(d.flags.sum())
        self.messages = d.messages
        return out, d.events

    def _camera(self, p: PendingPush) -> list[str | None]:
        """Each frame's open camera problem (None: none, or no camera checks); their messages in
        ``camera_messages``. Kept apart from the decision, which it only suspends."""
        self.camera_messages = []
        if self.health is None:
            return [None] * len(p.frames)
        self.health.outbox = []
        camera: list[str | None] = [None] * len(p.frames)
        if p.health is not None:
            camera = [self.health.update(m, i, t, f) for m, i, t, f in zip(p.health, p.indices, p.times, p.frames,
                                                                            strict=True)]  # fmt: skip
        self.camera_messages = self.health.outbox
        return camera

    def _frame_boxes(self, fs: FrameScores,
                     frames: list[np.ndarray]) -> tuple[list[Box | None], list[Box | None] | None]:  # fmt: skip
        """Each frame's worst moving patch and, with the object cue, its worst object, in source pixels (None:
        nothing moved, no object); the decision shows the one whose cue gave the frame's score."""
        boxes = [[int(v) for v in self.boxes_for(f.shape)[int(np.nanargmax(row))]] if np.isfinite(row).any() else None
                 for row, f in zip(fs.patch, frames, strict=True)]  # fmt: skip
        if fs.objects is None or fs.object_boxes is None or self.cal.objects is None:
            return boxes, None
        to_source = self.frames.extractor.to_source
        objects = [[int(v) for v in to_source(b, f.shape)] if np.isfinite(o) else None
                   for o, b, f in zip(fs.objects, fs.object_boxes, frames, strict=True)]  # fmt: skip
        return boxes, objects

    def silence(self, seconds: float) -> list[CameraMessage]:
        """A live source has delivered nothing for ``seconds`` (the run loop's clock): the camera messages."""
        if self.health is None:
            return []
        self.health.outbox = []
        self.health.silence(seconds)
        return self.health.outbox

    def finish(self) -> Event | None:
        """End of the source: close an open event (its ``end`` message is in ``messages``) and an open camera
        event (in ``camera_messages``)."""
        ev, self.messages = self.decider.finish()
        self.camera_messages = []
        if self.health is not None:
            self.health.outbox = []
            self.health.finish()
            self.camera_messages = self.health.outbox
        return ev


MISFIT_SHARE = 0.5  # a model that flags more than this share of a source's frames probably does not fit it
MISFIT_MIN_FRAMES = 20


def misfit_warning(shares: dict[str, tuple[float, int]]) -> str | None:
    """One warning line for the sources (name -> (flagged share, frames scored)) where the model flags most
    frames: anomalies are rare, so that is a sign the camera differs from the one the model learnt."""
    bad = {k: v for k, (v, n) in shares.items() if n >= MISFIT_MIN_FRAMES and v > MISFIT_SHARE}
    if not bad:
        return None
    worst = sorted(bad.items(), key=lambda kv: -kv[1])
    more = f" and {len(worst) - 5} more" if len(worst) > 5 else ""
    names = ", ".join(f"{k} ({100 * v:.0f}%)" for k, v in worst[:5]) + more
    return (f"warning: the model flags most frames of {names}: it probably does not fit this camera (another view, "
            "lighting or frame rate than its training footage); train on this camera's normal footage")  # fmt: skip
