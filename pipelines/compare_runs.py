"""Can the test clips tell two recipes apart? The difference in mean causal micro AUC between two sets of runs
(say, three seeds each), with its 95% interval under a paired bootstrap of the test clips.

Reads each run's ``frame_scores.csv`` (written by ``train`` and ``eval`` on a labelled dataset). An interval that
holds 0 means the test clips cannot say which recipe is better, whatever the validation protocol says.

    python pipelines/compare_runs.py --a runs/train/abl-n04-1 runs/train/abl-n04-seed1-1 runs/train/abl-n04-seed2-1 \
        --b runs/train/ped2-1 runs/train/ped2-seed1-1 runs/train/ped2-seed2-1
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from ognet_video.evaluation.metrics import auc, paired_clip_bootstrap


def read_scores(run: Path, column: str = "causal") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(labels, scores) per clip from a run's ``frame_scores.csv``."""
    labels: dict[str, list[int]] = {}
    scores: dict[str, list[float]] = {}
    if not (run / "frame_scores.csv").is_file():
        raise SystemExit(f"error: {run} has no frame_scores.csv; give a run evaluated on labelled clips "
                         "(a train run on a labelled dataset, or an ognet-video eval folder)")  # fmt: skip
    with (run / "frame_scores.csv").open() as f:
        for row in csv.DictReader(f):
            labels.setdefault(row["clip"], []).append(int(row["label"]))
            scores.setdefault(row["clip"], []).append(float(row[column]))
    return ({k: np.array(v) for k, v in labels.items()}, {k: np.array(v) for k, v in scores.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", nargs="+", type=Path, required=True, help="runs of the first recipe")
    ap.add_argument("--b", nargs="+", type=Path, required=True, help="runs of the second recipe")
    ap.add_argument("--draws", type=int, default=1000)
    args = ap.parse_args()
    read = {run: read_scores(run) for run in (*args.a, *args.b)}
    labels = read[args.a[0]][0]
    if any(set(lab) != set(labels) for lab, _ in read.values()):
        raise SystemExit("error: the runs were not evaluated on the same clips")
    micro = {run: auc(np.concatenate([labels[n] for n in labels]), np.concatenate([s[n] for n in labels]))
             for run, (_, s) in read.items()}  # fmt: skip
    mean_a = float(np.mean([micro[r] for r in args.a]))
    mean_b = float(np.mean([micro[r] for r in args.b]))
    lo, hi = paired_clip_bootstrap(labels, [read[r][1] for r in args.a], [read[r][1] for r in args.b], args.draws)
    print(f"a: {' / '.join(f'{micro[r]:.4f}' for r in args.a)} (mean {mean_a:.4f})")
    print(f"b: {' / '.join(f'{micro[r]:.4f}' for r in args.b)} (mean {mean_b:.4f})")
    print(f"a - b: {mean_a - mean_b:+.4f}, 95% interval over the clips [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main()
