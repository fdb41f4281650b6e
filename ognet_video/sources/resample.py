"""Resampling a source to the model's analysis rate, from the source's own timestamps.

Motion is measured between consecutive *analysed* frames, so the model sees the same motion scale whatever
the camera's rate: at 10 fps, a 30 fps file keeps every 3rd frame and a 25 fps one the frame nearest each
point of the 10 Hz grid. A source at or below the rate keeps every frame (frames are never invented).
Frames that are not analysed are skipped before decoding where the rate is known, and get no score, as
frames between ``--stride`` steps do.
"""

from __future__ import annotations

import math


class Resampler:
    """Which frames of a source to analyse at ``rate`` frames per second (0: every frame).

    With the source's rate ``fps`` known, frame ``i`` (at ``i / fps``) is kept when it is the frame nearest
    to a grid point ``k / rate`` (decided from the index alone, so skipped frames need not be decoded).
    Without it (a file that does not state its rate) the first frame at or after each grid point is kept,
    from its timestamp. A live camera is resampled by the rate it states; one that states none (or a stream
    clock) is analysed at every frame, as ``--stride`` can then set.
    """

    def __init__(self, rate: float = 0.0, fps: float | None = None) -> None:
        self.rate = float(rate or 0.0)
        self.fps = fps
        self._last = -1  # grid point of the last frame kept by timestamp

    @property
    def by_index(self) -> bool:
        """Decided from the frame index alone (the source's rate is known, or nothing is dropped)."""
        return self.rate <= 0 or bool(self.fps)

    @property
    def active(self) -> bool:
        """Some frames may be skipped."""
        return self.rate > 0 and not (self.fps and self.fps <= self.rate * (1 + 1e-6))

    def keep_index(self, index: int) -> bool:
        if not self.active:
            return True
        assert self.fps
        step = self.fps / self.rate  # source frames per grid point, > 1
        k = math.floor(index / step + 0.5)  # the grid point nearest to this frame
        return math.floor(k * step + 0.5) == index  # ... and this frame is the one nearest to it

    def keep_time(self, time: float | None) -> bool:
        if not self.active or time is None:
            return True
        k = math.floor(time * self.rate + 1e-6)
        if k <= self._last:
            return False
        self._last = k
        return True

    def count(self, length: int) -> int:
        """How many of the first ``length`` frames are kept (a known rate only; else ``length``)."""
        if not self.active or not self.fps:
            return length
        return sum(1 for i in range(length) if self.keep_index(i))
