"""``ognet-video calibrate``: refit a trained model's crowd correction, normalisation and threshold on more
normal footage.

The networks stay as they are; only the calibration changes. The footage is found as ``score`` finds it
(``sources.discover``) and read through the same sources at the model's analysis rate. The model is rewritten
in place, atomically, so every command that uses the run folder picks the new decision up; the previous
file is kept next to it as ``model-before-calibrate-N.safetensors`` (N counts up), a valid ``--model``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ognet_video.calibration import count_alarms
from ognet_video.data.recordings import MIN_HOLDOUT
from ognet_video.detector import Calibration, Detector
from ognet_video.errors import UserError
from ognet_video.health.reference import describe_footage
from ognet_video.postprocess import decision_score, fit_calibration
from ognet_video.runs import run_lock
from ognet_video.scoring import score_footage
from ognet_video.sources.discover import ClipInput, clip_names, discover


@dataclass
class _Footage:
    """One input clip read like a dataset clip (``name``, ``source()``), at the model's analysis rate."""

    clip: ClipInput
    name: str
    fps: float
    analysis_fps: float

    def source(self):
        return iter(self.clip.source(self.fps).analyse_at(self.analysis_fps))


@dataclass
class Recalibration:
    path: Path  # the model, rewritten
    kept: Path  # the previous model file
    old: Calibration | None
    new: Calibration
    clips: int
    old_alarms: int | None  # alarms the previous calibration raises on this footage
    new_alarms: int
    camera: str = ""  # what the camera checks' refitted reference says (or why it was kept)


def _backup_path(path: Path) -> Path:
    n = 1
    while (p := path.with_name(f"{path.stem}-before-calibrate-{n}{path.suffix}")).exists():
        n += 1
    return p


def _alarms(det: Detector, cal: Calibration, scores: dict) -> int:
    sc = det.cfg.score
    return sum(count_alarms(decision_score(fs, cal, sc.causal_window), cal.threshold, sc.event_frames)
               for fs in scores.values())  # fmt: skip


def recalibrate(model_path: Path, inputs: list[str], alarms_per_hour: float | None = None, fps: float = 10.0,
                recursive: bool = False, device: str = "auto",
                log: Callable[[str], None] | None = None) -> Recalibration:  # fmt: skip
    """Score ``inputs`` (normal footage) with the model at ``model_path`` and store the refitted calibration.
    A clip that cannot be read is left out with a line to ``log``, as ``train`` leaves out a recording."""
    if alarms_per_hour is not None and not 0 < alarms_per_hour <= 3600:
        raise UserError(f"--alarms-per-hour must be above 0 and at most 3600 (got {alarms_per_hour:g})")
    if not 0 < fps < float("inf"):
        raise UserError(f"--fps must be a positive number (got {fps:g})")
    with run_lock(model_path.parent, "calibrate a copy of the model"):  # never while a train or calibrate writes it
        return _recalibrate(model_path, inputs, alarms_per_hour, fps, recursive, device, log or (lambda msg: None))


def _score_readable(det: Detector, footage: list[_Footage], log: Callable[[str], None]) -> tuple[dict, dict]:
    """``score_footage`` clip by clip: one unreadable clip is reported and left out, not the end of the run."""
    scores, dt = {}, {}
    for f in footage:
        try:
            s, d = score_footage(det, [f])
        except UserError as exc:
            log(f"skipping {f.name}: {exc}")
            continue
        scores.update(s)
        dt.update(d)
    if not scores:
        raise UserError(f"none of the {len(footage)} clip(s) could be read; check the files (the model was not changed)")
    return scores, dt


def _recalibrate(model_path: Path, inputs: list[str], alarms_per_hour: float | None, fps: float, recursive: bool,
                 device: str, log: Callable[[str], None]) -> Recalibration:  # fmt: skip
    det = Detector.load(model_path, device=device)
    found = discover(inputs, recursive, [model_path.parent], log=log)
    footage = [_Footage(c, n, fps, det.cfg.patches.analysis_fps)
               for c, n in zip(found, clip_names(found), strict=True)]  # fmt: skip
    scores, dt = _score_readable(det, footage, log)
    clips = [f.clip for f in footage if f.name in scores]
    names = [f.name for f in footage if f.name in scores]
    if not any(np.isfinite(fs.patch).any() for fs in scores.values()):
        raise UserError("no moving patch in the footage: cannot calibrate; give footage with normal activity")
    frames = sum(len(fs.patch) for fs in scores.values())
    if frames < MIN_HOLDOUT:  # the floor training's held-out part has: fewer frames cannot place a threshold
        raise UserError(
            f"too little footage to calibrate: {frames} analysed frames in {len(clips)} clip(s), need at "
            f"least {MIN_HOLDOUT}; give minutes of normal footage (the model was not changed)"
        )
    rate = alarms_per_hour or det.cfg.score.alarms_per_hour or 1.0
    det.cfg.score.alarms_per_hour = rate
    old = det.calibration
    new = fit_calibration(scores, det.cfg.score, dt)
    old_alarms = _alarms(det, old, scores) if old is not None else None
    det.calibration = new
    said: list[str] = []  # the camera checks' thresholds are refitted on the same footage
    health = describe_footage([f for f in footage if f.name in scores], det.cfg.patches.analysis_fps, said.append)
    if health is None and det.health is not None:
        said.append("the previous camera reference is kept")
    det.health = health or det.health
    det.meta["calibration_footage"] = {
        "by": "calibrate", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": [str(c.path) for c in clips], "clips": names, "frames": new.frames,
        "seconds": round(new.seconds or 0.0, 3),
        "previous": dataclasses.asdict(old) if old is not None else None,
    }  # fmt: skip
    kept = _backup_path(model_path)
    shutil.copy2(model_path, kept)
    det.save(model_path)
    return Recalibration(model_path, kept, old, new, len(clips), old_alarms, _alarms(det, new, scores), "; ".join(said))
