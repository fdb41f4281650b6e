"""Two networks scored together, and robust causal windows, judged by the validation protocol (no test label).

- ``pair``: each network's patch scores standardised by the mean and sd of its own held-out moving-patch scores,
  the two averaged, then the default scoring (calibrated on the held-out clips). Every pair of the given runs.
- ``med5`` / ``trim5``: the default scoring of one network with the causal window's mean replaced by the median of
  the last five scored frames / their mean without the highest.

The rules (docs/experiments.md section 23) were written before this ran. Reads the patch scores that
``pipelines/scoring_variants.py`` caches beside each model (it scores whatever is missing).

    python pipelines/pair_variants.py runs/train/abl-ctx45-1 runs/train/abl-ctx45-seed1-1 runs/train/abl-ctx45-seed2-1
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from rich.console import Console
from rich.table import Table

from ognet_video.calibrate.postprocess import fit_calibration
from ognet_video.data import load_dataset, read_gray
from ognet_video.decide import calibrated, causal_smooth
from ognet_video.evaluation.metrics import summarize
from ognet_video.evaluation.validation import KINDS, validation_aucs
from ognet_video.host import host_info
from ognet_video.stream.scoring import FrameScores, aggregate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.scoring_variants import cached_parts, held_stats, run_sets  # noqa: E402
from pipelines.settings import PED2, REPO  # noqa: E402


def robust_smooth(x: np.ndarray, window: int, how: str, empty: float) -> np.ndarray:
    """Trailing window over the scored frames (NaN skipped, as the package's smoother): median, or mean without
    the window's highest value (the plain mean where one value is all there is)."""
    seq = np.concatenate([np.full(window - 1, np.nan), np.asarray(x, dtype=np.float64)])
    win = sliding_window_view(seq, window)
    out = np.full(len(x), empty)
    for t, w in enumerate(win):
        w = w[np.isfinite(w)]
        if w.size == 0:
            continue
        out[t] = np.median(w) if how == "med" else (w.mean() if w.size == 1 else np.sort(w)[:-1].mean())
    return out


def evaluate(parts: dict, cfg, how: str, val_labels: dict, test_labels: dict) -> dict:
    """Calibrate on the held-out clips, smooth, and score the validation and the test sets."""
    cal = fit_calibration(parts["held"], cfg)
    w = cfg.causal_window

    def smooth(fs: FrameScores) -> np.ndarray:
        x = calibrated(fs, cal)
        return causal_smooth(x, w, cal.empty) if how == "mean" else robust_smooth(x, w, how, cal.empty)

    val = validation_aucs(val_labels, {n: smooth(fs) for n, fs in parts["val"].items()})
    test = {n: smooth(fs) for n, fs in parts["test"].items()}
    late = [n for n in test_labels if n >= "07"]
    return {"val": val.pop("all"), **val, "test": summarize(test_labels, test)["micro_auc"],
            "test_07_12": summarize({n: test_labels[n] for n in late}, {n: test[n] for n in late})["micro_auc"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=PED2)
    ap.add_argument("--results", type=Path, default=REPO / "pipelines" / "results" / "pair_variants.json")
    args = ap.parse_args()
    console = Console()
    ds = load_dataset("ped2", args.data)
    test = {c.name: ([read_gray(f) for f in c.frames], c.labels) for c in ds.test}
    test_labels = {n: lab for n, (_, lab) in test.items()}
    nets, cfgs, val_labels = {}, {}, None
    for run in args.runs:
        det, sets = run_sets(run, ds, test)
        labels = {n: lab for n, (_, lab) in sets["val"].items()}
        if val_labels is not None and labels.keys() != val_labels.keys():
            raise SystemExit(f"{run}: its validation clips differ from the first run's; pairs need the same ones")
        val_labels = labels
        nets[run.name] = {s: {n: p["base"] for n, p in c.items()} for s, c in cached_parts(
            run, det, sets, {"base": None}).items()}  # fmt: skip
        cfgs[run.name] = det.cfg.score.model_copy(update={"crowd_correction": True})  # the default since section 21
    rows = []
    for name, parts in nets.items():
        for how in ("mean", "med", "trim"):
            variant = {"mean": "single", "med": "med5", "trim": "trim5"}[how]
            rows.append({"variant": variant, "runs": [name], **evaluate(parts, cfgs[name], how, val_labels,
                                                                        test_labels)})  # fmt: skip
    for a, b in itertools.combinations(nets, 2):
        st = {r: held_stats({n: {"base": fs} for n, fs in nets[r]["held"].items()}) for r in (a, b)}
        pair = {}
        for s in nets[a]:
            pair[s] = {}
            for n in nets[a][s]:
                fa, fb = nets[a][s][n], nets[b][s][n]
                z = [(f.patch - st[r]["mean"]) / st[r]["sd"] for f, r in ((fa, a), (fb, b))]
                patch = (z[0] + z[1]) / 2
                pair[s][n] = FrameScores(aggregate(patch, cfgs[a]), fa.scored, patch, fa.motion)
        rows.append({"variant": "pair", "runs": [a, b], **evaluate(pair, cfgs[a], "mean", val_labels, test_labels)})
    single = {r["runs"][0]: r["val"] for r in rows if r["variant"] == "single"}
    pairs = [r for r in rows if r["variant"] == "pair"]
    pair_ok = all(r["val"] > np.mean([single[x] for x in r["runs"]]) for r in pairs) and np.mean(
        [r["val"] for r in pairs]) > np.mean(list(single.values()))  # fmt: skip
    robust = {v: all(r["val"] > single[r["runs"][0]] for r in rows if r["variant"] == v) for v in ("med5", "trim5")}
    winners = [v for v, ok in robust.items() if ok]
    means = {v: {k: float(np.mean([r[k] for r in rows if r["variant"] == v])) for k in ("val", "test", "test_07_12")}
             for v in ("single", "med5", "trim5", "pair")}  # fmt: skip
    verdict = {"pair": bool(pair_ok), "window": max(winners, key=lambda v: means[v]["val"], default="mean")}
    args.results.write_text(json.dumps({"environment": host_info(), "rows": rows, "means": means,
                                        "verdict": verdict}, indent=2) + "\n")  # fmt: skip
    table = Table("variant", "runs", "validation", *KINDS, "test", "test 07-12")
    for r in rows:
        table.add_row(
            r["variant"],
            "+".join(r["runs"]),
            *("-" if r.get(k) is None else f"{r[k]:.4f}" for k in ("val", *KINDS, "test", "test_07_12")),
        )
    console.print(table)
    console.print(means)
    console.print(f"by the rules written before the run: {verdict}")
    console.print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
