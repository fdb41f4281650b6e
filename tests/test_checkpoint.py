from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import ognet_video.models.checkpoint as ckpt_mod
from ognet_video.config import Config
from ognet_video.errors import UserError
from ognet_video.models.checkpoint import (
    FORMAT,
    atomic_write_text,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
)
from ognet_video.models.detector import Calibration, Detector, resolve_model_path
from ognet_video.models.model import build_models


def make_detector(cfg, seed: int = 0) -> Detector:
    torch.manual_seed(seed)
    G, D = build_models(cfg)
    # non-default BatchNorm statistics, so a loader that dropped buffers would change the scores
    with torch.no_grad():
        for m in list(G.modules()) + list(D.modules()):
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    cal = Calibration(floor=-1.5, mean=0.25, std=0.5, threshold=2.0, percentile=99.0, frames=20, clips=["03"])
    return Detector(cfg, [(G, D)], cal, meta={"phase": 2, "note": "unit test"})


@pytest.fixture
def patches():
    return torch.rand(12, 1, 45, 45, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_detector_round_trip_is_bitwise_identical(tmp_path, tiny_config, patches):
    det = make_detector(tiny_config())
    before = det.patch_scores(patches)
    path = det.save(tmp_path / "m.safetensors", extra={"dataset": "folder"})
    loaded = Detector.load(path)
    after = loaded.patch_scores(patches)
    assert after.dtype == before.dtype and np.array_equal(before, after)
    G, D = det.members[0]
    with torch.no_grad():
        assert np.array_equal(before, D(G(patches)).numpy())  # the score is D's logit
    assert loaded.calibration == det.calibration
    assert loaded.cfg == det.cfg
    assert loaded.meta["dataset"] == "folder" and loaded.meta["note"] == "unit test"
    # and a second detector really differs, so the equality above is not vacuous
    other = make_detector(tiny_config(), seed=1)
    assert not np.array_equal(other.patch_scores(patches), before)


def test_a_patch_scores_the_same_in_any_batch():
    """At the default network's size oneDNN picks kernels by batch size; a resumed or multi-worker run batches
    frames differently, and must still write the same scores, bit for bit."""
    cfg = Config()
    det = Detector(cfg, [build_models(cfg)])
    x = torch.rand(45, 2, cfg.patches.size, cfg.patches.size, generator=torch.Generator().manual_seed(2)) * 2 - 1
    whole = det.patch_scores(x)
    for cut in (1, 7, 33):
        assert np.array_equal(np.concatenate([det.patch_scores(x[:cut]), det.patch_scores(x[cut:])]), whole), cut


def test_ensemble_scores_are_the_mean_of_its_members_and_round_trip(tmp_path, tiny_config, patches):
    cfg = tiny_config()
    a, b = make_detector(cfg, seed=0), make_detector(cfg, seed=1)
    both = Detector(cfg, a.members + b.members, a.calibration)
    want = (a.patch_scores(patches) + b.patch_scores(patches)) / 2
    assert np.allclose(both.patch_scores(patches), want, rtol=1e-6, atol=1e-7)
    path = both.save(tmp_path / "ens.safetensors")
    tensors, _ = load_checkpoint(path)
    assert any(k.startswith("G.") for k in tensors) and any(k.startswith("m1.D.") for k in tensors)
    loaded = Detector.load(path)
    assert len(loaded.members) == 2
    assert np.array_equal(loaded.patch_scores(patches), both.patch_scores(patches))
    # the first member is stored under the one-member names: a one-member reader sees model a
    single = Detector(cfg, loaded.members[:1], a.calibration)
    assert np.array_equal(single.patch_scores(patches), a.patch_scores(patches))


def test_trained_model_round_trip(tmp_path, trained_run, patches):
    det = Detector.load(trained_run.model_path)
    copy_path = det.save(tmp_path / "copy.safetensors")
    again = Detector.load(copy_path)
    assert np.array_equal(det.patch_scores(patches), again.patch_scores(patches))
    assert again.calibration == det.calibration


def test_checkpoint_of_an_older_version_loads(tmp_path, tiny_config, patches):
    """Metadata with options removed since (at the values that are now the only behaviour) still loads."""
    det = make_detector(tiny_config())
    tensors, meta = load_checkpoint(det.save(tmp_path / "m.safetensors"))
    meta["config"]["patches"].update(flow_preset="ultrafast", flow_step=1, diff_gain=1.0)  # a gray model of old
    meta["config"]["train"].update(grid_offsets=[], mirror=0.0, rigid_twins=0.0, phase1_ema=0.0, skip_weight=1.0)
    meta["config"]["score"]["output"] = "logit"
    old = save_checkpoint(tmp_path / "old.safetensors", tensors, meta)
    loaded = Detector.load(old)
    assert loaded.cfg == det.cfg.model_copy(
        update={"patches": det.cfg.patches.model_copy(update={"flow_preset": "medium"})}
    )
    assert np.array_equal(loaded.patch_scores(patches), det.patch_scores(patches))
    meta["config"]["score"]["output"] = "prob"
    with pytest.raises(UserError, match="score.output='prob'.*retrain"):
        Detector.load(save_checkpoint(tmp_path / "prob.safetensors", tensors, meta))


def test_a_model_calibrated_before_the_crowd_correction_scores_and_recalibrates_as_it_did(tmp_path, tiny_config):
    det = make_detector(tiny_config())
    tensors, meta = load_checkpoint(det.save(tmp_path / "m.safetensors"))
    del meta["config"]["score"]["crowd_correction"], meta["calibration"]["crowd"]
    loaded = Detector.load(save_checkpoint(tmp_path / "old.safetensors", tensors, meta))
    assert loaded.cfg.score.crowd_correction is False and loaded.calibration.crowd == 0.0
    assert det.cfg.score.crowd_correction is True  # a model trained now has it


def test_detector_without_calibration_round_trip(tmp_path, tiny_config):
    det = make_detector(tiny_config())
    det.calibration = None
    assert Detector.load(det.save(tmp_path / "m.safetensors")).calibration is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip_header_length"])
def test_corrupt_checkpoint_is_user_error(tmp_path, tiny_config, damage):
    path = make_detector(tiny_config()).save(tmp_path / "m.safetensors")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes((2**40).to_bytes(8, "little") + data[8:])
    with pytest.raises(UserError) as err:
        Detector.load(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_foreign_or_damaged_metadata_is_user_error(tmp_path):
    t = {"w": torch.zeros(2)}
    foreign = tmp_path / "foreign.safetensors"
    save_file(t, str(foreign))
    with pytest.raises(UserError, match="not an ognet-video checkpoint"):
        load_checkpoint(foreign)
    damaged = tmp_path / "damaged.safetensors"
    save_file(t, str(damaged), metadata={"format": FORMAT, "meta": "{not json"})
    with pytest.raises(UserError, match="damaged"):
        load_checkpoint(damaged)
    no_config = tmp_path / "noconfig.safetensors"
    save_checkpoint(no_config, t, {"phase": 2})
    with pytest.raises(UserError, match="no config"):
        Detector.load(no_config)


def test_missing_checkpoint_is_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(UserError, match="not found"):
        resolve_model_path(tmp_path / "nope")
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(UserError, match="resume"):
        resolve_model_path(tmp_path / "unfinished")


def test_resolve_model_path(trained_run):
    assert resolve_model_path(trained_run.run_dir) == trained_run.model_path
    assert resolve_model_path(trained_run.model_path) == trained_run.model_path


def test_expect_preset(tmp_path, tiny_config):
    path = make_detector(tiny_config()).save(tmp_path / "custom.safetensors")
    assert Detector.load(path, expect_preset="custom").cfg.model.preset == "custom"
    with pytest.raises(UserError, match="expected 'cpu'"):
        Detector.load(path, expect_preset="cpu")


def test_weights_not_matching_config_is_user_error(tmp_path, tiny_config):
    small = make_detector(tiny_config())
    big = make_detector(tiny_config("model.g_channels=[8,8,8,8]", "model.d_channels=[8,8,8,8]"))
    tensors, meta = load_checkpoint(big.save(tmp_path / "big.safetensors"))
    meta["config"] = small.cfg.to_dict()  # metadata says 4-wide, weights are 8-wide
    bad = save_checkpoint(tmp_path / "bad.safetensors", tensors, meta)
    with pytest.raises(UserError, match="do not match"):
        Detector.load(bad)


def test_checkpoint_tensors_and_meta_round_trip(tmp_path):
    tensors = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "step": torch.tensor(3.0)}
    meta = {"config": {"x": [1, 2]}, "epochs_done": 1, "s": "é"}
    path = save_checkpoint(tmp_path / "sub" / "c.safetensors", tensors, meta)
    got, got_meta = load_checkpoint(path)
    assert got_meta == meta
    assert all(torch.equal(got[k], tensors[k]) for k in tensors) and got.keys() == tensors.keys()


def test_atomic_write_leaves_no_temp_files(tmp_path, tiny_config):
    det = make_detector(tiny_config())
    for _ in range(2):  # a second save replaces the file in place
        det.save(tmp_path / "m.safetensors")
    atomic_write_text(tmp_path / "notes.txt", "hello")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "notes.txt"]


def test_failed_write_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.safetensors", {"a": torch.ones(3)}, {"v": 1})
    old = path.read_bytes()

    def broken_fsync(fd):  # the temp file holds data, then the disk fails before the rename
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        save_checkpoint(path, {"a": torch.zeros(3)}, {"v": 2})
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]
    _, meta = load_checkpoint(path)
    assert meta == {"v": 1}


def test_optimizer_state_round_trip(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.5, 0.999))
    x = torch.randn(8, 4)
    for _ in range(3):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    tensors, groups = optimizer_to_tensors(opt, "opt")
    path = save_checkpoint(tmp_path / "o.safetensors", tensors, {"groups": groups})
    loaded, meta = load_checkpoint(path)

    model2 = copy.deepcopy(model)
    opt2 = torch.optim.Adam(model2.parameters(), lr=1.0)
    optimizer_from_tensors(opt2, loaded, "opt", meta["groups"])
    assert opt2.param_groups[0]["lr"] == 1e-2
    assert tuple(opt2.param_groups[0]["betas"]) == (0.5, 0.999)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for idx in s1:
        for k in s1[idx]:
            assert torch.equal(torch.as_tensor(s1[idx][k]), torch.as_tensor(s2[idx][k])), (idx, k)
    # one more identical step on both gives identical weights
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True)
    )


def test_checkpoint_header_is_json_only(tmp_path, tiny_config):
    """Metadata travels as JSON in the safetensors header: readable without unpickling anything."""
    path = make_detector(tiny_config()).save(tmp_path / "m.safetensors")
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"]["format"] == FORMAT
    meta = json.loads(header["__metadata__"]["meta"])
    assert meta["config"]["model"]["g_channels"] == [4, 8, 8, 8]
    assert meta["calibration"]["clips"] == ["03"]


@pytest.mark.parametrize(
    "edit",
    [{"std": 0.0}, {"std": float("nan")}, {"mean": float("inf")}, {"threshold": None}, {"frames": 0}, "drop-mean",
     {"extra": 1}, {"crowd": float("nan")}, {"crowd": "high"}],
)  # fmt: skip
def test_edited_calibration_in_the_header_is_refused_in_one_line(tmp_path, tiny_config, edit):
    """A NaN or zero std would make watch write NaN and never flag: refused when the model loads."""
    det = make_detector(tiny_config())
    cal = dataclasses.asdict(det.calibration)
    if edit == "drop-mean":
        del cal["mean"]
    else:
        cal.update(edit)
    tensors, meta = load_checkpoint(det.save(tmp_path / "ok.safetensors"))
    meta["calibration"] = cal
    bad = save_checkpoint(tmp_path / "bad.safetensors", tensors, meta)
    with pytest.raises(UserError, match="calibration") as err:
        Detector.load(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
