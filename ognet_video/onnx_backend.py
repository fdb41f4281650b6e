"""Exported models: an ``.onnx`` patch scorer run by onnxruntime, with the checkpoint's metadata inside it.

``load_onnx`` returns an ordinary ``Detector`` whose ``patch_scores`` come from onnxruntime instead of torch,
so every command and the Python API score an exported model through the same code as a checkpoint.
The metadata (config, calibration, provenance) is JSON in the model's ``metadata_props``: one file, as with
checkpoints, so weights and threshold can never drift apart; nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ognet_video.errors import UserError

FORMAT = "ognet-video-onnx/1"
INSTALL = 'pip install "ognet-video[onnx]"'
INPUT, OUTPUT = "patches", "logit"


def require(module: str) -> Any:
    """Import ``onnx`` or ``onnxruntime``, or say in one line how to install them (an optional extra)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # missing, or a broken install whose native library does not load
        raise UserError(f"{module} is needed for ONNX models but cannot be imported ({exc}); "
                        f"install it with: {INSTALL}") from None  # fmt: skip


def session_options(threads: int | None = None) -> Any:
    """One intra-op pool of ``threads`` (default: torch's thread count, so ``OMP_NUM_THREADS`` and
    ``torch.set_num_threads`` govern both backends alike) that waits passively when OpenMP does: spinning
    workers take the cores a shared machine's other processes need."""
    ort = require("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: warnings would break the one-line output of the commands
    return so


def providers_for(device: str | torch.device) -> tuple[list[str], torch.device]:
    """onnxruntime execution providers for a ``--device`` value, and the device to report."""
    ort = require("onnxruntime")
    name = str(device)
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if name == "auto":
        name = "cuda" if has_cuda else "cpu"
    if name.startswith("cuda"):
        if not has_cuda:
            raise UserError(f"device {name!r} requested but this onnxruntime has no CUDA provider; use --device cpu "
                            "(or install onnxruntime-gpu)")  # fmt: skip
        idx = name.partition(":")[2] or "0"
        return [("CUDAExecutionProvider", {"device_id": int(idx)}), "CPUExecutionProvider"], torch.device(name)  # type: ignore[list-item]
    if name != "cpu":
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda")
    return ["CPUExecutionProvider"], torch.device("cpu")


class OnnxBackend:
    """``Detector.patch_scores`` from an onnxruntime session: (M, C, s, s) float32 in, (M,) logits out."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input = session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        arr = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        return np.asarray(self.session.run(None, {self.input: arr})[0], dtype=np.float32).reshape(-1)


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"{path}: {what}; export it again from its run (ognet-video export --model RUN --format onnx)")


def read_meta(session: Any, path: Path) -> dict[str, Any]:
    """The JSON metadata an export stored in the model, checked for the fields scoring needs."""
    props = session.get_modelmeta().custom_metadata_map or {}
    if props.get("format") != FORMAT:
        fmt = props.get("format")
        raise _bad(path, "not a model exported by ognet-video (no ognet-video metadata)" if fmt is None
                   else f"unsupported export format {fmt!r}")  # fmt: skip
    try:
        meta = json.loads(props["meta"])
    except (KeyError, json.JSONDecodeError):
        raise _bad(path, "its metadata is damaged") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) or "calibration" not in meta:
        raise _bad(path, "its metadata has no config or calibration")
    return meta


def open_session(path: Path, device: str | torch.device = "cpu") -> tuple[Any, torch.device]:
    """An onnxruntime session of ``path``; a damaged or foreign file is a one-line UserError."""
    ort = require("onnxruntime")
    if not path.is_file():
        raise UserError(f"model not found: {path}")
    providers, dev = providers_for(device)
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(), providers=providers), dev
    except Exception:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...) for a damaged file
        raise _bad(path, "not a readable ONNX model (damaged, truncated or another format)") from None


def load_onnx(path: str | Path, device: str | torch.device = "cpu", expect_preset: str | None = None):  # noqa: ANN201 - a Detector
    """A ``Detector`` scoring with onnxruntime, with the config and calibration the export stored."""
    from ognet_video.config import Config, check_preset, upgrade_checkpoint_config
    from ognet_video.detector import Calibration, Detector
    from ognet_video.model import in_channels

    path = Path(path)
    session, dev = open_session(path, device)
    meta = read_meta(session, path)
    cfg = Config.from_dict(upgrade_checkpoint_config(meta["config"], str(path)), source=str(path))
    check_preset(cfg, str(path))
    if expect_preset and cfg.model.preset != expect_preset:
        raise UserError(f"{path} is a {cfg.model.preset!r} model, expected {expect_preset!r}; pick a matching model")
    shape = list(session.get_inputs()[0].shape)
    want = [in_channels(cfg), cfg.patches.size, cfg.patches.size]
    if len(shape) != 4 or shape[1:] != want:
        raise _bad(path, f"its network takes input {shape}, its config says [N, {', '.join(map(str, want))}]")
    cal = meta["calibration"]
    calibration = Calibration.from_dict(cal, str(path)) if cal is not None else None
    return Detector(cfg, [], calibration, meta, dev, backend=OnnxBackend(session))
