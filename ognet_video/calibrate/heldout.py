"""The raw scores of the normal footage that calibrated a model, kept in its checkpoint.

``calibrate --feedback`` refits the decision on that footage plus the events an operator marked normal. The
footage itself may be gone (a camera's recordings are rotated; a dataset moved), and scoring it again would
cost minutes; its raw scores are small (frames x cells) and exactly what ``postprocess.fit_calibration``
takes. Stored as safetensors tensors ``heldout.I.{raw,scored,patch[,objects]}`` plus the clip names and frame
intervals in the metadata; checked on load (a damaged entry names the file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ognet_video.errors import UserError
from ognet_video.models.detector import HELDOUT_PREFIX as PREFIX
from ognet_video.models.detector import Detector
from ognet_video.stream.scoring import FrameScores

META = "heldout_scores"


@dataclass
class HeldOut:
    scores: dict[str, FrameScores]  # clip name -> raw scores
    seconds_per_frame: dict[str, float]

    def to_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        for i, fs in enumerate(self.scores.values()):
            p = f"{PREFIX}{i}."
            tensors[p + "raw"] = torch.from_numpy(np.ascontiguousarray(fs.raw, dtype=np.float64))
            tensors[p + "scored"] = torch.from_numpy(np.ascontiguousarray(fs.scored, dtype=np.uint8))
            tensors[p + "patch"] = torch.from_numpy(np.ascontiguousarray(fs.patch))
            if fs.objects is not None:
                tensors[p + "objects"] = torch.from_numpy(np.ascontiguousarray(fs.objects))
        names = list(self.scores)
        return tensors, {"clips": names, "seconds_per_frame": [self.seconds_per_frame.get(n, 0.1) for n in names]}

    @classmethod
    def from_checkpoint(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str) -> HeldOut:
        bad = UserError(f"{source}: the stored scores of its calibration footage are damaged; calibrate it again "
                        "with normal footage as INPUT")  # fmt: skip
        try:
            names, spf = list(meta["clips"]), [float(x) for x in meta["seconds_per_frame"]]
            if len(names) != len(spf):
                raise bad
            scores = {}
            for i, name in enumerate(names):
                p = f"{PREFIX}{i}."
                raw, scored = tensors[p + "raw"].numpy(), tensors[p + "scored"].numpy().astype(bool)
                patch = tensors[p + "patch"].numpy()
                obj = tensors[p + "objects"].numpy() if p + "objects" in tensors else None
                t = len(raw)
                if scored.shape != (t,) or patch.ndim != 2 or len(patch) != t or (obj is not None and obj.shape != (t,)):
                    raise bad
                # the cells' motion is not kept (calibration does not use it): NaN, never a made-up value
                scores[str(name)] = FrameScores(raw, scored, patch, np.full(patch.shape, np.nan, np.float32), obj)
        except (KeyError, TypeError, ValueError):
            raise bad from None
        return cls(scores, dict(zip(scores, spf, strict=True)))


def keep(detector: Detector, scores: dict[str, FrameScores], seconds_per_frame: dict[str, float]) -> None:
    """Store ``scores`` (the footage that calibrated it) with the model: saved with it, replacing any before."""
    detector.heldout, detector.meta[META] = HeldOut(scores, seconds_per_frame).to_checkpoint()


def kept(detector: Detector, source: str) -> HeldOut | None:
    """The scores stored with the model; None for a model calibrated before they were kept."""
    meta = detector.meta.get(META)
    return None if not meta else HeldOut.from_checkpoint(detector.heldout, meta, source)
