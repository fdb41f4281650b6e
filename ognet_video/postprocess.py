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


def causal_smooth(x: np.ndarray, window: int, empty: float = np.nan) -> np.ndarray:
    """Mean of the scored frames among x[max(0, t-w+1) .. t] for each t (``empty`` if there are none)."""
    x = np.asarray(x, dtype=np.float64)
    t = np.arange(1, len(x) + 1)
    return _window_mean(x, np.maximum(0, t - max(1, window)), t, empty)


def offline_smooth(x: np.ndarray, window: int, empty: float = np.nan) -> np.ndarray:
    """Mean of the scored frames in a centred window, shrunk at the clip ends. Uses future frames."""
    x = np.asarray(x, dtype=np.float64)
    half = max(1, window) // 2
    t = np.arange(len(x))
    return _window_mean(x, np.maximum(0, t - half), np.minimum(len(x), t + half + 1), empty)


class CausalSmoother:
    """Streaming twin of ``causal_smooth``: same numbers, one frame at a time."""

    def __init__(self, window: int, empty: float = np.nan) -> None:
        self.buf: deque[float] = deque(maxlen=max(1, window))
        self.empty = empty

    def __call__(self, value: float) -> float:
        self.buf.append(float(value))
        vals = [v for v in self.buf if np.isfinite(v)]
        return float(np.mean(vals)) if vals else self.empty


def fill_floor(raw: np.ndarray, floor: float) -> np.ndarray:
    return np.where(np.isnan(raw), floor, raw)


def fit_calibration(raw_clips: dict[str, np.ndarray], patch_floor: float, cfg: ScoreConfig) -> Calibration:
    """Fit normalisation and threshold on raw frame scores of held-out normal clips.

    ``raw_clips`` as ``FrameScorer.score_clip`` gives them without a calibration: NaN for a static frame
    (it gets the floor) and for each clip's first frame, which has no predecessor and stays unscored.
    """
    filled = {}
    for k, v in raw_clips.items():
        f = fill_floor(v, patch_floor)
        f[:1] = np.nan
        filled[k] = f
    allv = np.concatenate(list(filled.values()))
    allv = allv[np.isfinite(allv)]
    if allv.size == 0:
        raise ValueError("no scored frame in the calibration clips")
    mean = float(allv.mean())
    std = float(allv.std()) or 1.0
    cal = Calibration(patch_floor, mean, std, 0.0, cfg.threshold_percentile, int(allv.size), sorted(raw_clips))
    smoothed = np.concatenate([causal_smooth(cal.normalize(v), cfg.causal_window, cal.empty) for v in filled.values()])
    cal.threshold = float(np.percentile(smoothed, cfg.threshold_percentile))
    return cal
