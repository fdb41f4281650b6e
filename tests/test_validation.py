"""The validation protocol's synthetic anomalies: what is changed, where, and how it is labelled."""

from __future__ import annotations

import numpy as np

from ognet_video.data import read_gray
from ognet_video.evaluation.validation import (
    CROWD_COPIES,
    GLIDE_PX,
    KINDS,
    MAX_WINDOWS,
    SPEEDUP,
    WINDOW,
    check_line,
    crowd_glider,
    crowded,
    dense_crowd,
    footage_windows,
    make_clips,
    slow_glider,
    speedup,
    validate,
    validation_aucs,
)


def _clip(walkway_ds) -> list[np.ndarray]:
    return [read_gray(f) for f in walkway_ds.train[-1].frames]


def _lefts(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """The leftmost column where each frame of ``a`` differs from ``b``'s (-1: none)."""
    cols = [np.flatnonzero((x != y).any(axis=0)) for x, y in zip(a, b, strict=True)]
    return np.array([c[0] if len(c) else -1 for c in cols])


def _people(frames: list[np.ndarray], background: np.ndarray) -> float:
    """Mean count of pixels more than 20 gray levels from ``background``."""
    return float(np.mean([(np.abs(f.astype(np.float32) - background) > 20).sum() for f in frames]))


def test_speedup_plays_the_second_half_faster(walkway_ds):
    frames = _clip(walkway_ds)
    c = speedup("x", frames)
    half = len(frames) // 2
    assert c.name == "x-speedup" and len(c.frames) == len(c.labels) == half + len(frames[half::SPEEDUP])
    assert c.labels[:half].sum() == 0 and c.labels[half:].all()
    assert all(a is b for a, b in zip(c.frames[half:], frames[half::SPEEDUP], strict=True))


def test_slow_glider_slides_a_cut_out_walker_at_walking_speed_in_the_second_half_only(walkway_ds, detector):
    frames = _clip(walkway_ds)
    c = slow_glider("x", frames, detector)
    half = len(frames) // 2
    assert c.name == "x-slowglider" and len(c.frames) == len(frames)
    assert c.labels[:half].sum() == 0 and c.labels[half:].all()
    assert all(np.array_equal(a, b) for a, b in zip(c.frames[:half], frames[:half], strict=True))
    lefts = _lefts(c.frames[half:], frames[half:])
    assert (lefts >= 0).all()  # the glider is in every frame of the second half ...
    assert abs(np.abs(np.diff(lefts)).mean() - GLIDE_PX) <= 0.5  # ... and moves GLIDE_PX px a frame


def _block_walker(n: int = 60) -> list[np.ndarray]:
    """``n`` frames of a flat scene that one 10 px block crosses at 5 px a frame."""
    frames = [np.full((60, 400), 100, np.uint8) for _ in range(n)]
    for t, f in enumerate(frames):
        f[25:35, 5 * t : 5 * t + 10] = 200
    return frames


def test_crowded_pastes_later_walkers_for_several_times_the_people(walkway_ds):
    frames = _block_walker()
    n, d = len(frames), len(frames) // (2 * CROWD_COPIES)
    out = crowded(frames, CROWD_COPIES)
    assert len(out) == n - CROWD_COPIES * d
    background = np.median(np.stack(frames), axis=0)
    assert _people(out, background) == (CROWD_COPIES + 1) * _people(frames[: len(out)], background)  # 4 blocks
    frames = _clip(walkway_ds)  # a real scene: each frame has walkers added, from the later frames only
    d, out = len(frames) // (2 * CROWD_COPIES), crowded(frames, CROWD_COPIES)
    for t, g in enumerate(out):
        changed = g != frames[t]
        pasted = np.any([g == frames[t + k * d] for k in range(1, CROWD_COPIES + 1)], axis=0)
        assert changed.any() and pasted[changed].all()


def test_dense_crowd_is_all_normal(walkway_ds):
    frames = _clip(walkway_ds)
    c = dense_crowd("x", frames)
    assert c.name == "x-densecrowd" and not c.labels.any()
    assert all(np.array_equal(a, b) for a, b in zip(c.frames, crowded(frames, CROWD_COPIES), strict=True))


def test_crowd_glider_adds_a_slow_glider_to_the_second_half_of_a_crowd(walkway_ds, detector):
    frames = _clip(walkway_ds)
    crowd = crowded(frames, CROWD_COPIES - 1)
    c = crowd_glider("x", frames, detector)
    half = len(crowd) // 2
    assert c.name == "x-crowdglider" and len(c.frames) == len(c.labels) == len(crowd)
    assert not c.labels[:half].any() and c.labels[half:].all()
    assert all(np.array_equal(a, b) for a, b in zip(c.frames[:half], crowd[:half], strict=True))  # the crowd
    lefts = _lefts(c.frames[half:], crowd[half:])
    assert (lefts >= 0).all() and abs(np.abs(np.diff(lefts)).mean() - GLIDE_PX) <= 0.5  # and a slow glider


def test_validate_reports_every_kind(walkway_ds, detector):
    held = [(c.name, [read_gray(f) for f in c.frames]) for c in walkway_ds.train[-2:]]
    clips = make_clips(held, detector)
    assert [c.name for c in clips] == [f"{n}-{k}" for n, _ in held for k in KINDS]
    out = validate(detector, clips)
    kinds = ("all", *KINDS)
    assert set(kinds) <= set(out) and all(0 <= out[k] <= 1 for k in kinds)
    assert out["anomalous_frames"] == sum(int(c.labels.sum()) for c in clips)


def test_a_high_scoring_dense_crowd_lowers_its_auc_and_the_pooled_one():
    labels = {"a-speedup": np.r_[np.zeros(10), np.ones(10)].astype(int), "a-densecrowd": np.zeros(10, int),
              "a-slowglider": np.r_[np.zeros(10), np.ones(10)].astype(int),
              "a-crowdglider": np.r_[np.zeros(10), np.ones(10)].astype(int)}  # fmt: skip
    quiet = {n: y.astype(float) for n, y in labels.items()}  # every anomaly above every normal frame
    loud = quiet | {"a-densecrowd": np.full(10, 2.0)}  # the crowd above every anomaly
    assert validation_aucs(labels, quiet)["densecrowd"] == 1.0 and validation_aucs(labels, quiet)["all"] == 1.0
    out = validation_aucs(labels, loud)
    assert out["densecrowd"] == 0.0 and out["all"] < 1.0
    assert out["slowglider"] == out["crowdglider"] == out["speedup"] == 1.0  # anomaly kinds: their own clips


class _Footage:
    """Held-out footage as calibration reads it: a name and ``source()`` yielding frames."""

    def __init__(self, name: str, images: list[np.ndarray]) -> None:
        self.name, self.images = name, images

    def source(self):  # noqa: ANN201 - frames
        from ognet_video.sources.base import Frame

        return (Frame(i, i / 10, im) for i, im in enumerate(self.images))


def test_footage_windows_cut_long_footage_and_keep_short_clips_whole(detector):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)  # BGR, as a video decodes
    long = _Footage("cam", [frame] * (WINDOW * 2 + WINDOW // 4))  # two whole windows and a stub left over
    short = _Footage("short", [frame[..., 0].copy()] * 30)
    out = footage_windows([long, short], detector)
    assert [(n, len(f)) for n, f in out] == [("cam@0", WINDOW), ("cam@1", WINDOW), ("short@2", 30)]
    assert all(f.ndim == 2 and f.dtype == np.uint8 for _, fs in out for f in fs)  # gray
    assert len(footage_windows([long] * 5, detector)) == MAX_WINDOWS  # read no further than needed


def test_footage_windows_shrink_frames_far_larger_than_the_grid(detector):
    width = detector.cfg.patches.width
    big = _Footage("big", [np.zeros((width * 3, width * 5, 3), np.uint8)] * 3)
    ((_, frames),) = footage_windows([big], detector)
    assert frames[0].shape[1] == 2 * width


def test_check_line_names_every_kind():
    line = check_line({"all": 0.9, "speedup": 0.95, "slowglider": None, "densecrowd": 0.8, "crowdglider": 0.7})
    assert line.startswith("label-free check on the held-out footage: AUC 0.900 (speed-up 0.950, slow glider n/a")
    assert "AUC n/a (speed-up n/a" in check_line({"all": "edited", "speedup": [1]})  # hand-edited metadata


def test_a_failing_check_costs_a_warning_not_the_model(walkway_ds, tiny_config, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from ognet_video.evaluation import validation
    from ognet_video.models.detector import Detector
    from ognet_video.training.train import train

    def broken(*_a, **_k):  # noqa: ANN202
        raise RuntimeError("no luck")

    monkeypatch.setattr(validation, "self_check", broken)
    out = io.StringIO()
    res = train(tiny_config(), walkway_ds, tmp_path / "run", console=Console(file=out, width=200))
    assert res.validation is None and "label-free check skipped: no luck" in out.getvalue()
    assert "validation" not in Detector.load(res.model_path).meta  # the model was saved all the same


def test_training_stores_the_check_with_the_model(trained_run, detector):
    assert trained_run.validation is not None and detector.meta["validation"] == trained_run.validation
    assert set(KINDS) | {"all", "windows"} <= set(trained_run.validation)
