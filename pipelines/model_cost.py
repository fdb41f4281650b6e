"""Cost of each network preset: parameters, and model time per Ped2 frame with every cell moving.

    python pipelines/model_cost.py                      # CPU: writes pipelines/results/model_cost.json
    python pipelines/model_cost.py --device cuda --out pipelines/results/gpu/model_cost-cuda.json

"Every cell moving" is the worst case; on Ped2 about a fifth of the cells move in a typical frame. On CUDA
the networks run in bfloat16 autocast, as ``Detector`` runs them, on ``--frames`` frames per call. Each row is
one (G, D) pair: a model of ``train.members`` pairs (``configs/ped2-large.yaml``: 2) costs that many times the row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ognet_video.config import load_config
from ognet_video.models.detector import pick_device
from ognet_video.models.model import build_models, count_parameters, in_channels, resolve_model_config
from ognet_video.patches import PatchExtractor


def ms_per_frame(config: str | None, overrides: list[str], device: torch.device, frames: int = 1,
                 repeats: int = 5) -> dict:  # fmt: skip
    cfg = load_config(config, overrides)
    resolve_model_config(cfg.model)
    G, D = build_models(cfg)
    G, D = G.to(device).eval(), D.to(device).eval()
    cells = PatchExtractor(cfg.patches).num_cells
    x = torch.randn(frames * cells, in_channels(cfg), cfg.patches.size, cfg.patches.size, device=device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.inference_mode(), amp:
        for _ in range(2 if device.type == "cuda" else 1):
            D(G(x))
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            D(G(x))
        if device.type == "cuda":
            torch.cuda.synchronize()
    ms = 1000 * (time.perf_counter() - t0) / (repeats * frames)
    return {"G_params": count_parameters(G), "D_params": count_parameters(D), "patches_per_frame": cells,
            "frames_per_call": frames, "ms_per_frame": round(ms, 3), "frames_per_s": round(1000 / ms, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=None, help="frames per call (default: 1 on CPU, 64 on CUDA)")
    ap.add_argument("--out", default="pipelines/results/model_cost.json")
    args = ap.parse_args()
    device = pick_device(args.device)
    frames = args.frames or (64 if device.type == "cuda" else 1)
    reps = 2 if device.type == "cpu" else 20  # the paper preset takes seconds per frame on a CPU
    rows = {
        "paper (45 px gray, paper.yaml)": ms_per_frame("configs/ped2-paper.yaml", [], device, frames, reps),
        "paper (29 px flow, ped2-cpu.yaml)": ms_per_frame(
            "configs/ped2-cpu.yaml", ["model.preset=paper"], device, frames, reps
        ),
        "cpu (29 px flow, ped2-cpu.yaml)": ms_per_frame("configs/ped2-cpu.yaml", [], device, frames, 5 * reps),
        "large (45 px flow every 29 px, two members, ped2-large.yaml)": ms_per_frame("configs/ped2-large.yaml", [], device, frames, 5 * reps),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    info = {"device": name, "torch": torch.__version__, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=2))
    print(f"{name}, torch {torch.__version__}, {frames} frame(s) per call")
    for k, v in rows.items():
        print(f"{k:32s} G {v['G_params']:>9,}  D {v['D_params']:>9,}  {v['patches_per_frame']:>3} patches "
              f"{v['ms_per_frame']:>9.3f} ms/frame  {v['frames_per_s']:>9.1f} frames/s")  # fmt: skip


if __name__ == "__main__":
    main()
