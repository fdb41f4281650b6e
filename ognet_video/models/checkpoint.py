"""Checkpoints: one safetensors file whose header carries the JSON metadata (config, calibration...).

One file means weights and metadata can never drift apart, and a write is a single atomic rename.
Nothing here unpickles: safetensors holds only tensors, the header only strings.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ognet_video.errors import UserError, newer_format, writing

FORMAT = "ognet-video/1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all; a failed write (a full disk) names ``path`` (``errors.writing``)."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors + JSON metadata atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(tensors, metadata={"format": FORMAT, "meta": json.dumps(meta)}))
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by ``save_checkpoint``; anything else is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable safetensors checkpoint ({exc}); retrain or restore it") from None
    if newer_format(header.get("format"), FORMAT):
        raise UserError(f"{path} was written by a newer ognet-video (checkpoint format {header['format']!r}; this one "
                        f"reads {FORMAT!r}): upgrade ognet-video (pip install -U ognet-video)")  # fmt: skip
    if header.get("format") != FORMAT:
        raise UserError(f"{path} is not an ognet-video checkpoint (format {header.get('format')!r})")
    try:
        meta = json.loads(header["meta"])
    except (KeyError, json.JSONDecodeError):
        raise UserError(f"{path}: checkpoint metadata is damaged; retrain or restore it") from None
    return tensors, meta


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def optimizer_to_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list]:
    """Adam state as flat tensors (for safetensors) plus its JSON-able param groups."""
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{prefix}.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return tensors, sd["param_groups"]


def optimizer_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str, groups: list
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in unprefixed(tensors, prefix).items():
        idx, name = k.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups})
