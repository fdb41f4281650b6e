"""Two-phase OGNet training, readable top to bottom (after torchvision's references/).

Phase one: adversarial denoising autoencoder (G, D) on moving normal patches; G_old = G after the
first epoch; G_n and D = the models after the last epoch (fixed by config, never chosen on test
labels). Phase two: G_old and G_n frozen, D alone learns good (x, G_n(x)) vs bad (G_old(x), pseudo
anomalies) reconstructions. Then the score is calibrated on held-out normal training clips.

A run folder holds ``last.safetensors`` (resume state, rewritten atomically after every epoch),
``phase1.safetensors`` (reference: D(G(x)) before phase two), ``model.safetensors`` (final) and
``log.jsonl`` (losses). Under torchrun (``ognet_video.training.distributed``) every rank trains on its share of each
batch, the gradients are averaged, and rank 0 alone writes the run folder and calibrates.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ognet_video.calibrate.heldout import keep
from ognet_video.calibrate.postprocess import fit_calibration
from ognet_video.config import Config, validate
from ognet_video.data import Clip, Dataset
from ognet_video.data.recordings import Recordings
from ognet_video.errors import UserError, writing
from ognet_video.health.reference import describe_footage
from ognet_video.host import host_info
from ognet_video.models.checkpoint import atomic_write_text, optimizer_from_tensors, save_checkpoint, unprefixed
from ognet_video.models.detector import Calibration, Detector
from ognet_video.models.model import Discriminator, Generator, build_models, resolve_model_config
from ognet_video.progress import progress_bar
from ognet_video.runs import run_lock
from ognet_video.stream.scoring import score_footage
from ognet_video.training.distributed import SOLO, World, digest, global_batchnorm
from ognet_video.training.train_data import (  # noqa: F401 - re-exported: what training reads lives there
    check_holdout,
    collect_patches,
    fit_objects,
    footage_meta,
    load_clip_frames,
    sample_patches,
    split_clips,
    split_for_training,
)
from ognet_video.training.train_state import (
    PHASE2_CHECKPOINT_EVERY,
    Finished,
    load_phase_two,
    phase_two_tensors,
    resume_state,
    state_tensors,
)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits, target, dtype=torch.float32))


def phase_one_step(G: Generator, D: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                   x: torch.Tensor, cfg: Config, gen: torch.Generator | None = None,
                   world: World = SOLO) -> dict[str, float]:  # fmt: skip
    """One adversarial step: D on G(x~).detach(), then G through the *updated* D (0 = real, 1 = fake).

    Under torchrun ``x`` is this rank's share of the batch: the noise is drawn for the whole batch (the same
    generator state on every rank) and sliced like it, and each gradient is averaged over the ranks.
    """
    n = len(x) * world.size
    noise = torch.randn((n, *x.shape[1:]), generator=gen)[world.part(n)].to(x.device) * cfg.train.noise_std
    x_noisy = (x + noise).clamp_(-1.0, 1.0)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda")
    with amp:
        fake = G(x_noisy)
        loss_d = 0.5 * (bce(D(fake.detach()), 1.0) + bce(D(x), 0.0))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    world.average_grads(D)
    opt_d.step()
    with amp:
        mse = F.mse_loss(fake.float(), x)
        loss_g = 0.5 * mse + 0.5 * bce(D(fake), 0.0)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    world.average_grads(G)
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "mse": mse.item()}


def phase_two_step(G_n: Generator, G_old: Generator, D: Discriminator, opt: torch.optim.Optimizer,
                   x: torch.Tensor, xi: torch.Tensor, xj: torch.Tensor,
                   x_fast: torch.Tensor | None = None, world: World = SOLO) -> float:  # fmt: skip
    """D learns good (x, G_n(x)) vs bad (G_old(x), G_n of a blend of two G_old outputs); 4 separate D calls.

    With ``x_fast`` (frame-skip twins, ours), a fifth call also marks G_n(x_fast) as bad, with weight 1.
    """
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda")
    with torch.no_grad(), amp:
        good = G_n(x)
        bad = G_old(x)
        pseudo = G_n((G_old(xi) + G_old(xj)) / 2)
        fast = G_n(x_fast) if x_fast is not None else None
    groups = [(x, 0.0, 0.1), (good, 0.0, 0.9), (bad, 1.0, 0.001), (pseudo, 1.0, 0.999)]
    if fast is not None:
        groups.append((fast, 1.0, 1.0))
    with amp:
        outs = [D(g[0]) for g in groups]
        loss = sum(w * bce(o, t) for o, (_, t, w) in zip(outs, groups, strict=True))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    world.average_grads(D)
    opt.step()
    return loss.item()


def calibrate(detector: Detector, clips: list[Clip]) -> Calibration:
    """Score held-out normal clips (raw scores: calibration comes after them) and fit the normalisation and
    threshold stored in the checkpoint (a target rate of false alarms per hour, ``score.alarms_per_hour``). The
    scores are kept with the model, for ``calibrate --feedback`` to refit on."""
    scores, seconds_per_frame = score_footage(detector, clips)
    if not any(np.isfinite(fs.patch).any() for fs in scores.values()):
        raise UserError("no moving patch in the held-out clips: cannot calibrate; lower patches.motion_threshold")
    keep(detector, scores, seconds_per_frame)
    return fit_calibration(scores, detector.cfg.score, seconds_per_frame)


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    phase1_path: Path
    minutes: float
    patches: int
    validation: dict | None = None  # ``validation.self_check``'s result, also in the model's metadata


class _Log:
    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: not rank 0, nothing written

    def write(self, **row: Any) -> None:
        if self.path is None:
            return
        with writing(self.path), open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


def _ema(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights (None when ``decay`` is 0).

    GAN weights wander from step to step, so the networks a phase happens to stop on are one noisy draw; the
    average is steadier. Buffers are averaged too, so BatchNorm statistics stay consistent with the weights.
    """
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _save_state(last: Path, G: Generator, D: Discriminator, G_old: Generator | None, opt_g: torch.optim.Optimizer,
                opt_d: torch.optim.Optimizer, gen: torch.Generator, finished: list[Finished], cfg: Config,
                data_id: dict[str, Any], member: int, epochs_done: int, t0: float,
                phase_two: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None) -> None:  # fmt: skip
    """Rewrite ``last.safetensors``: after a phase-one epoch, or mid phase two (``phase_two``'s extra state)."""
    tensors, groups = state_tensors(G, D, G_old, opt_g, opt_d)
    tensors["rng.gen"] = gen.get_state()
    for j, done in enumerate(finished):
        tensors.update(done.tensors(j))
    extra_t, extra_m = phase_two or ({}, {})
    save_checkpoint(last, {**tensors, **extra_t}, {"config": cfg.to_dict(), "data": data_id, "member": member,
                                                   "epochs_done": epochs_done, "elapsed_s": time.perf_counter() - t0,
                                                   **groups, **extra_m})  # fmt: skip


def member_seed(cfg: Config, i: int) -> int:
    return cfg.train.seed + 1000 * i


def _set_threads(cfg: Config, world: World) -> None:
    """train.num_threads when set; under torchrun otherwise this machine's cores shared out among its ranks."""
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    elif world.active:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", world.size))))


def train(cfg: Config, dataset: Dataset | Recordings, run_dir: Path, resume: bool = False, device: torch.device | None = None,
          console: Console | None = None, world: World = SOLO) -> TrainResult:  # fmt: skip
    """Train both phases into ``run_dir`` (each of ``train.members``); ``resume`` continues ``last.safetensors``.

    With a ``world`` of several ranks every rank calls this with the same arguments: each trains on its share of
    every batch; rank 0 alone writes ``run_dir`` and calibrates (the others return once the networks are trained).
    Rank 0 holds the run folder's lock throughout (``runs.run_lock``): a second ``train --resume`` of the same
    run is refused in one line instead of both running to the end and writing the same files.
    """
    with contextlib.ExitStack() as stack:
        with world.together():  # a refused lock stops every rank, as a set-up error does
            if world.is_main:
                run_dir.mkdir(parents=True, exist_ok=True)
                stack.enter_context(run_lock(run_dir, "train"))
        return _train(cfg, dataset, run_dir, resume, device, console, world)


def _train(cfg: Config, dataset: Dataset | Recordings, run_dir: Path, resume: bool, device: torch.device | None,
           console: Console | None, world: World) -> TrainResult:  # fmt: skip
    console = console or Console()
    device = device or torch.device("cpu")
    last = run_dir / "last.safetensors"
    state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
    finished: list[Finished] = []
    with world.together():  # a set-up error on any rank stops every rank, before any of them waits on another
        validate(cfg)  # assignments to one section are checked there; the rules between sections here
        resolve_model_config(cfg.model)
        if cfg.train.batch_size % world.size:
            raise UserError(f"train.batch_size={cfg.train.batch_size} does not split evenly over {world.size} "
                            "processes: make it a multiple of --nproc-per-node")  # fmt: skip
        _set_threads(cfg, world)
        console.print(f"seed {cfg.train.seed}, {torch.get_num_threads()} torch threads{' per process' * world.active} "
                      "(a seeded run repeats on the same thread count and host; train.num_threads sets it)",
                      highlight=False)  # fmt: skip
        if world.active:
            bs = cfg.train.batch_size
            console.print(f"{world.size} processes ({world.backend}): each trains on {bs // world.size} patches of "
                          f"every batch of {bs}, gradients averaged; rank 0 writes the run", highlight=False)  # fmt: skip
        if world.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        train_clips, holdout = split_for_training(dataset, cfg)
        check_holdout(holdout, cfg)
        data_id = {"dataset": dataset.name, "clips": {c.name: len(c) for c in dataset.train}}
        if resume and last.is_file():
            state = resume_state(cfg, last, data_id)
            finished = [Finished.from_tensors(cfg, state[0], i) for i in range(state[1].get("member", 0))]
            where = f" of member {len(finished) + 1}/{cfg.train.members}" if cfg.train.members > 1 else ""
            p2 = f", phase-two step {state[1]['phase2_done']}" if "phase2_done" in state[1] else ""
            console.print(f"resuming {run_dir} after epoch {state[1]['epochs_done']}{p2}{where}")
    log = _Log(run_dir / "log.jsonl" if world.is_main else None)
    if world.is_main:
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
    t0 = time.perf_counter() - (state[1]["elapsed_s"] if state else 0.0)

    with progress_bar(console) as progress:
        all_data, all_fast = collect_patches(train_clips, cfg, progress, world)
        n = 0
        for i in range(len(finished), cfg.train.members):
            data, fast_data = sample_patches(all_data, all_fast, cfg, member_seed(cfg, i))
            n = len(data)
            member_state = state if state is not None and state[1].get("member", 0) == i else None
            finished.append(_train_member(cfg, i, data, fast_data, device, progress, log, last, finished,
                                          member_state, t0, data_id, world))  # fmt: skip
    if not world.is_main:  # rank 0 calibrates and saves; the networks are the same on every rank
        return TrainResult(run_dir, run_dir / "model.safetensors", run_dir / "phase1.safetensors",
                           (time.perf_counter() - t0) / 60, n)  # fmt: skip
    # phase-one reference model: D(G(x)) before phase two
    p1 = Detector(cfg, [(copy.deepcopy(m.G), m.D1) for m in finished], device=device, meta={"phase": 1})
    det = Detector(cfg, [(m.G, m.D) for m in finished], device=device, meta={"phase": 2})
    if cfg.objects.enabled:
        with progress_bar(console) as progress:
            det.objects = fit_objects(train_clips, cfg, progress)
    try:
        p1.calibration = calibrate(p1, holdout)
        det.calibration = calibrate(det, holdout)
        if det.objects is not None and det.calibration.objects is None:
            det.objects = None
            console.print("[yellow]warning: too few moving objects in the held-out footage to calibrate the object "
                          "cue; it is off and the patch score alone decides[/]")  # fmt: skip
    except Exception:  # keep the trained networks: a calibration can be redone, a training costs minutes
        kept = det.save(run_dir / "uncalibrated.safetensors")
        console.print(f"[yellow]calibration failed; the trained networks are kept in {kept}[/]")
        raise
    det.health = describe_footage([*train_clips, *holdout], cfg.patches.analysis_fps,  # camera checks' reference
                                  lambda msg: console.print(escape(msg), highlight=False))  # fmt: skip
    phase1_path = p1.save(run_dir / "phase1.safetensors")
    minutes = (time.perf_counter() - t0) / 60
    det.meta.update(train_minutes=round(minutes, 2), train_patches=n, dataset=dataset.name, device=str(device),
                    environment=host_info(), **footage_meta(dataset, holdout))  # fmt: skip
    from ognet_video.evaluation.validation import checked  # lazy: the check's synthetic anomalies are not needed before

    check = checked(det, holdout, console)
    if check is not None:
        det.meta["validation"] = check
    model_path = det.save(run_dir / "model.safetensors")
    log.write(done=True, minutes=round(minutes, 2), threshold=det.calibration.threshold)
    return TrainResult(run_dir, model_path, phase1_path, minutes, n, check)


def _train_member(cfg: Config, member: int, data: torch.Tensor, fast_data: torch.Tensor | None,
                  device: torch.device, progress: Progress, log: _Log, last: Path, finished: list[Finished],
                  state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None, t0: float,
                  data_id: dict[str, Any], world: World = SOLO) -> Finished:  # fmt: skip
    """Both phases of one (G, D) pair, from its own seed; ``last`` is rewritten after every phase-one epoch.

    Every rank draws the same batches from the same generator and trains on its ``world.part`` of each.
    """
    gen = seed_everything(member_seed(cfg, member))
    G, D = build_models(cfg)
    G, D = G.to(device), D.to(device)
    if world.active:  # BatchNorm over the global batch, as one process would see it
        G, D = global_batchnorm(G), global_batchnorm(D)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.train.lr_g)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.train.lr_d)
    G_old: Generator | None = None
    start_epoch = 0
    if state is not None:
        tensors, meta = state
        G.load_state_dict(unprefixed(tensors, "G"))
        D.load_state_dict(unprefixed(tensors, "D"))
        if any(k.startswith("G_old.") for k in tensors):
            G_old = copy.deepcopy(G)
            G_old.load_state_dict(unprefixed(tensors, "G_old"))
        optimizer_from_tensors(opt_g, tensors, "opt_g", meta["opt_g_groups"])
        optimizer_from_tensors(opt_d, tensors, "opt_d", meta["opt_d_groups"])
        torch.set_rng_state(tensors["rng.torch"])
        gen.set_state(tensors["rng.gen"])
        start_epoch = meta["epochs_done"]
    tag = f"member {member + 1}/{cfg.train.members} " if cfg.train.members > 1 else ""
    n, bs = len(data), cfg.train.batch_size
    steps, part = n // bs, world.part(bs)
    # ---- phase one -------------------------------------------------------------------------
    for epoch in range(start_epoch, cfg.train.epochs):
        G.train()
        D.train()
        order = torch.randperm(n, generator=gen)
        task = progress.add_task(f"{tag}phase 1 epoch {epoch + 1}/{cfg.train.epochs}", total=steps, info="")
        sums = {"loss_d": 0.0, "loss_g": 0.0, "mse": 0.0}
        for i in range(steps):
            x = data[order[i * bs : (i + 1) * bs][part]].to(device, non_blocking=True)
            out = phase_one_step(G, D, opt_g, opt_d, x, cfg, gen, world=world)
            for k in sums:
                sums[k] += out[k]
            if i % 10 == 0:
                progress.update(task, completed=i + 1, info=f"D {out['loss_d']:.3f} G {out['loss_g']:.3f}")
        progress.update(task, completed=steps)
        world.average_buffers(G)  # BatchNorm statistics: each rank saw its share of the batches
        world.average_buffers(D)
        if epoch == 0:
            G_old = copy.deepcopy(G).eval()  # "old is gold": the low-epoch G
        means = dict(zip(sums, world.mean([v / steps for v in sums.values()]), strict=True))
        log.write(member=member, phase=1, epoch=epoch + 1, **means, seconds=round(time.perf_counter() - t0, 1))
        if world.is_main:
            _save_state(last, G, D, G_old, opt_g, opt_d, gen, finished, cfg, data_id, member, epoch + 1, t0)
    assert G_old is not None
    D1 = copy.deepcopy(D).eval()
    # ---- phase two -------------------------------------------------------------------------
    G.eval()
    G_old.eval()
    D.train()
    if cfg.train.phase2_norm == "frozen":  # BatchNorm keeps phase one's statistics; its scale and shift still learn
        for m in D.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
    opt2 = torch.optim.Adam(D.parameters(), lr=cfg.train.phase2_lr)
    d_avg = _ema(D, cfg.train.phase2_ema)
    done, losses = load_phase_two(*state, D1, opt2, d_avg) if state is not None else (0, [])
    task = progress.add_task(f"{tag}phase 2", total=cfg.train.phase2_steps, completed=done, info="")
    for step in range(done, cfg.train.phase2_steps):
        idx = torch.randint(0, n, (3, bs), generator=gen)[:, part]
        x, xi, xj = (data[i].to(device, non_blocking=True) for i in idx)
        x_fast = None
        if fast_data is not None:
            x_fast = fast_data[torch.randint(0, len(fast_data), (bs,), generator=gen)[part]].to(device)
        losses.append(phase_two_step(G, G_old, D, opt2, x, xi, xj, x_fast, world=world))
        if d_avg is not None:
            d_avg.update_parameters(D)
        progress.update(task, advance=1, info=f"D {losses[-1]:.3f}")
        if world.is_main and (step + 1) % PHASE2_CHECKPOINT_EVERY == 0 and step + 1 < cfg.train.phase2_steps:
            _save_state(last, G, D, G_old, opt_g, opt_d, gen, finished, cfg, data_id, member, cfg.train.epochs, t0,
                        phase_two_tensors(D1, opt2, d_avg, step + 1, losses))  # fmt: skip
    D_final = D if d_avg is None else d_avg.module
    world.average_buffers(D_final)
    first, final = world.mean([losses[0], losses[-1]])
    log.write(member=member, phase=2, steps=len(losses), loss_first=first, loss_last=final,
              seconds=round(time.perf_counter() - t0, 1))  # fmt: skip
    if world.active:  # the ranks trained in step: the same networks everywhere (checked, and logged)
        digests = world.gather(digest(G, G_old, D1, D_final))
        log.write(member=member, rank_digests=digests)
        if len(set(digests)) > 1:
            raise RuntimeError(f"the {world.size} training processes ended with different networks: {digests}")
    return Finished(G, D_final, D1)
