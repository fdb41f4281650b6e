"""The alarm-rate threshold rule (calibration.py), the operator metrics and RBDC/TBDC on hand-made cases."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ognet_video.calibrate.calibration import count_alarms, event_statistic, rate_threshold
from ognet_video.calibrate.postprocess import fit_calibration
from ognet_video.config import ScoreConfig
from ognet_video.decide import causal_smooth
from ognet_video.evaluation.localisation import iou, localisation_metrics, rbdc_tbdc, tracks, weighted_auc
from ognet_video.evaluation.metrics import auc, intervals, operator_metrics
from ognet_video.stream.scoring import FrameScores


def footage(hours: float, seed: int) -> np.ndarray:
    """Stationary normal footage at 10 fps: skewed frame scores, smoothed as a stream smooths them."""
    return causal_smooth(np.random.default_rng(seed).gumbel(size=int(hours * 36000)), 5)


def test_event_statistic_is_the_min_of_the_last_k():
    s = np.array([1.0, 3.0, 2.0, np.nan, 5.0, 6.0, 7.0])
    e = event_statistic(s, 3)
    assert np.isneginf(e[:2]).all() and e[2] == 1.0
    assert np.isneginf(e[3:6]).all()  # windows holding a NaN open nothing
    assert e[6] == 5.0
    assert count_alarms(s, 4.5, 3) == 1 and count_alarms(s, 4.5, 4) == 0


def test_rate_rule_holds_its_target_on_footage_it_has_not_seen():
    """Fitted on 1 h, checked on 20 other hours: the realised rate is at most the target and not far below
    (the block maxima count an alarm that straddles two blocks twice: the rule errs on the safe side)."""
    target = 30.0
    point = rate_threshold([footage(1, 1)], [0.1], 3, target, confidence=0.5)
    safe = rate_threshold([footage(1, 1)], [0.1], 3, target)
    test = footage(20, 2)
    realised = count_alarms(test, point.threshold, 3) / 20
    assert target / 4 <= realised <= target
    assert safe.threshold >= point.threshold
    assert count_alarms(test, safe.threshold, 3) / 20 <= realised
    assert point.alarms_per_hour(point.threshold) == pytest.approx(target, rel=0.05)
    lower = rate_threshold([footage(1, 1)], [0.1], 3, 10 * target, confidence=0.5)
    assert count_alarms(test, lower.threshold, 3) / 20 > realised  # a looser target raises more alarms


def test_a_short_footage_gets_a_larger_margin():
    short = [rate_threshold([footage(30 / 3600, s)], [0.1], 3, 1.0) for s in range(3)]
    long = [rate_threshold([footage(0.2, s)], [0.1], 3, 1.0) for s in range(3)]
    gap = lambda f, c: f.threshold - rate_threshold_point(f, c)  # noqa: E731
    assert np.mean([gap(f, 0) for f in short]) > np.mean([gap(f, 0) for f in long])
    assert min(f.blocks for f in short) >= 4


def rate_threshold_point(fit, _):
    """The threshold of the fit's own Gumbel law at the target (no margin)."""
    p = 1.0 * fit.block_seconds / 3600
    return fit.loc - fit.scale * np.log(-np.log1p(-p))


def _scores(raw):
    raw = np.asarray(raw, dtype=float)
    scored = np.arange(len(raw)) > 0
    return FrameScores(np.where(scored, raw, np.nan), scored, raw[:, None].copy(), np.zeros((len(raw), 1)))


def test_fit_calibration_records_the_rule_and_the_footage():
    rng = np.random.default_rng(0)
    clips = {"a": _scores(rng.normal(size=300)), "b": _scores(rng.normal(size=200))}
    cal = fit_calibration(clips, ScoreConfig(), {"a": 0.1, "b": 0.04})
    assert cal.rule == "alarm_rate" and cal.alarms_per_hour == 1.0
    assert cal.seconds == pytest.approx(300 * 0.1 + 200 * 0.04)
    assert cal.percentile == 100.0 and len(cal.tail) == 3  # nothing in 38 s reaches a 1-per-hour threshold
    old = fit_calibration(clips, ScoreConfig(alarms_per_hour=0))
    assert old.rule == "percentile" and old.threshold < cal.threshold


def test_operator_metrics_by_hand():
    y = np.array([0] * 10 + [1] * 10 + [0] * 10)
    s = np.zeros(30)
    s[2:6] = 5  # a false alarm in normal frames (4 frames above: opens)
    s[13:18] = 5  # the anomaly from frame 10: opens at frame 15 (the 3rd frame above), delay 5
    s[25:27] = 5  # 2 frames above: never opens
    labels = {"a": y, "b": np.array([1] * 6 + [0] * 4)}
    smoothed = {"a": s, "b": np.array([5.0] * 10)}  # b: hit from frame 0 (opens at 2, delay 2), runs on past it
    m = operator_metrics(labels, smoothed, 1.0, 3, 10.0)
    assert m["intervals"] == 2 and m["intervals_hit"] == 2
    assert [i["delay_frames"] for i in m["per_interval"]] == [5, 2]
    assert m["false_alarm_events"] == 1 and m["normal_frames"] == 24
    assert m["false_alarms_per_1000_normal_frames"] == pytest.approx(1000 / 24)
    assert m["false_alarms_per_hour"] == pytest.approx(1 / (24 / 10 / 3600))
    assert m["frame_false_positive_rate"] == pytest.approx((4 + 2 + 4) / 24)
    assert m["delay_frames_median"] == 3.5 and m["delay_seconds_median"] == pytest.approx(0.35)
    assert operator_metrics(labels, smoothed, 9.0, 3, 10.0)["intervals_hit"] == 0
    assert intervals(np.array([1, 1, 0, 1])) == [(0, 1), (3, 3)]


def test_iou_and_tracks():
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    frames = [[(0, 0, 10, 10)], [(2, 0, 12, 10), (50, 50, 60, 60)], [], [(3, 0, 13, 10)]]
    assert tracks(frames) == [[(0, 0), (1, 0)], [(1, 1)], [(3, 0)]]  # a gap ends a track


def test_rbdc_tbdc_by_hand():
    """Four frames, one object moving right; one detection per frame.

    Scores 0.9 (hits the object), 0.8 (a false positive elsewhere), 0.7 (hits), 0.6 (misses: IoU < 0.1).
    RBDR after each threshold: 1/4, 1/4, 2/4, 2/4 at false positives per frame 0, 1/4, 1/4, 2/4.
    """
    gt = [[(10 * t, 0, 10 * t + 20, 20)] for t in range(4)]
    dets = [[((0, 0, 20, 20), 0.9)], [((100, 100, 120, 120), 0.8)], [((20, 0, 40, 20), 0.7)],
            [((48, 0, 68, 20), 0.6)]]  # fmt: skip
    assert iou(dets[3][0][0], gt[3][0]) < 0.1
    m = rbdc_tbdc(gt, dets)
    # RBDR curve: (0, .25) (.25, .25) (.25, .5) (.5, .5) then flat to 1 -> area .25*.25/2... by trapezoids:
    # from (0,0) to (0,.25): 0; (0,.25)-(.25,.25): .0625; vertical; (.25,.5)-(.5,.5): .125; flat (.5,.5)-(1,.5): .25
    assert m["rbdc"] == pytest.approx(0.0625 + 0.125 + 0.25)
    # one track of 4 regions: alpha = 0.1 needs 1 detected region: detected from the first threshold on
    assert m["tracks"] == 1 and m["tbdc"] == pytest.approx(1.0)
    none = rbdc_tbdc(gt, [[((100, 100, 120, 120), 0.5)]] * 4)
    assert none["rbdc"] == 0.0 and none["tbdc"] == 0.0


def test_weighted_auc_equals_the_pooled_pixel_auc():
    rng = np.random.default_rng(3)
    vals, pos, neg = rng.integers(0, 5, 20).astype(float), rng.integers(0, 4, 20), rng.integers(0, 4, 20)
    y = np.concatenate([np.r_[np.ones(p), np.zeros(n)] for p, n in zip(pos, neg, strict=True)])
    s = np.concatenate([np.full(p + n, v) for v, p, n in zip(vals, pos, neg, strict=True)])
    assert weighted_auc(vals, pos.astype(float), neg.astype(float)) == pytest.approx(auc(y, s))


def test_localisation_metrics_from_mask_files(tmp_path):
    """A 20 x 40 frame with two 20 x 20 cells; the object is in the right cell in both frames."""
    masks = []
    for t in range(2):
        m = np.zeros((20, 40), np.uint8)
        m[:, 20:] = 255
        masks.append(tmp_path / f"{t}.png")
        cv2.imwrite(str(masks[-1]), m)
    boxes = np.array([[0, 0, 20, 20], [20, 0, 40, 20]])
    right = localisation_metrics({"c": (masks, np.array([[0.0, 1.0], [0.0, 2.0]]), boxes, np.array([1.0, 2.0]))})
    assert right["pixel_auc"] == 1.0 and right["regions"] == 2 and right["tracks"] == 1
    assert right["rbdc"] == pytest.approx(1.0) and right["tbdc"] == pytest.approx(1.0)  # the box is the region
    wrong = localisation_metrics({"c": (masks, np.array([[1.0, 0.0], [2.0, np.nan]]), boxes, np.array([1.0, 2.0]))})
    assert wrong["pixel_auc"] == 0.0 and wrong["rbdc"] == 0.0
