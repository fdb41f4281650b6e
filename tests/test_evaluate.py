from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from ognet_video.data import read_gray
from ognet_video.decide import causal_smooth, offline_smooth
from ognet_video.errors import UserError
from ognet_video.evaluation.evaluate import MODES, evaluate
from ognet_video.evaluation.metrics import auc
from ognet_video.models.detector import Detector
from ognet_video.stream.scoring import FrameScorer


@pytest.fixture(scope="module")
def evaluation(trained_run, walkway_ds, tmp_path_factory):
    det = Detector.load(trained_run.model_path)
    out = tmp_path_factory.mktemp("eval")
    return det, evaluate(det, walkway_ds.test, out, console=Console(file=io.StringIO())), out


def test_report_files(evaluation, walkway_ds):
    _, res, out = evaluation
    metrics = json.loads((out / "metrics.json").read_text())
    for mode in MODES:
        assert 0.0 <= metrics[mode]["micro_auc"] <= 1.0
        assert set(metrics[mode]["per_clip_auc"]) == {"01", "02"}
    assert metrics["frames"] == 40
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "timelines").iterdir()) == ["01.png", "02.png"]
    rows = (out / "frame_scores.csv").read_text().splitlines()
    assert rows[0] == "clip,frame,label,raw,none,causal,offline" and len(rows) == 41
    first = rows[1].split(",")
    assert first[:3] == ["01", "0", str(walkway_ds.test[0].labels[0])]


def test_scores_are_calibrated_then_smoothed(evaluation, walkway_ds):
    det, res, _ = evaluation
    cal, sc = det.calibration, det.cfg.score
    assert cal.crowd != 0  # the crowd correction is fitted and applied
    for c, raw in res.raw.items():
        clip = next(x for x in walkway_ds.test if x.name == c)
        moving = np.isfinite(FrameScorer(det).score_clip(read_gray(f) for f in clip.frames).patch).sum(axis=1)
        z = (raw - cal.crowd * np.log(np.maximum(moving, 1)) - cal.mean) / cal.std
        assert np.isnan(z[0]) and np.isfinite(z[1:]).all()  # first frame: no predecessor, unscored
        assert np.allclose(res.scores["none"][c], np.where(np.isnan(z), cal.empty, z))
        assert np.allclose(res.scores["causal"][c], causal_smooth(z, sc.causal_window, cal.empty))
        assert np.allclose(res.scores["offline"][c], offline_smooth(z, sc.offline_window, cal.empty))
        assert res.scores["causal"][c][0] == pytest.approx(cal.empty)


def test_metrics_match_scores(evaluation):
    _, res, _ = evaluation
    clips = sorted(res.labels)
    y = np.concatenate([res.labels[c] for c in clips])
    for mode in MODES:
        s = np.concatenate([res.scores[mode][c] for c in clips])
        assert res.metrics[mode]["micro_auc"] == pytest.approx(auc(y, s))
    thr = res.metrics["at_threshold"]
    flags = np.concatenate([res.scores["causal"][c] for c in clips]) > thr["threshold"]
    assert thr["recall"] == pytest.approx((flags & (y == 1)).sum() / (y == 1).sum())
    assert thr["false_positive_rate"] == pytest.approx((flags & (y == 0)).sum() / (y == 0).sum())


def test_reference_motion_metrics_present(evaluation):
    _, res, _ = evaluation
    ref = res.metrics["reference_max_motion"]
    assert set(ref) == set(MODES)
    assert all(0.0 <= ref[m]["micro_auc"] <= 1.0 for m in MODES)


def test_uncalibrated_or_unlabelled_is_user_error(trained_run, walkway_ds, console):
    det = Detector.load(trained_run.model_path)
    with pytest.raises(UserError, match="labels"):
        evaluate(det, walkway_ds.train, None, console=console, plots=False)
    det.calibration = None
    with pytest.raises(UserError, match="calibration"):
        evaluate(det, walkway_ds.test, None, console=console, plots=False)


def test_operator_metrics_in_the_report(evaluation, walkway_ds):
    """At the stored threshold: the same numbers as ``operator_metrics`` on the report's causal scores."""
    from ognet_video.evaluation.metrics import intervals, operator_metrics

    det, res, out = evaluation
    metrics = json.loads((out / "metrics.json").read_text())
    op = metrics["operator"]
    assert op["intervals"] == sum(len(intervals(c.labels)) for c in walkway_ds.test) > 0
    assert op["threshold"] == det.calibration.threshold and op["fps"] == pytest.approx(10.0)
    want = operator_metrics(
        res.labels, res.scores["causal"], det.calibration.threshold, det.cfg.score.event_frames, 10.0
    )
    assert op == json.loads(json.dumps(want))
    assert "localisation" not in metrics  # the walkway has no pixel masks
