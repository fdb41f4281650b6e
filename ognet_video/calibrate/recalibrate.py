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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np

from ognet_video.calibrate.calibration import count_alarms, event_statistic, frame_percentile
from ognet_video.calibrate.feedback import LabelledEvent, labelled_events
from ognet_video.calibrate.heldout import keep, kept
from ognet_video.calibrate.postprocess import fit_calibration
from ognet_video.clips.encode import read_gray
from ognet_video.data.recordings import MIN_HOLDOUT
from ognet_video.decide import decide, decision_score
from ognet_video.errors import UserError
from ognet_video.health.reference import describe_footage
from ognet_video.models.detector import Calibration, Detector
from ognet_video.runs import run_lock
from ognet_video.sources.discover import ClipInput, clip_names, discover
from ognet_video.stream.scoring import FrameScores, score_footage


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
    feedback: dict | None = None  # with --feedback: the events marked normal and real, and what was done for them


def _backup_path(path: Path) -> Path:
    n = 1
    while (p := path.with_name(f"{path.stem}-before-calibrate-{n}{path.suffix}")).exists():
        n += 1
    return p


def _alarms(det: Detector, cal: Calibration, scores: dict) -> int:
    return sum(len(decide(fs, cal, det.cfg.score).events) for fs in scores.values())


def recalibrate(model_path: Path, inputs: list[str], alarms_per_hour: float | None = None, fps: float = 10.0,
                recursive: bool = False, device: str = "auto", log: Callable[[str], None] | None = None,
                feedback: list[Path] | None = None) -> Recalibration:  # fmt: skip
    """Score ``inputs`` (normal footage) with the model at ``model_path`` and store the refitted calibration.
    A clip that cannot be read is left out with a line to ``log``, as ``train`` leaves out a recording.

    ``feedback``: runs whose events an operator labelled (``review``). The source clips of events marked normal
    join the normal footage (without ``inputs``: the scores of the footage that last calibrated the model, kept
    with it), and the threshold is raised, if need be, until none of them would alarm; every event marked real
    must still alarm, or nothing changes (UserError)."""
    if alarms_per_hour is not None and not 0 < alarms_per_hour <= 3600:
        raise UserError(f"--alarms-per-hour must be above 0 and at most 3600 (got {alarms_per_hour:g})")
    if not 0 < fps < float("inf"):
        raise UserError(f"--fps must be a positive number (got {fps:g})")
    with run_lock(model_path.parent, "calibrate a copy of the model"):  # never while a train or calibrate writes it
        return _recalibrate(model_path, inputs, alarms_per_hour, fps, recursive, device, log or (lambda msg: None),
                            feedback or [])  # fmt: skip


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
                 device: str, log: Callable[[str], None], feedback: list[Path]) -> Recalibration:  # fmt: skip
    det = Detector.load(model_path, device=device)
    labelled = labelled_events(feedback) if feedback else []
    if feedback and not labelled:
        raise UserError(f"no event in {', '.join(map(str, feedback))} is labelled: mark events normal or real on the "
                        "review page (ognet-video review RUN) first; the model was not changed")  # fmt: skip
    if inputs:
        found = discover(inputs, recursive, [model_path.parent], log=log)
        footage = [_Footage(c, n, fps, det.cfg.patches.analysis_fps)
                   for c, n in zip(found, clip_names(found), strict=True)]  # fmt: skip
        scores, dt = _score_readable(det, footage, log)
        footage = [f for f in footage if f.name in scores]
        given = [str(f.clip.path) for f in footage]
    else:
        held = kept(det, str(model_path))
        if held is None:
            raise UserError(f"{model_path} keeps no scores of the footage that calibrated it (calibrated before they "
                            "were kept): give normal footage as INPUT too; the model was not changed")  # fmt: skip
        scores, dt, footage = dict(held.scores), dict(held.seconds_per_frame), []
        given = (det.meta.get("calibration_footage") or {}).get("inputs", [])
    if not any(np.isfinite(fs.patch).any() for fs in scores.values()):
        raise UserError("no moving patch in the footage: cannot calibrate; give footage with normal activity")
    frames = sum(len(fs.patch) for fs in scores.values())
    if frames < MIN_HOLDOUT:  # the floor training's held-out part has: fewer frames cannot place a threshold
        raise UserError(
            f"too little footage to calibrate: {frames} analysed frames in {len(scores)} clip(s), need at "
            f"least {MIN_HOLDOUT}; give minutes of normal footage (the model was not changed)"
        )
    events = _score_events(det, labelled, fps)
    marked_normal = {e.name: events[e.name] for e in labelled if e.label == "normal"}
    scores.update({f"feedback:{k}": v[0] for k, v in marked_normal.items()})
    dt.update({f"feedback:{k}": v[1] for k, v in marked_normal.items()})
    rate = alarms_per_hour or det.cfg.score.alarms_per_hour or 1.0
    det.cfg.score.alarms_per_hour = rate
    old = det.calibration
    new = fit_calibration(scores, det.cfg.score, dt)
    said = None
    if labelled:
        said = _honour_labels(det, new, {k: v[0] for k, v in events.items()}, labelled, scores)
    old_alarms = _alarms(det, old, scores) if old is not None else None
    det.calibration = new
    notes: list[str] = []  # the camera checks' thresholds are refitted on the same footage
    health = describe_footage(footage, det.cfg.patches.analysis_fps, notes.append) if footage else None
    if health is None and det.health is not None:
        notes.append("the previous camera reference is kept")
    det.health = health or det.health
    keep(det, scores, dt)  # what the next refit starts from: this footage, the events marked normal included
    det.meta["calibration_footage"] = {
        "by": "calibrate --feedback" if labelled else "calibrate",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": given, "clips": sorted(scores), "frames": new.frames, "seconds": round(new.seconds or 0.0, 3),
        "feedback": said, "previous": dataclasses.asdict(old) if old is not None else None,
    }  # fmt: skip
    kept_as = _backup_path(model_path)
    shutil.copy2(model_path, kept_as)
    det.save(model_path)
    return Recalibration(model_path, kept_as, old, new, len(scores), old_alarms, _alarms(det, new, scores),
                         "; ".join(notes), said)  # fmt: skip


def _score_events(det: Detector, labelled: list[LabelledEvent], fps: float) -> dict[str, tuple[FrameScores, float]]:
    """Each labelled event's source clip scored again (its raw scores and frame interval)."""
    out = {}
    for e in labelled:
        try:
            s, d = score_footage(det, [_SourceClip(e.source_clip, e.name)])
        except (UserError, OSError, av.error.FFmpegError) as exc:
            raise UserError(f"event {e.id} in {e.folder}: its source clip cannot be read ({exc}); the model was "
                            "not changed") from None  # fmt: skip
        if not len(s[e.name].raw):
            raise UserError(f"event {e.id} in {e.folder}: its source clip holds no frame; the model was not changed")
        out[e.name] = (s[e.name], d[e.name])
    return out


@dataclass
class _SourceClip:
    """An event's source clip (``clips.sink``), read as ``score_footage`` reads a clip: the frames the model saw."""

    path: Path
    name: str

    def source(self) -> Iterator[SimpleNamespace]:
        return (SimpleNamespace(image=img, time=t) for img, t in read_gray(self.path))


FEEDBACK_MARGIN = 0.01  # calibrated units the threshold is set above the highest event marked normal


def _honour_labels(det: Detector, cal: Calibration, scores: dict[str, FrameScores], labelled: list[LabelledEvent],
                   footage: dict[str, FrameScores]) -> dict:  # fmt: skip
    """Raise ``cal.threshold`` until no event marked normal alarms; check that every event marked real still does.
    Returns what was done (stored in the model's metadata); UserError when both cannot hold."""
    sc = det.cfg.score
    smoothed = {e.name: decision_score(scores[e.name], cal, sc.causal_window) for e in labelled}
    normal = [e for e in labelled if e.label == "normal"]
    real = [e for e in labelled if e.label == "real"]
    fitted = cal.threshold
    if normal:
        highest = max(float(event_statistic(smoothed[e.name], sc.event_frames).max()) for e in normal)
        if highest + FEEDBACK_MARGIN > cal.threshold:
            cal.threshold = highest + FEEDBACK_MARGIN
            normal_smoothed = [decision_score(fs, cal, sc.causal_window) for fs in footage.values()]
            cal.percentile = frame_percentile(normal_smoothed, cal.threshold)
    lost = [e for e in real if count_alarms(smoothed[e.name], cal.threshold, sc.event_frames) == 0]
    if lost:
        names = ", ".join(e.name for e in lost)
        raise UserError(f"cannot honour the labels: at threshold {cal.threshold:+.3f}, which the events marked normal "
                        f"need, the events marked real {names} would no longer alarm; relabel or give more normal "
                        "footage (the model was not changed)")  # fmt: skip
    return {"normal": [e.name for e in normal], "real": [e.name for e in real], "fitted_threshold": round(fitted, 6),
            "threshold": round(cal.threshold, 6)}  # fmt: skip
