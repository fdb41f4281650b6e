"""Per-frame decisions -> events: an event opens after k frames above threshold, closes after k below.

The hysteresis (k frames either way) keeps one noisy frame from opening or splitting an event. An
event's start is the first of the k frames that opened it and its end the last frame above threshold,
so the recorded span does not depend on k's delay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Event:
    start: int  # frame index of the first frame above threshold
    end: int  # last frame above threshold (inclusive)
    peak_frame: int
    peak_score: float  # smoothed, normalised score at the peak
    peak_box: list[int] | None  # worst patch at the peak, x0 y0 x1 y1 in source-frame pixels
    start_time: float | None = None  # seconds, when the source has timestamps
    end_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventTracker:
    """Feed one frame at a time; ``update`` returns an event when one closes."""

    def __init__(self, k: int = 3) -> None:
        self.k = max(1, int(k))
        self.open: Event | None = None
        self._above: list[tuple[int, float, list[int] | None, float | None]] = []  # run of frames above, not yet open
        self._below = 0
        self.closed: list[Event] = []

    def update(self, index: int, score: float, anomalous: bool, box: list[int] | None = None,
               time: float | None = None) -> Event | None:  # fmt: skip
        if anomalous:
            self._below = 0
            if self.open is None:
                self._above.append((index, score, box, time))
                if len(self._above) >= self.k:
                    first = self._above[0]
                    peak = max(self._above, key=lambda r: r[1])
                    self.open = Event(first[0], index, peak[0], peak[1], peak[2], first[3], time)
                    self._above = []
            else:
                ev = self.open
                ev.end, ev.end_time = index, time
                if score > ev.peak_score:
                    ev.peak_frame, ev.peak_score, ev.peak_box = index, score, box
            return None
        self._above = []
        if self.open is None:
            return None
        self._below += 1
        if self._below >= self.k:
            return self._close()
        return None

    def finish(self) -> Event | None:
        """End of stream: an open event closes at its last frame above threshold."""
        self._above = []
        return self._close() if self.open is not None else None

    def _close(self) -> Event:
        ev, self.open, self._below = self.open, None, 0
        assert ev is not None
        self.closed.append(ev)
        return ev
