"""Moving objects of one frame: connected regions of the optical flow the patches already computed.

The camera is fixed, so whatever moves is an object (or a group of them): no detector is needed, and nothing
pretrained. Every attribute is in units of the frame height (position, size) or of frame heights per analysis
interval x 100 (velocity), so they read the same at any resolution; the density (``density.py``) judges them
against normal objects *at the same place*, which is how perspective is learnt rather than set.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FEATURES = ("x", "y", "width", "height", "vx", "vy", "speed")  # the attributes the density compares
_OPEN = np.ones((3, 3), np.uint8)


@dataclass
class Objects:
    """The moving regions of one frame."""

    features: np.ndarray  # (M, len(FEATURES)) float64
    boxes: np.ndarray  # (M, 4) int x0, y0, x1, y1 on the patches grid

    def __len__(self) -> int:
        return len(self.features)


def find_objects(flow: np.ndarray, min_flow: float, min_area: float, allowed: np.ndarray | None = None) -> Objects:
    """Regions where the flow ``(H, W, 2)`` (px per analysis interval) exceeds ``min_flow``, opened once to drop
    specks, of at least ``min_area`` pixels. ``allowed`` (H, W) bool: the only pixels that may count (the
    patches' moving cells outside the ignore regions: sensor noise gives small flow everywhere, and a noisy
    camera's whole picture would otherwise be one object)."""
    f = flow.astype(np.float32, copy=False)
    h = f.shape[0]
    mag = cv2.magnitude(np.ascontiguousarray(f[..., 0]), np.ascontiguousarray(f[..., 1]))
    mask = (mag > min_flow).astype(np.uint8)
    if allowed is not None:
        mask[~allowed] = 0
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _OPEN)
    n, labels, stats, centres = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1
    if not len(keep):
        return Objects(np.zeros((0, len(FEATURES))), np.zeros((0, 4), dtype=int))
    lab = labels.ravel()
    area = np.bincount(lab, minlength=n)[keep].astype(np.float64)
    vx = np.bincount(lab, weights=f[..., 0].ravel(), minlength=n)[keep] / area
    vy = np.bincount(lab, weights=f[..., 1].ravel(), minlength=n)[keep] / area
    speed = np.bincount(lab, weights=mag.ravel(), minlength=n)[keep] / area
    x, y, w, hh = (stats[keep, k].astype(np.float64) for k in (0, 1, 2, 3))
    feats = np.stack([centres[keep, 0] / h, centres[keep, 1] / h, w / h, hh / h,
                      vx / h * 100, vy / h * 100, speed / h * 100], axis=1)  # fmt: skip
    boxes = np.stack([x, y, x + w, y + hh], axis=1).astype(int)
    return Objects(feats, boxes)
