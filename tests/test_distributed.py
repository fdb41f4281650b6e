"""Training on two processes (gloo on the CPU): under torchrun from the command line, and resumed mid-run."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import TINY, quiet_console, same_tensor

from ognet_video.config import load_config
from ognet_video.data import load_dataset, read_gray
from ognet_video.models.checkpoint import load_checkpoint
from ognet_video.models.detector import Detector
from ognet_video.stream.scoring import FrameScorer
from ognet_video.training.distributed import SOLO, GlobalBatchNorm2d, World, global_batchnorm

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")


def quiet_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NO_COLOR="1")
    return env


# ``python -m ognet_video`` that says, as the interpreter starts its teardown, which of gloo's threads are still
# running (Linux: /proc/self/task). A process group that outlives ``distributed.close`` keeps them (its worker
# and transport threads), and a rank then aborts at exit now and then (issue 41: ``terminate called without an
# active exception``, about one run in 30 beside two busy loops): this shows the cause on every run.
CHECKED_MAIN = """
import atexit, os, runpy, sys
def threads_left():
    tasks = "/proc/self/task"
    names = [open(f"{tasks}/{t}/comm").read().strip() for t in os.listdir(tasks)] if os.path.isdir(tasks) else []
    if any("gloo" in n for n in names):
        print(f"rank {os.environ.get('RANK')}: threads left at exit: {sorted(names)}", file=sys.stderr, flush=True)
atexit.register(threads_left)  # registered first: it runs last
runpy.run_module("ognet_video", run_name="__main__", alter_sys=True)
"""
THREADS_LEFT = re.compile(r"rank \d+: threads left at exit")  # torchrun's failure report quotes the code: no digit


def torchrun(*args: str) -> list[str]:
    """``torchrun --standalone --nproc-per-node 2 -m ognet_video ARGS``, each rank checked at exit (above)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
            sys.executable, "-c", CHECKED_MAIN, *args]  # fmt: skip


def test_torchrun_two_processes_train_one_run(walkway, tmp_path):
    """torchrun -m ognet_video train: one run folder, written by rank 0; both ranks end with the same networks,
    and with the process group gone before the interpreter's teardown."""
    project = tmp_path / "runs"
    cmd = torchrun("train", "folder", "--data", str(walkway), "--project", str(project), "--name", "two", "--no-eval",
                   *TINY)  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=quiet_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert not THREADS_LEFT.search(out.stderr), out.stderr
    assert out.stdout.count("done in") == 1  # rank 0 alone prints
    assert "2 processes (gloo): each trains on 16 patches of every batch of 32" in out.stdout
    assert [p.name for p in project.iterdir()] == ["two-1"]
    run = project / "two-1"
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r.get("phase") == 1] == [1, 2]  # one line per epoch: rank 0 alone writes
    digests = [r["rank_digests"] for r in rows if "rank_digests" in r]
    assert len(digests) == 1 and len(digests[0]) == 2 and digests[0][0] == digests[0][1]
    det = Detector.load(run / "model.safetensors")
    assert det.calibration is not None
    clip = load_dataset("folder", walkway).test[0]
    fs = FrameScorer(det).score_clip(read_gray(f) for f in clip.frames)
    assert np.isfinite(fs.raw[1:]).all()


def test_torchrun_user_error_ends_every_rank_with_one_line(walkway, tmp_path):
    cmd = torchrun("train", "folder", "--data", str(walkway), "--project", str(tmp_path / "runs"), *TINY,
                   "train.batch_size=33")  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=quiet_env())
    assert out.returncode != 0
    assert not THREADS_LEFT.search(out.stderr), out.stderr  # a user error leaves the group too
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]  # diagnostics: stderr
    assert len(errors) == 1 and "does not split evenly over 2 processes" in errors[0] and "error:" not in out.stdout
    assert not list((tmp_path / "runs").iterdir())  # nothing trained: no run left behind


# ``python -m ognet_video`` for a rank that records its exit code in $EXIT_DIR/rankN (torchrun reports none after a
# signal) and, with $SLOW_STEP, sleeps that long in each phase-one step so that a signal lands mid-run
RANK_MAIN = """
import os, runpy, sys, time
import ognet_video.training.train as train
if os.environ.get("SLOW_STEP"):
    real = train.phase_one_step
    def step(*args, **kwargs):
        time.sleep(float(os.environ["SLOW_STEP"]))
        return real(*args, **kwargs)
    train.phase_one_step = step
try:
    runpy.run_module("ognet_video", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    with open(os.path.join(os.environ["EXIT_DIR"], "rank" + os.environ["RANK"]), "w") as f:
        f.write(str(exc.code))
    raise
"""


def test_torchrun_sigterm_stops_every_rank_with_143_and_a_resume_line_that_resumes(walkway, tmp_path):
    """SIGTERM to torchrun (kill, docker stop, a scheduler), which passes it to its ranks: each exits 143, rank 0
    prints the torchrun command that resumes, and that command finishes the run from its last epoch."""
    import shlex
    import signal
    import time

    project, exits, run = tmp_path / "runs", tmp_path / "exits", tmp_path / "runs" / "stop-1"
    exits.mkdir()
    args = ["train", "folder", "--data", str(walkway), "--project", str(project), "--name", "stop", "--no-eval", *TINY,
            "train.epochs=4"]  # fmt: skip
    cmd = torchrun(*args)
    cmd[cmd.index(CHECKED_MAIN)] = RANK_MAIN
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=quiet_env() | {"EXIT_DIR": str(exits), "SLOW_STEP": "0.3"})  # fmt: skip
    try:
        t0 = time.monotonic()
        while not (run / "last.safetensors").is_file() and proc.poll() is None and time.monotonic() - t0 < 90:
            time.sleep(0.05)  # the first epoch is saved: stop in the second (6 steps of 0.3 s)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert {p.name: p.read_text() for p in exits.iterdir()} == {"rank0": "143", "rank1": "143"}, out + err
    stops = [line for line in err.splitlines() if line.startswith("stopped")]
    assert len(stops) == 1 and stops[0].startswith("stopped (SIGTERM); resume with: torchrun "), err  # rank 0 alone
    # torchrun itself ends with its own SignalException traceback; the ranks print no error and no traceback
    assert not [line for line in (out + err).splitlines() if line.startswith("error:")] and "Terminated" not in err
    assert not (run / "model.safetensors").exists() and load_checkpoint(run / "last.safetensors")[1]["epochs_done"] < 4
    resume = shlex.split(stops[0].split("resume with: ", 1)[1])
    assert resume[:6] == ["torchrun", "--standalone", "--nproc-per-node", "2", "-m", "ognet_video"], resume
    assert resume[6:] == [*args, "--resume"]
    done = subprocess.run(torchrun(*resume[6:]), capture_output=True, text=True, timeout=120,
                          env=quiet_env() | {"COLUMNS": "400"})  # fmt: skip
    assert done.returncode == 0 and f"resuming {run} after epoch" in done.stdout, done.stdout + done.stderr
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in rows if r.get("phase") == 1]
    assert epochs == sorted(set(epochs)) == [1, 2, 3, 4], epochs  # each epoch once: none lost, none repeated
    assert Detector.load(run / "model.safetensors").calibration is not None


class Interrupted(Exception):
    pass


def _worker(rank: int, port: int, root: str, out: str) -> None:
    """One rank: an uninterrupted run, then a run stopped in epoch two on every rank and resumed."""
    import ognet_video.training.train as train_mod

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    world = World(rank, 2, rank, "gloo")
    ds, cfg, base = load_dataset("folder", Path(root)), load_config(None, TINY), Path(out)
    train_mod.train(cfg, ds, base / "whole", console=quiet_console(), world=world)
    real, calls = train_mod.phase_one_step, [0]

    def step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 8:  # every rank at the same step: 6 steps an epoch, the 2nd one of epoch two
            raise Interrupted
        return real(*args, **kwargs)

    train_mod.phase_one_step = step
    try:
        train_mod.train(cfg, ds, base / "cut", console=quiet_console(), world=world)
    except Interrupted:
        assert not (base / "cut" / "model.safetensors").exists()
        (base / f"interrupted-{rank}").touch()
    train_mod.phase_one_step = real
    train_mod.train(cfg, ds, base / "cut", resume=True, console=quiet_console(), world=world)
    dist.destroy_process_group()


def test_two_ranks_resume_bit_exact(walkway, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(port, str(walkway), str(tmp_path)), nprocs=2, start_method="spawn")
    assert (tmp_path / "interrupted-0").exists() and (tmp_path / "interrupted-1").exists()
    _, meta = load_checkpoint(tmp_path / "cut" / "last.safetensors")
    assert meta["epochs_done"] == 2
    for name in ("model.safetensors", "phase1.safetensors"):
        a, ma = load_checkpoint(tmp_path / "whole" / name)
        b, mb = load_checkpoint(tmp_path / "cut" / name)
        assert sorted(a) == sorted(b) and all(same_tensor(a[k], b[k]) for k in a), name
        assert ma["calibration"] == mb["calibration"]


def test_one_process_world_changes_nothing():
    assert not SOLO.active and SOLO.is_main and SOLO.part(32) == slice(0, 32)
    assert SOLO.mean([0.1, 0.2]) == [0.1, 0.2] and SOLO.gather("x") == ["x"]
    assert World(1, 2).part(32) == slice(16, 32)


def _bn_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5) * 3 + 1
    bn = global_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)))
    assert isinstance(bn[0], GlobalBatchNorm2d)
    with torch.no_grad():
        bn[0].weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    mine = x[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
    y = bn(mine)
    (y * torch.arange(y.numel()).reshape(y.shape)).sum().backward()  # a loss that weighs every output differently
    torch.save({"y": y.detach(), "grad": mine.grad, "w": bn[0].weight.grad, "state": bn.state_dict()},
               f"{out}/bn-{rank}.pt")  # fmt: skip
    dist.destroy_process_group()


def test_global_batchnorm_equals_one_batchnorm_over_the_whole_batch(tmp_path):
    """Two ranks with half a batch each: the outputs, the gradients of the inputs and weights (summed over the
    ranks, as the averaged gradient of the mean loss is) and the running statistics of one BatchNorm on all of it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_bn_worker, args=(port, str(tmp_path)), nprocs=2, start_method="spawn")
    got = [torch.load(tmp_path / f"bn-{r}.pt") for r in (0, 1)]
    torch.manual_seed(0)
    x = (torch.randn(8, 3, 5, 5) * 3 + 1).requires_grad_(True)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    y = bn(x)
    weights = torch.cat([torch.arange(y.numel() // 2).reshape(4, 3, 5, 5)] * 2)
    (y * weights).sum().backward()
    torch.testing.assert_close(torch.cat([g["y"] for g in got]), y.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([g["grad"] for g in got]), x.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(got[0]["w"] + got[1]["w"], bn.weight.grad, rtol=1e-4, atol=1e-3)
    for k, v in bn.state_dict().items():
        torch.testing.assert_close(got[0]["state"][f"0.{k}"], v, rtol=1e-5, atol=1e-6)
        assert torch.equal(got[0]["state"][f"0.{k}"], got[1]["state"][f"0.{k}"])  # every rank holds the same statistics


def _steps(world: World, out: str) -> None:
    """Two phase-one steps of the default networks on a fixed batch of 16 patches (this rank's share of it)."""
    from ognet_video.models.model import build_models
    from ognet_video.training.train import phase_one_step, seed_everything

    cfg = load_config()
    gen = seed_everything(0)
    G, D = build_models(cfg)
    if world.active:
        G, D = global_batchnorm(G), global_batchnorm(D)
    # SGD: Adam's first steps are +-lr whatever the gradient's size, so the rounding noise in the gradients of the
    # biases before a BatchNorm (zero in exact arithmetic) would become differences of 2 lr
    opt_g, opt_d = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (G, D))
    s = cfg.patches.size
    x = torch.rand(16, 2, s, s, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for _ in range(2):
        phase_one_step(G, D, opt_g, opt_d, x[world.part(16)], cfg, gen, world=world)
    torch.save({**{f"G.{k}": v for k, v in G.state_dict().items()}, **{f"D.{k}": v for k, v in D.state_dict().items()}},
               f"{out}/steps-{world.rank}-{world.size}.pt")  # fmt: skip


def _steps_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    _steps(World(rank, 2, rank, "gloo"), out)
    dist.destroy_process_group()


def test_two_ranks_take_the_steps_one_process_takes(tmp_path):
    """The same recipe, not a variant: after two adversarial steps, two ranks with half the batch each hold the
    networks (weights and BatchNorm statistics) one process holds, up to float rounding (1e-7 to 2e-5 here; with
    BatchNorm per rank the statistics differ by up to 2e-2). Over many steps the rounding grows, as in any GAN run
    on another thread count: a 2-process run is another draw of the recipe."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_steps_worker, args=(port, str(tmp_path)), nprocs=2, start_method="spawn")
    _steps(SOLO, str(tmp_path))
    one, two = torch.load(tmp_path / "steps-0-1.pt"), torch.load(tmp_path / "steps-0-2.pt")
    assert sorted(one) == sorted(two)
    for k, v in one.items():
        torch.testing.assert_close(two[k], v, rtol=0, atol=2e-4, msg=k)  # BatchNorm per rank: up to 2e-2
