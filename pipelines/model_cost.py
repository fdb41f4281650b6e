"""Cost of each network preset: parameters and milliseconds per Ped2 frame (all 40 patches moving).

    python pipelines/model_cost.py            # writes pipelines/results/model_cost.json

"All 40 patches" is the worst case; on Ped2 about a fifth of the cells move in a typical frame.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ognet_video.config import load_config
from ognet_video.model import build_models, count_parameters, in_channels, resolve_model_config


def ms_per_frame(overrides: list[str], patches: int = 40, repeats: int = 5) -> dict:
    cfg = load_config(None, overrides)
    resolve_model_config(cfg.model)
    G, D = build_models(cfg)
    G.eval()
    D.eval()
    x = torch.randn(patches, in_channels(cfg), cfg.patches.size, cfg.patches.size)
    with torch.inference_mode():
        D(G(x))
        t0 = time.perf_counter()
        for _ in range(repeats):
            D(G(x))
    ms = 1000 * (time.perf_counter() - t0) / repeats
    return {"G_params": count_parameters(G), "D_params": count_parameters(D), "ms_per_frame_40_patches": round(ms, 1)}


def main() -> None:
    rows = {
        "paper (1 ch)": ms_per_frame(["model.preset=paper"], repeats=2),
        "cpu (1 ch)": ms_per_frame(["model.preset=cpu"]),
        "cpu (gray+diff)": ms_per_frame(["model.preset=cpu", "patches.channels=gray+diff"]),
    }
    info = {"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}
    out = Path("pipelines/results/model_cost.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=2))
    for k, v in rows.items():
        print(f"{k:18s} G {v['G_params']:>9,}  D {v['D_params']:>9,}  {v['ms_per_frame_40_patches']:>7.1f} ms/frame")


if __name__ == "__main__":
    main()
