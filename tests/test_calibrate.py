"""``calibrate`` end to end on the tiny run, and ``--threshold`` in watch and score."""

from __future__ import annotations

import json
import shutil

import pytest

from ognet_video.models.checkpoint import load_checkpoint
from ognet_video.models.detector import Calibration, Detector


@pytest.fixture(scope="module")
def recalibrated(trained_run, walkway, tmp_path_factory):
    """A copy of the tiny run, recalibrated through the command line on two normal clips."""
    from tests.conftest import run_cli

    run = tmp_path_factory.mktemp("cal") / "tiny-1"
    run.mkdir()
    shutil.copy2(trained_run.model_path, run / "model.safetensors")
    clips = [walkway / "training" / "frames" / n for n in ("01", "02")]
    proc = run_cli("calibrate", "--model", run, *clips, "--alarms-per-hour", "5", "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run, clips, proc.stdout


def test_calibrate_refits_the_threshold_and_records_the_footage(recalibrated, trained_run):
    run, clips, out = recalibrated
    old, new = Detector.load(trained_run.model_path).calibration, Detector.load(run / "model.safetensors").calibration
    assert new.rule == "alarm_rate" and new.alarms_per_hour == 5.0 and new.clips == ["01", "02"]
    assert new.threshold != old.threshold and new.seconds == pytest.approx(new.frames / 10 + 0.2, abs=0.21)
    _, meta = load_checkpoint(run / "model.safetensors")
    foot = meta["calibration_footage"]
    assert foot["by"] == "calibrate" and foot["inputs"] == [str(c.resolve()) for c in clips]
    assert foot["previous"]["threshold"] == old.threshold and meta["config"]["score"]["alarms_per_hour"] == 5.0
    kept = Detector.load(run / "model-before-calibrate-1.safetensors")  # the old model, still usable
    assert kept.calibration == old
    assert "threshold now" in out and "5 false alarms per hour" in out and "model-before-calibrate-1" in out


def test_score_and_watch_use_the_new_threshold_and_threshold_overrides_it(recalibrated, walkway, tmp_path, main_cli):
    run, _, _ = recalibrated
    new = Detector.load(run / "model.safetensors").calibration.threshold
    clip = walkway / "testing" / "frames" / "01"
    assert main_cli("score", clip, "--model", run, "--project", tmp_path, "--name", "a").returncode == 0
    assert json.loads((tmp_path / "a-1" / "run.json").read_text())["threshold"] == new
    assert (
        main_cli("score", clip, "--model", run, "--project", tmp_path, "--name", "b", "--threshold", "-1e9").returncode
        == 0
    )
    assert json.loads((tmp_path / "b-1" / "run.json").read_text())["threshold"] == -1e9
    rows = (tmp_path / "b-1" / "clips" / "01" / "scores.csv").read_text().splitlines()[2:]  # frame 0 is unscored
    assert len(rows) == 19 and all(r.endswith(",1") for r in rows), rows[:2]
    bad = main_cli("score", clip, "--model", run, "--project", tmp_path, "--name", "b", "--threshold", "3",
                   "--resume")  # fmt: skip
    assert bad.returncode == 2 and "threshold" in bad.out
    for thr, flagged in (("1e9", False), ("-1e9", True)):
        proc = main_cli("watch", clip, "--model", run, "--project", tmp_path, "--name", f"w{thr}", "--threshold", thr)
        assert proc.returncode == 0, proc.out
        lines = [json.loads(x) for x in (tmp_path / f"w{thr}-1" / "scores.jsonl").read_text().splitlines()]
        assert all(r["anomalous"] == flagged for r in lines if r["raw"] is not None or r["score"] is not None)
    proc = main_cli("watch", clip, "--model", run, "--project", tmp_path, "--threshold", "nan")
    assert proc.returncode == 2 and "--threshold" in proc.out and "Traceback" not in proc.out


def test_calibrate_errors_are_one_line(trained_run, tmp_path, main_cli):
    for args, needle in (
        ((tmp_path / "nope",), "does not exist"),
        ((tmp_path, "--alarms-per-hour", "0"), "--alarms-per-hour"),
    ):
        proc = main_cli("calibrate", "--model", trained_run.model_path, *args)
        assert proc.returncode == 2 and needle in proc.out and "Traceback" not in proc.out


def test_calibrate_refuses_a_few_frames_and_leaves_the_model(trained_run, walkway, tmp_path, main_cli):
    run = tmp_path / "tiny-1"
    run.mkdir()
    shutil.copy2(trained_run.model_path, run / "model.safetensors")
    before = (run / "model.safetensors").read_bytes()
    short = tmp_path / "short"
    short.mkdir()
    for f in sorted((walkway / "training" / "frames" / "01").iterdir())[:6]:
        shutil.copy2(f, short / f.name)
    proc = main_cli("calibrate", "--model", run, short, "--device", "cpu")
    assert proc.returncode == 2 and "too little footage" in proc.out and "Traceback" not in proc.out, proc.out
    assert (run / "model.safetensors").read_bytes() == before and sorted(p.name for p in run.iterdir()) == [
        ".lock", "model.safetensors"  # the run's lock (calibrate holds it while it may write)
    ]


def test_an_old_calibration_without_the_rule_loads_as_before():
    old = {"floor": -1.0, "mean": 0.0, "std": 1.0, "threshold": 2.0, "percentile": 99.0, "frames": 10, "clips": ["15"]}
    cal = Calibration.from_dict(old, "old.safetensors")
    assert cal.rule == "percentile" and cal.threshold == 2.0 and cal.alarms_per_hour is None
    from ognet_video.errors import UserError

    with pytest.raises(UserError, match="calibration"):
        Calibration.from_dict({**old, "rule": "alarm_rate"}, "x")  # a rate rule without its rate
