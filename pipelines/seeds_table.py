"""One results file and one table from finished training runs: what ``train`` measured and stored for each.

``train`` on a labelled dataset evaluates the model (``metrics.json``) and stores the label-free check and its
own cost in the checkpoint; this gathers both for several seeds of one recipe, so a README row has one file.

    python pipelines/seeds_table.py runs/train/ped2max-1 runs/train/ped2max-seed1-1 runs/train/ped2max-seed2-1 \
        --results pipelines/results/default-seeds.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ognet_video.models.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.settings import REPO  # noqa: E402


def summary(run: Path) -> dict:
    if not (run / "metrics.json").is_file() or not (run / "model.safetensors").is_file():
        raise SystemExit(f"error: {run} is not a finished, evaluated run (metrics.json and model.safetensors); "
                         "give the folder of a run trained on a labelled dataset (train evaluates it)")  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    _, meta = load_checkpoint(run / "model.safetensors")
    op, loc = metrics["operator"], metrics["localisation"]
    return {
        "run": run.name,
        "seed": meta["config"]["train"]["seed"],
        "causal_micro_auc": metrics["causal"]["micro_auc"],
        "offline_micro_auc": metrics["offline"]["micro_auc"],
        "threshold": op["threshold"],
        "intervals_hit": f"{op['intervals_hit']}/{op['intervals']}",
        "false_alarms": op["false_alarm_events"],
        "false_alarms_per_1000_normal_frames": op["false_alarms_per_1000_normal_frames"],
        "frame_fpr": op["frame_false_positive_rate"],
        "median_delay_s": op["delay_seconds_median"],
        "pixel_auc": loc["pixel_auc"],
        "rbdc": loc["rbdc"],
        "tbdc": loc["tbdc"],
        "validation": meta.get("validation", {}).get("all"),
        "train_minutes": meta["train_minutes"],
        "environment": meta.get("environment"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--results", type=Path, default=REPO / "pipelines" / "results" / "default-seeds.json")
    args = ap.parse_args()
    rows = [summary(r) for r in args.runs]
    aucs = [r["causal_micro_auc"] for r in rows]
    spread = {"mean": statistics.mean(aucs), "sd": statistics.stdev(aucs) if len(aucs) > 1 else 0.0}
    spread["offline_mean"] = statistics.mean(r["offline_micro_auc"] for r in rows)
    args.results.write_text(json.dumps({"rows": rows, "causal_micro_auc": spread}, indent=2) + "\n")
    table = Table("seed", "causal AUC", "offline", "hit", "false alarms", "frame FPR", "delay", "pixel / RBDC / TBDC",
                  "label-free check", "train min")  # fmt: skip
    for r in rows:
        check = "-" if r["validation"] is None else f"{r['validation']:.4f}"
        table.add_row(str(r["seed"]), f"{r['causal_micro_auc']:.4f}", f"{r['offline_micro_auc']:.4f}",
                      r["intervals_hit"], str(r["false_alarms"]), f"{r['frame_fpr']:.3f}", f"{r['median_delay_s']:g} s",
                      f"{r['pixel_auc']:.3f} / {r['rbdc']:.3f} / {r['tbdc']:.3f}", check, f"{r['train_minutes']:.1f}")  # fmt: skip
    console = Console()
    console.print(table)
    console.print(f"causal micro AUC mean {spread['mean']:.4f}, sd {spread['sd']:.4f} (sample); "
                  f"offline mean {spread['offline_mean']:.4f}; wrote {args.results}")  # fmt: skip


if __name__ == "__main__":
    main()
