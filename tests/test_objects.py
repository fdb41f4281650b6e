"""The object cue: moving regions of the flow, a density of normal objects at each place, fused with OGNet."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ognet_video.calibrate.postprocess import object_mapping
from ognet_video.config import load_config
from ognet_video.data import load_dataset
from ognet_video.data.synthetic import write_walkway
from ognet_video.errors import UserError
from ognet_video.evaluation.metrics import auc
from ognet_video.models.detector import Detector
from ognet_video.objects import FEATURES, ObjectDensity, find_objects
from ognet_video.stream.scoring import FrameScorer, StreamScorer
from ognet_video.training.train import train
from tests.conftest import TINY, quiet_console

H, W = 232, 348


def _flow(*blobs: tuple[int, int, int, int, float, float]) -> np.ndarray:
    """A flow field with rectangles (x, y, w, h) moving at (vx, vy) px per interval."""
    f = np.zeros((H, W, 2), dtype=np.float16)
    for x, y, w, h, vx, vy in blobs:
        f[y : y + h, x : x + w] = (vx, vy)
    return f


def test_regions_are_the_moving_blobs_with_their_place_size_and_speed():
    obj = find_objects(_flow((20, 30, 10, 24, 0.0, 2.0), (200, 150, 30, 20, 4.0, 0.0), (100, 100, 3, 3, 5.0, 0.0)),
                       min_flow=0.4, min_area=60)  # fmt: skip
    assert len(obj) == 2  # the 3 x 3 speck is dropped
    a, b = sorted(obj.features.tolist(), key=lambda r: r[0])
    assert a[:4] == pytest.approx([25 / H, 42 / H, 10 / H, 24 / H], abs=0.01)
    assert a[5] == pytest.approx(2.0 / H * 100) and a[4] == pytest.approx(0.0)
    assert b[4] == pytest.approx(4.0 / H * 100) and b[6] == pytest.approx(4.0 / H * 100)
    allowed = np.ones((H, W), dtype=bool)
    allowed[:, :100] = False  # outside the moving cells, or in an ignore region
    assert len(find_objects(_flow((20, 30, 10, 24, 0.0, 2.0)), 0.4, 60, allowed)) == 0
    assert len(find_objects(_flow((20, 30, 10, 24, 0.0, 0.3)), 0.4, 60)) == 0  # below min_flow: not moving


def _normal_objects(rng: np.random.Generator, n: int = 3000) -> np.ndarray:
    """Walkers on a path (x 0.3-0.7 of the height) moving up or down, larger and faster near the camera."""
    y = rng.uniform(0.1, 0.95, n)
    size = 0.05 + 0.15 * y
    return np.stack([rng.uniform(0.3, 0.7, n), y, size * 0.4, size, rng.normal(0, 0.05, n),
                     rng.choice([-1, 1], n) * size * 4 * rng.uniform(0.8, 1.2, n), size * 4], axis=1)  # fmt: skip


def test_density_judges_an_object_against_normal_objects_at_its_place():
    dens = ObjectDensity.fit(_normal_objects(np.random.default_rng(0)), neighbors=5, max_reference=2000)
    assert len(dens.reference) == 2000
    walker_far, walker_near = [0.5, 0.2, 0.032, 0.08, 0, 0.32, 0.32], [0.5, 0.9, 0.074, 0.185, 0, -0.74, 0.74]
    fast_far = [0.5, 0.2, 0.032, 0.08, 0, 1.2, 1.2]  # a near walker's speed, far away: a cyclist there
    grass = [1.2, 0.5, 0.05, 0.125, 0, 0.5, 0.5]  # walking where nobody walks
    across = [0.5, 0.5, 0.05, 0.125, 0.5, 0.0, 0.5]  # across the path
    d = dens.distances(np.array([walker_far, walker_near, fast_far, grass, across]))
    assert max(d[:2]) * 3 < min(d[2:])


def test_density_round_trips_through_a_checkpoint_and_refuses_a_damaged_one():
    dens = ObjectDensity.fit(_normal_objects(np.random.default_rng(1)), neighbors=5, max_reference=500)
    tensors, meta = dens.to_checkpoint()
    back = ObjectDensity.from_checkpoint(tensors, meta, "m.safetensors")
    x = _normal_objects(np.random.default_rng(2), 10)
    assert np.array_equal(back.distances(x), dens.distances(x))
    for bad in ({**meta, "scale": [0.0] * len(FEATURES)}, {**meta, "features": ["x"]}, {"center": 1}):
        with pytest.raises(UserError, match="object density"):
            ObjectDensity.from_checkpoint(tensors, bad, "m.safetensors")
    with pytest.raises(UserError, match="object density"):
        ObjectDensity.from_checkpoint({"objects.reference": torch.full((10, 7), float("nan"))}, meta, "m.safetensors")
    with pytest.raises(UserError, match="moving objects"):
        ObjectDensity.fit(np.zeros((3, len(FEATURES))), neighbors=5, max_reference=100)


def test_mapping_matches_the_two_cues_on_held_out_footage():
    rng = np.random.default_rng(0)
    z, s = rng.normal(0, 1, 1000), rng.gamma(2, 3, 1000)
    a, b = object_mapping(z, s)
    assert np.percentile(a + b * s, 99) == pytest.approx(np.percentile(z, 99))
    assert np.median(a + b * s) == pytest.approx(np.median(z))
    assert object_mapping(z, s[:5]) is None  # too few objects to calibrate: the cue stays off


def test_object_cue_needs_flow():
    with pytest.raises(UserError, match="objects.enabled"):
        load_config(None, ["patches.channels=gray", "objects.enabled=true", "train.skip_frames=[]"])


FLOW_TINY = [*[t for t in TINY if not t.startswith(("patches.channels", "patches.size", "patches.stride",
                                                     "patches.height", "patches.width"))],
             "patches.channels=flow", "patches.size=29", "patches.stride=29", "patches.height=232",
             "patches.width=348", "objects.enabled=true"]  # fmt: skip


@pytest.fixture(scope="module")
def cyclists(tmp_path_factory):
    """A walkway whose anomalies are cyclists (walker-sized, walker-coloured, three times as fast), and a model
    trained with the object cue on its normal clips."""
    root = write_walkway(tmp_path_factory.mktemp("cyclists"), train_clips=4, test_clips=3, frames=40, seed=3,
                         anomaly="cyclist")  # fmt: skip
    ds = load_dataset("folder", root)
    run = train(load_config(None, FLOW_TINY), ds, tmp_path_factory.mktemp("runs") / "objects-1",
                console=quiet_console())  # fmt: skip
    return ds, Detector.load(run.model_path)


def test_object_cue_detects_cyclists_and_says_which_cue_fired(cyclists):
    ds, det = cyclists
    assert det.objects is not None and det.calibration.objects is not None
    scorer = FrameScorer(det)
    labels, objects = [], []
    for clip in ds.test:
        fs = scorer.score_clip(f.image for f in clip.source())
        keep = fs.scored
        labels.append(clip.labels[keep])
        objects.append(np.nan_to_num(fs.objects[keep], nan=0.0))
    assert auc(np.concatenate(labels), np.concatenate(objects)) > 0.9  # the cue alone sees the cyclists
    stream = StreamScorer(det)
    clip = ds.test[0]
    results, _ = stream.push([f.image for f in clip.source()])
    cues = {r.cue for r in results[1:]}
    assert cues <= {"objects", "patches"} and "objects" in cues
    fired = [r for r, y in zip(results, clip.labels, strict=True) if y and r.cue == "objects"]
    assert fired and all(r.worst_box is not None and r.to_dict()["cue"] == "objects" for r in fired)


def test_checkpoint_keeps_the_object_cue_and_old_models_score_as_before(cyclists, tmp_path, detector):
    ds, det = cyclists
    frames = [f.image for f in ds.test[1].source()]
    path = det.save(tmp_path / "m.safetensors")
    again = Detector.load(path)
    a, b = FrameScorer(det).score_clip(frames), FrameScorer(again).score_clip(frames)
    assert np.array_equal(a.objects, b.objects, equal_nan=True)
    # a model without the cue (the tiny one of the suite) has no object scores and its calibration ignores them
    assert detector.objects is None and detector.calibration.objects is None
    assert FrameScorer(detector).score_clip(frames).objects is None
    off = dataclasses.replace(det.calibration, objects=None)
    from ognet_video.decide import calibrated

    fused, alone = calibrated(a, det.calibration), calibrated(a, off)
    assert np.all(fused[a.scored] >= alone[a.scored]) and np.any(fused[a.scored] > alone[a.scored])


def test_an_exported_model_keeps_the_object_cue(cyclists, tmp_path):
    from ognet_video.models.export import export_onnx

    ds, det = cyclists
    source = det.save(tmp_path / "model.safetensors")
    out = tmp_path / "model.onnx"
    export_onnx(Detector.load(source), source, out)
    onnx = Detector.load(out)
    assert onnx.objects is not None and onnx.calibration.objects == det.calibration.objects
    frames = [f.image for f in ds.test[0].source()]
    a, b = FrameScorer(det).score_clip(frames), FrameScorer(onnx).score_clip(frames)
    assert np.array_equal(a.objects, b.objects, equal_nan=True)


def test_info_shows_the_object_cue_and_score_runs_with_it(cyclists, tmp_path, main_cli):
    ds, det = cyclists
    model = det.save(tmp_path / "model.safetensors")
    shown = main_cli("info", "--model", model)
    assert shown.returncode == 0 and "normal objects" in shown.out and '"min_flow"' in shown.out
    clip = ds.test[0].frames[0].parent
    run = main_cli("score", clip, "--model", model, "--project", tmp_path, "--name", "s")
    assert run.returncode == 0, run.out
    events = (tmp_path / "s-1" / "clips" / clip.name / "events.jsonl").read_text().splitlines()
    assert events  # the cyclist is an event
    import csv

    rows = list(csv.DictReader((tmp_path / "s-1" / "clips" / clip.name / "scores.csv").open()))
    assert {r["cue"] for r in rows[1:]} <= {"objects", "patches"} and any(r["cue"] == "objects" for r in rows)


def test_a_dropped_frame_never_changes_an_object_score(cyclists):
    """Live: frames 10-12 dropped, frame 13's motion measured from frame 12 (the one the camera sent before it):
    the fused scores of the kept frames equal the file's, object cue included (it keeps no state)."""
    ds, det = cyclists
    frames = [f.image for f in ds.test[0].source()]
    whole, _ = StreamScorer(det).push(frames)
    live = StreamScorer(det)
    first, _ = live.push(frames[:10])
    live.break_motion(frames[12])
    rest, _ = live.push(frames[13:], indices=list(range(13, len(frames))), steps=list(range(13, len(frames))))
    kept = [whole[i] for i in [*range(10), *range(13, len(frames))]]
    assert np.array_equal([r.score for r in first + rest], [r.score for r in kept], equal_nan=True)
    assert [r.cue for r in first + rest] == [r.cue for r in kept] and any(r.cue == "objects" for r in rest)


def test_calibrate_refits_the_cue_mapping_and_keeps_the_density(cyclists, tmp_path, main_cli):
    ds, det = cyclists
    run = tmp_path / "objects-1"
    run.mkdir()
    det.save(run / "model.safetensors")
    clips = [c.frames[0].parent for c in ds.train[:2]]
    proc = main_cli("calibrate", "--model", run, *clips, "--alarms-per-hour", "5")
    assert proc.returncode == 0, proc.out
    new = Detector.load(run / "model.safetensors")
    assert new.objects is not None and np.array_equal(new.objects.reference, det.objects.reference)
    assert new.calibration.objects is not None and new.calibration.objects != det.calibration.objects


def test_thresholds_scale_with_the_grid():
    """The same scene on a half-height grid finds the same objects: the settings are for a 232 px high grid."""
    from ognet_video.config import ObjectConfig
    from ognet_video.objects.cue import thresholds

    cfg = ObjectConfig()
    assert thresholds(cfg, 232) == (cfg.min_flow, cfg.min_area)  # the measured default, exactly
    full = _flow((20, 30, 10, 24, 0.0, 2.0), (200, 150, 30, 20, 4.0, 0.0))
    half = full[::2, ::2] / 2  # the same motion seen at half the resolution
    big, small = find_objects(full, *thresholds(cfg, H)), find_objects(half, *thresholds(cfg, H // 2))
    assert len(big) == len(small) == 2
    assert np.allclose(big.features, small.features, atol=0.02)  # attributes in frame heights: the same
