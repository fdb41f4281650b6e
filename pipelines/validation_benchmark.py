"""The validation protocol (``ognet_video.evaluation.validation``) against the test clips, on trained Ped2 runs.

For each run, both of its models (``model.safetensors`` and phase one's ``phase1.safetensors``) are scored on
the synthetic anomalies made from the run's own held-out normal training clips (no test label), and on the 12
test clips (only to report). The question is whether the validation score ranks models the way the test
does: Spearman's rank correlation over every model is written with the rows to
``pipelines/results/validation.json``.

    python pipelines/validation_benchmark.py runs/train/ped2-1 runs/train/ped2-seed1-1 runs/train/ped2-seed2-1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ognet_video.data import load_dataset
from ognet_video.evaluation.evaluate import evaluate
from ognet_video.evaluation.validation import KINDS, held_out_footage, make_clips, validate
from ognet_video.host import host_info
from ognet_video.models.detector import Detector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.settings import PED2, REPO  # noqa: E402


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=PED2)
    ap.add_argument("--results", type=Path, default=REPO / "pipelines" / "results" / "validation.json")
    ap.add_argument("--final-only", action="store_true", help="skip phase one's models (half the time)")
    args = ap.parse_args()
    console, quiet = Console(), Console(file=open(os.devnull, "w"))  # noqa: SIM115
    ds = load_dataset("ped2", args.data)
    rows = []
    for run in args.runs:
        held = held_out_footage(run / "model.safetensors", ds.train)
        for file in ("model.safetensors",) if args.final_only else ("model.safetensors", "phase1.safetensors"):
            det = Detector.load(run / file)
            val = validate(det, make_clips(held, det))
            test = evaluate(det, ds.test, console=quiet, plots=False).metrics["causal"]["micro_auc"]
            rows.append(
                {"run": run.name, "model": file.split(".")[0], "validation": val, "test_causal_micro_auc": test}
            )
            console.print(f"{run.name} {file}: validation {val['all']:.4f} "
                          + " ".join(f"{k} {val[k]:.4f}" for k in KINDS) + f" | test {test:.4f}")  # fmt: skip
    rho = spearman([r["validation"]["all"] for r in rows], [r["test_causal_micro_auc"] for r in rows])
    finals = [r for r in rows if r["model"] == "model"]
    rho_final = spearman([r["validation"]["all"] for r in finals], [r["test_causal_micro_auc"] for r in finals])
    table = Table("run", "model", "validation", *KINDS, "test (causal micro AUC)")
    for r in rows:
        v = r["validation"]
        table.add_row(r["run"], r["model"], f"{v['all']:.4f}", *(f"{v[k]:.4f}" for k in KINDS),
                      f"{r['test_causal_micro_auc']:.4f}")  # fmt: skip
    console.print(table)
    console.print(f"Spearman rank correlation, validation vs test: all models {rho:.3f}; final models {rho_final:.3f}")
    result = {
        "what": "validation (synthetic anomalies in each run's held-out normal clips) vs test, per model",
        "environment": host_info(),
        "kinds": list(KINDS),
        "rows": rows,
        "spearman_all_models": rho,
        "spearman_final_models": rho_final,
    }
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
