"""How far an object lies from the normal ones: k-nearest-neighbour distance in the attribute space.

The attributes include the position, so an object is compared with normal objects *at that place*: a walker
near the camera is large and fast in pixels, one far away small and slow, and both are normal where they are;
a cyclist is fast for its place, a person on the grass is somewhere nobody normal was. Each attribute is
scaled by its spread over the normal objects (median and interquartile range: robust to the odd merged
group). Stored with the model: the scale and a fixed-seed sample of the normal objects' attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from ognet_video.errors import UserError
from ognet_video.objects.regions import FEATURES

TENSOR = "objects.reference"
MIN_SCALE = 0.01


@dataclass
class ObjectDensity:
    center: np.ndarray  # (F,) median of each attribute over normal objects
    scale: np.ndarray  # (F,) interquartile range / 1.35 (a robust std), at least MIN_SCALE
    reference: np.ndarray  # (n, F) normal objects' scaled attributes
    neighbors: int
    _index: NearestNeighbors | None = field(default=None, repr=False)

    @classmethod
    def fit(cls, features: np.ndarray, neighbors: int, max_reference: int, seed: int = 0) -> ObjectDensity:
        """From the attributes (n, F) of every object in normal footage."""
        if len(features) <= neighbors:
            raise UserError(f"only {len(features)} moving objects in the training footage (need more than "
                            f"{neighbors}); lower objects.min_flow or objects.min_area, or set objects.enabled=false")  # fmt: skip
        center = np.median(features, axis=0)
        q75, q25 = np.percentile(features, [75, 25], axis=0)
        # a floor of 1% of the frame height (or of its speed unit): an attribute that never varies in the footage
        # (objects all one size) must not make a hair's difference count as a mile
        scale = np.maximum((q75 - q25) / 1.35, MIN_SCALE)
        if len(features) > max_reference:
            features = features[np.random.default_rng(seed).choice(len(features), max_reference, replace=False)]
        return cls(center, scale, ((features - center) / scale).astype(np.float32), neighbors)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(M,) each object's mean distance to its ``neighbors`` nearest normal objects."""
        if not len(features):
            return np.zeros(0)
        if self._index is None:
            self._index = NearestNeighbors(n_neighbors=self.neighbors, algorithm="kd_tree").fit(self.reference)
        d, _ = self._index.kneighbors(((features - self.center) / self.scale).astype(np.float32))
        return d.mean(axis=1)

    def to_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        meta = {"features": list(FEATURES), "center": self.center.tolist(), "scale": self.scale.tolist(),
                "neighbors": self.neighbors}  # fmt: skip
        return {TENSOR: torch.from_numpy(self.reference)}, meta

    def to_meta(self) -> dict[str, Any]:
        """Everything as JSON (an exported model keeps its metadata as text)."""
        tensors, meta = self.to_checkpoint()
        return {**meta, "reference": tensors[TENSOR].tolist()}

    @classmethod
    def from_meta(cls, meta: Any, source: str) -> ObjectDensity:
        try:
            ref = torch.tensor(meta["reference"], dtype=torch.float32)
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{source}: the object density in it is damaged or was edited; export the model again") from None
        return cls.from_checkpoint({TENSOR: ref}, meta, source)

    @classmethod
    def from_checkpoint(cls, tensors: dict[str, torch.Tensor], meta: Any, source: str) -> ObjectDensity:
        """Checked like a calibration: a damaged density would score every object wrongly, silently."""
        damaged = UserError(f"{source}: the object density in it is damaged or was edited; retrain, or use an "
                            "intact copy")  # fmt: skip
        try:
            ref = tensors[TENSOR].float().numpy()
            center = np.asarray(meta["center"], dtype=np.float64)
            scale = np.asarray(meta["scale"], dtype=np.float64)
            neighbors = int(meta["neighbors"])
            names = list(meta["features"])
        except (KeyError, TypeError, ValueError):
            raise damaged from None
        f = len(FEATURES)
        if names != list(FEATURES) or center.shape != (f,) or scale.shape != (f,) or ref.ndim != 2 \
                or ref.shape[1] != f or len(ref) <= neighbors or neighbors < 1:  # fmt: skip
            raise damaged
        if not (np.isfinite(center).all() and np.isfinite(ref).all() and (scale > 0).all() and np.isfinite(scale).all()):
            raise damaged
        return cls(center, scale, ref, neighbors)
