"""``calibrate --feedback``: events an operator marked normal stop alarming, events marked real still alarm.

A model whose threshold was set too low raises a false alarm on a normal walkway clip (a Ped2-like false alarm:
ordinary walkers flagged) and an alarm on the planted anomaly; the review page's labels say which is which; the
refitted model must not flag the first and must still flag the second, each checked by running ``watch`` again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import quiet_console
from test_watch import anomaly_clip, read_jsonl, watch  # noqa: F401 - the planted-anomaly clip fixture
from videos import decode, write_mp4

from ognet_video.calibrate.calibration import event_statistic
from ognet_video.data import read_gray
from ognet_video.data.synthetic import write_walkway
from ognet_video.models.detector import Detector
from ognet_video.review.feedback import append_label
from ognet_video.stream.scoring import StreamScorer


def _peak_statistic(det: Detector, frames: list[np.ndarray]) -> float:
    ss = StreamScorer(det)
    results, _ = ss.push(frames, [i / 10 for i in range(len(frames))])
    ss.finish()
    return float(event_statistic(np.array([r.smoothed for r in results]), det.cfg.score.event_frames).max())


@pytest.fixture(scope="module")
def setup(tmp_path_factory, trained_run, anomaly_clip):  # noqa: F811
    """A model copy whose threshold sits just under a normal clip's peak (so it false-alarms there) and under the
    anomaly's; runs of watch on both, each event labelled as it truly is."""
    root = tmp_path_factory.mktemp("feedback")
    det = Detector.load(trained_run.model_path)
    anomaly_peak = _peak_statistic(det, anomaly_clip.frames)
    # the normal clip is chosen, not assumed: of a few normal walkway clips, the one the tiny model scores lowest
    candidates = []
    for seed in range(4):
        ds = write_walkway(root / f"normal{seed}", train_clips=1, test_clips=1, frames=60, seed=seed)
        gray = [read_gray(p) for p in sorted((ds / "training/frames/01").glob("*.jpg"))]
        path = write_mp4(root / f"normal{seed}.mp4", gray)
        candidates.append((_peak_statistic(det, decode(path)), path))
    normal_peak, normal = min(candidates)
    assert anomaly_peak > normal_peak + 0.2, "setup: the tiny model must rank the anomaly above a normal clip"
    det.calibration.threshold = normal_peak - 0.1
    model_dir = root / "model"
    model_dir.mkdir()
    det.save(model_dir / "model.safetensors")
    runs = {}
    for name, clip, label in (("normal", normal, "normal"), ("anomaly", anomaly_clip.path, "real")):
        res = watch(str(clip), model_dir / "model.safetensors", project=root / "watch", name=name,
                    console=quiet_console(), live_panel=False, pre_roll=1.0, post_roll=1.0)  # fmt: skip
        events = read_jsonl(res.run_dir / "events.jsonl")
        assert events, f"setup: the lowered threshold raises no event on the {name} clip"
        for e in events:
            append_label(res.run_dir, e["id"], label)
        runs[name] = res.run_dir
    return {"model": model_dir, "normal": normal, "anomaly": anomaly_clip.path, "runs": runs, "root": root}


def _events(model: Path, clip: Path, project: Path) -> list[dict]:
    res = watch(str(clip), model / "model.safetensors", project=project, console=quiet_console(), live_panel=False,
                clips=False)  # fmt: skip
    return read_jsonl(res.run_dir / "events.jsonl")


def test_feedback_silences_the_false_alarm_and_keeps_the_real_one(setup, cli, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(setup["model"], model)
    before = (model / "model.safetensors").read_bytes()
    r = cli("calibrate", "--model", model, "--feedback", setup["runs"]["normal"], "--feedback", setup["runs"]["anomaly"])
    assert r.returncode == 0, r.stdout + r.stderr
    out = " ".join(r.stdout.split())  # rich wraps long lines
    assert "1 event(s) marked normal now below the threshold" in out and "1 marked real still alarm" in out
    assert (model / "model-before-calibrate-1.safetensors").read_bytes() == before  # the previous model is kept
    assert _events(model, setup["normal"], tmp_path / "w") == []
    assert _events(model, setup["anomaly"], tmp_path / "w")
    det = Detector.load(model / "model.safetensors")
    said = det.meta["calibration_footage"]["feedback"]
    assert said["normal"] and said["real"] and det.meta["calibration_footage"]["by"] == "calibrate --feedback"
    info = cli("info", "--model", model)
    assert info.returncode == 0 and "calibrated with feedback" in info.stdout


def test_labels_that_cannot_both_hold_change_nothing(setup, cli, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(setup["model"], model)
    before = (model / "model.safetensors").read_bytes()
    runs = tmp_path / "runs"
    shutil.copytree(setup["runs"]["anomaly"], runs / "a")
    shutil.copytree(setup["runs"]["normal"], runs / "n")
    for folder, label in ((runs / "a", "normal"), (runs / "n", "real")):  # the anomaly called normal, walkers real
        for e in read_jsonl(folder / "events.jsonl"):
            append_label(folder, e["id"], label)
    r = cli("calibrate", "--model", model, "--feedback", runs)
    err = " ".join(r.stderr.split())
    assert r.returncode == 2 and "cannot honour the labels" in err and "model was not changed" in err
    assert "Traceback" not in r.stderr and err.count("error:") == 1
    assert (model / "model.safetensors").read_bytes() == before and not list(model.glob("*before*"))


def test_feedback_errors_name_what_to_do(setup, cli, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(setup["model"], model)
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(setup["runs"]["normal"], unlabelled)
    (unlabelled / "feedback.jsonl").unlink()
    r = cli("calibrate", "--model", model, "--feedback", unlabelled)
    assert r.returncode == 2 and "is labelled: mark events normal or real on the review page" in " ".join(r.stderr.split())
    gone = tmp_path / "gone"
    shutil.copytree(setup["runs"]["normal"], gone)
    for p in (gone / "events").glob("*-source.mp4"):
        p.unlink()
    r = cli("calibrate", "--model", model, "--feedback", gone)
    assert r.returncode == 2 and "source clip is missing" in " ".join(r.stderr.split())
    r = cli("calibrate", "--model", model)
    assert r.returncode == 2 and "needs normal footage (INPUT...) or --feedback RUN" in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr


def test_heldout_scores_round_trip_through_the_checkpoint(trained_run, tmp_path):
    from ognet_video.calibrate.heldout import kept
    from ognet_video.calibrate.postprocess import fit_calibration

    det = Detector.load(trained_run.model_path)
    held = kept(det, "model")
    assert held is not None and held.scores
    refit = fit_calibration(held.scores, det.cfg.score, held.seconds_per_frame)
    assert refit.threshold == pytest.approx(det.calibration.threshold, abs=1e-9)  # the same footage, the same fit
    assert json.loads(json.dumps(det.meta["heldout_scores"]))["clips"] == list(held.scores)
