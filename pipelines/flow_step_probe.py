"""Would flow over a longer step tell clip 10's rider from walkers by speed? A probe, for diagnosis only.

The rider moves at about 1.5x walking speed, 0.8 px per frame at Ped2's 10 fps: DIS's error is a fixed part of a
pixel, so flow from frame t-k to t (divided by k) could measure that speed more sharply than consecutive frames.
Each frame's score here is the highest mean flow speed over the grid's moving cells (pixels above 0.3 px/frame, a
cell counted when 5% of it moves), with the default's grid and DIS preset. The reference is the held-out normal
training clips (the last two, as ``train`` holds them out); the anomalous side is clip 10's anomalous frames (test
labels: nothing is selected with this, it only says whether a ``flow step`` option is worth building).

    python pipelines/flow_step_probe.py --steps 1 2 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ognet_video.config import Config  # noqa: E402
from ognet_video.data import load_dataset  # noqa: E402
from ognet_video.patches import _DIS_PRESETS, PatchExtractor  # noqa: E402
from ognet_video.sources import read_gray  # noqa: E402
from pipelines.settings import PED2, REPO  # noqa: E402

MOVING_PX = 0.3  # px/frame: a pixel moves
MOVING_SHARE = 0.05  # a cell moves when this share of its pixels does


def frame_speeds(ex: PatchExtractor, files: list[Path], step: int, preset: str) -> np.ndarray:
    """(T - step,) the highest moving-cell mean speed (px/frame) of each frame from ``step`` on."""
    frames = np.stack([ex.prepare(read_gray(f)) for f in files])
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    out = []
    for t in range(step, len(frames)):
        flow = dis.calc(frames[t - step], frames[t], None) / step
        cells = ex.cells(np.hypot(flow[..., 0], flow[..., 1])[None])[0].reshape(ex.num_cells, -1)
        moving = cells > MOVING_PX
        share = moving.mean(axis=1)
        mean = np.where(moving.any(axis=1), (cells * moving).sum(axis=1) / np.maximum(moving.sum(axis=1), 1), 0.0)
        out.append(float(np.where(share > MOVING_SHARE, mean, 0.0).max()))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=PED2)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--clip", default="10")
    ap.add_argument("--out", type=Path, default=REPO / "pipelines" / "results" / "flow_step_probe.json")
    args = ap.parse_args()
    cfg = Config()
    ex = PatchExtractor(cfg.patches)
    ds = load_dataset("ped2", args.data)
    held = ds.train[-cfg.train.holdout_clips :]
    clip = next(c for c in ds.test if c.name == args.clip)
    rows = {}
    skip = max(args.steps)  # every step scores the same frames
    for k in args.steps:
        normal = np.concatenate([frame_speeds(ex, c.frames, k, cfg.patches.flow_preset)[skip - k :] for c in held])
        scores = frame_speeds(ex, clip.frames, k, cfg.patches.flow_preset)[skip - k :]
        anomalous = scores[clip.labels[skip:] == 1]
        pct = (normal[None, :] < anomalous[:, None]).mean(axis=1)
        rows[k] = {
            "auc_against_heldout": float((anomalous[:, None] > normal[None, :]).mean()),
            "median_percentile": float(np.median(pct)),
            "share_above_99th": float((anomalous > np.quantile(normal, 0.99)).mean()),
            "rider_median_speed": float(np.median(anomalous)),
            "heldout_median_speed": float(np.median(normal)),
        }
        print(f"step {k}: " + ", ".join(f"{n} {v:.3f}" for n, v in rows[k].items()), flush=True)
    result = {"clip": args.clip, "heldout": [c.name for c in held], "preset": cfg.patches.flow_preset, "steps": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
