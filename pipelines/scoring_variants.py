"""Scoring-time variants of trained Ped2 models, judged by the validation protocol and reported on the test clips.

The variants change only how a trained model scores a frame, so the same networks are compared:

- ``base``: the default (one grid, the mean of the top-k moving cells' D(G(x))).
- ``mirror``: each cell's score is the mean of D(G(x)) on the frame and on its mirror image (flow planes
  mirrored with it, since flow is computed on the mirrored frames).
- ``grid2`` / ``grid4``: the frame is also scored on grids shifted by half a cell (diagonally; or right, down and
  diagonally), and the frame score is the top-k over the moving cells of all grids.

Each variant is calibrated like the default (``postprocess.fit_calibration`` on the run's held-out clips), then
scored on the validation set (``ognet_video.validation``, no test label) and on the 12 test clips. Writes
``pipelines/results/scoring_variants.json``.

    python pipelines/scoring_variants.py runs/train/ped2-1 runs/train/ped2-seed1-1 runs/train/ped2-seed2-1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from ognet_video.data import load_dataset, read_gray
from ognet_video.detector import Detector
from ognet_video.host import host_info
from ognet_video.metrics import summarize
from ognet_video.postprocess import calibrated, causal_smooth, fit_calibration
from ognet_video.scoring import FrameScorer, FrameScores, aggregate
from ognet_video.validation import KINDS, held_out_footage, make_clips, validation_aucs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.settings import PED2, REPO  # noqa: E402

Transform = Callable[[np.ndarray], np.ndarray]


def shifted(dx: int, dy: int) -> Transform:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return lambda f: cv2.warpAffine(f, m, (f.shape[1], f.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def mirrored(f: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(f[:, ::-1])


def score_with(det: Detector, frames: list[np.ndarray], transform: Transform | None) -> FrameScores:
    scorer = FrameScorer(det)
    if transform is not None:
        prepare = scorer.extractor.prepare
        scorer.extractor.prepare = lambda f: transform(prepare(f))  # type: ignore[method-assign]
    return scorer.score_clip(frames)


def combine(det: Detector, parts: dict[str, FrameScores], variant: str, cols: int) -> FrameScores:
    base = parts["base"]
    if variant == "base":
        return base
    if variant == "mirror":
        t, n = base.patch.shape
        back = parts["mirror"].patch.reshape(t, -1, cols)[:, :, ::-1].reshape(t, n)  # mirrored cells, mapped back
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cell static in both stays NaN, as it should
            patch = np.nanmean(np.stack([base.patch, back]), axis=0)
    else:
        grids = ["base", "d"] if variant == "grid2" else ["base", "d", "x", "y"]
        patch = np.concatenate([parts[g].patch for g in grids], axis=1)
    return FrameScores(aggregate(patch, det.cfg.score), base.scored, patch, base.motion)


VARIANTS = ("base", "mirror", "grid2", "grid4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=PED2)
    ap.add_argument("--results", type=Path, default=REPO / "pipelines" / "results" / "scoring_variants.json")
    args = ap.parse_args()
    console = Console()
    ds = load_dataset("ped2", args.data)
    test = {c.name: ([read_gray(f) for f in c.frames], c.labels) for c in ds.test}
    rows = []
    for run in args.runs:
        t0 = time.perf_counter()
        det = Detector.load(run / "model.safetensors")
        held = dict(held_out_footage(run / "model.safetensors", ds.train))
        val = {c.name: (c.frames, c.labels) for c in make_clips(held.items(), det)}
        half = det.cfg.patches.stride // 2
        transforms: dict[str, Transform | None] = {"base": None, "mirror": mirrored, "d": shifted(half, half),
                                                   "x": shifted(half, 0), "y": shifted(0, half)}  # fmt: skip
        cols = (det.cfg.patches.width - det.cfg.patches.size) // det.cfg.patches.stride + 1
        sets = {"held": {n: (f, None) for n, f in held.items()}, "val": val, "test": test}
        scores = {s: {n: {k: score_with(det, f, t) for k, t in transforms.items()} for n, (f, _) in clips.items()}
                  for s, clips in sets.items()}  # fmt: skip
        w = det.cfg.score.causal_window
        for variant in VARIANTS:
            fs = {s: {n: combine(det, p, variant, cols) for n, p in clips.items()} for s, clips in scores.items()}
            cal = fit_calibration(fs["held"], det.cfg.score)
            smooth = {s: {n: causal_smooth(calibrated(x.raw, x.scored, cal), w, cal.empty) for n, x in c.items()}
                      for s, c in fs.items()}  # fmt: skip
            val = validation_aucs({n: lab for n, (_, lab) in sets["val"].items()}, smooth["val"])
            row = {"run": run.name, "variant": variant, "val": val.pop("all"), **val}
            labels = {n: lab for n, (_, lab) in sets["test"].items()}
            row["test"] = summarize(labels, smooth["test"])["micro_auc"]
            late = [n for n in labels if n >= "07"]
            row["test_07_12"] = summarize({n: labels[n] for n in late}, {n: smooth["test"][n] for n in late})[
                "micro_auc"
            ]
            rows.append(row)
            console.print(row)
        console.print(f"{run.name}: {time.perf_counter() - t0:.0f} s")
    means = {
        v: {k: float(np.mean([r[k] for r in rows if r["variant"] == v])) for k in ("val", "test")} for v in VARIANTS
    }
    args.results.write_text(json.dumps({"environment": host_info(), "rows": rows, "means": means}, indent=2) + "\n")
    table = Table("run", "variant", "validation", *KINDS, "test", "test 07-12")
    for r in rows:
        table.add_row(
            r["run"],
            r["variant"],
            *("-" if r[k] is None else f"{r[k]:.4f}" for k in ("val", *KINDS, "test", "test_07_12")),
        )
    console.print(table)
    console.print(means)
    console.print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
