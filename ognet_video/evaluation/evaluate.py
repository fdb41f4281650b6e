"""Frame-level evaluation on a labelled test split.

Three smoothings of the same calibrated scores, always labelled:
  none    - each frame on its own;
  causal  - trailing mean over past frames only: the number a live stream can reach;
  offline - centred mean, looks into the future: for comparison with offline papers only.
Normalisation uses the checkpoint's calibration (held-out normal training clips), never the test video.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ognet_video.calibrate.calibration import seconds_per_frame
from ognet_video.data import Clip
from ognet_video.decide import causal_smooth, decide, offline_smooth
from ognet_video.errors import UserError
from ognet_video.evaluation.localisation import find_masks, localisation_metrics
from ognet_video.evaluation.metrics import operator_metrics, summarize
from ognet_video.evaluation.report import plot_roc, plot_timeline
from ognet_video.models.checkpoint import atomic_write_text
from ognet_video.models.detector import Detector
from ognet_video.progress import progress_bar
from ognet_video.stream.scoring import FrameScorer

MODES = ("none", "causal", "offline")


@dataclass
class EvalResult:
    metrics: dict
    scores: dict[str, dict[str, np.ndarray]] = field(repr=False)  # mode -> clip -> normalised score
    raw: dict[str, np.ndarray] = field(repr=False)
    labels: dict[str, np.ndarray] = field(repr=False)
    reference: dict[str, dict[str, np.ndarray]] = field(repr=False)  # mode -> clip -> smoothed max patch motion


def smooth_all(z: dict[str, np.ndarray], causal: dict[str, np.ndarray], offline_w: int,
               empty: float = 0.0) -> dict[str, dict[str, np.ndarray]]:  # fmt: skip
    """The three smoothings of ``z``, its ``causal`` one given (for the scores: the decision's own); unscored
    (NaN) frames are left out of windows and read as ``empty`` alone."""
    return {
        "none": {c: np.where(np.isfinite(v), v, empty) for c, v in z.items()},
        "causal": causal,
        "offline": {c: offline_smooth(v, offline_w, empty) for c, v in z.items()},
    }


def evaluate(detector: Detector, clips: list[Clip], out_dir: Path | None = None,
             console: Console | None = None, plots: bool = True) -> EvalResult:  # fmt: skip
    """Score every test clip, compute metrics for all three smoothings, write the report to ``out_dir``."""
    console = console or Console()
    if detector.calibration is None:
        raise UserError("this checkpoint has no calibration; it was saved before training finished")
    clips = [c for c in clips if c.labels is not None]
    if not clips:
        raise UserError("the test split has no frame labels (testing/labels.json); nothing to evaluate")
    scorer = FrameScorer(detector)
    cal, sc = detector.calibration, detector.cfg.score
    raw, decisions, motion, labels, patch, seen = {}, {}, {}, {}, {}, {}
    n_frames = 0
    t0 = time.perf_counter()
    with progress_bar(console) as progress:
        task = progress.add_task("scoring", total=sum(len(c) for c in clips), info="")
        for clip in clips:
            seen[clip.name] = ([], [])  # frame times, first frame's shape
            fs = scorer.score_clip(_frames(clip, progress, task, seen[clip.name]))
            raw[clip.name], motion[clip.name], labels[clip.name] = fs.raw, fs.motion.max(axis=1), clip.labels
            decisions[clip.name], patch[clip.name] = decide(fs, cal, sc), fs.patch
            n_frames += len(clip)
    seconds = time.perf_counter() - t0
    z, causal = {c: d.calibrated for c, d in decisions.items()}, {c: d.smoothed for c, d in decisions.items()}
    scores = smooth_all(z, causal, sc.offline_window, cal.empty)
    metrics: dict = {mode: summarize(labels, scores[mode]) for mode in MODES}
    motion_causal = {c: causal_smooth(v, sc.causal_window, 0.0) for c, v in motion.items()}
    reference = smooth_all(motion, motion_causal, sc.offline_window)
    metrics["reference_max_motion"] = {mode: summarize(labels, reference[mode]) for mode in MODES}
    y = np.concatenate([labels[c] for c in sorted(labels)])
    flags = np.concatenate([decisions[c].flags for c in sorted(labels)])
    tp, fp = int((flags & (y == 1)).sum()), int((flags & (y == 0)).sum())
    metrics["at_threshold"] = {
        "threshold": cal.threshold,
        "smoothing": "causal",
        "recall": tp / max(1, int(y.sum())),
        "false_positive_rate": fp / max(1, int((y == 0).sum())),
        "precision": tp / max(1, tp + fp),
    }
    fps = round(1 / float(np.median([seconds_per_frame(t, 0.1) for t, _ in seen.values()])), 6)
    metrics["operator"] = operator_metrics(labels, scores["causal"], cal.threshold, sc.event_frames, fps)
    if loc := _localisation(clips, scorer, patch, scores["causal"], seen):
        metrics["localisation"] = loc
    metrics["frames"] = n_frames
    metrics["ms_per_frame"] = 1000 * seconds / max(1, n_frames)
    metrics["smoothing"] = {"causal_window": sc.causal_window, "offline_window": sc.offline_window}
    metrics["preset"] = detector.cfg.model.preset
    metrics["phase"] = detector.meta.get("phase")
    result = EvalResult(metrics, scores, raw, labels, reference)
    if out_dir is not None:
        write_report(result, labels, detector, out_dir, plots)
    return result


def _frames(clip: Clip, progress, task, seen: tuple[list, list]):
    for f in clip.source():
        seen[0].append(f.time)
        if not seen[1]:
            seen[1].append(f.image.shape[:2])
        yield f.image
        progress.advance(task)


def _localisation(clips: list[Clip], scorer: FrameScorer, patch: dict, smoothed: dict, seen: dict) -> dict | None:
    """Pixel AUC, RBDC and TBDC of the box ``watch`` draws, where the dataset has pixel masks for every clip."""
    found = {}
    for clip in clips:
        masks = find_masks(list(getattr(clip, "frames", [])))
        if masks is None or not seen[clip.name][1]:
            return None
        boxes = scorer.extractor.boxes_for(seen[clip.name][1][0])
        found[clip.name] = (masks, patch[clip.name], boxes, smoothed[clip.name])
    return localisation_metrics(found) if found else None


def write_report(result: EvalResult, labels: dict[str, np.ndarray], detector: Detector, out_dir: Path,
                 plots: bool = True) -> None:  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "metrics.json", json.dumps(result.metrics, indent=2))
    rows = ["clip,frame,label,raw,none,causal,offline"]
    for c in sorted(labels):
        for i in range(len(labels[c])):
            vals = [result.raw[c][i]] + [result.scores[m][c][i] for m in MODES]
            rows.append(f"{c},{i},{labels[c][i]}," + ",".join(f"{v:.6g}" if np.isfinite(v) else "" for v in vals))
    atomic_write_text(out_dir / "frame_scores.csv", "\n".join(rows) + "\n")
    if not plots:
        return
    clips = sorted(labels)
    y = np.concatenate([labels[c] for c in clips])
    curves = {
        f"OGNet, {m}": (y, np.concatenate([result.scores[m][c] for c in clips]), result.metrics[m]["micro_auc"])
        for m in MODES
    }
    ref = result.metrics["reference_max_motion"]["causal"]["micro_auc"]
    curves["max motion, causal"] = (y, np.concatenate([result.reference["causal"][c] for c in clips]), ref)
    plot_roc(out_dir / "roc.png", curves)
    tl = out_dir / "timelines"
    tl.mkdir(exist_ok=True)
    thr = detector.calibration.threshold if detector.calibration else None
    for c in sorted(labels):
        plot_timeline(tl / f"{c}.png", f"clip {c}", {"raw": result.scores["none"][c], "causal": result.scores["causal"][c]},
                      thr, labels[c])  # fmt: skip


def metrics_table(metrics: dict, title: str = "frame-level results") -> Table:
    t = Table(title=title)
    for col in ("scoring", "smoothing", "micro AUC", "macro AUC", "EER"):
        t.add_column(col, justify="right" if "AUC" in col or col == "EER" else "left")
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    for name, block in (("OGNet D(G(x))", metrics), ("max motion (ref)", metrics["reference_max_motion"])):
        for mode in MODES:
            m = block[mode]
            label = {"none": "none", "causal": "causal (past only)", "offline": "offline (two-sided)"}[mode]
            t.add_row(name, label, fmt(m["micro_auc"]), fmt(m["macro_auc"]), fmt(m["eer"]))
    return t


def per_clip_table(metrics: dict) -> Table:
    t = Table(title="per-clip AUC (n/a: clip has no normal frames)")
    t.add_column("clip")
    for mode in MODES:
        t.add_column(mode, justify="right")
    for c in metrics["none"]["per_clip_auc"]:
        vals = [metrics[m]["per_clip_auc"][c] for m in MODES]
        t.add_row(c, *["n/a" if v is None else f"{v:.3f}" for v in vals])
    return t


def operator_table(metrics: dict) -> Table:
    """What an operator gets at the stored threshold, and where the box lands (when the data has pixel masks)."""
    op, loc = metrics["operator"], metrics.get("localisation")
    t = Table(
        title=f"at the stored threshold {op['threshold']:+.3f} (causal, events after {op['event_frames']} frames)"
    )
    for col in ("intervals hit", "false alarms / normal frames", "per 1000 normal frames", "per hour", "frame FPR",
                "median delay"):  # fmt: skip
        t.add_column(col, justify="right")
    fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    delay = (
        "n/a"
        if op["delay_frames_median"] is None
        else f"{op['delay_frames_median']:g} frames ({op['delay_seconds_median']:.1f} s)"
    )
    t.add_row(f"{op['intervals_hit']}/{op['intervals']}", f"{op['false_alarm_events']} / {op['normal_frames']}",
              fmt(op["false_alarms_per_1000_normal_frames"], ".1f"), fmt(op["false_alarms_per_hour"], ".0f"),
              fmt(op["frame_false_positive_rate"], ".3f"), delay)  # fmt: skip
    if loc:
        t.caption = (f"localisation of the drawn box: pixel AUC {fmt(loc['pixel_auc'], '.3f')}, RBDC {loc['rbdc']:.3f}, "
                     f"TBDC {loc['tbdc']:.3f} ({loc['regions']} regions, {loc['tracks']} tracks)")  # fmt: skip
    return t
