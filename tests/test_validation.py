"""The validation protocol's synthetic anomalies: what is changed, where, and how it is labelled."""

from __future__ import annotations

import numpy as np

from ognet_video.data import read_gray
from ognet_video.validation import GLIDE_PX, SPEEDUP, crowd, glider, make_clips, speedup, validate


def _clip(walkway_ds) -> list[np.ndarray]:
    return [read_gray(f) for f in walkway_ds.train[-1].frames]


def test_speedup_plays_the_second_half_faster(walkway_ds):
    frames = _clip(walkway_ds)
    c = speedup("x", frames)
    half = len(frames) // 2
    assert c.name == "x-speedup" and len(c.frames) == len(c.labels) == half + len(frames[half::SPEEDUP])
    assert c.labels[:half].sum() == 0 and c.labels[half:].all()
    assert all(a is b for a, b in zip(c.frames[half:], frames[half::SPEEDUP], strict=True))


def test_glider_slides_a_cut_out_walker_across_the_second_half_only(walkway_ds, detector):
    frames = _clip(walkway_ds)
    c = glider("x", frames, detector)
    half = len(frames) // 2
    assert c.labels[:half].sum() == 0 and c.labels[half:].all()
    assert all(np.array_equal(a, b) for a, b in zip(c.frames[:half], frames[:half], strict=True))
    changed = [np.flatnonzero((a != b).any(axis=0)) for a, b in zip(c.frames[half:], frames[half:], strict=True)]
    assert all(len(x) for x in changed)  # the glider is in every frame of the second half ...
    lefts = np.array([x[0] for x in changed])
    assert 0 < np.abs(np.diff(lefts)).mean() <= 2 * GLIDE_PX  # ... and moves about GLIDE_PX px a frame


def test_validate_reports_every_kind(walkway_ds, detector):
    held = [(c.name, [read_gray(f) for f in c.frames]) for c in walkway_ds.train[-2:]]
    clips = make_clips(held, detector)
    assert [c.name for c in clips] == [f"{n}-{k}" for n, _ in held for k in ("speedup", "glider", "crowd")]
    out = validate(detector, clips)
    kinds = ("all", "speedup", "glider", "crowd")
    assert set(kinds) <= set(out) and all(0 <= out[k] <= 1 for k in kinds)
    assert out["anomalous_frames"] == sum(int(c.labels.sum()) for c in clips)


def test_crowd_adds_the_first_halfs_walkers_to_normal_frames(walkway_ds):
    frames = _clip(walkway_ds)
    c = crowd("x", frames)
    half = len(frames) // 2
    assert len(c.frames) == len(frames) and not c.labels.any()  # crowded, and still normal
    assert all(np.array_equal(a, b) for a, b in zip(c.frames[:half], frames[:half], strict=True))
    changed = [int((a != b).sum()) for a, b in zip(c.frames[half:], frames[half:], strict=True)]
    assert min(changed) > 0  # every frame of the second half has someone added
