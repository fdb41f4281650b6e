"""Where a run's causal micro AUC goes: the share of misordered (anomalous, normal) frame pairs by clip.

1 - AUC is the fraction of (anomalous frame, normal frame) pairs ranked the wrong way (ties count half). Splitting
it by the clip of each side shows which anomalies score too low and which normal footage too high. For diagnosis
only: nothing is selected with it (the test labels decide nothing here).

    python pipelines/loss_breakdown.py runs/train/ped2crowd-1 runs/train/ped2crowd-seed1-1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.compare_runs import read_scores  # noqa: E402


def pair_losses(labels: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> dict[tuple[str, str], float]:
    """{(clip of the anomalous frame, clip of the normal frame): its share of 1 - AUC's misordered pairs}."""
    pos = {c: s[labels[c] == 1] for c, s in scores.items()}
    neg = {c: s[labels[c] == 0] for c, s in scores.items()}
    total = sum(map(len, pos.values())) * sum(map(len, neg.values()))
    out = {}
    for a, p in pos.items():
        for n, q in neg.items():
            if len(p) and len(q):
                wrong = (q[None, :] > p[:, None]).sum() + 0.5 * (q[None, :] == p[:, None]).sum()
                out[(a, n)] = float(wrong / total)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--column", default="causal", help="frame_scores.csv column: causal, offline or none")
    ap.add_argument("--top", type=int, default=8, help="clip pairs listed per run")
    args = ap.parse_args()
    console = Console()
    for run in args.runs:
        losses = pair_losses(*read_scores(run, args.column))
        clips = sorted({c for pair in losses for c in pair})
        table = Table("clip", "lost by its anomalies", "lost by its normal frames",
                      title=f"{run.name}: micro AUC {1 - sum(losses.values()):.4f}")  # fmt: skip
        for c in clips:
            a = sum(v for (x, _), v in losses.items() if x == c)
            n = sum(v for (_, y), v in losses.items() if y == c)
            if a >= 0.0005 or n >= 0.0005:
                table.add_row(c, f"{a:.4f}", f"{n:.4f}")
        console.print(table)
        worst = sorted(losses.items(), key=lambda kv: -kv[1])[: args.top]
        console.print("worst pairs (anomalous clip, normal clip): "
                      + ", ".join(f"{a}/{n} {v:.4f}" for (a, n), v in worst))  # fmt: skip


if __name__ == "__main__":
    main()
