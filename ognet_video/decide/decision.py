"""Raw frame scores -> calibrated -> causally smoothed -> flagged -> events: the decision, in one place.

It takes arrays (a ``FrameScores``) and a stored ``Calibration``, never a detector, so every command applies
one rule: ``decide`` on a whole clip (eval, calibration, the label-free check), ``Decider`` on a stream fed
chunk by chunk (``StreamScorer``: watch, score, the API), with bit for bit the same numbers, flags and events.

* calibration: the crowd correction (the frame score's expected rise with the number of moving cells, fitted
  on held-out normal frames) is subtracted, a frame where nothing moved gets the floor, then every frame is
  normalised with the mean and std of held-out *normal* frames; a frame with no predecessor stays unscored (NaN);
  with the object cue, a frame's score is the larger of that and its worst object's in the same units;
* causal smoothing (``smooth.CausalSmoother``): what the threshold applies to;
* events (``events.EventTracker``): k frames above the threshold open one, k below close it.

The calibration is fitted elsewhere (``postprocess.fit_calibration``): learning the decision, not applying it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ognet_video.decide.events import Event, EventMessage, EventTracker, clip_events
from ognet_video.decide.smooth import CausalSmoother, causal_smooth

if TYPE_CHECKING:  # type hints only: the decision needs neither torch nor a model
    from ognet_video.config import ScoreConfig
    from ognet_video.models.detector import Calibration
    from ognet_video.stream.scoring import FrameScores

Box = list[int]  # x0 y0 x1 y1 in source-frame pixels


def moving_cells(fs: FrameScores) -> np.ndarray:
    """(T,) how many cells moved in each frame: the cells with a patch score."""
    return np.isfinite(fs.patch).sum(axis=1)


def crowd_corrected(fs: FrameScores, crowd: float) -> np.ndarray:
    """Raw frame scores minus ``crowd * log(moving cells)``: what the frame scores beyond its crowd."""
    return fs.raw - crowd * np.log(np.maximum(moving_cells(fs), 1)) if crowd else fs.raw


def calibrated(fs: FrameScores, cal: Calibration) -> np.ndarray:
    """Normalised frame scores: crowd-corrected, a frame with no moving patch -> the floor, unscored -> NaN; with
    the object cue, the larger of that and the frame's object score in the same units."""
    raw = crowd_corrected(fs, cal.crowd)
    filled = np.where(np.isnan(raw), cal.floor, raw)
    z = np.where(fs.scored, cal.normalize(filled), np.nan)
    obj = object_units(fs, cal)
    return z if obj is None else np.where(np.isfinite(obj) & fs.scored, np.fmax(z, obj), z)


def object_units(fs: FrameScores, cal: Calibration) -> np.ndarray | None:
    """The frames' object scores in the calibrated patch score's units (NaN: no object); None without the cue."""
    if cal.objects is None or fs.objects is None:
        return None
    a, b = cal.objects
    return a + b * fs.objects


def object_cue(fs: FrameScores, cal: Calibration, z: np.ndarray) -> np.ndarray | None:
    """(T,) True where the calibrated score ``z`` is the worst object's (it outscored the patches), so the box
    to show is the object's; None without the object cue."""
    obj = object_units(fs, cal)
    return None if obj is None else np.isfinite(obj) & (obj >= z)


def decision_score(fs: FrameScores, cal: Calibration, window: int) -> np.ndarray:
    """A whole clip's score as the decision sees it: calibrated, then causally smoothed (``window`` frames); the
    stored threshold and the event rule apply to it (``decide``)."""
    return causal_smooth(calibrated(fs, cal), window, cal.empty)


@dataclass
class Decision:
    """The decision on T frames: a whole clip's (``decide``) or a stream chunk's (``Decider.push``)."""

    calibrated: np.ndarray  # (T,) normalised score; NaN for an unscored frame
    smoothed: np.ndarray  # (T,) causal trailing mean of ``calibrated``: what the threshold applies to
    flags: np.ndarray  # (T,) bool: above the threshold (and the decision not suspended)
    events: list[Event]  # closed on these frames; a whole clip's last one closes at its end
    messages: list[EventMessage] = field(default_factory=list)  # start / update / end made on these frames
    cue: np.ndarray | None = None  # (T,) bool: the worst object gave the score; None without the object cue
    boxes: list[Box | None] = field(default_factory=list)  # each frame's box (``Decider.push``)


def decide(fs: FrameScores, cal: Calibration, cfg: ScoreConfig,
           steps: Sequence[int] | np.ndarray | None = None) -> Decision:  # fmt: skip
    """The decision on a whole clip, as a stream's ``Decider`` makes it frame by frame. ``steps``: the frames'
    places on the analysis grid when some were dropped; events name frames by their position in ``fs``."""
    z = calibrated(fs, cal)
    smoothed = CausalSmoother(cfg.causal_window, cal.empty)(z, steps)
    events = clip_events(smoothed, cal.threshold, cfg.event_frames, steps)
    return Decision(z, smoothed, smoothed > cal.threshold, events, cue=object_cue(fs, cal, z))


class Decider:
    """``decide`` for a stream fed chunk by chunk: keeps the smoother's tail and the open event between chunks,
    and takes what a live stream adds: the frames' source numbers and times, the boxes and images an event
    reports, and frames whose decision is suspended (a camera problem)."""

    def __init__(self, cal: Calibration, cfg: ScoreConfig, update_every: float = 5.0) -> None:
        self.cal, self.cfg = cal, cfg
        self.update_every = update_every  # seconds of source time between an open event's update messages
        self.threshold = cal.threshold  # an operator's own threshold may replace it
        self.reset()

    def reset(self) -> None:
        """Start a new stream: no past frame to smooth with, no open event."""
        self.smoother = CausalSmoother(self.cfg.causal_window, self.cal.empty)
        self.tracker = EventTracker(self.cfg.event_frames, self.update_every)
        self.seen = 0  # frames pushed since ``reset``

    @property
    def events(self) -> list[Event]:
        """Every event closed since ``reset``."""
        return self.tracker.closed

    def push(self, fs: FrameScores, indices: Sequence[int] | None = None, times: Sequence[float | None] | None = None,
             steps: Sequence[int] | None = None, boxes: Sequence[Box | None] | None = None,
             object_boxes: Sequence[Box | None] | None = None, images: Sequence[Any] | None = None,
             suspended: Sequence[bool] | None = None) -> Decision:  # fmt: skip
        """The decision on the next frames of the stream.

        ``indices``/``times``: the frames' numbers and seconds in their source (events and messages carry them;
        default: a count since ``reset``). ``steps``: their places on the analysis grid when some were dropped.
        ``boxes``: each frame's worst patch, ``object_boxes`` its worst object (with the object cue): the box an
        event reports is that of the cue that gave the frame's score. ``images``: what a message carries as the
        peak's picture. ``suspended``: frames that must not be flagged (their score still smooths).
        """
        n = len(fs.raw)
        indices = range(self.seen, self.seen + n) if indices is None else indices
        self.seen += n
        z = calibrated(fs, self.cal)
        cue = object_cue(fs, self.cal, z)
        smoothed = self.smoother(z, steps)
        flags = smoothed > self.threshold
        if suspended is not None:
            flags &= ~np.asarray(suspended, dtype=bool)
        chosen: list[Box | None] = []
        closed: list[Event] = []
        self.tracker.outbox = []
        for i in range(n):
            box = None if boxes is None else boxes[i]
            if cue is not None and object_boxes is not None and cue[i]:
                box = object_boxes[i]
            chosen.append(box)
            ev = self.tracker.update(indices[i], float(smoothed[i]), bool(flags[i]), box,
                                     None if times is None else times[i], None if images is None else images[i],
                                     None if steps is None else steps[i])  # fmt: skip
            if ev is not None:
                closed.append(ev)
        messages, self.tracker.outbox = self.tracker.outbox, []
        return Decision(z, smoothed, flags, closed, messages, cue, chosen)

    def finish(self) -> tuple[Event | None, list[EventMessage]]:
        """End of the stream: an open event closes at its last frame above threshold; with its ``end`` message."""
        self.tracker.outbox = []
        ev = self.tracker.finish()
        messages, self.tracker.outbox = self.tracker.outbox, []
        return ev, messages
