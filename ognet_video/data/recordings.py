"""Training footage from a user's recordings: video files, frame folders, folders of them and globs.

Inputs are found exactly as ``score`` finds them (``sources.discover``) and read through the same sources as
``watch`` and ``score``, resampled to the model's analysis rate (``patches.analysis_fps``). Recordings are
taken in name order (name them by time); the last part of that footage, ``train.holdout_fraction`` of it or
``train.holdout_seconds``, is held out for calibration. A recording that cannot be read is reported in one
line and left out; too little footage to hold out is one error before any training.

Each recording is cut into segments of at most ``CHUNK`` analysed frames that train like dataset clips, so
an hour of video is never held in memory at once (the first frame of a segment has no motion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from ognet_video.config import WHOLE_FRAME, Config
from ognet_video.errors import UserError
from ognet_video.sources import Frame, Source
from ognet_video.sources.discover import clip_names, discover

PROFILE_FRAMES = 8  # first frames of each recording that black-bar detection looks at
CHUNK = 600  # analysed frames per training segment: one minute at 10 fps
MIN_HOLDOUT = 10  # analysed frames the calibration needs at least (1 s at 10 fps)
MIN_TRAIN = 20  # analysed frames left to train on at least


@dataclass
class Recording:
    """One readable input and what a first read of it learnt."""

    clip: Any  # sources.discover.ClipInput
    name: str
    fps: float  # the source's rate (a frame folder's: the --fps given)
    rate: float  # frames analysed per second: the analysis rate, or the source's where that is lower
    frames: int  # analysed frames
    shape: tuple[int, int]
    # the brightest gray value per column and per row of its first few frames (``patches.brightness_profile``)
    profile: tuple[Any, Any] | None = None
    times: np.ndarray | None = None  # a variable-rate video's analysed frames' timestamps (else index / rate)

    @property
    def seconds(self) -> float:
        if self.times is None:
            return self.frames / self.rate
        return float(self.times[-1] - self.times[0]) + 1.0 / self.rate

    def time_at(self, i: int) -> float:
        """Seconds from the start to analysed frame ``i`` (``frames``: to the end)."""
        if self.times is None:
            return i / self.rate
        return float(self.times[i] - self.times[0]) if i < self.frames else self.seconds

    def source(self, analysis_fps: float, folder_fps: float) -> Source:
        return self.clip.source(folder_fps).analyse_at(analysis_fps)


@dataclass
class Segment:
    """Analysed frames ``start`` to ``stop`` of a recording, read like a dataset clip (``Clip``'s interface)."""

    recording: Recording
    start: int
    stop: int
    analysis_fps: float
    folder_fps: float
    labels: None = None

    @property
    def start_s(self) -> float:
        return self.recording.time_at(self.start)

    @property
    def end_s(self) -> float:
        return self.recording.time_at(self.stop)

    @property
    def name(self) -> str:
        return f"{self.recording.name}@{self.start_s:.1f}-{self.end_s:.1f}s"

    def __len__(self) -> int:
        return self.stop - self.start

    def source(self) -> Iterator[Frame]:
        frames = iter(self.recording.source(self.analysis_fps, self.folder_fps))
        try:
            for i, frame in enumerate(frames):
                if i >= self.stop:
                    break
                if i >= self.start:
                    yield frame
        finally:
            frames.close()  # type: ignore[attr-defined]  # a generator: releases the capture

    def describe(self) -> dict[str, Any]:
        return {"recording": str(self.recording.clip.path), "start_s": round(self.start_s, 3),
                "end_s": round(self.end_s, 3), "frames": len(self)}  # fmt: skip


@dataclass
class Recordings:
    """Recordings as a dataset ``train`` accepts: ``train`` lists every segment, ``holdout`` the held-out ones."""

    name: str
    recordings: list[Recording]
    training: list[Segment]
    holdout: list[Segment]
    skipped: list[str] = field(default_factory=list)
    layout: str = "recordings"
    test: list = field(default_factory=list)  # no test split: nothing to evaluate

    @property
    def train(self) -> list[Segment]:
        return self.training + self.holdout

    @property
    def holdout_seconds(self) -> float:
        return sum(s.end_s - s.start_s for s in self.holdout)

    def holdout_line(self) -> str:
        """The console's account of what is held out."""
        parts = ", ".join(f"{s.recording.name} {s.start_s:.1f}-{s.end_s:.1f} s" for s in _merged(self.holdout))
        total = sum(r.seconds for r in self.recordings)
        return (f"held out for calibration: the last {self.holdout_seconds:.1f} s of {total:.1f} s of footage "
                f"({sum(len(s) for s in self.holdout)} analysed frames): {parts}")  # fmt: skip

    def meta(self) -> dict[str, Any]:
        """What the checkpoint records about the footage and its held-out part."""
        return {
            "footage": {
                "recordings": [
                    {"path": str(r.clip.path), "fps": r.fps, "frames": r.frames, "size": list(r.shape)}
                    for r in self.recordings
                ],  # fmt: skip
                "skipped": self.skipped,
                "seconds": round(sum(r.seconds for r in self.recordings), 3),
            },
            "holdout": {
                "by": "time",
                "seconds": round(self.holdout_seconds, 3),
                "segments": [s.describe() for s in _merged(self.holdout)],
            },  # fmt: skip
        }


def _merged(segments: list[Segment]) -> list[Segment]:
    """Consecutive segments of one recording as one (for reports)."""
    out: list[Segment] = []
    for s in segments:
        if out and out[-1].recording is s.recording and out[-1].stop == s.start:
            out[-1] = Segment(s.recording, out[-1].start, s.stop, s.analysis_fps, s.folder_fps)
        else:
            out.append(s)
    return out


def probe(clip: Any, name: str, analysis_fps: float, folder_fps: float,
          log: Callable[[str], None] | None = None) -> Recording:  # fmt: skip
    """Open a recording and read its first frames: UserError when it cannot be read. A video is read through, as
    training will read it: its frames' timestamps, not its stated rate and length, plan the held-out part (a
    variable-rate file runs a different time; a cut-off one, which ``log`` hears, ends early). A frame folder's
    times are index / fps."""
    from ognet_video.patches import brightness_profile

    src = clip.source(folder_fps).analyse_at(analysis_fps)
    src.open()
    frames = src.frames()
    times: list[float | None] = []
    try:
        first = next(frames, None)
        if first is None:
            raise UserError("it has no decodable frames")
        cols, rows = brightness_profile(first.image)
        times.append(first.time)
        through = clip.kind == "video" or not (src.length and src.fps)
        for f in frames if through else islice(frames, PROFILE_FRAMES - 1):
            if len(times) < PROFILE_FRAMES and f.image.shape == first.image.shape:
                c, r = brightness_profile(f.image)
                cols, rows = np.maximum(cols, c), np.maximum(rows, r)
            times.append(f.time)
        n = len(times) if through else src.total
    finally:
        frames.close()
        src.close()
    fps = src.fps or 0.0
    if clip.kind == "video" and src.length and fps and src.decoded < 0.98 * src.length - 1 and log is not None:
        log(f"{name}: its container says {src.length / fps:.1f} s but it is cut off or damaged; using the part "
            "that decodes")  # fmt: skip
    rate = min(analysis_fps, fps) if analysis_fps and fps else (fps or analysis_fps or folder_fps)
    shape = tuple(first.image.shape[:2])
    variable = getattr(src, "variable", False) and None not in times  # timed by its timestamps (VideoFile)
    stamps = np.asarray(times, dtype=float) if variable else None
    return Recording(clip, name, fps, rate, int(n or 0), shape, (cols, rows), stamps)  # type: ignore[arg-type]


def _chunks(rec: Recording, start: int, stop: int, cfg: Config, folder_fps: float) -> list[Segment]:
    n = max(1, math.ceil((stop - start) / CHUNK))
    edges = [start + round(i * (stop - start) / n) for i in range(n + 1)]
    return [
        Segment(rec, a, b, cfg.patches.analysis_fps, folder_fps)
        for a, b in zip(edges, edges[1:], strict=False)
        if b > a
    ]


def _last(rec: Recording, seconds: float) -> int:
    """How many of ``rec``'s last analysed frames cover its last ``seconds`` (by their timestamps, if kept)."""
    if rec.times is None:
        return min(rec.frames, math.ceil(seconds * rec.rate - 1e-9))
    start = rec.seconds - seconds
    return rec.frames - int(np.searchsorted(rec.times - rec.times[0], start - 1e-9)) if start > 0 else rec.frames


def split_by_time(recs: list[Recording], cfg: Config, folder_fps: float) -> tuple[list[Segment], list[Segment]]:
    """(training, held out): the held-out part is the last ``holdout_seconds`` (or ``holdout_fraction``) of the
    footage in name order; UserError, before any training, when either part is too short."""
    total_s = sum(r.seconds for r in recs)
    want_s = cfg.train.holdout_seconds or cfg.train.holdout_fraction * total_s
    training: list[Segment] = []
    holdout: list[Segment] = []
    left = want_s
    for rec in reversed(recs):
        take = _last(rec, left) if left > 0 else 0
        left -= rec.seconds - rec.time_at(rec.frames - take)
        holdout = _chunks(rec, rec.frames - take, rec.frames, cfg, folder_fps) + holdout if take else holdout
        training = _chunks(rec, 0, rec.frames - take, cfg, folder_fps) + training if take < rec.frames else training
    held, trained = sum(len(s) for s in holdout), sum(len(s) for s in training)
    if held < MIN_HOLDOUT or trained < MIN_TRAIN:
        how = f"train.holdout_seconds={cfg.train.holdout_seconds:g}" if cfg.train.holdout_seconds else (
            f"train.holdout_fraction={cfg.train.holdout_fraction:g}")  # fmt: skip
        raise UserError(f"too little footage: {total_s:.1f} s in {len(recs)} recording(s); {how} holds out {held} "
                        f"analysed frames and leaves {trained} to train on (need at least {MIN_HOLDOUT} and "
                        f"{MIN_TRAIN}); add footage or change {how.split('=')[0]}")  # fmt: skip
    return training, holdout


def load_recordings(inputs: list[str], cfg: Config, recursive: bool = False, folder_fps: float = 10.0,
                    log: Callable[[str], None] | None = None, name: str = "recordings") -> Recordings:  # fmt: skip
    """The recordings named by ``inputs`` (as ``score`` takes them), split by time for training.

    ``log`` gets one line per recording that cannot be read (it is left out); none readable is an error.
    """

    log = log or (lambda msg: None)
    clips = discover(inputs, recursive, log=log)
    recs, skipped = [], []
    for clip, clip_name in zip(clips, clip_names(clips), strict=True):
        try:
            recs.append(probe(clip, clip_name, cfg.patches.analysis_fps, folder_fps, log))
        except UserError as exc:
            skipped.append(str(clip.path))
            log(f"skipping {clip_name}: {exc}")
    if not recs:
        raise UserError(f"none of the {len(clips)} recording(s) could be read; check the files")
    training, holdout = split_by_time(recs, cfg, folder_fps)
    return Recordings(name, recs, training, holdout, skipped)


def fit_geometry(cfg: Config, recs: Recordings, log: Callable[[str], None] | None = None) -> None:
    """``patches.crop`` from black bars the first recording's size shares (``patches.crop_bars``), then, with
    ``patches.keep_aspect``, ``patches.width`` from the picture's aspect ratio (``log`` hears both choices, and
    recordings of other sizes)."""
    from ognet_video.config import set_value
    from ognet_video.patches import black_bars, crop_pixels, fit_width

    shape = recs.recordings[0].shape
    if cfg.patches.crop_bars and tuple(cfg.patches.crop) == WHOLE_FRAME:
        profiles = [r.profile for r in recs.recordings if r.shape == shape and r.profile is not None]
        crop = black_bars(np.maximum.reduce([c for c, _ in profiles]), np.maximum.reduce([r for _, r in profiles]))
        if crop is not None:
            set_value(cfg, "patches.crop", crop, "footage")
            if log is not None:
                x0, y0, x1, y1 = crop_pixels(crop, shape)
                log(f"black bars cropped: the picture is {x1 - x0}x{y1 - y0} at ({x0}, {y0}) of {shape[1]}x{shape[0]} "
                    "(patches.crop_bars=false keeps them)")  # fmt: skip
    if not cfg.patches.keep_aspect:
        return
    others = sorted({r.shape for r in recs.recordings} - {shape})
    if others and log is not None:
        log(f"recordings of other sizes ({', '.join(f'{w}x{h}' for h, w in others)}) are resized to the first "
            f"one's aspect ratio ({shape[1]}x{shape[0]})")  # fmt: skip
    x0, y0, x1, y1 = crop_pixels(cfg.patches.crop, shape)
    set_value(cfg, "patches.width", fit_width(cfg.patches, (y1 - y0, x1 - x0)), "footage")
