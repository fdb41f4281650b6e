"""Patches per second of the patch scorer: torch against its ONNX export in onnxruntime, in one run.

The default CPU model (config defaults, random weights: speed does not depend on training) is exported as
``ognet-video export`` does, then both backends score the same batches with the same thread count
(``torch.set_num_threads(t)`` and onnxruntime ``intra_op_num_threads=t``), for t = 1 and 2. The batches are
the ones scoring sends: ``score.batch_frames`` frames of ``cells`` cells each, all of them moving (the worst
case) and a fifth of them (a typical Ped2 frame). Calls alternate between the backends so that a shared
machine's changing load hits both alike; the median of the rounds is reported.

    python pipelines/export_benchmark.py [--rounds 7] -> pipelines/results/export.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ognet_video.config import load_config  # noqa: E402
from ognet_video.host import host_info  # noqa: E402
from ognet_video.models.checkpoint import atomic_write_text  # noqa: E402
from ognet_video.models.detector import Calibration, Detector  # noqa: E402
from ognet_video.models.export import check_batch, export_onnx  # noqa: E402
from ognet_video.models.model import build_models  # noqa: E402
from ognet_video.models.onnx_backend import OnnxBackend, require, session_options  # noqa: E402
from ognet_video.patches import PatchExtractor  # noqa: E402


def default_detector(seed: int = 0) -> Detector:
    cfg = load_config(None, [])
    torch.manual_seed(seed)
    members = [build_models(cfg) for _ in range(cfg.train.members)]
    cal = Calibration(floor=0.0, mean=0.0, std=1.0, threshold=1.0, percentile=99.0, frames=1)
    return Detector(cfg, members, cal)


def timed(fn, x) -> float:  # noqa: ANN001 - a backend and its batch
    t = time.perf_counter()
    fn(x)
    return time.perf_counter() - t


def measure(det: Detector, onnx_path: Path, threads: int, batch: int, rounds: int) -> dict:
    """Median patches/s of both backends on one batch, calls alternating."""
    ort = require("onnxruntime")
    torch.set_num_threads(threads)
    backend = OnnxBackend(
        ort.InferenceSession(str(onnx_path), session_options(threads), providers=["CPUExecutionProvider"])
    )
    x = check_batch(det, batch, seed=1)
    diff = float(np.abs(backend(x) - det.patch_scores(x)).max())
    for _ in range(2):  # warm-up: allocator, kernels picked
        det.patch_scores(x), backend(x)
    t_torch, t_onnx = [], []
    for _ in range(rounds):
        t_torch.append(timed(det.patch_scores, x))
        t_onnx.append(timed(backend, x))
    torch_pps, onnx_pps = batch / statistics.median(t_torch), batch / statistics.median(t_onnx)
    return {"threads": threads, "batch": batch, "torch_patches_per_s": round(torch_pps), "onnxruntime_patches_per_s": round(onnx_pps),
            "onnx_over_torch": round(onnx_pps / torch_pps, 2), "max_abs_diff": diff, "rounds": rounds}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("pipelines/results/export.json"))
    args = ap.parse_args()
    ort = require("onnxruntime")
    det = default_detector()
    cells = PatchExtractor(det.cfg.patches).num_cells
    frames = det.cfg.score.batch_frames
    batches = [frames * cells, frames * cells // 5]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source = det.save(Path(tmp) / "model.safetensors")
        path = export_onnx(Detector.load(source), source, Path(tmp) / "default.onnx").path
        for threads in (1, 2):
            for batch in batches:
                rows.append(measure(det, path, threads, batch, args.rounds))
                print(json.dumps(rows[-1]), flush=True)
    info = host_info() | {"onnxruntime": ort.__version__}
    info.pop("torch_threads")
    result = {"model": {"preset": det.cfg.model.preset, "channels": det.cfg.patches.channels, "size": det.cfg.patches.size,
                        "members": len(det.members), "cells_per_frame": cells, "batch_frames": frames},
              "host": info, "rows": rows}  # fmt: skip
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
