"""A validation set that needs no test label: synthetic anomalies made from held-out normal footage.

Variants are chosen on it (``pipelines/validation_benchmark.py``, ``pipelines/scoring_variants.py``), the test
clips only reported; ``self_check`` runs it at the end of every training, on the model's own held-out footage. Each
held-out normal clip gives one validation clip per kind (``KINDS``, the protocol's second version). The kinds
are built from the ways the Ped2 test clips are hard, known before any rank check: riders at walking speed
(clip 10) and dense crowds of normal walkers that score high (clip 12), with a rider inside them.

- ``speedup``: the second half played at 3x (every 3rd frame): every walker moves like a runner or a cyclist.
  Phase two's frame-skip twins teach D this kind, so it checks that the lesson holds on unseen footage.
- ``slowglider``: a walker cut out of the first half (the pixels of its most moving cell's neighbourhood that
  differ from the background) pasted into the second half, sliding rigidly across the scene at ``GLIDE_PX``
  px per frame, about walking speed: only the rigid appearance and motion, not the speed, are anomalous.
- ``densecrowd``: *normal* frames, made crowded: into each frame the walkers (the pixels that differ from the
  background) of ``CROWD_COPIES`` later frames of the clip are pasted, moving as they did, so that it holds
  about four times the people. Labelled normal throughout; a model that scores crowds high loses AUC here.
- ``crowdglider``: a crowd of ``CROWD_COPIES - 1`` pasted copies (three times the people), normal in its first
  half, with a slow glider sliding through its second half (anomalous): crowd and glider in the same frames.

The headline is the causal micro AUC pooled over all validation clips, as on the test clips; each anomaly kind
is also reported alone (its clips only), and ``densecrowd`` as the pooled AUC with its crowded frames as the
normal ones. Frames are the source's own (before the model's resize), so the whole scoring path runs as on a
camera. The first version (a 4 px/frame glider, and a crowd of twice the people in the second half) saturated
on trained models: ``docs/experiments.md``, sections 18 and 19.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.markup import escape

from ognet_video.data import Clip, read_gray
from ognet_video.decide import decision_score
from ognet_video.evaluation.metrics import summarize
from ognet_video.models.detector import Detector
from ognet_video.patches import to_gray
from ognet_video.stream.scoring import FrameScorer

KINDS = ("speedup", "slowglider", "densecrowd", "crowdglider")
NORMAL_KINDS = ("densecrowd",)  # kinds whose frames are all normal
SPEEDUP = 3  # frames skipped per frame in the sped-up half
GLIDE_PX = 1.5  # glider speed in source pixels per frame (Ped2's walkers: about 1; clip 10's cyclist: 1-2)
CROWD_COPIES = 3  # later frames whose walkers are pasted into each ``densecrowd`` frame
DIFF_LEVEL = 20  # gray levels from the background that make a pixel part of the cut-out walker
WINDOW = 200  # frames per window of held-out footage in ``footage_windows`` (Ped2's clips, 120-180, stay whole)
MAX_WINDOWS = 4  # windows read at most: the check costs seconds, not the minutes long footage would


@dataclass
class ValidationClip:
    name: str
    frames: list[np.ndarray]  # gray, the source's size
    labels: np.ndarray  # 1 = synthetic anomaly


def speedup(name: str, frames: list[np.ndarray]) -> ValidationClip:
    """The clip, its second half played ``SPEEDUP`` times faster."""
    half = len(frames) // 2
    fast = frames[half::SPEEDUP]
    labels = np.r_[np.zeros(half, np.int64), np.ones(len(fast), np.int64)]
    return ValidationClip(f"{name}-speedup", frames[:half] + fast, labels)


def _cutout(frames: list[np.ndarray], detector: Detector) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(patch, mask, (x0, y0)): the moving pixels around the most moving cell of the clip's first half."""
    from ognet_video.patches import PatchExtractor

    ex = PatchExtractor(detector.cfg.patches.model_copy(update={"channels": "gray"}))  # motion only, no flow
    prepared = np.stack([ex.prepare(f) for f in frames])
    motion = ex.extract(prepared).motion
    motion[0] = 0
    t, cell = np.unravel_index(int(np.argmax(motion)), motion.shape)
    x0, y0, x1, y1 = ex.boxes_for(frames[0].shape)[cell]
    h, w = y1 - y0, x1 - x0  # a walker: one cell wide, two tall, centred on the cell
    y0, y1 = max(0, y0 - h // 2), min(frames[0].shape[0], y1 + h // 2)
    x0, x1 = max(0, x0 - w // 4), min(frames[0].shape[1], x1 + w // 4)
    background = np.median(np.stack(frames), axis=0)
    patch = frames[t][y0:y1, x0:x1]
    return patch, _foreground(patch, background[y0:y1, x0:x1]), (int(x0), int(y0))


def _foreground(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The pixels of ``frame`` more than ``DIFF_LEVEL`` from the background, holes closed: the walkers."""
    mask = np.abs(frame.astype(np.float32) - background) > DIFF_LEVEL
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)


def _slide(frames: list[np.ndarray], patch: np.ndarray, mask: np.ndarray, xy: tuple[int, int]) -> list[np.ndarray]:
    """Copies of ``frames`` with the ``mask`` pixels of ``patch`` pasted at row ``y``, sliding from column ``x``
    at ``GLIDE_PX`` px per frame and bouncing at the frame's edges."""
    (x, y), (ph, pw), width = xy, patch.shape, frames[0].shape[1]
    out, pos, step = [], float(x), GLIDE_PX
    for f in frames:
        if not 0 <= pos + step <= width - pw:
            step = -step
        pos += step
        g = f.copy()
        xi = int(round(pos))
        g[y : y + ph, xi : xi + pw][mask] = patch[mask]
        out.append(g)
    return out


def _halves(name: str, normal: list[np.ndarray], anomalous: list[np.ndarray], flag: bool) -> ValidationClip:
    """A clip of ``normal`` then ``anomalous`` frames, the latter labelled 1 if ``flag``."""
    labels = np.r_[np.zeros(len(normal), np.int64), np.full(len(anomalous), int(flag), np.int64)]
    return ValidationClip(name, normal + anomalous, labels)


def slow_glider(name: str, frames: list[np.ndarray], detector: Detector) -> ValidationClip:
    """The clip, a cut-out walker of its first half sliding rigidly through its second half at walking speed."""
    half = len(frames) // 2
    patch, mask, xy = _cutout(frames[:half], detector)
    return _halves(f"{name}-slowglider", frames[:half], _slide(frames[half:], patch, mask, xy), mask.any())


def crowded(frames: list[np.ndarray], copies: int) -> list[np.ndarray]:
    """Frames ``t < n - copies * d`` (``d = n // (2 * copies)``), each with the walkers of frames ``t + d``, ...,
    ``t + copies * d`` pasted in, moving as they did: about ``copies + 1`` times the people, half the clip."""
    n, d = len(frames), len(frames) // (2 * copies)
    background = np.median(np.stack(frames), axis=0)
    walkers = [_foreground(f, background) for f in frames]
    out = []
    for t in range(n - copies * d):
        g = frames[t].copy()
        for s in range(t + d, t + copies * d + 1, d):
            g[walkers[s]] = frames[s][walkers[s]]
        out.append(g)
    return out


def dense_crowd(name: str, frames: list[np.ndarray]) -> ValidationClip:
    """A normal clip of about ``CROWD_COPIES + 1`` times the people (``crowded``)."""
    out = crowded(frames, CROWD_COPIES)
    return ValidationClip(f"{name}-densecrowd", out, np.zeros(len(out), np.int64))


def crowd_glider(name: str, frames: list[np.ndarray], detector: Detector) -> ValidationClip:
    """A crowd of ``CROWD_COPIES`` times the people, normal in its first half; a slow glider (cut out of the
    recorded first half) slides through its second half."""
    crowd = crowded(frames, CROWD_COPIES - 1)
    half = len(crowd) // 2
    patch, mask, xy = _cutout(frames[: len(frames) // 2], detector)
    return _halves(f"{name}-crowdglider", crowd[:half], _slide(crowd[half:], patch, mask, xy), mask.any())


def held_out_footage(model_path: Path, clips: list[Clip]) -> list[tuple[str, list[np.ndarray]]]:
    """(name, gray frames) of the clips the model at ``model_path`` held out for calibration, from a named
    dataset's training ``clips``: what ``make_clips`` takes."""
    from ognet_video.models.checkpoint import load_checkpoint

    _, meta = load_checkpoint(model_path)
    by_name = {c.name: c for c in clips}
    return [(n, [read_gray(f) for f in by_name[n].frames]) for n in meta["holdout"]["clips"]]


def make_clips(held_out: Iterable[tuple[str, list[np.ndarray]]], detector: Detector) -> list[ValidationClip]:
    """Every kind of synthetic anomaly made from every held-out clip (name, gray frames)."""
    clips = []
    for name, frames in held_out:
        clips += [
            speedup(name, frames),
            slow_glider(name, frames, detector),
            dense_crowd(name, frames),
            crowd_glider(name, frames, detector),
        ]
    return clips


def validate(detector: Detector, clips: list[ValidationClip]) -> dict:
    """Causal micro AUC (the test protocol's headline) over all validation clips, and per kind."""
    if detector.calibration is None:
        raise ValueError("the model has no calibration")
    scorer, cal, w = FrameScorer(detector), detector.calibration, detector.cfg.score.causal_window
    labels, smoothed = {}, {}
    for c in clips:
        fs = scorer.score_clip(c.frames)
        labels[c.name] = c.labels
        smoothed[c.name] = decision_score(fs, cal, w)
    out = validation_aucs(labels, smoothed)
    out["anomalous_frames"] = int(sum(v.sum() for v in labels.values()))
    out["frames"] = int(sum(len(v) for v in labels.values()))
    return out


def validation_aucs(labels: dict[str, np.ndarray], smoothed: dict[str, np.ndarray]) -> dict:
    """The pooled causal micro AUC (``all``) and each kind's: an anomaly kind on its own clips, a normal kind
    (``NORMAL_KINDS``) with its frames against every synthetic anomaly."""
    out = {"all": summarize(labels, smoothed)["micro_auc"]}
    anomalous = [n for n in labels if labels[n].any()]
    for kind in KINDS:
        names = [n for n in labels if n.endswith(f"-{kind}")]
        if kind in NORMAL_KINDS:  # its normal frames against every synthetic anomaly
            y = {n: labels[n] for n in names} | {n: labels[n][labels[n] > 0] for n in anomalous}
            s = {n: smoothed[n] for n in names} | {n: smoothed[n][labels[n] > 0] for n in anomalous}
            out[kind] = summarize(y, s)["micro_auc"]
        else:
            out[kind] = summarize({n: labels[n] for n in names}, {n: smoothed[n] for n in names})["micro_auc"]
    return out


def _gray(image: np.ndarray, scale: float) -> np.ndarray:
    g = to_gray(image)  # as the model's ``prepare`` makes it, BGRA included
    return g if scale >= 1 else cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def footage_windows(clips: Iterable, detector: Detector) -> list[tuple[str, list[np.ndarray]]]:
    """(name, gray frames) windows of held-out footage as calibration reads it (anything whose ``source()``
    yields frames at the analysis rate): the first ``MAX_WINDOWS`` of at most ``WINDOW`` frames, each at least
    half a window unless its clip is shorter. Frames far larger than the model's grid are shrunk to twice it,
    which keeps memory in bounds; the analysed region is given in fractions, so it does not move."""
    x0, _, x1, _ = detector.cfg.patches.crop
    out: list[tuple[str, list[np.ndarray]]] = []
    for clip in clips:
        frames: list[np.ndarray] = []
        scale = 1.0
        for f in clip.source():
            if not frames:
                scale = min(1.0, 2 * detector.cfg.patches.width / max(1.0, (x1 - x0) * f.image.shape[1]))
            frames.append(_gray(f.image, scale))
            if len(frames) == WINDOW:
                out.append((f"{clip.name}@{len(out)}", frames))
                frames = []
                if len(out) == MAX_WINDOWS:
                    return out
        if frames and (len(frames) >= WINDOW // 2 or not any(n.startswith(f"{clip.name}@") for n, _ in out)):
            out.append((f"{clip.name}@{len(out)}", frames))
            if len(out) == MAX_WINDOWS:
                return out
    return out


def self_check(detector: Detector, clips: Iterable) -> dict | None:
    """The protocol on a trained model's own held-out normal footage: how well it tells synthetic anomalies made
    from it from normal frames, with no label. What a user training on their own camera can read instead of
    test AUCs; ``None`` when the footage is too short to make a clip of."""
    windows = [(n, f) for n, f in footage_windows(clips, detector) if len(f) >= 2 * (SPEEDUP + CROWD_COPIES)]
    if not windows:
        return None
    out = validate(detector, make_clips(windows, detector))
    out["windows"] = len(windows)
    return out


KIND_NAMES = {"speedup": "speed-up", "slowglider": "slow glider", "densecrowd": "dense crowd",
              "crowdglider": "glider in a crowd"}  # fmt: skip


def check_line(check: dict) -> str:
    """``self_check``'s result in one line for the console."""

    def auc(v: object) -> str:  # metadata edited by hand may hold anything: never a traceback for a report
        return f"{v:.3f}" if isinstance(v, int | float) and not isinstance(v, bool) else "n/a"

    kinds = ", ".join(f"{KIND_NAMES[k]} {auc(check.get(k))}" for k in KINDS)
    return (f"label-free check on the held-out footage: AUC {auc(check.get('all'))} ({kinds}; synthetic anomalies "
            "made from it: 1.0 = all above every normal frame, 0.5 = chance)")  # fmt: skip


def checked(det: Detector, holdout: list, console: Console) -> dict | None:
    """``self_check`` on the held-out footage at the end of ``train``; a report, so a failure costs a warning,
    not the model."""
    try:
        with console.status("label-free check on the held-out footage"):
            return self_check(det, holdout)
    except Exception as exc:  # noqa: BLE001 - the trained model is what matters
        console.print(f"[yellow]label-free check skipped: {escape(str(exc))}[/]")
        return None
