"""The decision in one place: ``decide`` on a whole clip and a stream's ``Decider`` fed it in chunks agree bit for
bit, with and without dropped frames; calibration's alarm count is the same event loop; no torch, no model."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from ognet_video.calibrate.calibration import count_alarms
from ognet_video.config import ScoreConfig
from ognet_video.decide import Decider, clip_events, decide, decision_score
from ognet_video.models.detector import Calibration
from ognet_video.stream.scoring import FrameScores

CFG = ScoreConfig()


def clip(seed: int = 0, t: int = 400, cells: int = 12, objects: bool = False) -> FrameScores:
    """Patch scores with static cells, an unscored first frame and bursts of high scores (several events)."""
    rng = np.random.default_rng(seed)
    patch = rng.normal(size=(t, cells))
    patch[rng.random((t, cells)) < 0.4] = np.nan
    patch[rng.random(t) < 0.05] = np.nan  # frames where nothing moved
    for start in rng.choice(t - 20, 6, replace=False):
        patch[start : start + rng.integers(2, 15)] += 4.0
    scored = np.ones(t, bool)
    scored[0] = False
    raw = np.full(t, np.nan)
    has = np.isfinite(patch).any(axis=1)
    raw[has] = np.nanmax(patch[has], axis=1)
    fs = FrameScores(raw, scored, patch, np.abs(rng.normal(size=(t, cells))))
    if objects:
        fs.objects = np.where(rng.random(t) < 0.3, rng.normal(size=t) * 2, np.nan)
        fs.object_boxes = np.tile(np.array([1, 2, 3, 4]), (t, 1))
    return fs


def calibration(objects: bool = False) -> Calibration:
    cal = Calibration(floor=-1.0, mean=0.5, std=1.2, threshold=1.0, percentile=99.0, frames=100, crowd=0.3)
    cal.objects = [0.2, 1.1] if objects else None
    return cal


def chunks(n: int, seed: int) -> list[slice]:
    """Consecutive slices of varying sizes (1 to 17 frames) covering ``n`` frames."""
    rng, out, i = np.random.default_rng(seed), [], 0
    while i < n:
        j = min(n, i + int(rng.integers(1, 18)))
        out.append(slice(i, j))
        i = j
    return out


def part(fs: FrameScores, s: slice) -> FrameScores:
    return FrameScores(*(None if v is None else v[s] for v in dataclasses.astuple(fs)))


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dropped", [False, True])
@pytest.mark.parametrize("objects", [False, True])
def test_decide_on_a_clip_equals_the_decider_fed_it_in_chunks(seed, dropped, objects):
    fs, cal = clip(seed, objects=objects), calibration(objects)
    steps = np.cumsum(np.random.default_rng(seed).integers(1, 4, len(fs.raw))) if dropped else None
    whole = decide(fs, cal, CFG, steps)
    assert len(whole.events) >= 2, "the clip should open several events"
    decider = Decider(cal, CFG)
    parts, closed = [], []
    for s in chunks(len(fs.raw), seed):
        d = decider.push(part(fs, s), steps=None if steps is None else steps[s].tolist())
        parts.append(d)
        closed += d.events
    last, _ = decider.finish()
    closed += [last] if last is not None else []
    for field in ("calibrated", "smoothed", "flags"):
        assert same(np.concatenate([getattr(d, field) for d in parts]), getattr(whole, field)), field
    assert closed == decider.events == whole.events
    if objects:
        assert whole.cue is not None and whole.cue.any() and not whole.cue.all()
        assert same(np.concatenate([d.cue for d in parts]), whole.cue)
    else:
        assert whole.cue is None


def test_the_decision_score_and_calibrations_alarm_count_are_decides():
    fs, cal = clip(3), calibration()
    d = decide(fs, cal, CFG)
    smoothed = decision_score(fs, cal, CFG.causal_window)
    assert same(smoothed, d.smoothed)
    assert count_alarms(smoothed, cal.threshold, CFG.event_frames) == len(d.events) > 0
    assert [(e.start, e.end) for e in clip_events(smoothed, cal.threshold, CFG.event_frames)] == [
        (e.start, e.end) for e in d.events
    ]
    assert same(d.flags, smoothed > cal.threshold)


def test_the_decider_returns_its_messages_boxes_and_suspends_flags():
    fs, cal = clip(4, objects=True), calibration(objects=True)
    n = len(fs.raw)
    patch_boxes = [[i, 0, i + 1, 1] for i in range(n)]
    object_boxes = [[i, 5, i + 1, 6] if np.isfinite(o) else None for i, o in enumerate(fs.objects)]
    d = Decider(cal, CFG).push(fs, boxes=patch_boxes, object_boxes=object_boxes, times=[i / 10 for i in range(n)])
    assert d.cue is not None
    assert d.boxes == [object_boxes[i] if d.cue[i] else patch_boxes[i] for i in range(n)]
    kinds = [m.type for m in d.messages]
    assert kinds.count("end") == len(d.events) > 0 and kinds.count("start") - len(d.events) in (0, 1)
    assert all(e.peak_box == d.boxes[e.peak_frame] for e in d.events)
    decider = Decider(cal, CFG)
    held = decider.push(fs, suspended=[True] * n)  # a camera problem all along: the score smooths, nothing flags
    assert not held.flags.any() and not held.events and not held.messages and decider.tracker.outbox == []
    assert same(held.smoothed, d.smoothed)


def test_decide_imports_neither_torch_nor_the_model():
    code = ("import sys, ognet_video.decide; bad = {'torch', 'ognet_video.models.detector', 'ognet_video.stream.scoring'} & "
            "set(sys.modules); assert not bad, bad")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
