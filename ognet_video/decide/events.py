"""Per-frame decisions -> events: an event opens after k frames above threshold, closes after k below.

The hysteresis (k frames either way) keeps one noisy frame from opening or splitting an event. The k frames
are counted in steps of the analysis grid (source time), not in frames seen: when a live source fell behind
and frames were dropped, a run above threshold spanning k steps opens an event and k steps since the last
frame above close it, as the same frames would from the file. An
event's start is the first of the k frames that opened it and its end the last frame above threshold,
so the recorded span does not depend on k's delay.

While it runs, the tracker also leaves messages in ``outbox`` for live alerts: ``start`` when an event
opens, ``update`` (the peak so far) at most every ``update_every`` seconds of source time while it still
changes, ``end`` when it closes. Each carries the peak frame's image (whatever was passed as ``image``),
so a snapshot of the peak can be saved without keeping every frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ASSUMED_FPS = 10.0  # source time of a frame without a timestamp: its index at this rate


@dataclass
class Event:
    start: int  # frame index of the first frame above threshold
    end: int  # last frame above threshold (inclusive)
    peak_frame: int
    peak_score: float  # smoothed, normalised score at the peak
    peak_box: list[int] | None  # worst patch at the peak, x0 y0 x1 y1 in source-frame pixels
    start_time: float | None = None  # seconds, when the source has timestamps
    end_time: float | None = None
    number: int = 0  # 1, 2, ... in the order the stream's events opened (its id is CAMERA-NUMBER)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EventMessage:
    """``start``, ``update`` or ``end`` of the ``number``-th event of a stream, as of ``frame``/``time``."""

    type: str
    number: int  # 1, 2, ... per tracker
    event: Event  # a copy: the state when the message was made
    frame: int  # the frame it was made on
    time: float | None  # that frame's source time
    image: Any = None  # the peak frame's image, when the caller gave one


class EventTracker:
    """Feed one frame at a time; ``update`` returns an event when one closes."""

    def __init__(self, k: int = 3, update_every: float = 5.0) -> None:
        self.k = max(1, int(k))
        self.update_every = update_every
        self.open: Event | None = None
        self._above: list[tuple[int, float, list[int] | None, float | None, Any]] = []  # run above, not yet open
        self._above_from = 0  # the step of the run's first frame
        self._last_above = 0  # the step of the last frame above threshold
        self._step = -1  # the step of the last frame seen
        self._peak_image: Any = None
        self._last_sent: tuple[float, Event] | None = None  # source time and state of the last message
        self.number = 0
        self.closed: list[Event] = []
        self.outbox: list[EventMessage] = []  # messages since the caller last emptied it

    def update(self, index: int, score: float, anomalous: bool, box: list[int] | None = None,
               time: float | None = None, image: Any = None, step: int | None = None) -> Event | None:  # fmt: skip
        """One frame's decision. ``step``: its place on the analysis grid (default: the one after the last)."""
        step = self._step + 1 if step is None or step <= self._step else int(step)
        self._step = step
        if anomalous:
            self._last_above = step
            if self.open is None:
                if not self._above:
                    self._above_from = step
                self._above.append((index, score, box, time, image))
                if step - self._above_from + 1 >= self.k:
                    first = self._above[0]
                    peak = max(self._above, key=lambda r: r[1])
                    self.number += 1
                    self.open = Event(first[0], index, peak[0], peak[1], peak[2], first[3], time, self.number)
                    self._peak_image, self._above = peak[4], []
                    self._send("start", index, time)
                return None
            ev = self.open
            ev.end, ev.end_time = index, time
            if score > ev.peak_score:
                ev.peak_frame, ev.peak_score, ev.peak_box = index, score, box
                self._peak_image = image
        else:
            self._above = []
            if self.open is None:
                return None
            if step - self._last_above >= self.k:
                return self._close(index, time)
        self._maybe_update(index, time)
        return None

    def finish(self) -> Event | None:
        """End of stream: an open event closes at its last frame above threshold."""
        self._above = []
        if self.open is None:
            return None
        return self._close(self.open.end, self.open.end_time)

    def _maybe_update(self, index: int, time: float | None) -> None:
        assert self.open is not None and self._last_sent is not None
        sent_at, sent = self._last_sent
        changed = sent.end != self.open.end or sent.peak_frame != self.open.peak_frame
        if changed and _seconds(index, time) - sent_at >= self.update_every:
            self._send("update", index, time)

    def _send(self, kind: str, index: int, time: float | None) -> None:
        assert self.open is not None
        ev = dataclasses.replace(self.open)
        self._last_sent = (_seconds(index, time), ev)
        self.outbox.append(EventMessage(kind, self.number, ev, index, time, self._peak_image))

    def _close(self, index: int, time: float | None) -> Event:
        self._send("end", index, time)
        ev, self.open, self._peak_image = self.open, None, None
        assert ev is not None
        self.closed.append(ev)
        return ev


def _seconds(index: int, time: float | None) -> float:
    return time if time is not None else index / ASSUMED_FPS


def clip_events(smoothed: Any, threshold: float, k: int, steps: Any = None) -> list[Event]:
    """The events a stream's tracker opens on a whole clip's smoothed scores, each closed by the clip's end: the
    one offline event loop (``decide``, evaluation's intervals hit and false alarms, calibration's alarm counts).
    ``steps``: the frames' places on the analysis grid when some were dropped; events count frames by position."""
    s = np.asarray(smoothed, dtype=np.float64)
    flags = s > threshold
    tracker = EventTracker(k)
    for i in range(len(s)):
        tracker.update(i, float(s[i]), bool(flags[i]), step=None if steps is None else int(steps[i]))
    tracker.finish()
    return tracker.closed
