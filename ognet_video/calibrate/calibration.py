"""The decision threshold from a target false-alarm rate on normal footage (alarms per hour).

An operator thinks in false alarms per hour, not in frame percentiles. A stream raises an alarm when its
causally smoothed score stays above the threshold for ``k`` frames (``decide.EventTracker``), so the
statistic that decides whether an alarm opens by frame t is ``e_t``, the minimum of the last ``k``
smoothed scores. Held-out normal footage is short (Ped2: 30 s), far shorter than the hour a rate of one
alarm per hour is about, so the threshold is an extrapolation: the maxima of ``e_t`` over blocks of
``block_seconds`` are fitted with a Gumbel law (the extreme-value limit of light-tailed maxima), and the
threshold is the level a block maximum exceeds with probability ``rate * block_seconds / 3600``, taken at
the 90% bootstrap upper bound of that estimate (a margin that shrinks as the footage grows). The empirical
frame percentile of the same footage is kept only as a detail for reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ognet_video.decide import clip_events

EULER = 0.5772156649015329
MIN_BLOCKS = 4  # fewer block maxima than this cannot fit a tail: the blocks shrink
# 2 s: the shortest block that holds well over twice the event statistic's memory (smoothing window + k - 1 frames,
# 0.7 s at the default 10 fps), so that neighbouring block maxima are nearly independent
BLOCK_SECONDS = 2.0
CONFIDENCE = 0.9  # one-sided confidence of the threshold's bootstrap upper bound (the margin for short footage)
BOOTSTRAP = 1000


@dataclass
class RateFit:
    """A Gumbel law fitted to block maxima of the event statistic, and the threshold it gives."""

    threshold: float
    loc: float  # Gumbel location (mu) of a block maximum
    scale: float  # Gumbel scale (beta)
    blocks: int
    block_seconds: float
    seconds: float  # footage the fit saw

    def alarms_per_hour(self, threshold: float) -> float:
        """Expected alarms per hour of normal footage at ``threshold`` under the fitted law."""
        p = 1.0 - math.exp(-math.exp(-(threshold - self.loc) / self.scale))
        return -math.log1p(-min(p, 1 - 1e-12)) * 3600.0 / self.block_seconds


def event_statistic(smoothed: np.ndarray, k: int) -> np.ndarray:
    """``e_t`` = min of the last ``k`` smoothed scores: an alarm is open by frame t only if ``e_t`` > threshold.

    Frames before the k-th, and windows holding a NaN, get -inf (no alarm can open there).
    """
    s = np.where(np.isfinite(smoothed), np.asarray(smoothed, dtype=np.float64), -np.inf)
    k = max(1, int(k))
    out = np.full(len(s), -np.inf)
    if len(s) >= k:
        out[k - 1 :] = np.lib.stride_tricks.sliding_window_view(s, k).min(axis=1)
    return out


def block_maxima(stats: list[np.ndarray], seconds_per_frame: list[float], block_seconds: float) -> np.ndarray:
    """Maxima of each clip's statistic over consecutive blocks of ``block_seconds`` (a clip's last, partial
    block is kept when it holds at least half a block); blocks with no finite value are dropped."""
    out = []
    for e, dt in zip(stats, seconds_per_frame, strict=True):
        n = max(1, int(round(block_seconds / dt)))
        for i in range(0, len(e), n):
            block = e[i : i + n]
            if len(block) * 2 >= n and np.isfinite(block).any():
                out.append(float(block.max()))
    return np.asarray(out)


def gumbel_fit(x: np.ndarray) -> tuple[float, float]:
    """Gumbel (location, scale) by the method of moments: robust for the handful of maxima held-out footage gives."""
    scale = max(float(np.std(x, ddof=1)) * math.sqrt(6) / math.pi if len(x) > 1 else 0.0, 1e-3)
    return float(np.mean(x)) - EULER * scale, scale


def _gumbel_threshold(maxima: np.ndarray, p_block: float) -> float:
    loc, scale = gumbel_fit(maxima)
    return loc - scale * math.log(-math.log1p(-p_block))


def rate_threshold(smoothed: list[np.ndarray], seconds_per_frame: list[float], k: int, alarms_per_hour: float,
                   block_seconds: float = BLOCK_SECONDS, confidence: float = CONFIDENCE) -> RateFit:  # fmt: skip
    """The threshold at which normal footage like ``smoothed`` raises at most ``alarms_per_hour`` alarms per
    hour, with ``confidence``: the Gumbel fit's threshold is refitted on bootstrap resamples of the block
    maxima and the ``confidence`` quantile of those is taken. The margin is what a short footage costs: it
    shrinks as the footage grows. With too little footage for ``MIN_BLOCKS`` blocks the blocks shrink to fit.
    """
    if alarms_per_hour <= 0:
        raise ValueError("alarms_per_hour must be > 0")
    stats = [event_statistic(s, k) for s in smoothed]
    seconds = float(sum(len(s) * dt for s, dt in zip(smoothed, seconds_per_frame, strict=True)))
    block = block_seconds
    maxima = block_maxima(stats, seconds_per_frame, block)
    while len(maxima) < MIN_BLOCKS and block > 2 * max(seconds_per_frame):
        block /= 2
        maxima = block_maxima(stats, seconds_per_frame, block)
    if not len(maxima):
        raise ValueError("no scored frame in the calibration footage")
    p_block = min(alarms_per_hour * block / 3600.0, 0.5)  # chance that one block holds an alarm
    rng = np.random.default_rng(0)  # fixed: the same footage always gives the same threshold
    boot = [_gumbel_threshold(rng.choice(maxima, len(maxima)), p_block) for _ in range(BOOTSTRAP)]
    threshold = max(float(np.quantile(boot, confidence)), _gumbel_threshold(maxima, p_block))
    loc, scale = gumbel_fit(maxima)
    return RateFit(threshold, loc, scale, len(maxima), block, seconds)


def count_alarms(smoothed: np.ndarray, threshold: float, k: int) -> int:
    """Alarms (events) the stream's tracker opens on ``smoothed`` at ``threshold``: ``decide``'s event loop."""
    return len(clip_events(smoothed, threshold, k))


def frame_percentile(smoothed: list[np.ndarray], threshold: float) -> float:
    """Share of the footage's smoothed frame scores at or below ``threshold``, in percent (a detail for reports;
    at least a tiny positive number, as a percentile must be)."""
    v = np.concatenate([s[np.isfinite(s)] for s in smoothed])
    return max(100.0 * float((v <= threshold).mean()) if v.size else 100.0, 1e-6)


def seconds_per_frame(times: list[float | None], default: float) -> float:
    """A clip's frame interval from its timestamps (median step), or ``default`` when they are unknown."""
    t = np.asarray([x for x in times if x is not None], dtype=np.float64)
    steps = np.diff(t)
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return float(np.median(steps)) if steps.size else default


def with_threshold(cal, threshold: float | None):
    """``cal`` with an operator's own threshold (``--threshold``), on the same smoothed, normalised score."""
    import dataclasses

    from ognet_video.errors import UserError

    if threshold is None:
        return cal
    if not math.isfinite(threshold):
        raise UserError(f"--threshold must be a finite number (got {threshold})")
    return dataclasses.replace(cal, threshold=float(threshold))
