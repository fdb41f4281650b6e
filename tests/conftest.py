"""Shared fixtures: one tiny synthetic dataset and one tiny trained run, reused across the suite.

Everything runs on CPU with a single torch thread: on a 2-core machine that is shared with other jobs,
torch's default of one thread per core makes these tiny models ~10x slower (OpenMP spin contention).
"""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch
from rich.console import Console

from ognet_video.config import Config, load_config
from ognet_video.data import Dataset, load_dataset
from ognet_video.data.synthetic import write_walkway
from ognet_video.models.detector import Detector
from ognet_video.training.train import TrainResult, train
from pipelines.settings import PED2  # noqa: F401 - the one place tests find Ped2 (OGNET_PED2)

torch.set_num_threads(1)


# a model small enough that two epochs on a few hundred patches take seconds
TINY = [
    "model.preset=custom",
    "model.g_arch=strided",
    "model.g_channels=[4,8,8,8]",
    "model.d_channels=[4,8,8,8]",
    # the paper's input, a 5 x 8 grid of gray 45 px cells: no optical flow to compute (and so no frame-skip
    # twins, which need it), and the frame score is the highest patch score. The rest is the default recipe
    "patches.size=45",
    "patches.height=225",
    "patches.width=360",
    "patches.stride=45",
    "patches.channels=gray",
    "train.skip_frames=[]",
    "score.aggregate=max",
    "train.epochs=2",
    "train.batch_size=32",
    "train.max_patches=256",
    "train.phase2_steps=5",
    "train.holdout_clips=1",
    "train.members=1",  # ensembles: test_checkpoint, test_export
    "score.crowd_correction=true",  # off in the default recipe, on in ped2-large.yaml: the tiny model covers it
]


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=120)


@pytest.fixture(scope="session")
def tiny_config():
    """Factory: the tiny config plus extra ``section.key=value`` overrides."""

    def make(*extra: str) -> Config:
        return load_config(None, [*TINY, *extra])

    return make


@pytest.fixture(scope="session")
def walkway(tmp_path_factory) -> Path:
    """Synthetic frames-layout dataset: 3 normal training clips, 2 labelled test clips, 20 frames each."""
    return write_walkway(tmp_path_factory.mktemp("walkway"), train_clips=3, test_clips=2, frames=20)


@pytest.fixture(scope="session")
def walkway_ds(walkway) -> Dataset:
    return load_dataset("folder", walkway)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, walkway_ds, tiny_config) -> TrainResult:
    """One uninterrupted tiny training run (2 epochs + 5 phase-two steps)."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny-1"
    return train(tiny_config(), walkway_ds, run_dir, console=quiet_console())


@pytest.fixture(scope="session")
def detector(trained_run) -> Detector:
    """The tiny trained run's model, loaded once."""
    return Detector.load(trained_run.model_path)


def extra_module(name: str) -> ModuleType:
    """A module of the ``[test]`` extra: CI installs it, so there an import error fails the test instead of turning
    it into a skip; elsewhere a missing one skips with the reason."""
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"{name} is not installed (pip install -e '.[test]')")


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-equal tensors, NaN included (a model's held-out scores mark a static cell NaN, and NaN != NaN)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        return bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.5), b.nan_to_num(0.5)))
    return bool(torch.equal(a, b))


def service_missing(reason: str) -> None:
    """A service a test needs (mosquitto, ffmpeg, chromium) is missing: fail in CI, where ``.ci/run`` installs it
    with apt-get, so a failed install cannot pass as a green run of skips; skip with the reason elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: .ci/run must install it)", pytrace=False)
    pytest.skip(reason)


def cli_command() -> list[str]:
    """The installed ``ognet-video`` entry point of this interpreter (falls back to ``python -m``)."""
    script = Path(sys.executable).parent / "ognet-video"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ognet_video.cli"]


def run_cli(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NO_COLOR="1")
    return subprocess.run(
        [*cli_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


@pytest.fixture
def cli():
    """Run the ``ognet-video`` command line in a subprocess: ``cli("eval", path, "--data", root)``."""
    return run_cli


@pytest.fixture
def console() -> Console:
    return quiet_console()


@pytest.fixture
def main_cli(monkeypatch, capsys):
    """``ognet_video.cli.main`` in this process (no interpreter start-up): exit code, stdout, stderr, and both as ``out``."""
    from ognet_video import cli as cli_mod

    def run(*args: str) -> SimpleNamespace:
        monkeypatch.setattr(sys, "argv", ["ognet-video", *map(str, args)])
        code = 0
        try:
            cli_mod.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err, out=out.out + out.err)

    return run
