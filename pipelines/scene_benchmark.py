"""One recipe on one scene, several seeds: causal micro AUC with and without the object cue, and what an operator
sees at the stored threshold. Writes ``pipelines/results/<dataset>-<name>.json`` in one format for every scene.

    python pipelines/scene_benchmark.py --dataset ped1 --config configs/objects.yaml --seeds 0 1 2
    python pipelines/scene_benchmark.py --dataset ped2 --config configs/objects.yaml --seeds 0 1 2

The networks do not depend on the object cue (it is fitted after them), so one training per seed gives both
rows: the recipe as trained, and OGNet alone (the same networks, the cue off, recalibrated on the same held-out
clips) - the default recipe's numbers for that seed. ``--data`` defaults to the OGNET_PED1 / OGNET_PED2 setting.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from pathlib import Path

import torch
from rich.console import Console

from ognet_video.config import load_config
from ognet_video.data import load_dataset
from ognet_video.evaluation.evaluate import evaluate
from ognet_video.host import host_info
from ognet_video.models.checkpoint import atomic_write_text
from ognet_video.models.detector import Detector
from ognet_video.training.train import calibrate, train
from ognet_video.training.train_data import split_for_training

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.settings import PED1, PED2  # noqa: E402

ROOTS = {"ped1": PED1, "ped2": PED2}


def operator_row(metrics: dict) -> dict:
    op = metrics["operator"]
    return {"intervals_hit": op["intervals_hit"], "intervals": op["intervals"], "false_alarms": op["false_alarm_events"],
            "normal_frames": op["normal_frames"]}  # fmt: skip


def run_seed(args: argparse.Namespace, seed: int, console: Console) -> tuple[dict, float, dict]:
    cfg = load_config(args.config, [f"train.seed={seed}", f"train.num_threads={args.threads}", *args.overrides])
    ds = load_dataset(args.dataset, args.data or ROOTS[args.dataset])
    run = train(cfg, ds, Path(args.project) / f"{args.dataset}-{args.name}-seed{seed}", console=console)
    det = Detector.load(run.model_path)
    full = evaluate(det, ds.test, console=console, plots=False).metrics
    row = {"seed": seed, "causal_micro_auc": full["causal"]["micro_auc"], **operator_row(full),
           "train_minutes": round(run.minutes, 2), "ms_per_frame": round(full["ms_per_frame"], 2)}  # fmt: skip
    if det.objects is not None:  # OGNet alone: the same networks, the cue off, calibrated again without it
        det.objects = None
        det.calibration = calibrate(det, split_for_training(ds, cfg)[1])
        alone = evaluate(det, ds.test, console=console, plots=False).metrics
        row["ognet_only_causal_micro_auc"] = alone["causal"]["micro_auc"]
        row["ognet_only"] = operator_row(alone)
    else:
        row["ognet_only_causal_micro_auc"] = row["causal_micro_auc"]
    return row, full["reference_max_motion"]["causal"]["micro_auc"], cfg.to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(ROOTS), required=True)
    ap.add_argument("--config", default="configs/objects.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data", default=None)
    ap.add_argument("--name", default=None, help="results name (default: the config's file name)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--project", default="runs/scene-benchmark")
    ap.add_argument("--lock", default=None, help="hold this lock file during each seed (a shared machine: one "
                    "CPU-heavy job at a time, others may run between seeds)")
    ap.add_argument("overrides", nargs="*", help="section.key=value")
    args = ap.parse_args()
    args.name = args.name or Path(args.config).stem
    torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    rows, reference, cfg = [], None, None
    for seed in args.seeds:
        with open(args.lock or os.devnull, "a") as lock:
            if args.lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
            t0 = time.time()
            row, reference, cfg = run_seed(args, seed, console)
        rows.append(row)
        console.print(f"{args.dataset} seed {seed}: {row} ({time.time() - t0:.0f} s)")
    out = {"config": cfg, "config_file": args.config, "overrides": args.overrides, "dataset": args.dataset,
           "host": host_info(), "torch_threads": args.threads, "seeds": rows,
           "max_motion_causal_micro_auc": reference,
           "command": " ".join(["python", "pipelines/scene_benchmark.py", *sys.argv[1:]])}  # fmt: skip
    path = Path(__file__).resolve().parent / "results" / f"{args.dataset}-{args.name}.json"
    atomic_write_text(path, json.dumps(out, indent=2))
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
