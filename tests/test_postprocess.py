from __future__ import annotations

import numpy as np
import pytest

from ognet_video.calibrate.postprocess import fit_calibration, fit_crowd
from ognet_video.config import ScoreConfig
from ognet_video.decide import CausalSmoother, calibrated, causal_smooth, offline_smooth
from ognet_video.stream.scoring import FrameScores


def naive_causal(x, w):
    w = max(1, w)
    return np.array([np.mean(x[max(0, t - w + 1) : t + 1]) for t in range(len(x))])


def naive_offline(x, w):
    if w <= 1:
        return np.asarray(x, dtype=float).copy()
    h = w // 2
    return np.array([np.mean(x[max(0, t - h) : min(len(x), t + h + 1)]) for t in range(len(x))])


X = np.random.default_rng(0).normal(size=37) * 3 + 1


@pytest.mark.parametrize("w", [0, 1, 2, 5, 9, 37, 50])
def test_causal_smooth_equals_naive_loop(w):
    assert np.allclose(causal_smooth(X, w), naive_causal(X, w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("w", [0, 1, 3, 4, 9, 37, 80])
def test_offline_smooth_equals_naive_centred_loop(w):
    assert np.allclose(offline_smooth(X, w), naive_offline(X, w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("w", [0, 1, 4, 9, 50])
@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_streaming_smoother_in_chunks_equals_causal_smooth(w, chunk):
    sm = CausalSmoother(w)
    stream = np.concatenate([sm(X[i : i + chunk]) for i in range(0, len(X), chunk)])
    assert np.allclose(stream, causal_smooth(X, w), rtol=1e-12, atol=1e-12)


def naive_nan_causal(x, w, empty):
    out = []
    for t in range(len(x)):
        win = x[max(0, t - max(1, w) + 1) : t + 1]
        win = win[np.isfinite(win)]
        out.append(win.mean() if win.size else empty)
    return np.array(out)


@pytest.mark.parametrize("w", [1, 3, 9])
def test_unscored_frames_are_left_out_of_windows(w):
    x = X.copy()
    x[[0, 1, 10]] = np.nan  # unscored: a stream's first frame, a reconnect
    want = naive_nan_causal(x, w, -7.0)
    assert np.allclose(causal_smooth(x, w, empty=-7.0), want, rtol=1e-12, atol=1e-12)
    sm = CausalSmoother(w, empty=-7.0)
    assert np.allclose(np.concatenate([sm(v) for v in x]), want, rtol=1e-12, atol=1e-12)
    assert causal_smooth(x, w, empty=-7.0)[0] == -7.0  # nothing scored yet: the empty value
    assert np.isfinite(offline_smooth(x, w, empty=-7.0)).all()
    # without a fill value an all-unscored window stays NaN
    assert np.isnan(causal_smooth(x, w)[0])


def test_empty_input():
    assert causal_smooth(np.array([]), 9).shape == (0,)
    assert offline_smooth(np.array([]), 9).shape == (0,)


def test_offline_looks_ahead_causal_does_not():
    w = 9
    y = X.copy()
    y[20] += 100.0
    c0, c1 = causal_smooth(X, w), causal_smooth(y, w)
    o0, o1 = offline_smooth(X, w), offline_smooth(y, w)
    # causal: frames before 20 never see the change
    assert np.array_equal(c0[:20], c1[:20])
    assert not np.allclose(c0[20:29], c1[20:29])
    assert np.allclose(c0[29:], c1[29:], rtol=0, atol=1e-9)  # cumsum rounding only
    # offline: frames 16..19 (w // 2 before) already move
    assert not np.allclose(o0[16:20], o1[16:20])
    assert np.array_equal(o0[:16], o1[:16])


def _scores(raw: np.ndarray, floor: float | None = None) -> FrameScores:
    """Frame scores as the scorer gives them: frame 0 unscored, NaN raw = nothing moved; one patch at ``floor``."""
    raw = np.asarray(raw, dtype=float)
    scored = np.arange(len(raw)) > 0
    patch = np.where(np.isnan(raw), np.nan, raw)[:, None].copy()
    if floor is not None:
        patch[1, 0] = floor
    return FrameScores(np.where(scored, raw, np.nan), scored, patch, np.zeros_like(patch))


def test_calibrated_fills_static_frames_with_the_floor_and_keeps_unscored_ones_out():
    cal = fit_calibration({"a": _scores([1.0, 2.0, 4.0], floor=0.0)}, ScoreConfig())
    fs = FrameScores(np.array([np.nan, np.nan, 4.0]), np.array([False, True, True]), np.array([[np.nan], [np.nan], [4.0]]),
                     np.zeros((3, 1)))  # fmt: skip
    z = calibrated(fs, cal)
    assert np.isnan(z[0]) and z[1] == cal.empty and z[2] == pytest.approx(cal.normalize(4.0))


def test_fit_calibration_by_hand():
    clips = {"b": _scores([7.0, 1.0, np.nan, 3.0, 5.0], floor=0.0), "a": _scores([9.0, 2.0, 2.0])}
    cfg = ScoreConfig(causal_window=2, threshold_percentile=100.0, alarms_per_hour=0)
    cal = fit_calibration(clips, cfg=cfg)
    # each clip's first frame (no predecessor) is left out; a static frame (NaN later on) is the floor,
    # the lowest patch score of all clips
    allv = np.array([2.0, 2.0, 1.0, 0.0, 3.0, 5.0])
    assert cal.floor == 0.0
    assert cal.mean == pytest.approx(allv.mean())
    assert cal.std == pytest.approx(allv.std())
    assert cal.frames == 6 and cal.clips == ["a", "b"]
    # smoothing is per clip (no window across clip boundaries); percentile 100 = the max
    zb = (np.array([1.0, 0.0, 3.0, 5.0]) - allv.mean()) / allv.std()
    assert cal.threshold == pytest.approx((zb[2] + zb[3]) / 2)
    assert np.allclose(cal.normalize(np.array([allv.mean()])), 0.0)
    assert cal.empty == pytest.approx((0.0 - allv.mean()) / allv.std())


def test_fit_calibration_constant_scores_do_not_divide_by_zero():
    cal = fit_calibration({"a": _scores(np.full(5, 2.0))}, ScoreConfig())
    assert cal.std == 1.0
    assert np.all(np.isfinite(cal.normalize(np.array([1.0, 2.0, 3.0]))))


def test_fit_calibration_without_moving_patches_is_refused():
    with pytest.raises(ValueError, match="no moving patch"):
        fit_calibration({"a": _scores(np.full(4, np.nan))}, ScoreConfig())


def test_fit_calibration_percentile_threshold():
    rng = np.random.default_rng(2)
    raw = {"a": rng.normal(size=500), "b": rng.normal(size=300)}
    cfg = ScoreConfig(causal_window=1, threshold_percentile=90.0, alarms_per_hour=0)
    cal = fit_calibration({k: _scores(v) for k, v in raw.items()}, cfg)
    z = cal.normalize(np.concatenate([raw["a"][1:], raw["b"][1:]]))
    assert np.mean(z > cal.threshold) == pytest.approx(0.10, abs=0.005)


def _crowd_frames(cells: list[int], rng: np.random.Generator, shift: float = 0.0) -> FrameScores:
    """Frames where ``cells[t]`` of 40 cells move, each scoring like a normal patch (N(0, 1)), plus ``shift``
    on one cell: the max rises with the crowd by chance alone."""
    patch = np.full((len(cells), 40), np.nan)
    for t, n in enumerate(cells):
        patch[t, :n] = rng.normal(size=n)
        patch[t, 0] += shift
    return FrameScores(np.nanmax(patch, axis=1), np.ones(len(cells), bool), patch, np.zeros_like(patch))


def test_fit_crowd_finds_how_the_max_rises_with_the_number_of_moving_cells():
    rng = np.random.default_rng(0)
    held = {"a": _crowd_frames(list(rng.integers(1, 41, size=3000)), rng)}
    assert 0.4 < fit_crowd(held) < 0.8  # the max of n normals: about 0.56 log n over 1..40 cells
    assert fit_crowd({"a": _crowd_frames([5] * 50, rng)}) == 0.0  # the crowd never varies: nothing to fit
    busy_low = _crowd_frames([1] * 50 + [40] * 50, rng)
    busy_low.raw[50:] -= 5.0  # busier frames score lower: no correction, rather than one that lifts crowds
    assert fit_crowd({"a": busy_low}) == 0.0
    assert fit_calibration(held, ScoreConfig(crowd_correction=False)).crowd == 0.0


def test_the_crowd_correction_ranks_a_lone_anomaly_above_a_crowd_of_normal_walkers():
    rng = np.random.default_rng(1)
    held = {"a": _crowd_frames(list(rng.integers(1, 41, size=3000)), rng)}
    crowd = _crowd_frames([40] * 200, rng)  # normal, crowded
    lone = _crowd_frames([2] * 200, rng, shift=2.0)  # one anomalous cell among two
    for correct, better in ((False, False), (True, True)):
        cal = fit_calibration(held, ScoreConfig(crowd_correction=correct, alarms_per_hour=0))
        auc = np.mean(calibrated(lone, cal)[:, None] > calibrated(crowd, cal)[None, :])
        assert (auc > 0.75) == better, (correct, auc)  # without it the crowd scores as high as the anomaly
