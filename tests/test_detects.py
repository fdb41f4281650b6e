"""The detector detects: a small model trained as a user would (``train`` then its evaluation) finds a
cyclist riding along the synthetic walkway three to five times walking speed.

This is the test that fails when training, the frame-skip twins, scoring or calibration stop working: every
other test uses models too small to detect anything. Seeds 0, 1 and 2 of this recipe gave causal micro AUC
0.99, 0.90 and 0.98 (max motion: 0.99, 1.0, 0.99); the bar is 0.8. About a minute on one core.
"""

from __future__ import annotations

import json

import pytest

from ognet_video.data.synthetic import write_walkway

RECIPE = [
    "model.preset=custom",
    "model.g_arch=strided",
    "model.g_channels=[8,16,16,16]",
    "model.d_channels=[8,16,16,16]",
    "patches.size=21",  # a 6 x 9 grid on a half-size frame, optical flow cells (the default input)
    "patches.stride=21",
    "patches.height=126",
    "patches.width=189",
    "train.epochs=6",
    "train.max_patches=4000",
    "train.phase2_steps=300",
    "train.phase2_lr=1e-3",
    "train.holdout_clips=1",
    "train.seed=0",
    "train.members=1",  # the recipe these seeds were measured with
    # one held-out clip of 6 s is far too little footage for a rate per hour (its margin would be most of the
    # threshold); this test is about the ranking and the live path, so it keeps the frame-percentile rule
    "score.alarms_per_hour=0",
]


@pytest.fixture(scope="module")
def cyclist_run(tmp_path_factory):
    from conftest import run_cli

    root = write_walkway(tmp_path_factory.mktemp("cyclist"), train_clips=6, test_clips=2, frames=60, seed=0,
                         anomaly="cyclist")  # fmt: skip
    project = tmp_path_factory.mktemp("runs")
    proc = run_cli("train", "folder", "--data", root, "--project", project, "--name", "cyclist", *RECIPE, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return project / "cyclist-1", proc.stdout, root


def test_trained_model_detects_the_cyclist(cyclist_run):
    run_dir, out, _ = cyclist_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    causal = metrics["causal"]
    assert causal["micro_auc"] >= 0.8, causal
    assert all(v >= 0.7 for v in causal["per_clip_auc"].values()), causal["per_clip_auc"]
    # at the threshold stored with the model (held-out normal clips only): most cyclist frames are flagged
    assert metrics["at_threshold"]["recall"] >= 0.5, metrics["at_threshold"]
    assert "micro AUC" in out and "at the calibrated threshold" in out


def test_watch_flags_the_cyclist(cyclist_run, tmp_path):
    """The live path on a test clip: an event opens while the cyclist is in view, none before it enters."""
    from conftest import run_cli

    run_dir, _, root = cyclist_run
    labels = json.loads((root / "testing" / "labels.json").read_text())["01"]
    enters = labels.index(1)
    proc = run_cli("watch", root / "testing" / "frames" / "01", "--model", run_dir, "--project", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (next(tmp_path.iterdir()) / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert any(labels[e["peak_frame"]] == 1 for e in events), (events, enters)
    assert all(e["end"] >= enters for e in events), (events, enters)


def test_the_validation_protocol_sees_it_detect(cyclist_run):
    """The label-free validation set (synthetic anomalies in the held-out normal clip) agrees: the model that
    finds the cyclist also finds the sped-up walkers, which phase two's frame-skip twins taught it."""
    from ognet_video.data import load_dataset
    from ognet_video.evaluation.validation import held_out_footage, make_clips, validate
    from ognet_video.models.detector import Detector

    run_dir, out, root = cyclist_run
    det = Detector.load(run_dir / "model.safetensors")
    clips = make_clips(held_out_footage(run_dir / "model.safetensors", load_dataset("folder", root).train), det)
    val = validate(det, clips)
    assert val["speedup"] >= 0.75, val  # 0.81 before the crowd correction, which lifts the pooled score
    # train ran the same check on the same footage, stored it with the model and printed it
    stored = det.meta["validation"]
    assert {k: stored[k] for k in ("all", "speedup", "densecrowd")} == {
        k: val[k] for k in ("all", "speedup", "densecrowd")
    }
    assert f"label-free check on the held-out footage: AUC {val['all']:.3f}" in " ".join(out.split()), out
