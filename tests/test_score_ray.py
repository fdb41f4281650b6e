"""``score --engine ray``: the same files as the local engine, a killed worker retried, a failing clip
reported, and a killed driver resumed. One local Ray instance (2 CPUs) serves the whole module."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import extra_module, quiet_console, run_cli
from test_score import Killed, manifest_lines, out_files, touch

from ognet_video import score as score_pkg
from ognet_video.cli import common as cli_common
from ognet_video.errors import UserError
from ognet_video.models.detector import Detector
from ognet_video.score import RayOptions, ScoreOptions, ray_engine, read_manifest
from ognet_video.score.manifest import Manifest
from ognet_video.score.ray_engine import ModelSpec, score_task
from ognet_video.score.run import EXIT_FAILED_BASE, Job


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance for this module; its address lets subprocesses join it as a cluster."""
    ray = extra_module("ray")
    try:
        ray.init(address="local", num_cpus=2, log_to_driver=False, include_dashboard=False,
                 logging_level=logging.ERROR)  # fmt: skip
    except Exception as exc:  # e.g. a sandbox that forbids what Ray's daemons need
        pytest.skip(f"ray cannot start here: {type(exc).__name__}: {exc}")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def model(trained_run) -> Path:
    return trained_run.model_path


@pytest.fixture(scope="module")
def clips(tmp_path_factory, walkway) -> Path:
    """Five frame folders of 20 frames (the walkway's training and test clips)."""
    root = tmp_path_factory.mktemp("ray-clips")
    for split in ("training", "testing"):
        for d in sorted((walkway / split / "frames").iterdir()):
            shutil.copytree(d, root / f"{split[:4]}{d.name}")
    return root


@pytest.fixture(scope="module")
def local_ref(tmp_path_factory, model, clips) -> Path:
    """The local engine's output folder for ``clips``, with timelines."""
    out = tmp_path_factory.mktemp("ref") / "out"
    res = run(clips, model, out, "local", timelines=True)
    assert res.exit_code == 0
    return out


def run(inputs, model, out, engine="ray", ray_opts=None, **opts) -> score_pkg.ScoreResult:
    inputs = inputs if isinstance(inputs, list) else [inputs]
    return score_pkg.score([str(i) for i in inputs], model, out=out, opts=ScoreOptions(**opts), engine=engine,
                           ray_opts=ray_opts, console=quiet_console())  # fmt: skip


def same_outputs(a: Path, b: Path) -> None:
    """Every file byte for byte (run.json names no engine) and every manifest field but the timing."""
    assert out_files(a) == out_files(b)

    def recs(out: Path) -> list[dict]:
        return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in manifest_lines(out)),
                      key=lambda r: r["input"])  # fmt: skip

    assert recs(a) == recs(b)


def test_ray_outputs_are_byte_identical_to_local(ray_cluster, tmp_path, model, clips, local_ref):
    res = run(clips, model, tmp_path / "out", timelines=True)
    assert (res.exit_code, res.scored, res.frames) == (0, 5, 100)
    same_outputs(local_ref, tmp_path / "out")
    assert len(manifest_lines(tmp_path / "out")) == 5
    again = run(clips, model, tmp_path / "out", timelines=True)  # finished clips are skipped, as locally
    assert (again.scored, again.skipped, again.exit_code) == (0, 5, 0)
    other = Detector.load(model).save(tmp_path / "other.safetensors", extra={"note": "another model"})
    with pytest.raises(UserError, match="another model"):  # run.json's model check is the same
        run(clips, other, tmp_path / "out")


def _crash_once_mid_clip(marker: str, clip: str):
    """A task for ``clip`` whose worker process dies after its first batch, on the first try only."""

    def task(data, spec, job, opts, threads):
        if job.name == clip and not os.path.exists(marker):
            from ognet_video.sinks import files

            write = files.ScoresCsv.write

            def dying(self, batch):
                write(self, batch)
                open(marker, "w").close()
                os._exit(1)  # a killed worker: no exception, no cleanup

            files.ScoresCsv.write = dying
        return score_task(data, spec, job, opts, threads)

    return task


def _always_crash(clip: str):
    def task(data, spec, job, opts, threads):
        if job.name == clip:
            os._exit(1)
        return score_task(data, spec, job, opts, threads)

    return task


def test_a_killed_worker_is_retried_and_its_clip_scored_once(ray_cluster, tmp_path, monkeypatch, model, clips,
                                                            local_ref):  # fmt: skip
    marker = tmp_path / "crashed-once"
    monkeypatch.setattr(ray_engine, "score_task", _crash_once_mid_clip(str(marker), "test01"))
    res = run(clips, model, tmp_path / "out", timelines=True)
    assert marker.exists()  # the worker did die mid-clip
    assert (res.exit_code, res.scored) == (0, 5)
    assert sorted(r["input"] for r in manifest_lines(tmp_path / "out")) == sorted(str(p) for p in clips.iterdir())
    assert not [p for p in (tmp_path / "out" / "clips").iterdir() if p.name.startswith(".")]
    same_outputs(local_ref, tmp_path / "out")


def test_a_clip_that_always_fails_is_reported_not_fatal(ray_cluster, tmp_path, monkeypatch, model, clips,
                                                       test_frames_broken):  # fmt: skip
    monkeypatch.setattr(ray_engine, "score_task", _always_crash("test02"))
    one_bad = tmp_path / "in" / "onebad"
    shutil.copytree(clips / "test01", one_bad)
    touch(sorted(one_bad.iterdir())[7], b"not a jpeg")
    res = run([clips, test_frames_broken, one_bad], model, tmp_path / "out", ray_opts=RayOptions(max_retries=1))
    status = {r.name: (r.status, r.reason) for r in res.records}
    assert status["test02"][0] == "failed" and "worker died" in status["test02"][1]
    assert status["broken"][0] == "failed" and "000.jpg" in status["broken"][1]  # the engine's own reason
    assert {k for k, (s, _) in status.items() if s == "done"} == {"test01", "trai01", "trai02", "trai03", "onebad"}
    assert "007.jpg" in status["onebad"][1] and {r.name: r.skipped for r in res.records}["onebad"] == 1
    assert res.exit_code == EXIT_FAILED_BASE + 2
    rows = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert len(rows) == 8 and [r.split(",")[9] for r in rows[-2:]] == ["failed", "failed"]
    assert not (tmp_path / "out" / "clips" / "test02").exists() and not (tmp_path / "out" / "clips" / "broken").exists()


@pytest.fixture
def test_frames_broken(tmp_path, walkway) -> Path:
    broken = tmp_path / "in" / "broken"
    shutil.copytree(walkway / "testing" / "frames" / "01", broken)
    for f in broken.iterdir():  # no frame readable (one bad frame is skipped, not the clip)
        touch(f, b"not a jpeg")
    return broken


def test_driver_dies_after_publishing_then_resume_is_exact(ray_cluster, tmp_path, monkeypatch, model, clips,
                                                          local_ref):  # fmt: skip
    """The driver stops between publishing a clip and its manifest line (the worst moment) and reruns."""
    calls = {"n": 0}
    orig = Manifest.append

    def append(self, rec):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed
        orig(self, rec)

    monkeypatch.setattr(Manifest, "append", append)
    with pytest.raises(Killed):
        run(clips, model, tmp_path / "out", timelines=True)
    monkeypatch.undo()
    assert len(read_manifest(tmp_path / "out")) == 2
    res = run(clips, model, tmp_path / "out", timelines=True)
    assert (res.skipped, res.scored, res.exit_code) == (2, 3, 0)
    same_outputs(local_ref, tmp_path / "out")


SLOW_DRIVER = """
import sys, time
from ognet_video import cli
from ognet_video.score import ray_engine
task = ray_engine.score_task
def slow(*args):
    time.sleep(1.0)  # on the worker: the kill lands mid-run
    return task(*args)
ray_engine.score_task = slow
sys.argv = ["ognet-video", *sys.argv[1:]]
cli.main()
"""


def test_sigkill_driver_then_resume_every_clip_once(ray_cluster, tmp_path, model, clips, local_ref):
    """A real SIGKILL of a driver on a cluster; the rerun starts Ray on this machine itself, quietly."""
    args = [clips, "--model", model, "--project", tmp_path, "--name", "k", "--timelines", "--engine", "ray"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    cmd = [sys.executable, "-c", SLOW_DRIVER, "score", *map(str, args), "--address", ray_cluster, "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out = tmp_path / "k-1"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(read_manifest(out)) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(manifest_lines(out)) < 5
    again = run_cli("score", *args, "--resume", timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ray on this machine" in again.stdout and again.stderr == ""  # no Ray log lines on the console
    assert sorted(r["input"] for r in manifest_lines(out)) == sorted(str(p) for p in clips.iterdir())
    same_outputs(local_ref, out)


# ---------------------------------------------------------------- without a cluster


def test_a_worker_checks_the_model_id_and_the_input(tmp_path, model, detector, clips):
    from ognet_video.sources.discover import ClipInput, fingerprint

    clip = ClipInput(clips / "test01", "frames")
    spec = ModelSpec("0" * 64, ".safetensors", "cpu", detector.cfg, detector.calibration)
    with pytest.raises(UserError, match="changed"):
        score_task(model.read_bytes(), spec, Job(clip, "test01", fingerprint(clip)), ScoreOptions(), 1)
    rec, files = score_task(b"", spec, Job(clip, "test01", (1, 2, 3)), ScoreOptions(), 1)  # another file there
    assert rec.status == "failed" and "same path" in rec.reason and files == {}


def test_engine_ray_without_ray_is_one_line(main_cli, monkeypatch, tmp_path, model, clips):
    monkeypatch.setattr(cli_common, "console", quiet_console())
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    proc = main_cli("score", clips, "--model", model, "--project", tmp_path, "--engine", "ray")
    text = cli_common.console.file.getvalue()
    assert proc.returncode == 2 and 'pip install "ognet-video[ray]"' in text and "Traceback" not in proc.out
    assert not list(tmp_path.iterdir())  # nothing written
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    for args, needle in (
        (("--engine", "spark"), "--engine"),
        (("--engine", "ray", "--cpus-per-task", "0"), "cpus"),
        (("--engine", "ray", "--address", f"127.0.0.1:{port}"), "no Ray cluster answers"),
        (("--engine", "ray", "--address", "nowhere"), "HOST:PORT"),
    ):
        monkeypatch.delitem(sys.modules, "ray", raising=False)
        cli_common.console.file.truncate(0)
        proc = main_cli("score", clips, "--model", model, "--project", tmp_path, *args)
        assert proc.returncode == 2 and needle in cli_common.console.file.getvalue()
