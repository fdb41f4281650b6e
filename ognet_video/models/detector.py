"""The trained artefact: G_n + D + the config they were trained with + calibration.

Everything a scorer needs travels in one checkpoint, so ``eval``, ``watch`` and ``score`` all make
the same decisions from the same file (anomalib's lesson: store normalisation with the model).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ognet_video.config import Config
from ognet_video.errors import UserError
from ognet_video.health.reference import HealthReference
from ognet_video.models.checkpoint import load_checkpoint, prefixed, save_checkpoint, unprefixed
from ognet_video.models.model import Discriminator, Generator, build_models
from ognet_video.models.stored_config import stored_config
from ognet_video.objects.density import ObjectDensity


@dataclass
class Calibration:
    """Maps raw frame scores to normalised ones and fixes the decision threshold, from normal data only."""

    floor: float  # raw score of a frame with no moving patch (lowest patch score seen on held-out normal data)
    mean: float  # of raw held-out normal frame scores
    std: float
    threshold: float  # on the causally smoothed normalised score
    percentile: float  # share of the footage's smoothed frames at or below the threshold (a detail)
    frames: int  # held-out normal frames it was fitted on
    clips: list[str] = dataclasses.field(default_factory=list)
    # the rule (``calibration.py``): "alarm_rate" (a target of false alarms per hour, through a tail fit) or
    # "percentile" (``percentile`` of the smoothed frames; every checkpoint from before the alarm rate)
    rule: str = "percentile"
    alarms_per_hour: float | None = None  # the target, with the "alarm_rate" rule
    seconds: float | None = None  # of footage it was fitted on
    tail: list[float] | None = None  # Gumbel location, scale, block seconds of the event statistic's block maxima
    # the crowd correction (``score.crowd_correction``): raw frame score minus crowd * log(moving cells), before
    # normalising. 0: none (every checkpoint from before it)
    crowd: float = 0.0
    # the object cue (``ognet_video.objects``): [a, b] puts an object score s in these units as a + b * s (the
    # held-out footage's median and 99th percentile of each cue matched); None: the patch score alone
    objects: list[float] | None = None

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        return (np.asarray(raw, dtype=np.float64) - self.mean) / self.std

    @property
    def empty(self) -> float:
        """Normalised score of a frame with nothing to judge: that of a frame where nothing moved."""
        return float(self.normalize(self.floor))

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Calibration:
        """A checkpoint's calibration, checked as strictly as a config: a NaN or zero std would make every
        score NaN or infinite and nothing would ever be flagged, silently."""
        names = [f.name for f in dataclasses.fields(cls)]
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}  # fmt: skip
        if not isinstance(data, dict) or not required <= set(data) <= set(names):
            raise UserError(f"{source}: the calibration in its metadata is incomplete or has unknown fields; "
                            "the file is damaged or was edited: retrain, or use an intact copy")  # fmt: skip
        try:
            cal = cls(**{k: data[k] for k in names if k in data})
            nums = [float(cal.floor), float(cal.mean), float(cal.std), float(cal.threshold), float(cal.percentile),
                    float(cal.crowd)]  # fmt: skip
            if cal.objects is not None:  # the object cue's mapping: two finite numbers
                nums += [float(v) for v in cal.objects]
            ok = all(np.isfinite(nums)) and cal.std > 0 and 0 < cal.percentile <= 100 and int(cal.frames) > 0
            ok = ok and (cal.objects is None or len(cal.objects) == 2)
            ok = ok and cal.rule in ("percentile", "alarm_rate")
            ok = ok and (
                cal.rule == "percentile" or (cal.alarms_per_hour is not None and 0 < cal.alarms_per_hour < math.inf)
            )
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise UserError(f"{source}: its calibration has invalid values (std must be > 0, every number finite); "
                            "the file is damaged or was edited: retrain, or use an intact copy")  # fmt: skip
        return cal


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but no CUDA GPU is available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda") from None


Member = tuple[Generator, Discriminator]


def member_prefix(i: int) -> str:
    """Checkpoint key prefix of ensemble member ``i``: "" for the first, so a one-member file is plain G. / D."""
    return "" if i == 0 else f"m{i}."


CPU_CHUNK = 16  # patches per network call on a CPU; the last chunk is padded to it


def _chunks(x: torch.Tensor, size: int) -> list[tuple[torch.Tensor, int]]:
    """``x`` cut into batches of exactly ``size`` (the last zero-padded), each with its count of real patches.

    On a CPU a patch's score then depends on the patch alone: oneDNN picks its kernel by batch size, so the same
    patch in a batch of 7 and one of 33 differs in the last bits, and a resumed or multi-worker run would not
    repeat an uninterrupted one exactly. Batches of 16 also stay in cache: 300 patches of the default network take
    256 ms on 2 cores against 422 in one batch (the 29 px network: the same either way)."""
    out = []
    for i in range(0, len(x), size):
        c = x[i : i + size]
        n = len(c)
        if n < size:
            c = torch.cat([c, c.new_zeros((size - n, *c.shape[1:]))])
        out.append((c, n))
    return out


class Detector:
    """G_n and D pairs in eval mode: ``patch_scores`` is OGNet's D(G(x)) for a batch of patches.

    With several members (``train.members``: the same recipe trained from different seeds) it is the mean
    of their scores: one GAN pair's ranking of rare patches varies from seed to seed, the mean less so.
    ``backend``: where an exported model's scores come from instead (``onnx_backend``; no torch members).
    """

    def __init__(self, cfg: Config, members: list[Member], calibration: Calibration | None = None,
                 meta: dict[str, Any] | None = None, device: torch.device | None = None,
                 backend: Callable[[torch.Tensor], np.ndarray] | None = None,
                 objects: ObjectDensity | None = None) -> None:  # fmt: skip
        if not members and backend is None:
            raise ValueError("a Detector needs at least one (G, D) member")
        self.cfg = cfg
        self.device = device or torch.device("cpu")
        self.members = [(G.to(self.device).eval(), D.to(self.device).eval()) for G, D in members]
        self.calibration = calibration
        self.meta = meta or {}
        self.backend = backend
        # the camera's normal picture (``ognet_video.health``): None for a model trained before it (checks off)
        self.health: HealthReference | None = health_reference(self.meta, "the model")
        self.objects = objects  # the normal objects of the object cue (``ognet_video.objects``); None: off
        self.heldout: dict[str, torch.Tensor] = {}  # raw scores of the calibration footage (``ognet_video.calibrate.heldout``)

    @torch.inference_mode()
    def patch_scores(self, x: torch.Tensor) -> np.ndarray:
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        if self.backend is not None:
            return self.backend(x)
        x = x.to(self.device, non_blocking=True)
        if self.device.type == "cpu":
            return np.concatenate([self._mean_logit(c)[:n].numpy() for c, n in _chunks(x, CPU_CHUNK)])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            return self._mean_logit(x).cpu().numpy()

    def _mean_logit(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for G, D in self.members:
            logit = D(G(x)).float()
            total = logit if total is None else total + logit
        assert total is not None
        return total / len(self.members)

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        if self.backend is not None:
            raise UserError("an exported model holds no torch weights to save; use its run's checkpoint")
        meta = {**self.meta, **(extra or {})}
        meta["config"] = self.cfg.to_dict()
        meta["calibration"] = dataclasses.asdict(self.calibration) if self.calibration else None
        meta["health"] = self.health.to_dict() if self.health else None
        tensors: dict[str, torch.Tensor] = {}
        meta["objects"] = None
        if self.objects is not None:
            tensors, meta["objects"] = self.objects.to_checkpoint()
        tensors.update(self.heldout)
        for i, (G, D) in enumerate(self.members):
            p = member_prefix(i)
            tensors.update({**prefixed(G.state_dict(), f"{p}G"), **prefixed(D.state_dict(), f"{p}D")})
        return save_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", expect_preset: str | None = None,
             runtime: str | None = None) -> Detector:  # fmt: skip
        """A checkpoint, or an exported ``.onnx`` model (scored by OpenVINO or onnxruntime, same decisions;
        ``runtime`` picks one, see ``onnx_backend.pick_runtime``)."""
        if Path(path).suffix.lower() == ".onnx":
            from ognet_video.models.onnx_backend import open_onnx  # lazy: the runtimes are optional extras

            m = open_onnx(path, device, expect_preset, runtime)
            cal, objects = m.meta["calibration"], m.meta.get("objects")
            return cls(m.cfg, [], Calibration.from_dict(cal, str(path)) if cal is not None else None, m.meta, m.device,
                       backend=m.backend, objects=ObjectDensity.from_meta(objects, str(path)) if objects else None)  # fmt: skip
        tensors, meta = load_checkpoint(path)
        if "config" not in meta:
            raise UserError(f"{path}: checkpoint metadata has no config; it was not written by ognet-video")
        cfg = stored_config(meta["config"], str(path))
        if expect_preset and cfg.model.preset != expect_preset:
            raise UserError(
                f"{path} is a {cfg.model.preset!r} model, expected {expect_preset!r}; pick a matching checkpoint"
            )
        members = []
        while not members or any(k.startswith(member_prefix(len(members)) + "G.") for k in tensors):
            G, D = build_models(cfg)
            p = member_prefix(len(members))
            try:
                G.load_state_dict(unprefixed(tensors, f"{p}G"))
                D.load_state_dict(unprefixed(tensors, f"{p}D"))
            except RuntimeError:
                raise UserError(
                    f"{path}: weights do not match the {cfg.model.preset!r} preset in its metadata; the file is damaged"
                ) from None
            members.append((G, D))
        cal = meta.get("calibration")
        calibration = Calibration.from_dict(cal, str(path)) if cal is not None else None
        dev = device if isinstance(device, torch.device) else pick_device(device)
        health_reference(meta, str(path))  # a damaged reference names the file
        objects = ObjectDensity.from_checkpoint(tensors, meta["objects"], str(path)) if meta.get("objects") else None
        det = cls(cfg, members, calibration, meta, dev, objects=objects)
        det.heldout = {k: v for k, v in tensors.items() if k.startswith(HELDOUT_PREFIX)}
        return det


HELDOUT_PREFIX = "heldout."  # tensors of the calibration footage's scores (``heldout``), kept as they are


def health_reference(meta: dict[str, Any], source: str) -> HealthReference | None:
    """The camera-health reference stored in a model's metadata, checked; None when it has none."""
    data = meta.get("health")
    return HealthReference.from_dict(data, source) if data is not None else None


def resolve_model_path(path: str | Path) -> Path:
    """A run folder (its ``model.safetensors``), a checkpoint file or an exported ``.onnx`` model."""
    p = Path(path).expanduser()
    if p.is_dir():
        ck = p / "model.safetensors"
        if not ck.is_file():
            raise UserError(f"{p} holds no model.safetensors: the run did not finish; resume it with train --resume")
        return ck
    if not p.exists():
        raise UserError(f"model not found: {p} (give a run folder like runs/train/ped2-1 or a model file)")
    return p
