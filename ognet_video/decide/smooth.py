"""Smoothing of calibrated frame scores: causal (the decision's, what a live stream can do) and offline (reports).

* causal: trailing mean over the last ``w`` frames (only the past); ``CausalSmoother`` is the one
  implementation, fed a whole clip at once (eval, calibration) or a stream chunk by chunk (watch, score), with
  the same numbers either way;
* offline: centred mean over ``w`` frames (looks ``w//2`` frames ahead: for comparison with offline papers only).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _window_mean(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, empty: float) -> np.ndarray:
    """Mean of the finite x[lo:hi] for each pair; ``empty`` where a window holds no finite value.

    NaN marks a frame with no score (the first frame of a clip or stream has no predecessor, so no motion
    is known): it is left out of its neighbours' means instead of pulling them towards any made-up value.
    """
    ok = np.isfinite(x)
    c = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    n = np.concatenate([[0], np.cumsum(ok)])
    count = n[hi] - n[lo]
    return np.where(count > 0, (c[hi] - c[lo]) / np.maximum(count, 1), empty)


class CausalSmoother:
    """Trailing mean of the scored frames among the last ``window`` steps; keeps the tail between calls. Each
    mean is summed from its own window's values, so a stream fed in chunks of any size gets bit for bit the
    numbers of the whole clip smoothed at once.

    ``steps`` place frames on the analysis grid (source time in frame intervals): a frame dropped by a live
    source that fell behind leaves an empty slot, so the window still spans ``window`` intervals of source time
    and the mean is that of the frames scored in it. Without ``steps`` frames follow each other.
    """

    def __init__(self, window: int, empty: float = np.nan) -> None:
        self.window = max(1, int(window))
        self.empty = empty
        self.tail = np.full(self.window - 1, np.nan)  # the last window - 1 slots (NaN before the start)
        self.last = -1  # the step of the last frame seen

    def __call__(self, x: np.ndarray | float, steps: np.ndarray | list[int] | None = None) -> np.ndarray:
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        if x.size == 0:
            return x
        if steps is None:
            at, slots = np.arange(len(x)), x
            self.last += len(x)
        else:
            steps = np.asarray(steps, dtype=np.int64)
            gaps = np.diff(np.concatenate([[self.last], steps]))
            # a gap of a window or more empties the window whatever its length: clip it so memory stays bounded
            at = np.cumsum(np.clip(gaps, 1, self.window)) - 1
            slots = np.full(int(at[-1]) + 1, np.nan)
            slots[at] = x
            self.last = max(self.last + len(x), int(steps[-1]))
        seq = np.concatenate([self.tail, slots])
        win = sliding_window_view(seq, self.window)[at]  # (len(x), window): frame t's window ends at t
        ok = np.isfinite(win)
        count = ok.sum(axis=1)
        total = np.where(ok, win, 0.0).sum(axis=1)
        self.tail = seq[len(seq) - (self.window - 1) :]
        return np.where(count > 0, total / np.maximum(count, 1), self.empty)


def causal_smooth(x: np.ndarray, window: int, empty: float = np.nan) -> np.ndarray:
    """A whole clip through ``CausalSmoother``."""
    return CausalSmoother(window, empty)(x)


def offline_smooth(x: np.ndarray, window: int, empty: float = np.nan) -> np.ndarray:
    """Mean of the scored frames in a centred window, shrunk at the clip ends. Uses future frames."""
    x = np.asarray(x, dtype=np.float64)
    half = max(1, window) // 2
    t = np.arange(len(x))
    return _window_mean(x, np.maximum(0, t - half), np.minimum(len(x), t + half + 1), empty)
