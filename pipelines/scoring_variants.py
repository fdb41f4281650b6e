"""Scoring-time variants of trained Ped2 models, judged by the validation protocol and reported on the test clips.

The variants change only how a trained model scores a frame, so the same networks are compared:

- ``base``: the default (one grid, the mean of the top-k moving cells' D(G(x))).
- ``mirror``: each cell's score is the mean of D(G(x)) on the frame and on its mirror image (flow planes
  mirrored with it, since flow is computed on the mirrored frames).
- ``grid2``: the frame is also scored on a grid shifted diagonally by half a cell, and the frame score is the
  top-k over the moving cells of both grids.
- ``crowd``: the frame score minus ``beta * log(moving cells)``, ``beta`` the least-squares slope of the frame
  score on the log of the moving cells over the held-out normal frames: the top-k of many normal cells is higher
  than the top-k of few, and a crowded normal frame should not look anomalous for that alone.
- ``crowdiid``: the frame score minus what the top-k of that many cells drawn at random from the held-out
  normal patch scores would be (no fit; assumes cells independent).
- ``mirror+crowd``: both.
- ``top1`` (the paper's max), ``top3``, ``top4``: the frame score from the k highest moving cells instead of 2;
  ``w3``, ``w7``, ``w9``: the causal window instead of 5 frames. Both were chosen on test clips 01-06 before
  the protocol existed; here the protocol judges them.

Each variant is calibrated like the default (``postprocess.fit_calibration`` on the run's held-out clips), then
scored on the validation set (``ognet_video.evaluation.validation``, no test label) and on the 12 test clips. Writes
``pipelines/results/scoring_variants.json``; the patch scores of each run are cached beside its model
(``scoring_parts.npz``), so a second call only recomputes the variants.

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

from ognet_video.calibrate.postprocess import fit_calibration
from ognet_video.config import ScoreConfig
from ognet_video.data import load_dataset, read_gray
from ognet_video.decide import calibrated, causal_smooth, moving_cells
from ognet_video.evaluation.metrics import paired_clip_bootstrap, summarize
from ognet_video.evaluation.validation import KINDS, held_out_footage, make_clips, validation_aucs
from ognet_video.host import host_info
from ognet_video.models.detector import Detector
from ognet_video.stream.scoring import FrameScorer, FrameScores, aggregate

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


def mirror_back(parts: dict[str, FrameScores], cols: int) -> np.ndarray:
    base = parts["base"]
    t, n = base.patch.shape
    back = parts["mirror"].patch.reshape(t, -1, cols)[:, :, ::-1].reshape(t, n)  # mirrored cells, mapped back
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell static in both stays NaN, as it should
        return np.nanmean(np.stack([base.patch, back]), axis=0)


def score_config(det: Detector, variant: str) -> ScoreConfig:
    """The default's scoring settings with a variant's ``topK``, ``wN`` and ``crowd`` parts applied."""
    cfg = det.cfg.score.model_copy(update={"crowd_correction": "crowd" in variant.split("+")})
    for part in variant.split("+"):
        if part[:3] == "top":  # also on a model whose stored aggregate is "max", where topk alone is ignored
            cfg = cfg.model_copy(update={"aggregate": "topk", "topk": int(part[3:])})
        elif part[0] == "w" and part[1:].isdigit():
            cfg = cfg.model_copy(update={"causal_window": int(part[1:])})
    return cfg


def local_track(patch: np.ndarray, scored: np.ndarray, cols: int, window: int, floor: float) -> np.ndarray:
    """Each moving cell's score becomes the trailing mean, over the last ``window`` scored frames, of the highest
    score in its 3x3 neighbourhood: something anomalous keeps scoring high where it goes, while a crowd's
    one-frame spikes land in a different cell each frame. A neighbourhood where nothing moved counts as
    ``floor`` (the lowest held-out patch score, the calibration's "nothing moved")."""
    t, n = patch.shape
    g = np.where(np.isnan(patch), -np.inf, patch).reshape(t, n // cols, cols)
    pad = np.pad(g, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    near = np.max([pad[:, 1 + dy : 1 + dy + g.shape[1], 1 + dx : 1 + dx + cols]
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0).reshape(t, n)  # fmt: skip
    near = np.where(np.isinf(near), floor, near) * scored[:, None]
    total = np.cumsum(near, axis=0)
    count = np.cumsum(scored.astype(float))
    lag = np.arange(t) - window
    total -= np.where(lag[:, None] >= 0, total[np.maximum(lag, 0)], 0.0)
    count -= np.where(lag >= 0, count[np.maximum(lag, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count[:, None]
    return np.where(np.isnan(patch), np.nan, out)


def held_stats(held: dict[str, dict[str, FrameScores]]) -> dict[str, float]:
    """Over the held-out normal clips' moving cells: the lowest patch score (the calibration's floor), and the
    mean and sd of the patch scores and of the cells' motion (what ``motionX`` standardises with)."""
    patch = np.concatenate([p["base"].patch[np.isfinite(p["base"].patch)] for p in held.values()])
    motion = np.concatenate([p["base"].motion[np.isfinite(p["base"].patch)] for p in held.values()])
    return {"floor": float(patch.min()), "mean": float(patch.mean()), "sd": float(patch.std()),
            "motion_mean": float(motion.mean()), "motion_sd": float(motion.std())}  # fmt: skip


def combine(
    det: Detector, parts: dict[str, FrameScores], variant: str, cols: int, stats: dict[str, float]
) -> FrameScores:
    """Patch scores of one variant (the crowd corrections act later, on frame scores: ``crowd_fit``)."""
    base, kinds = parts["base"], variant.split("+")
    if "mirror" in kinds:
        patch = mirror_back(parts, cols)
    elif "grid2" in kinds:
        patch = np.concatenate([parts[g].patch for g in ("base", "d")], axis=1)
    else:
        patch = base.patch
    for k in kinds:
        if k.startswith("motion"):  # D(G(x)) and the cell's motion, each in held-out sds, motion weighted by X
            z = (base.motion - stats["motion_mean"]) / stats["motion_sd"]
            patch = (patch - stats["mean"]) / stats["sd"] + float(k[6:]) * z
        if k.startswith("local"):
            patch = local_track(patch, base.scored, cols, int(k[5:]), stats["floor"])
    return FrameScores(aggregate(patch, score_config(det, variant)), base.scored, patch, base.motion)


def crowd_fit(held: dict[str, FrameScores], variant: str, cfg: ScoreConfig) -> Callable[[np.ndarray], np.ndarray]:
    """``crowdiid``'s expected frame score from the number of moving cells alone, from held-out normal frames (no
    label): what it subtracts. ``crowd`` is the package's own correction (``score.crowd_correction``)."""
    if "crowdiid" not in variant.split("+"):
        return lambda n: np.zeros(len(n))
    topk = 1 if cfg.aggregate == "max" else cfg.topk
    pool = np.concatenate([fs.patch[np.isfinite(fs.patch)] for fs in held.values()])
    rng = np.random.default_rng(0)
    top = next(iter(held.values())).patch.shape[1]  # every cell of the grid
    expect = np.zeros(top + 1)
    for k in range(1, top + 1):
        draws = -np.sort(-rng.choice(pool, size=(2000, k)), axis=1)[:, :topk]  # the variant's own frame score
        expect[k] = draws.mean()
    expect -= expect[1]
    return lambda n: expect[np.clip(n, 1, top)]


def corrected(fs: FrameScores, expect: Callable[[np.ndarray], np.ndarray]) -> FrameScores:
    return FrameScores(fs.raw - expect(moving_cells(fs)), fs.scored, fs.patch, fs.motion)


def cached_parts(run: Path, det: Detector, sets: dict, transforms: dict[str, Transform | None]) -> dict:
    """{set: {clip: {transform: FrameScores}}}, from ``scoring_parts.npz`` beside the model where it holds them;
    only what it lacks (a new validation kind, a new transform) is scored, and the cache is rewritten."""
    cache = run / "scoring_parts.npz"
    fields = ("raw", "scored", "patch", "motion")
    out: dict = {}
    if cache.exists():
        z = np.load(cache)
        for key in sorted({k.rsplit("/", 1)[0] for k in z.files}):  # sorted: the same order in every process
            s, n, t = key.split("/")
            out.setdefault(s, {}).setdefault(n, {})[t] = FrameScores(*(z[f"{key}/{f}"] for f in fields))
    missing = [(s, n, k) for s, clips in sets.items() for n in clips for k in transforms
               if k not in out.get(s, {}).get(n, {})]  # fmt: skip
    for s, n, k in missing:
        out.setdefault(s, {}).setdefault(n, {})[k] = score_with(det, sets[s][n][0], transforms[k])
    if missing:
        arrays = {f"{s}/{n}/{t}/{f}": getattr(fs, f) for s, c in out.items() for n, p in c.items()
                  for t, fs in p.items() for f in fields}  # fmt: skip
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    return {s: {n: out[s][n] for n in clips} for s, clips in sets.items()}


def run_sets(run: Path, ds, test: dict) -> tuple[Detector, dict]:
    """A run's detector and the sets it is judged on: its held-out normal clips, the validation clips made from
    them (no test label), and the test clips (``{name: (frames, labels)}``, read once for every run)."""
    det = Detector.load(run / "model.safetensors")
    held = dict(held_out_footage(run / "model.safetensors", ds.train))
    val = {c.name: (c.frames, c.labels) for c in make_clips(held.items(), det)}
    return det, {"held": {n: (f, None) for n, f in held.items()}, "val": val, "test": test}


# each round: the variant it starts from, then the variants judged against it. The second round starts from the
# first round's pick (written after the first round ran, before any test number of it was read for this purpose);
# the third (local tracks) and fourth (the cell's motion added), from the default of the time (the second
# round's pick), each written before it ran
ROUNDS = [
    ("base", ["mirror", "grid2", "crowd", "crowdiid", "mirror+crowd", "top1", "top3", "top4", "w3", "w7", "w9"]),
    ("top1", ["top1+w3", "top1+w7", "top1+w9", "top1+mirror", "top1+crowd"]),
    ("top1", ["top1+local3", "top1+local5", "top1+local3+w3", "top1+local5+w3"]),
    ("top1", ["top1+motion0.5", "top1+motion1", "top1+motion2"]),
]
VARIANTS = tuple(dict.fromkeys(v for start, rest in ROUNDS for v in (start, *rest)))


def pick(rows: list[dict], means: dict, start: str, rest: list[str]) -> str:
    """The rule, fixed before the runs: a variant wins over ``start`` if its validation score is higher on every
    run; among the winners, the highest mean. No test number is read."""
    ref = {r["run"]: r["val"] for r in rows if r["variant"] == start}
    wins = [v for v in rest if all(r["val"] > ref[r["run"]] for r in rows if r["variant"] == v)]
    return max(wins, key=lambda v: means[v]["val"], default=start)


def clip_bootstrap(scores: dict[tuple[str, str], dict[str, np.ndarray]], labels: dict[str, np.ndarray],
                   runs: list[str]) -> dict[str, list[float]]:  # fmt: skip
    """How far the test alone can tell a variant from the one its round starts from: the 95% interval of the
    difference in test causal micro AUC (mean over ``runs``) under a paired bootstrap of the test clips. An
    interval that holds 0 means the test clips cannot say which is better."""
    out = {}
    for start, rest in ROUNDS:
        for v in rest:
            lo, hi = paired_clip_bootstrap(labels, [scores[(r, v)] for r in runs], [scores[(r, start)] for r in runs])
            out[v] = [lo, hi]
    return out


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
    test_scores: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for run in args.runs:
        t0 = time.perf_counter()
        det, sets = run_sets(run, ds, test)
        half = det.cfg.patches.stride // 2
        transforms: dict[str, Transform | None] = {"base": None, "mirror": mirrored, "d": shifted(half, half)}
        cols = (det.cfg.patches.width - det.cfg.patches.size) // det.cfg.patches.stride + 1
        scores = cached_parts(run, det, sets, transforms)
        stats = held_stats(scores["held"])  # the run's, the same for every variant
        for variant in VARIANTS:
            score_cfg = score_config(det, variant)
            w = score_cfg.causal_window
            fs = {s: {n: combine(det, p, variant, cols, stats) for n, p in clips.items()}
                  for s, clips in scores.items()}  # fmt: skip
            expect = crowd_fit(fs["held"], variant, score_cfg)
            fs = {s: {n: corrected(x, expect) for n, x in c.items()} for s, c in fs.items()}
            cal = fit_calibration(fs["held"], score_cfg)
            smooth = {s: {n: causal_smooth(calibrated(x, cal), w, cal.empty) for n, x in c.items()}
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
            test_scores[(run.name, variant)] = smooth["test"]
            console.print(row)
        console.print(f"{run.name}: {time.perf_counter() - t0:.0f} s")
    means = {
        v: {k: float(np.mean([r[k] for r in rows if r["variant"] == v])) for k in ("val", "test", "test_07_12")}
        for v in VARIANTS
    }
    picks = [pick(rows, means, start, rest) for start, rest in ROUNDS]
    spread = clip_bootstrap(test_scores, {c.name: c.labels for c in ds.test}, [r.name for r in args.runs])
    args.results.write_text(
        json.dumps(
            {"environment": host_info(), "rows": rows, "means": means, "picks": picks, "test_difference_95": spread},
            indent=2,
        )
        + "\n"
    )
    table = Table("run", "variant", "validation", *KINDS, "test", "test 07-12")
    for r in rows:
        table.add_row(
            r["run"],
            r["variant"],
            *("-" if r[k] is None else f"{r[k]:.4f}" for k in ("val", *KINDS, "test", "test_07_12")),
        )
    console.print(table)
    console.print(means)
    console.print({v: [round(x, 4) for x in ci] for v, ci in spread.items()})
    console.print(f"the protocol's picks (up on validation at every run, then the highest mean): {picks}")
    console.print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
