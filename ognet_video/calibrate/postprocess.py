"""Calibration fitting: learning the decision (``ognet_video.decide``) from held-out normal footage, never from
test labels.

* the crowd correction (``fit_crowd``): how much the frame score rises with the number of moving cells alone;
* the floor, mean and std that normalise the raw frame score, and the object cue's mapping into those units;
* the threshold from a target rate of false alarms per hour (``calibration.py``), on the decision's own score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ognet_video.calibrate.calibration import BLOCK_SECONDS, frame_percentile, rate_threshold
from ognet_video.config import ScoreConfig
from ognet_video.decide import calibrated, crowd_corrected, decision_score, moving_cells
from ognet_video.models.detector import Calibration

if TYPE_CHECKING:
    from ognet_video.stream.scoring import FrameScores


MIN_OBJECT_FRAMES = 20  # held-out frames with an object needed to map the object cue into the patch score's units


def object_mapping(patch_z: np.ndarray, objects: np.ndarray) -> list[float] | None:
    """[a, b] with a + b * object score matching the held-out footage's median and 99th percentile of the patch
    score: an object as unusual as the patches' 1-in-100 frame counts as much. None where the footage has too few
    objects to tell (the cue stays off, the patch score is kept)."""
    objects = objects[np.isfinite(objects)]
    patch_z = patch_z[np.isfinite(patch_z)]
    if objects.size < MIN_OBJECT_FRAMES or not patch_z.size:
        return None
    (m1, q1), (m2, q2) = np.percentile(patch_z, [50, 99]), np.percentile(objects, [50, 99])
    if not (q2 > m2 and q1 > m1):
        return None
    b = float((q1 - m1) / (q2 - m2))
    return [float(m1 - b * m2), b]


def fit_crowd(clips: dict[str, FrameScores]) -> float:
    """The least-squares slope of held-out normal frame scores on the log of their moving cells: how much the
    max rises with the crowd alone. 0 where the footage never varies in how many cells move, or where busier
    frames score lower (then nothing is to be undone, and a crowd must not be pushed up)."""
    n = np.concatenate([moving_cells(fs)[fs.scored] for fs in clips.values()])
    y = np.concatenate([fs.raw[fs.scored] for fs in clips.values()])
    ok = (n > 0) & np.isfinite(y)
    if len(np.unique(n[ok])) < 2:
        return 0.0
    return max(0.0, float(np.polyfit(np.log(n[ok]), y[ok], 1)[0]))


def fit_calibration(clips: dict[str, FrameScores], cfg: ScoreConfig,
                    seconds_per_frame: dict[str, float] | None = None) -> Calibration:  # fmt: skip
    """Normalisation and threshold from the frame scores of held-out normal clips (uncalibrated).

    The floor is the lowest patch score seen on them: what a frame where nothing moved is worth. The
    threshold is the one at which such footage raises ``cfg.alarms_per_hour`` false alarms per hour through
    the stream's smoother and event tracker (``calibration.rate_threshold``); with ``alarms_per_hour`` 0, the
    ``threshold_percentile`` of the smoothed frames. ``seconds_per_frame``: each clip's frame interval
    (default: 10 fps, Ped2's).
    """
    patches = [fs.patch[np.isfinite(fs.patch)] for fs in clips.values()]
    patches = [p for p in patches if p.size]
    if not patches:
        raise ValueError("no moving patch in the calibration clips")
    floor = float(min(p.min() for p in patches))
    crowd = fit_crowd(clips) if cfg.crowd_correction else 0.0
    raws = [crowd_corrected(fs, crowd) for fs in clips.values()]
    filled = [np.where(np.isnan(r), floor, r)[fs.scored] for r, fs in zip(raws, clips.values(), strict=True)]
    allv = np.concatenate(filled)
    if allv.size == 0:
        raise ValueError("no scored frame in the calibration clips")
    mean = float(allv.mean())
    std = float(allv.std()) or 1.0
    cal = Calibration(floor, mean, std, 0.0, cfg.threshold_percentile, int(allv.size), sorted(clips), crowd=crowd)
    if any(fs.objects is not None for fs in clips.values()):
        patch_z = np.concatenate([calibrated(fs, cal)[fs.scored] for fs in clips.values()])
        objects = np.concatenate([fs.objects[fs.scored] for fs in clips.values() if fs.objects is not None])
        cal.objects = object_mapping(patch_z, objects)
    smoothed = [decision_score(fs, cal, cfg.causal_window) for fs in clips.values()]
    dt = [(seconds_per_frame or {}).get(name, 0.1) for name in clips]
    cal.seconds = round(float(sum(len(s) * d for s, d in zip(smoothed, dt, strict=True))), 6)
    if not cfg.alarms_per_hour:
        cal.threshold = float(np.percentile(np.concatenate(smoothed), cfg.threshold_percentile))
        return cal
    memory = (cfg.causal_window + cfg.event_frames - 1) * max(dt)  # seconds a high frame lasts in the statistic
    fit = rate_threshold(smoothed, dt, cfg.event_frames, cfg.alarms_per_hour, max(BLOCK_SECONDS, 2 * memory))
    cal.rule, cal.alarms_per_hour, cal.threshold = "alarm_rate", float(cfg.alarms_per_hour), fit.threshold
    cal.tail = [fit.loc, fit.scale, fit.block_seconds]
    cal.percentile = frame_percentile(smoothed, fit.threshold)
    return cal
