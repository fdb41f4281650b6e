"""Exported models: an ``.onnx`` patch scorer run by OpenVINO or onnxruntime, with the checkpoint's metadata inside.

``open_onnx`` opens one and checks it; ``Detector.load`` makes an ordinary ``Detector`` of it whose
``patch_scores`` come from the runtime instead of torch, so every command and the Python API score an exported
model through the same code as a checkpoint (this module never imports the detector: no import circle).
The metadata (config, calibration, provenance) is JSON in the model's ``metadata_props``: one file, as with
checkpoints, so weights and threshold can never drift apart; nothing is unpickled.

Runtime: on the CPU, OpenVINO when it is installed (``ognet-video[openvino]``: about 1.5x onnxruntime and torch
on this model, in float32), otherwise onnxruntime, which also runs CUDA. ``OGNET_ONNX_RUNTIME=onnxruntime``
(or ``openvino``) overrides the choice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ognet_video.config import Config
from ognet_video.errors import UserError, newer_format
from ognet_video.models.model import in_channels
from ognet_video.models.stored_config import stored_config

FORMAT = "ognet-video-onnx/1"
INSTALL = 'pip install "ognet-video[onnx]"'
INPUT, OUTPUT = "patches", "logit"
RUNTIMES = ("auto", "openvino", "onnxruntime")
RUNTIME_ENV = "OGNET_ONNX_RUNTIME"


def require(module: str) -> Any:
    """Import ``onnx``, ``onnxruntime`` or ``openvino``, or say in one line how to install them (an extra)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # missing, or a broken install whose native library does not load
        extra = 'pip install "ognet-video[openvino]"' if module == "openvino" else INSTALL
        raise UserError(f"{module} is needed for ONNX models but cannot be imported ({exc}); "
                        f"install it with: {extra}") from None  # fmt: skip


def importable(module: str) -> bool:
    try:
        require(module)
    except UserError:
        return False
    return True


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


def _float32(x: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    return np.ascontiguousarray(arr, dtype=np.float32)


class OnnxBackend:
    """``Detector.patch_scores`` from an onnxruntime session: (M, C, s, s) float32 in, (M,) logits out."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input = session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input: _float32(x)})[0], dtype=np.float32).reshape(-1)


class OpenVinoBackend:
    """The same from an OpenVINO compiled model (CPU, float32 even where the CPU offers bfloat16). One infer
    request, reused: the engine scores from one thread."""

    def __init__(self, compiled: Any) -> None:
        self.request = compiled.create_infer_request()

    def __call__(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        out = self.request.infer({0: _float32(x)})[0]
        return np.array(out, dtype=np.float32).reshape(-1)  # a copy: the request reuses its output buffer


@dataclass
class Opened:
    """An exported model opened by a runtime."""

    backend: Callable[[torch.Tensor | np.ndarray], np.ndarray]
    props: dict[str, str]  # the model's metadata_props
    input_shape: list[Any]  # (N, C, s, s); N is dynamic
    device: torch.device
    runtime: str


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"{path}: {what}; export it again from its run (ognet-video export --model RUN --format onnx)")


def read_meta(props: dict[str, str], path: Path) -> dict[str, Any]:
    """The JSON metadata an export stored in the model, checked for the fields scoring needs."""
    if newer_format(props.get("format"), FORMAT):
        raise UserError(f"{path} was exported by a newer ognet-video (format {props['format']!r}; this one reads "
                        f"{FORMAT!r}): upgrade ognet-video, or export it again with this one")  # fmt: skip
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


def open_onnxruntime(path: Path, device: str | torch.device = "cpu") -> Opened:
    session, dev = open_session(path, device)
    props = session.get_modelmeta().custom_metadata_map or {}
    return Opened(OnnxBackend(session), dict(props), list(session.get_inputs()[0].shape), dev, "onnxruntime")


def open_openvino(path: Path, threads: int | None = None) -> Opened:
    """An OpenVINO CPU model of ``path``: float32, ``threads`` (default torch's) not pinned to cores, so a shared
    machine's other processes keep theirs."""
    ov = require("openvino")
    if not path.is_file():
        raise UserError(f"model not found: {path}")
    try:  # the ONNX frontend itself: read_model would try every framework's reader and log their complaints
        fe = ov.frontend.FrontEndManager().load_by_framework("onnx")
        model = fe.convert(fe.load(str(path)))
    except Exception:  # a damaged or foreign file
        raise _bad(path, "not a readable ONNX model (damaged, truncated or another format)") from None
    props = {k: model.get_rt_info(["framework", k]).astype(str)
             for k in ("format", "meta") if model.has_rt_info(["framework", k])}  # fmt: skip
    shape = [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()]
    settings = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32",
                "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}  # fmt: skip
    compiled = ov.Core().compile_model(model, "CPU", settings)
    return Opened(OpenVinoBackend(compiled), props, shape, torch.device("cpu"), "openvino")


def _ort_has_cuda() -> bool:
    return importable("onnxruntime") and "CUDAExecutionProvider" in require("onnxruntime").get_available_providers()


def pick_runtime(device: str | torch.device = "cpu", runtime: str | None = None) -> str:
    """``runtime`` (default ``$OGNET_ONNX_RUNTIME``, else auto): OpenVINO for the CPU when it is installed,
    onnxruntime otherwise and for CUDA."""
    runtime = (runtime or os.environ.get(RUNTIME_ENV) or "auto").lower()
    if runtime not in RUNTIMES:
        raise UserError(f"unknown ONNX runtime {runtime!r} (from {RUNTIME_ENV}?); use {', '.join(RUNTIMES)}")
    name = str(device)
    cuda = name.startswith("cuda") or (name == "auto" and _ort_has_cuda())
    if runtime == "openvino" and cuda:
        raise UserError(f"device {name!r}: OpenVINO runs exported models on the CPU here; use --device cpu, or "
                        f"{RUNTIME_ENV}=onnxruntime for CUDA")  # fmt: skip
    if runtime != "auto":
        return runtime
    return "onnxruntime" if cuda or not importable("openvino") else "openvino"


def installed_runtimes() -> tuple[str, ...]:
    """The runtimes that can score an export here, in ``pick_runtime``'s order of preference for the CPU."""
    return tuple(r for r in ("openvino", "onnxruntime") if importable(r))


def open_model(path: Path, device: str | torch.device = "cpu", runtime: str | None = None) -> Opened:
    """``path`` opened by the runtime ``pick_runtime`` chooses."""
    if pick_runtime(device, runtime) == "openvino":
        if str(device) not in ("cpu", "auto"):
            raise UserError(f"unknown device {str(device)!r}; use auto, cpu or cuda")
        return open_openvino(path)
    return open_onnxruntime(path, device)


@dataclass
class OnnxModel:
    """What a Detector is made of, from an export: its scorer (the runtime), config and checked metadata."""

    backend: Callable[[torch.Tensor | np.ndarray], np.ndarray]
    cfg: Config
    meta: dict[str, Any]  # the export's metadata, with "runtime": which one scores
    device: torch.device


def open_onnx(path: str | Path, device: str | torch.device = "cpu", expect_preset: str | None = None,
              runtime: str | None = None) -> OnnxModel:  # fmt: skip
    """An exported model opened with OpenVINO or onnxruntime (``pick_runtime``), its network's input checked
    against the config the export stored."""
    path = Path(path)
    opened = open_model(path, device, runtime)
    meta = read_meta(opened.props, path)
    cfg = stored_config(meta["config"], str(path))
    if expect_preset and cfg.model.preset != expect_preset:
        raise UserError(f"{path} is a {cfg.model.preset!r} model, expected {expect_preset!r}; pick a matching model")
    shape = opened.input_shape
    want = [in_channels(cfg), cfg.patches.size, cfg.patches.size]
    if len(shape) != 4 or shape[1:] != want:
        raise _bad(path, f"its network takes input {shape}, its config says [N, {', '.join(map(str, want))}]")
    return OnnxModel(opened.backend, cfg, meta | {"runtime": opened.runtime}, opened.device)
