"""Frame scores -> calibrated, smoothed scores and decisions.

* causal smoothing: trailing mean over the last ``w`` frames (only the past: what a live stream can do);
* offline smoothing: centred mean over ``w`` frames (looks ``w//2`` frames ahead: reports only);
* calibration: fitted on held-out *normal* clips, never on test labels.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ognet_video.config import ScoreConfig
from ognet_video.detector import Calibration


def causal_smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of x[max(0, t-w+1) .. t] for each t."""
    x = np.asarray(x, dtype=np.float64)
    if window <= 1 or len(x) == 0:
        return x.copy()
    c = np.concatenate([[0.0], np.cumsum(x)])
    t = np.arange(1, len(x) + 1)
    lo = np.maximum(0, t - window)
    return (c[t] - c[lo]) / (t - lo)


def offline_smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Mean over a centred window, shrunk at the clip ends. Uses future frames."""
    x = np.asarray(x, dtype=np.float64)
    if window <= 1 or len(x) == 0:
        return x.copy()
    half = window // 2
    c = np.concatenate([[0.0], np.cumsum(x)])
    t = np.arange(len(x))
    lo = np.maximum(0, t - half)
    hi = np.minimum(len(x), t + half + 1)
    return (c[hi] - c[lo]) / (hi - lo)


class CausalSmoother:
    """Streaming twin of ``causal_smooth``: same numbers, one frame at a time."""

    def __init__(self, window: int) -> None:
        self.buf: deque[float] = deque(maxlen=max(1, window))

    def __call__(self, value: float) -> float:
        self.buf.append(float(value))
        return float(np.mean(self.buf))


def fill_floor(raw: np.ndarray, floor: float) -> np.ndarray:
    return np.where(np.isnan(raw), floor, raw)


def fit_calibration(raw_clips: dict[str, np.ndarray], patch_floor: float, cfg: ScoreConfig) -> Calibration:
    """Fit normalisation and threshold on raw frame scores of held-out normal clips (NaN = static frame)."""
    filled = {k: fill_floor(v, patch_floor) for k, v in raw_clips.items()}
    allv = np.concatenate(list(filled.values()))
    mean = float(allv.mean())
    std = float(allv.std()) or 1.0
    cal = Calibration(patch_floor, mean, std, 0.0, cfg.threshold_percentile, int(allv.size), sorted(raw_clips))
    smoothed = np.concatenate([causal_smooth(cal.normalize(v), cfg.causal_window) for v in filled.values()])
    cal.threshold = float(np.percentile(smoothed, cfg.threshold_percentile))
    return cal
