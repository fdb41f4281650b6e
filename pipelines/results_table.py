"""Markdown tables from benchmark results files (``pipelines/results/*.json``), for the README.

python pipelines/results_table.py pipelines/results/ped2-cpu.json
python pipelines/results_table.py --ablation pipelines/results/ablation/*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROWS = (
    ("ognet", "OGNet D(G(x)) (final model)"),
    ("phase1_only", "ref: phase one only"),
    ("max_motion", "ref: max patch motion"),
)


def f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def main_table(path: Path) -> str:
    r = json.loads(path.read_text())
    lines = [
        f"`{r['name']}`: {r['device']}, {r['host']}; train {r['train_minutes']:.1f} min on {r['train_patches']} patches",
        "",
        "| scoring | causal micro AUC | none micro AUC | offline micro AUC | causal macro AUC | causal EER | causal AUC 01-06 | causal AUC 07-12 | ms/frame |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in ROWS:
        row = r["rows"][key]
        c = row["causal"]
        ms = f"{row['ms_per_frame']:.1f}" if "ms_per_frame" in row else "-"
        lines.append(
            f"| {label} | **{f(c['micro_auc'])}** | {f(row['none']['micro_auc'])} | {f(row['offline']['micro_auc'])} | "
            f"{f(c['macro_auc'])} | {f(c['eer'])} | {f(row['causal_micro_auc_01-06'])} | {f(row['causal_micro_auc_07-12'])} | {ms} |"
        )
    return "\n".join(lines)


def ablation_table(paths: list[Path]) -> str:
    lines = [
        "| variant (overrides of the defaults) | causal micro AUC | offline micro AUC | causal macro AUC | causal EER | causal 01-06 | causal 07-12 | phase one only, causal | train min | ms/frame |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in paths:
        r = json.loads(p.read_text())
        o = r["rows"]["ognet"]
        ov = " ".join(r["overrides"]) or "defaults"
        ms = f"{o['ms_per_frame']:.1f}" if o.get("ms_per_frame") else "-"
        lines.append(
            f"| `{r['name']}`: {ov} | {f(o['causal']['micro_auc'])} | {f(o['offline']['micro_auc'])} | "
            f"{f(o['causal']['macro_auc'])} | {f(o['causal']['eer'])} | {f(o['causal_micro_auc_01-06'])} | "
            f"{f(o['causal_micro_auc_07-12'])} | {f(r['rows']['phase1_only']['causal']['micro_auc'])} | {r['train_minutes']:.1f} | {ms} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--ablation", action="store_true")
    a = ap.parse_args()
    print(ablation_table(a.files) if a.ablation else "\n\n".join(main_table(p) for p in a.files))
