"""Frames -> patch scores -> frame scores, one code path for offline eval and live streams.

``FrameScorer`` keeps the previous frame between calls, so feeding a clip in chunks of 16 (offline)
or one frame at a time (a camera) gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ognet_video.config import ScoreConfig
from ognet_video.detector import Detector
from ognet_video.patches import PatchExtractor


@dataclass
class FrameScores:
    """Scores of T consecutive frames."""

    raw: np.ndarray  # (T,) raw frame score; NaN where no patch moved and no calibration gives a floor
    patch: np.ndarray  # (T, N) D(G(x)) per cell, NaN for static cells
    motion: np.ndarray  # (T, N) mean |frame difference| per cell

    @staticmethod
    def concat(parts: list[FrameScores]) -> FrameScores:
        return FrameScores(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("raw", "patch", "motion")))


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


class FrameScorer:
    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.extractor = PatchExtractor(detector.cfg.patches, detector.background)
        self.prev: np.ndarray | None = None

    def reset(self) -> None:
        """Start a new clip: the next frame has no predecessor, so it counts as static."""
        self.prev = None

    def score(self, frames: list[np.ndarray]) -> FrameScores:
        """Score consecutive raw frames (any size, gray or BGR): all moving patches in one forward pass."""
        ex = self.extractor
        prepared = np.stack([ex.prepare(f) for f in frames])
        cp = ex.extract(prepared, self.prev)
        self.prev = prepared[-1]
        moving = ex.moving(cp.motion)
        x = ex.select(cp, moving)
        patch = np.full(moving.shape, np.nan)
        patch[moving] = self.detector.patch_scores(x)
        raw = aggregate(patch, self.detector.cfg.score)
        cal = self.detector.calibration
        if cal is not None:
            raw = np.where(np.isnan(raw), cal.floor, raw)
        return FrameScores(raw, patch, cp.motion)

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
        self.reset()
        parts = list(self.score_stream(frames, batch))
        if not parts:
            n = self.extractor.num_cells
            return FrameScores(np.zeros(0), np.zeros((0, n)), np.zeros((0, n), dtype=np.float32))
        return FrameScores.concat(parts)
