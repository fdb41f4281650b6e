"""Train + evaluate OGNet on UCSD Ped2 and record an honest, repeatable result.

Built only on the package's public API. Writes ``pipelines/results/<name>.json`` with the final
model's AUCs (three smoothings), the two reference rows measured on the same frames (max patch
motion; phase one alone, D(G(x)) before phase two), train minutes and ms per frame.

    python pipelines/ped2_benchmark.py --config configs/ped2-cpu.yaml --data PED2_ROOT
    python pipelines/ped2_benchmark.py --config configs/ped2-cpu.yaml --name variant-x train.noise_std=0.4

``--data`` defaults to the OGNET_PED2 setting (``pipelines/settings.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from ognet_video.config import load_config
from ognet_video.data import load_dataset
from ognet_video.evaluation.evaluate import evaluate, metrics_table
from ognet_video.evaluation.metrics import auc
from ognet_video.host import host_info, host_line
from ognet_video.models.detector import Detector, pick_device
from ognet_video.runs import new_run_dir
from ognet_video.training.train import train

# run as ``python pipelines/ped2_benchmark.py``: the repo root is not on sys.path, pipelines/ is
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.settings import PED2  # noqa: E402

SELECT = ("01", "02", "03", "04", "05", "06")  # variants are chosen on these clips only
REPORT = ("07", "08", "09", "10", "11", "12")


def _row(metrics: dict, clips_subsets: dict) -> dict:
    out = {}
    for mode in ("none", "causal", "offline"):
        m = metrics[mode]
        out[mode] = {k: m[k] for k in ("micro_auc", "macro_auc", "eer")}
    out.update(clips_subsets)
    return out


def _subset_auc(labels: dict, scores: dict, clips: tuple[str, ...]) -> float | None:
    names = [c for c in clips if c in scores]
    if not names:
        return None
    return auc(np.concatenate([labels[c] for c in names]), np.concatenate([scores[c] for c in names]))


def _subsets(labels: dict, scores: dict) -> dict:
    return {f"causal_micro_auc_{tag}": _subset_auc(labels, scores, clips)
            for tag, clips in (("01-06", SELECT), ("07-12", REPORT))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/ped2-cpu.yaml")
    ap.add_argument("--data", default=str(PED2), help="Ped2 root (default: the OGNET_PED2 setting)")
    ap.add_argument("--name", default=None, help="results file name (default: the config's stem)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--results", default="pipelines/results")
    ap.add_argument("overrides", nargs="*", help="section.key=value")
    args = ap.parse_args()

    console = Console()
    cfg = load_config(args.config, args.overrides)
    name = args.name or Path(args.config).stem
    dataset = load_dataset("ped2", args.data)
    device = pick_device(args.device)
    run_dir = new_run_dir(Path("runs/bench"), name)
    console.print(f"[bold]{name}[/] -> {run_dir} on {device}")
    t0 = time.perf_counter()
    res = train(cfg, dataset, run_dir, device=device, console=console)
    train_min = (time.perf_counter() - t0) / 60

    rows = {}
    for label, path in (("ognet", res.model_path), ("phase1_only", res.phase1_path)):
        det = Detector.load(path, device=device)
        out = evaluate(det, dataset.test, run_dir / ("eval" if label == "ognet" else "eval-phase1"), console)
        rows[label] = _row(out.metrics, _subsets(out.labels, out.scores["causal"])) | {
            "ms_per_frame": out.metrics["ms_per_frame"]
        }
        if label == "ognet":
            console.print(metrics_table(out.metrics, f"{name}: final model"))
            ref = out.metrics["reference_max_motion"]
            rows["max_motion"] = _row(ref, _subsets(out.labels, out.reference["causal"]))
            at_thr = out.metrics["at_threshold"]
    env = host_info()  # once: it reads /proc/cpuinfo
    result = {
        "name": name,
        "config": cfg.to_dict(),
        "overrides": args.overrides,
        "device": str(device),
        "host": host_line(env),
        "environment": env,
        "train_minutes": round(train_min, 2),
        "train_patches": res.patches,
        "run_dir": str(run_dir),
        "rows": rows,
        "at_threshold": at_thr,
        "note": "causal = trailing mean over past frames; offline = centred window (uses future frames). "
        "Normalisation and threshold from held-out normal training clips. Model = last epoch (no test-label selection).",
    }
    out_path = Path(args.results) / f"{name}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out_path}  (train {train_min:.1f} min, "
                  f"causal micro AUC {rows['ognet']['causal']['micro_auc']:.4f})")  # fmt: skip


if __name__ == "__main__":
    main()
