"""The object cue of a stream of frames: each frame's worst object, scored against the normal objects."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ognet_video.config import ObjectConfig
from ognet_video.objects.density import ObjectDensity
from ognet_video.objects.regions import FEATURES, Objects, find_objects
from ognet_video.patches import PatchExtractor

REFERENCE_HEIGHT = 232  # px: ``objects.min_flow`` and ``min_area`` are set for a grid this high (the default's)


def thresholds(cfg: ObjectConfig, height: int) -> tuple[float, float]:
    """(min flow in px per interval, min area in px) on a grid ``height`` px high: the settings scaled from
    ``REFERENCE_HEIGHT``, so a recipe with a smaller or larger grid finds the same objects."""
    k = height / REFERENCE_HEIGHT
    return cfg.min_flow * k, cfg.min_area * k * k


def cell_pixels(ex: PatchExtractor, cells: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of the cells flagged in ``cells`` (N,) bool."""
    out = np.zeros((ex.cfg.height, ex.cfg.width), dtype=bool)
    for x0, y0, x1, y1 in ex.boxes[cells]:
        out[y0:y1, x0:x1] = True
    return out


def frame_objects(ex: PatchExtractor, flow: np.ndarray, moving: np.ndarray, min_flow: float, min_area: float) -> Objects:
    """One frame's objects: the regions of its flow (H, W, 2) inside its moving cells ``moving`` (N,) bool."""
    return find_objects(flow, min_flow, min_area, cell_pixels(ex, moving))


class ObjectCue:
    """Frame -> (score of its worst object, that object's box). It reads the flow the patches computed, so it adds
    no flow of its own; it keeps no state between frames, so a frame's object score is the same whatever
    frames a live source dropped before it."""

    def __init__(self, density: ObjectDensity, cfg: ObjectConfig, ex: PatchExtractor) -> None:
        self.density = density
        self.ex = ex
        self.min_flow, self.min_area = thresholds(cfg, ex.cfg.height)

    def score(self, flow: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``flow`` (T, H, W, 2) of consecutive frames; ``moving`` (T, N) bool: their moving cells (none in a frame
        not to judge). Returns (T,) scores (NaN: no object) and (T, 4) boxes on the patches grid (-1: none)."""
        scores = np.full(len(flow), np.nan)
        boxes = np.full((len(flow), 4), -1, dtype=int)
        for t in np.flatnonzero(moving.any(axis=1)):
            obj = frame_objects(self.ex, flow[t], moving[t], self.min_flow, self.min_area)
            if len(obj):
                d = self.density.distances(obj.features)
                i = int(np.argmax(d))
                scores[t], boxes[t] = d[i], obj.boxes[i]
        return scores, boxes


def normal_objects(clips: Iterable[tuple[np.ndarray, np.ndarray]], cfg: ObjectConfig, ex: PatchExtractor) -> np.ndarray:
    """The attributes of every object in normal footage (each item: a clip's (T, H, W, 2) flow and (T, N) moving
    cells)."""
    min_flow, min_area = thresholds(cfg, ex.cfg.height)
    rows = [frame_objects(ex, f, m, min_flow, min_area).features
            for flow, moving in clips for f, m in zip(flow, moving, strict=True) if m.any()]  # fmt: skip
    return np.concatenate(rows) if rows else np.zeros((0, len(FEATURES)))
