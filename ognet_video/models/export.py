"""``ognet-video export``: the patch scorer as an ONNX model that scores exactly like its checkpoint.

The graph is what ``Detector.patch_scores`` computes: every member's D(G(x)), averaged, one logit per patch,
with a dynamic batch size. Everything else a scorer needs (config with the ignored cells, calibration and
threshold, preset, the source checkpoint's sha256, library versions) is JSON in the model's
``metadata_props``, read back by ``onnx_backend.open_onnx``. The file is written atomically and checked: each
installed runtime's scores of a random batch (onnxruntime, and OpenVINO when installed) must match torch's before
it is kept.
"""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ognet_video.errors import UserError
from ognet_video.models.checkpoint import atomic_write_bytes
from ognet_video.models.detector import Detector
from ognet_video.models.model import in_channels
from ognet_video.models.onnx_backend import FORMAT, INPUT, OUTPUT, installed_runtimes, open_model, require
from ognet_video.score.manifest import model_id

FORMATS = ("onnx",)
OPSET = 17
TOLERANCE = 1e-4  # max |onnx - torch| on patch logits that an export must meet to be kept


class PatchScorer(nn.Module):
    """The members' mean logit, summed in member order as ``Detector.patch_scores`` does."""

    def __init__(self, det: Detector) -> None:
        super().__init__()
        self.generators = nn.ModuleList([G for G, _ in det.members])
        self.discriminators = nn.ModuleList([D for _, D in det.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for G, D in zip(self.generators, self.discriminators, strict=True):
            logit = D(G(x))
            total = logit if total is None else total + logit
        assert total is not None
        return total / len(self.generators)


@dataclass
class ExportResult:
    path: Path
    members: int
    bytes: int
    max_abs_diff: float  # the largest |runtime - torch| on the check batch, over ``runtimes``
    runtimes: tuple[str, ...] = ("onnxruntime",)


def export_meta(det: Detector, source: Path) -> dict[str, Any]:
    """What scoring needs, as a checkpoint stores it, plus where the export came from."""
    import onnx

    from ognet_video import __version__

    meta = dict(det.meta)
    meta["config"] = det.cfg.to_dict()
    meta["calibration"] = dataclasses.asdict(det.calibration) if det.calibration else None
    meta["health"] = det.health.to_dict() if det.health else None
    meta["objects"] = det.objects.to_meta() if det.objects is not None else None
    meta["export"] = {
        "format": "onnx",
        "source": source.name,
        "source_sha256": model_id(source),  # the id score records for this model
        "members": len(det.members),
        "opset": OPSET,
        "input": [in_channels(det.cfg), det.cfg.patches.size, det.cfg.patches.size],
        "versions": {"ognet_video": __version__, "torch": torch.__version__.split("+")[0], "onnx": onnx.__version__},
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return meta


def onnx_bytes(det: Detector, meta: dict[str, Any]) -> bytes:
    """The serialised, checked ONNX model with ``meta`` in its metadata_props."""
    onnx = require("onnx")
    scorer = PatchScorer(det).cpu().eval()
    x = torch.zeros(2, in_channels(det.cfg), det.cfg.patches.size, det.cfg.patches.size)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter needs no extra package; its deprecation is noise here
        warnings.simplefilter("ignore")
        torch.onnx.export(scorer, (x,), buf, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "patches"}, OUTPUT: {0: "patches"}}, opset_version=OPSET)  # fmt: skip
    model = onnx.load_from_string(buf.getvalue())
    for key, value in (("format", FORMAT), ("meta", json.dumps(meta))):
        model.metadata_props.add(key=key, value=value)
    model.doc_string = "ognet-video patch scorer: patches (N, C, s, s) in [-1, 1] -> mean D(G(x)) logit (N,)"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def check_batch(det: Detector, n: int = 256, seed: int = 0) -> torch.Tensor:
    """Random patches in the model's input range, for the parity check."""
    g = torch.Generator().manual_seed(seed)
    s = det.cfg.patches.size
    return torch.rand(n, in_channels(det.cfg), s, s, generator=g) * 2 - 1


def export_onnx(det: Detector, source: Path, out: Path) -> ExportResult:
    """Write ``out`` (temp file + rename) only once every installed runtime matches torch within ``TOLERANCE``."""
    if det.backend is not None or det.device.type != "cpu":
        raise UserError(f"{source}: export needs its torch networks on the CPU (Detector.load(path, device='cpu'))")
    if det.calibration is None:
        raise UserError(f"{source} has no calibration (training did not finish); export a finished run's model")
    data = onnx_bytes(det, export_meta(det, source))
    tmp = out.with_name(f".{out.name}.check.onnx")
    try:
        atomic_write_bytes(tmp, data)
        x = check_batch(det)
        want = det.patch_scores(x)
        runtimes = installed_runtimes()  # onnxruntime among them: ``export`` requires it
        diff = 0.0
        for runtime in runtimes:
            d = float(np.max(np.abs(open_model(tmp, "cpu", runtime).backend(x) - want)))
            if not d <= TOLERANCE:
                raise UserError(f"the exported model's {runtime} scores differ from {source}'s by {d:.2g} "
                                f"(> {TOLERANCE:g}); not written: check the {runtime} and torch versions")  # fmt: skip
            diff = max(diff, d)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(out, len(det.members), len(data), diff, runtimes)


def default_out(source: Path, fmt: str) -> Path:
    """Beside the checkpoint, named after its run (``runs/train/lobby-1/lobby-1.onnx``) so a copied file says
    which model it is."""
    stem = source.parent.name if source.stem == "model" else source.stem
    return source.with_name(f"{stem}.{fmt}")


def export(model: str | Path | None, fmt: str = "onnx", out: Path | None = None,
           train_project: Path = Path("runs/train")) -> ExportResult:  # fmt: skip
    """Export a run folder or checkpoint (default: the newest finished run) to ``fmt``."""
    from ognet_video.runs import find_model

    if fmt.lower() not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; supported: {', '.join(FORMATS)}")
    require("onnx")
    require("onnxruntime")
    source = find_model(model, train_project)
    if source.suffix.lower() == ".onnx":
        raise UserError(f"{source} is already an exported model; export from its run folder or checkpoint")
    det = Detector.load(source, device="cpu")
    out = Path(out).expanduser() if out is not None else default_out(source, fmt.lower())
    if out.is_dir():
        out = out / default_out(source, fmt.lower()).name
    if out.suffix.lower() != ".onnx":
        raise UserError(f"--out {out}: an ONNX model's file name must end in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    return export_onnx(det, source, out)
