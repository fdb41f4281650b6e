"""Raw frame scores -> calibrated, smoothed scores, applied after the model and never inside it.

* calibration: the crowd correction (the frame score's expected rise with the number of moving cells, fitted
  on held-out normal frames) is subtracted, a frame where nothing moved gets the floor, then every frame is
  normalised with the mean and std of held-out *normal* frames; a frame with no predecessor stays unscored (NaN);
* causal smoothing: trailing mean over the last ``w`` frames (only the past: what a live stream can do);
  ``CausalSmoother`` is the one implementation, fed a whole clip at once (eval, calibration) or a stream
  chunk by chunk (watch, score), with the same numbers either way;
* offline smoothing: centred mean over ``w`` frames (looks ``w//2`` frames ahead: reports only);
* ``fit_calibration``: fitted on held-out normal clips, never on test labels; the threshold from a target
  rate of false alarms per hour (``calibration.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ognet_video.calibration import BLOCK_SECONDS, frame_percentile, rate_threshold
from ognet_video.config import ScoreConfig
from ognet_video.detector import Calibration

if TYPE_CHECKING:
    from ognet_video.scoring import FrameScores


def moving_cells(fs: FrameScores) -> np.ndarray:
    """(T,) how many cells moved in each frame: the cells with a patch score."""
    return np.isfinite(fs.patch).sum(axis=1)


def crowd_corrected(fs: FrameScores, crowd: float) -> np.ndarray:
    """Raw frame scores minus ``crowd * log(moving cells)``: what the frame scores beyond its crowd."""
    return fs.raw - crowd * np.log(np.maximum(moving_cells(fs), 1)) if crowd else fs.raw


def calibrated(fs: FrameScores, cal: Calibration) -> np.ndarray:
    """Normalised frame scores: crowd-corrected, a frame with no moving patch -> the floor, unscored -> NaN; with
    the object cue, the larger of that and the frame's object score in the same units."""
    raw = crowd_corrected(fs, cal.crowd)
    filled = np.where(np.isnan(raw), cal.floor, raw)
    z = np.where(fs.scored, cal.normalize(filled), np.nan)
    obj = object_units(fs, cal)
    return z if obj is None else np.where(np.isfinite(obj) & fs.scored, np.fmax(z, obj), z)


def object_units(fs: FrameScores, cal: Calibration) -> np.ndarray | None:
    """The frames' object scores in the calibrated patch score's units (NaN: no object); None without the cue."""
    if cal.objects is None or fs.objects is None:
        return None
    a, b = cal.objects
    return a + b * fs.objects


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


def _window_mean(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, empty: float) -> np.ndarray:
    """Mean of the finite x[lo:hi] for each pair; ``empty`` where a window holds no finite value.

    NaN marks a frame with no score (the first frame of a clip or stream has no predecessor, so no motion
    is known): it is left out of its neighbours' means instead of pulling them towards any made-up value.
    """
    ok = np.isfinite(x)
    c = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    n = np.concatenate([[0], np.cumsum(ok)])
    count = n[hi] - n[lo]
    return np.where(count > 0, (c[hi] - c[lo]) / np.maximum(count, 1), empty)


class CausalSmoother:
    """Trailing mean of the scored frames among the last ``window`` steps; keeps the tail between calls. Each
    mean is summed from its own window's values, so a stream fed in chunks of any size gets bit for bit the
    numbers of the whole clip smoothed at once.

    ``steps`` place frames on the analysis grid (source time in frame intervals): a frame dropped by a live
    source that fell behind leaves an empty slot, so the window still spans ``window`` intervals of source time
    and the mean is that of the frames scored in it. Without ``steps`` frames follow each other.
    """

    def __init__(self, window: int, empty: float = np.nan) -> None:
        self.window = max(1, int(window))
        self.empty = empty
        self.tail = np.full(self.window - 1, np.nan)  # the last window - 1 slots (NaN before the start)
        self.last = -1  # the step of the last frame seen

    def __call__(self, x: np.ndarray | float, steps: np.ndarray | list[int] | None = None) -> np.ndarray:
        x = np.atleast_1d(np.asarray(x, dtype=np.float64))
        if x.size == 0:
            return x
        if steps is None:
            at, slots = np.arange(len(x)), x
            self.last += len(x)
        else:
            steps = np.asarray(steps, dtype=np.int64)
            gaps = np.diff(np.concatenate([[self.last], steps]))
            # a gap of a window or more empties the window whatever its length: clip it so memory stays bounded
            at = np.cumsum(np.clip(gaps, 1, self.window)) - 1
            slots = np.full(int(at[-1]) + 1, np.nan)
            slots[at] = x
            self.last = max(self.last + len(x), int(steps[-1]))
        seq = np.concatenate([self.tail, slots])
        win = sliding_window_view(seq, self.window)[at]  # (len(x), window): frame t's window ends at t
        ok = np.isfinite(win)
        count = ok.sum(axis=1)
        total = np.where(ok, win, 0.0).sum(axis=1)
        self.tail = seq[len(seq) - (self.window - 1) :]
        return np.where(count > 0, total / np.maximum(count, 1), self.empty)


def causal_smooth(x: np.ndarray, window: int, empty: float = np.nan) -> np.ndarray:
    """A whole clip through ``CausalSmoother``."""
    return CausalSmoother(window, empty)(x)


def decision_score(fs: FrameScores, cal: Calibration, window: int) -> np.ndarray:
    """A whole clip's score as the decision sees it: calibrated, then causally smoothed (``window`` frames); the
    stored threshold and the event rule apply to it, as ``StreamScorer`` applies them chunk by chunk."""
    return causal_smooth(calibrated(fs, cal), window, cal.empty)


def offline_smooth(x: np.ndarray, window: int, empty: float = np.nan) -> np.ndarray:
    """Mean of the scored frames in a centred window, shrunk at the clip ends. Uses future frames."""
    x = np.asarray(x, dtype=np.float64)
    half = max(1, window) // 2
    t = np.arange(len(x))
    return _window_mean(x, np.maximum(0, t - half), np.minimum(len(x), t + half + 1), empty)


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
