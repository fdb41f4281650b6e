"""The stored decision on Ped2, before and after ``calibrate``: operator metrics and localisation per model.

For each trained run: a copy of its model is recalibrated on the run's own held-out normal training clips
(the same footage training calibrated on; no test label is read), then evaluated once on the 12 test clips.
"before" is the same evaluation at the threshold the model was trained with (the normalisation is the same,
fitted on the same footage, so only the threshold differs). Writes ``pipelines/results/decision.json``.

    python pipelines/decision_benchmark.py runs/train/ped2-1 runs/train/ped2-seed1-1 runs/train/ped2-seed2-1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from rich.console import Console

from ognet_video.calibrate.recalibrate import recalibrate
from ognet_video.data import load_dataset
from ognet_video.evaluation.evaluate import evaluate, operator_table
from ognet_video.evaluation.metrics import operator_metrics
from ognet_video.host import host_info, host_line
from ognet_video.models.detector import Detector
from ognet_video.training.train_data import split_clips

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.settings import PED2  # noqa: E402


def one(run: Path, ds, out: Path, console: Console) -> dict:
    before = Detector.load(run / "model.safetensors")
    _, holdout = split_clips(ds, before.cfg.train.holdout_clips)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run / "model.safetensors", out / "model.safetensors")
    rec = recalibrate(out / "model.safetensors", [str(c.frames[0].parent) for c in holdout], device="cpu")
    old, new = rec.old, rec.new
    assert old is not None and (old.mean, old.std, old.floor) == (new.mean, new.std, new.floor), "normalisation moved"
    det = Detector.load(out / "model.safetensors")
    res = evaluate(det, ds.test, out / "eval", console, plots=False)
    m = res.metrics
    sc = det.cfg.score
    op_before = operator_metrics(res.labels, res.scores["causal"], old.threshold, sc.event_frames, m["operator"]["fps"])
    console.print(operator_table({"operator": op_before}), operator_table(m))
    drop = ("per_interval",)
    return {
        "run": str(run), "holdout": [c.name for c in holdout], "seconds": new.seconds,
        "causal_micro_auc": m["causal"]["micro_auc"],
        "before": {"rule": old.rule, "percentile": old.percentile} | {k: v for k, v in op_before.items() if k not in drop},
        "after": {"rule": new.rule, "alarms_per_hour": new.alarms_per_hour, "tail": new.tail, "percentile": new.percentile}
        | {k: v for k, v in m["operator"].items() if k not in drop},
        "per_interval_after": m["operator"]["per_interval"],
        "localisation": m.get("localisation"),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="trained Ped2 run folders")
    ap.add_argument("--data", default=str(PED2), help="Ped2 root (default: the OGNET_PED2 setting)")
    ap.add_argument("--work", default="runs/bench/decision", type=Path, help="where the recalibrated copies go")
    ap.add_argument("--out", default="pipelines/results/decision.json", type=Path)
    args = ap.parse_args()
    console = Console()
    ds = load_dataset("ped2", args.data)
    rows = [one(run, ds, args.work / run.name, console) for run in args.runs]
    env = host_info()
    result = {"host": host_line(env), "environment": env, "models": rows,
              "note": "threshold refitted by `ognet-video calibrate` on each model's held-out normal training clips "
                      "(15-16); test labels only report. before = the threshold the model was trained with."}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
