from __future__ import annotations

import copy
import json
import math

import cv2
import numpy as np
import pytest
import torch
from conftest import same_tensor

import ognet_video.training.train as train_mod
from ognet_video.data import Clip, Dataset, read_gray
from ognet_video.decide import causal_smooth
from ognet_video.errors import UserError
from ognet_video.models.checkpoint import load_checkpoint
from ognet_video.models.detector import Detector
from ognet_video.models.model import build_models
from ognet_video.stream.scoring import FrameScorer
from ognet_video.training.train import (
    collect_patches,
    phase_one_step,
    phase_two_step,
    sample_patches,
    seed_everything,
    split_clips,
    train,
)


@pytest.fixture(scope="module")
def batch(walkway_ds, tiny_config):
    """16 real moving patches from the synthetic training clips."""
    cfg = tiny_config()
    data, _ = collect_patches(walkway_ds.train[:2], cfg)
    return data[:16].clone()


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_collect_patches_are_moving_normalised_and_capped(walkway_ds, tiny_config):
    cfg = tiny_config("train.max_patches=100")
    everything, _ = collect_patches(walkway_ds.train[:2], cfg)
    assert len(everything) > cfg.train.max_patches  # so that the cap below has something to do
    data, _ = sample_patches(everything, None, cfg, seed=0)
    assert data.ndim == 4 and data.shape[1:] == (1, 45, 45)
    assert 32 <= len(data) == cfg.train.max_patches
    assert data.min() >= -1.0 and data.max() <= 1.0
    assert torch.equal(data, sample_patches(everything, None, cfg, seed=0)[0])  # the cap samples with the seed
    assert not torch.equal(data, sample_patches(everything, None, cfg, seed=1000)[0])  # another member, another draw


def test_phase_one_steps_reduce_reconstruction_error(batch, tiny_config):
    cfg = tiny_config()
    gen = seed_everything(0)
    G, D = build_models(cfg)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.train.lr_g)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.train.lr_d)
    g0, d0 = state(G), state(D)
    mse = []
    for _ in range(20):
        out = phase_one_step(G, D, opt_g, opt_d, batch, cfg, gen)
        assert all(math.isfinite(v) for v in out.values())
        mse.append(out["mse"])
    assert mse[-1] < 0.8 * mse[0], mse
    assert not same_state(g0, state(G)) and not same_state(d0, state(D))


def test_phase_two_step_changes_only_d(batch, tiny_config):
    cfg = tiny_config()
    seed_everything(0)
    G_n, D = build_models(cfg)
    G_old = copy.deepcopy(G_n)
    with torch.no_grad():  # two different generators, like G after epoch 1 and after the last epoch
        for p in G_old.parameters():
            p.add_(0.05 * torch.randn_like(p))
    G_n.eval()
    G_old.eval()
    D.train()
    opt = torch.optim.Adam(D.parameters(), lr=cfg.train.phase2_lr)
    gn0, go0, d0 = state(G_n), state(G_old), state(D)
    losses = [phase_two_step(G_n, G_old, D, opt, batch, batch.flip(0), batch.roll(3, 0)) for _ in range(3)]
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses)
    assert same_state(gn0, state(G_n))
    assert same_state(go0, state(G_old))
    changed = [k for k, v in state(D).items() if not torch.equal(v, d0[k])]
    assert any(k.endswith("weight") for k in changed)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in list(G_n.parameters()) + list(G_old.parameters()))


def test_run_folder_contents(trained_run, tiny_config):
    run = trained_run.run_dir
    for name in ("last.safetensors", "phase1.safetensors", "model.safetensors", "log.jsonl", "config.json"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r.get("phase") == 1] == [1, 2]
    p2 = [r for r in rows if r.get("phase") == 2]
    assert len(p2) == 1 and p2[0]["steps"] == 5
    assert rows[-1]["done"] is True
    assert json.loads((run / "config.json").read_text()) == tiny_config().to_dict()
    _, meta = load_checkpoint(run / "last.safetensors")
    assert meta["epochs_done"] == 2
    det = Detector.load(trained_run.model_path)
    assert det.meta["phase"] == 2 and det.meta["train_patches"] == trained_run.patches
    env = det.meta["environment"]  # a seeded run repeats only on the same software: the checkpoint names it
    assert env["opencv"] == cv2.__version__ and env["torch"] == torch.__version__ and env["cpu"]
    assert Detector.load(trained_run.phase1_path).meta["phase"] == 1


def test_calibration_uses_only_the_held_out_normal_clip(trained_run, walkway_ds):
    det = Detector.load(trained_run.model_path)
    cal = det.calibration
    held_out = walkway_ds.train[-1]
    assert cal.clips == [held_out.name]
    # recompute it by hand from the held-out clip
    det.calibration = None
    fs = FrameScorer(det).score_clip(read_gray(f) for f in held_out.frames)
    floor = np.nanmin(fs.patch)
    assert cal.floor == pytest.approx(floor, rel=1e-6)
    moving = np.isfinite(fs.patch).sum(axis=1)  # the crowd slope: frame score on log(moving cells), moving frames
    ok = (moving > 0) & np.isfinite(fs.raw)
    assert cal.crowd == pytest.approx(np.polyfit(np.log(moving[ok]), fs.raw[ok], 1)[0], rel=1e-6)
    raw = fs.raw - cal.crowd * np.log(np.maximum(moving, 1))
    raw = np.where(np.isnan(raw), floor, raw)
    raw[0] = np.nan  # the first frame has no predecessor: unscored, left out
    assert cal.frames == len(held_out) - 1
    assert cal.mean == pytest.approx(np.nanmean(raw), rel=1e-6)
    assert cal.std == pytest.approx(np.nanstd(raw), rel=1e-5)
    z = (raw - cal.mean) / cal.std
    sm = causal_smooth(z, det.cfg.score.causal_window, cal.empty)
    from ognet_video.calibrate.calibration import rate_threshold

    sc = det.cfg.score  # the threshold: sc.alarms_per_hour false alarms per hour of such footage (10 fps)
    block = max(2.0, 2 * (sc.causal_window + sc.event_frames - 1) * 0.1)
    want = rate_threshold([sm], [0.1], sc.event_frames, sc.alarms_per_hour, block).threshold
    assert cal.rule == "alarm_rate" and cal.threshold == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_split_clips_and_holdout_errors(walkway_ds):
    train_clips, holdout = split_clips(walkway_ds, 1)
    assert [c.name for c in train_clips] == ["01", "02"] and [c.name for c in holdout] == ["03"]
    with pytest.raises(UserError, match="holdout"):
        split_clips(walkway_ds, 3)


def test_no_moving_patches_is_user_error(walkway_ds, tiny_config, tmp_path, console):
    with pytest.raises(UserError, match="moving patch"):
        train(tiny_config("patches.motion_threshold=255"), walkway_ds, tmp_path / "run", console=console)


def test_held_out_clips_that_cannot_calibrate_fail_before_training(walkway, tiny_config, tmp_path, console):
    """Found before phase one, not after both phases: a static held-out clip, a one-frame one."""
    import shutil

    from ognet_video.data import load_dataset

    root = tmp_path / "data"
    shutil.copytree(walkway, root)
    held = root / "training" / "frames" / "03"
    first = sorted(held.iterdir())[0].read_bytes()
    for f in sorted(held.iterdir()):
        f.write_bytes(first)  # nothing moves
    run = tmp_path / "run"
    with pytest.raises(UserError, match="no moving patch in the held-out clips"):
        train(tiny_config(), load_dataset("folder", root), run, console=console)
    for f in sorted(held.iterdir())[1:]:
        f.unlink()
    with pytest.raises(UserError, match="fewer than 2 frames"):
        train(tiny_config(), load_dataset("folder", root), run, console=console)
    assert not (run / "last.safetensors").exists()


def test_zero_holdout_clips_fails_before_training(walkway_ds, tiny_config, tmp_path, console, monkeypatch):
    """Zero held-out clips leave nothing to calibrate on. The config refuses it where a user sets it, and ``train``
    refuses a config that got past that check (built or changed in code) with its own check, before it reads a
    patch or writes anything into the run folder."""
    with pytest.raises(UserError, match=r"override: train\.holdout_clips=0: must be greater than or equal to 1"):
        tiny_config("train.holdout_clips=0")
    cfg = tiny_config()
    cfg.train = cfg.train.model_copy(update={"holdout_clips": 0})  # unchecked, as code could make it
    assert cfg.train.holdout_clips == 0

    def reached(*args, **kwargs):
        raise AssertionError("train went past its checks with train.holdout_clips=0")

    monkeypatch.setattr(train_mod, "split_for_training", reached)
    run = tmp_path / "run"
    with pytest.raises(UserError, match=r"^config: train\.holdout_clips=0: must be greater than or equal to 1$"):
        train(cfg, walkway_ds, run, console=console)
    assert [p.name for p in run.iterdir()] in ([], [".lock"])  # the run's lock alone: no log, no checkpoint


# ---------------------------------------------------------------------------------------------------
# resume


class Interrupted(Exception):
    pass


def interrupt_mid_epoch_two(monkeypatch):
    real_save, real_step = train_mod.save_checkpoint, train_mod.phase_one_step
    seen = {"epoch1_saved": False, "steps_after": 0}

    def save(path, tensors, meta):
        out = real_save(path, tensors, meta)
        if meta.get("epochs_done") == 1:
            seen["epoch1_saved"] = True
        return out

    def step(*args, **kwargs):
        if seen["epoch1_saved"]:
            seen["steps_after"] += 1
            if seen["steps_after"] == 2:  # one step of epoch 2 done, the second one is interrupted
                raise Interrupted
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_mod, "save_checkpoint", save)
    monkeypatch.setattr(train_mod, "phase_one_step", step)
    return 1


def interrupt_in_phase_two(monkeypatch):
    real = train_mod.phase_two_step
    calls = {"n": 0}

    def step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "phase_two_step", step)
    return 2


@pytest.mark.parametrize("interrupt", [interrupt_mid_epoch_two, interrupt_in_phase_two])
def test_resume_is_bit_exact(interrupt, trained_run, walkway_ds, tiny_config, tmp_path, console):
    run = tmp_path / "tiny-b"
    with monkeypatch_context() as mp:
        epochs_done = interrupt(mp)
        with pytest.raises(Interrupted):
            train(tiny_config(), walkway_ds, run, console=console)
    assert not (run / "model.safetensors").exists()
    _, meta = load_checkpoint(run / "last.safetensors")
    assert meta["epochs_done"] == epochs_done

    res = train(tiny_config(), walkway_ds, run, resume=True, console=console)
    for name in ("model.safetensors", "phase1.safetensors"):
        ta, ma = load_checkpoint(trained_run.run_dir / name)
        tb, mb = load_checkpoint(res.run_dir / name)
        assert sorted(ta) == sorted(tb)
        diff = [k for k in ta if not same_tensor(ta[k], tb[k])]
        assert diff == [], f"{name}: tensors differ after resume: {diff[:5]}"
        assert ma["calibration"] == mb["calibration"]


def test_resume_with_different_config_is_user_error(walkway_ds, tiny_config, tmp_path, console):
    run = tmp_path / "tiny-c"
    with monkeypatch_context() as mp:
        interrupt_in_phase_two(mp)
        with pytest.raises(Interrupted):
            train(tiny_config(), walkway_ds, run, console=console)
    with pytest.raises(UserError, match="different config"):
        train(tiny_config("train.lr_g=0.01"), walkway_ds, run, resume=True, console=console)
    last = walkway_ds.train[-1]
    other = Dataset(walkway_ds.name, walkway_ds.root, walkway_ds.layout,
                    [*walkway_ds.train[:-1], Clip(last.name, last.frames[:-2])], walkway_ds.test)  # fmt: skip
    with pytest.raises(UserError, match="other data"):
        train(tiny_config(), other, run, resume=True, console=console)


def monkeypatch_context():
    return pytest.MonkeyPatch.context()


def test_fast_twins_take_the_flow_k_frames_apart(walkway_ds, tiny_config):
    """A frame-skip pseudo anomaly keeps a moving flow patch at t but takes its flow from t-k to t."""
    from ognet_video.patches import PatchExtractor, optical_flow
    from ognet_video.training.train import load_clip_frames

    cfg = tiny_config("patches.channels=flow", "patches.flow_preset=fast", "train.skip_frames=[3]",
                      "train.max_patches=0")  # fmt: skip
    clip = walkway_ds.train[0]
    data, fast = collect_patches([clip], cfg)
    assert fast is not None and data.shape[1] == 2 and fast.shape[1:] == data.shape[1:]
    ex = PatchExtractor(cfg.patches)
    frames = load_clip_frames(clip, ex)
    moving = ex.moving(ex.extract(frames).motion)
    assert len(data) == int(moving.sum()) and len(fast) == int(moving[3:].sum())
    t, cell = [(t, c) for t, c in zip(*np.nonzero(moving), strict=True) if t >= 3][0]
    y0, x0 = ex.boxes[cell][1], ex.boxes[cell][0]
    flow = optical_flow(frames[t - 3 : t - 2], frames[t : t + 1], "fast")[0, y0 : y0 + 45, x0 : x0 + 45]
    want = np.clip(flow.astype(np.float32).transpose(2, 0, 1) / cfg.patches.flow_scale, -1, 1)
    first = int(np.sum(moving[3:t])) + int(np.sum(moving[t, :cell]))  # order: frames, then cells row-major
    assert np.array_equal(fast[first].numpy(), want)
    with pytest.raises(UserError, match="train.skip_frames"):
        tiny_config("train.skip_frames=[3]")  # gray input has no flow to skip


def test_phase_two_with_fast_twins_pushes_their_scores_up(batch, tiny_config):
    cfg = tiny_config("patches.channels=flow")
    _, D = build_models(cfg)
    G = G_old = torch.nn.Identity()  # a perfect reconstructor: only the fast term separates x from x_fast
    x = torch.cat([batch, torch.zeros_like(batch)], dim=1)
    x_fast = torch.cat([batch, torch.ones_like(batch) * 0.8], dim=1)
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    D.eval()
    with torch.no_grad():
        gap0 = (D(G(x_fast)) - D(G(x))).mean().item()
    D.train()
    for _ in range(30):
        phase_two_step(G, G_old, D, opt, x, x, x, x_fast)
    D.eval()
    with torch.no_grad():
        gap1 = (D(G(x_fast)) - D(G(x))).mean().item()
    assert gap1 > gap0 + 0.5, (gap0, gap1)


@pytest.mark.parametrize("norm", ["frozen", "separate"])
def test_phase_two_batchnorm_statistics(walkway_ds, tiny_config, tmp_path, norm):
    """frozen: D's BatchNorm keeps phase one's statistics in phase two; separate (the authors): they move."""
    from conftest import quiet_console

    from ognet_video.models.checkpoint import unprefixed

    cfg = tiny_config(f"train.phase2_norm={norm}", "train.phase2_steps=3", "train.phase2_ema=0")
    res = train(cfg, walkway_ds, tmp_path / "run", console=quiet_console())
    p1, _ = load_checkpoint(res.phase1_path)
    final, _ = load_checkpoint(res.model_path)
    d1, d2 = unprefixed(p1, "D"), unprefixed(final, "D")
    stats = [k for k in d1 if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(d1[k], d2[k]) for k in stats) == (norm == "frozen")
    weights = [k for k in d1 if k.endswith("weight")]
    assert any(not torch.equal(d1[k], d2[k]) for k in weights)  # D still learnt in phase two


# ---------------------------------------------------------------------------------------------------
# ensembles (train.members)


def test_members_train_from_their_own_seeds_and_the_first_is_the_single_model(trained_run, walkway_ds, tiny_config,
                                                                               tmp_path, console):  # fmt: skip
    res = train(tiny_config("train.members=2"), walkway_ds, tmp_path / "ens", console=console)
    one, _ = load_checkpoint(trained_run.model_path)
    two, meta = load_checkpoint(res.model_path)
    one = {k: v for k, v in one.items() if not k.startswith("heldout.")}  # the networks (held-out scores differ)
    assert sorted(k for k in two if not k.startswith(("m1.", "heldout."))) == sorted(one)
    assert all(torch.equal(one[k], two[k]) for k in one)  # member 0 = the one-member model of the same seed
    assert any(not torch.equal(one[k], two[f"m1.{k}"]) for k in one)  # member 1: another seed, another model
    assert len(Detector.load(res.model_path).members) == 2 and len(Detector.load(res.phase1_path).members) == 2
    rows = [json.loads(line) for line in (res.run_dir / "log.jsonl").read_text().splitlines()]
    assert [(r["member"], r["phase"]) for r in rows if "phase" in r] == [(0, 1), (0, 1), (0, 2), (1, 1), (1, 1), (1, 2)]
    assert meta["calibration"]["frames"] > 0


def test_resume_inside_the_second_member_is_bit_exact(walkway_ds, tiny_config, tmp_path, console):
    cfg = lambda: tiny_config("train.members=2")  # noqa: E731
    whole = train(cfg(), walkway_ds, tmp_path / "whole", console=console)
    real_save, real_step = train_mod.save_checkpoint, train_mod.phase_one_step
    seen = {"saved": False}

    def save(path, tensors, meta):
        out = real_save(path, tensors, meta)
        seen["saved"] |= meta.get("member") == 1 and meta.get("epochs_done") == 1
        return out

    def step(*args, **kwargs):
        if seen["saved"]:
            raise Interrupted
        return real_step(*args, **kwargs)

    run = tmp_path / "cut"
    with monkeypatch_context() as mp:
        mp.setattr(train_mod, "save_checkpoint", save)
        mp.setattr(train_mod, "phase_one_step", step)
        with pytest.raises(Interrupted):
            train(cfg(), walkway_ds, run, console=console)
    _, meta = load_checkpoint(run / "last.safetensors")
    assert meta["member"] == 1 and meta["epochs_done"] == 1
    res = train(cfg(), walkway_ds, run, resume=True, console=console)
    for name in ("model.safetensors", "phase1.safetensors"):
        ta, ma = load_checkpoint(whole.run_dir / name)
        tb, mb = load_checkpoint(res.run_dir / name)
        assert sorted(ta) == sorted(tb) and all(same_tensor(ta[k], tb[k]) for k in ta), name
        assert ma["calibration"] == mb["calibration"]


def test_members_must_be_at_least_one(tiny_config):
    with pytest.raises(UserError, match="members"):
        tiny_config("train.members=0")


# ---------------------------------------------------------------------------------------------------
# train.phase2_ema (D over phase two; the tiny config has the default 0.99, so the resume tests cover it)


def test_weight_average_reaches_the_final_model(walkway_ds, tiny_config, tmp_path):
    """phase2_ema's average is the D that scores."""
    from conftest import quiet_console

    def final(name: str, *extra: str) -> dict[str, torch.Tensor]:
        res = train(tiny_config(*extra), walkway_ds, tmp_path / name, console=quiet_console())
        return Detector.load(res.model_path).members[0][1].state_dict()

    plain = final("plain", "train.phase2_ema=0")
    # a decay of ~0 follows the network step by step: the average is the last step's, so the wiring changes nothing else
    last = final("last", "train.phase2_ema=1e-9")
    slow = final("slow", "train.phase2_ema=0.9")
    weights = [k for k, v in plain.items() if v.is_floating_point()]
    assert all(torch.allclose(plain[k], last[k], atol=1e-6) for k in weights)
    assert not all(torch.allclose(plain[k], slow[k], atol=1e-6) for k in weights)
    with pytest.raises(UserError, match="phase2_ema"):
        tiny_config("train.phase2_ema=1")
