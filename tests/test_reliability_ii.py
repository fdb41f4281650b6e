"""Issue 39 (Reliability II): frames in their true order, diagnostics on stderr, the metrics server on localhost,
signals that say what they are, one training per run folder (reads: test_reads.py; paths: test_safe_paths.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import quiet_console, same_tensor

from ognet_video import score as score_pkg
from ognet_video.data import load_dataset
from ognet_video.score import ClipInput, discover
from ognet_video.sources import ImageFiles, image_files, read_gray


def _unpadded(src: Path, dst: Path, n: int = 12) -> list[Path]:
    """The first ``n`` frames of ``src`` copied as frame0.jpg ... frame11.jpg (no zero padding)."""
    dst.mkdir(parents=True)
    frames = image_files(src)[:n]
    for i, f in enumerate(frames):
        shutil.copy(f, dst / f"frame{i}.jpg")
    return frames


def test_unpadded_frame_numbers_are_read_in_numeric_order(walkway, tmp_path):
    src = walkway / "testing" / "frames" / "01"
    frames = _unpadded(src, tmp_path / "clip")
    want = [read_gray(f) for f in frames]
    assert [p.name for p in image_files(tmp_path / "clip")][:3] == ["frame0.jpg", "frame1.jpg", "frame2.jpg"]
    for source in (ImageFiles(tmp_path / "clip"), ImageFiles(str(tmp_path / "clip" / "*.jpg")),
                   ClipInput(tmp_path / "clip", "frames").source(10.0)):  # fmt: skip
        got = [f.image for f in source.frames()]
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_train_and_eval_read_a_frames_layout_in_the_same_numeric_order(walkway, tmp_path):
    root = tmp_path / "ds"
    _unpadded(walkway / "training" / "frames" / "01", root / "training" / "frames" / "1")
    for clip in ("2", "10"):
        shutil.copytree(root / "training" / "frames" / "1", root / "training" / "frames" / clip)
    _unpadded(walkway / "testing" / "frames" / "01", root / "testing" / "frames" / "1")
    ds = load_dataset("folder", root)
    assert [c.name for c in ds.train] == ["1", "2", "10"]
    assert [p.name for p in ds.train[0].frames][:3] == ["frame0.jpg", "frame1.jpg", "frame2.jpg"]


def test_recordings_are_taken_in_natural_order(tmp_path):
    """train holds out the last recordings: rec10 is later than rec2."""
    for n in (1, 2, 10):
        (tmp_path / f"rec{n}.mp4").write_bytes(b"x")
    assert [c.path.name for c in discover([str(tmp_path)])] == ["rec1.mp4", "rec2.mp4", "rec10.mp4"]


def test_score_of_unpadded_frames_equals_padded(walkway, trained_run, tmp_path):
    src = walkway / "testing" / "frames" / "01"
    _unpadded(src, tmp_path / "unpadded" / "c")
    padded = tmp_path / "padded" / "c"
    padded.mkdir(parents=True)
    for f in image_files(src)[:12]:
        shutil.copy(f, padded / f.name)
    rows = []
    for which in ("unpadded", "padded"):
        res = score_pkg.score([str(tmp_path / which / "c")], trained_run.run_dir, out=tmp_path / f"out-{which}",
                              console=quiet_console())  # fmt: skip
        rows.append((res.out / "clips" / "c" / "scores.csv").read_text())
    assert rows[0] == rows[1]


# ---------------------------------------------------------------- item 8: diagnostics on stderr


def test_error_and_warning_lines_go_to_stderr_never_stdout(main_cli, trained_run, walkway, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = walkway / "testing" / "frames" / "01"
    for args in (("score", tmp_path / "nope", "--model", trained_run.run_dir),
                 ("watch", tmp_path / "nope", "--model", trained_run.run_dir, "--sink", "stdout"),
                 ("watch", clip, "--model", trained_run.run_dir, "--max-frames", "0", "--sink", "stdout"),
                 ("train", "folder", "--data", tmp_path / "nope")):  # fmt: skip
        proc = main_cli(*args)
        assert proc.returncode == 2 and "error:" in proc.stderr, (args, proc.out)
        assert "error" not in proc.stdout, (args, proc.stdout)
    proc = main_cli("watch", clip, "--model", trained_run.run_dir, "--sink", "stdout", "--max-frames", "3")
    assert proc.returncode == 0, proc.out
    assert all(line.startswith("{") for line in proc.stdout.splitlines()), proc.stdout  # data only


def test_a_yellow_or_red_line_is_a_diagnostic(capsys):
    from ognet_video.cli.common import CliConsole

    con = CliConsole()
    con.print("[yellow]a warning[/]")
    con.print("[red]2 of 3 clips not scored[/]")
    con.print("[red]event[/] frames 1-3")
    con.print("a table")
    out = capsys.readouterr()
    assert "a warning" in out.err and "not scored" in out.err and "a warning" not in out.out
    assert "event" in out.out and "a table" in out.out and "event" not in out.err


def test_an_os_error_without_a_path_is_one_plain_line(main_cli, monkeypatch):
    from ognet_video.cli import common

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(common, "app", full)
    proc = main_cli("score", "x")
    assert proc.returncode == 1 and proc.stderr.startswith("error: No space left on device;"), proc.out
    assert "::" not in proc.stderr and proc.stdout == ""


def _disk_full(*a, **k):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")  # as a write or fsync raises it: no filename


def test_a_full_disk_names_the_file_it_was_writing(tmp_path, monkeypatch):
    import os

    from ognet_video.errors import UserError
    from ognet_video.models.checkpoint import atomic_write_text, save_checkpoint
    from ognet_video.score.manifest import ClipRecord, Manifest

    (tmp_path / "run").mkdir()
    manifest = Manifest(tmp_path / "run")
    monkeypatch.setattr(os, "fsync", _disk_full)
    for path, write in ((tmp_path / "run" / "summary.csv", lambda p: atomic_write_text(p, "x")),
                        (tmp_path / "run" / "last.safetensors", lambda p: save_checkpoint(p, {}, {})),
                        (tmp_path / "run" / "manifest.jsonl",
                         lambda p: manifest.append(ClipRecord("in", "video", "c", 1, 1, 1, "m", "done")))):  # fmt: skip
        with pytest.raises(UserError) as err:
            write(path)
        msg = str(err.value)
        assert str(path) in msg and "free space" in msg and "--project" in msg and "\n" not in msg, msg
        assert isinstance(err.value, OSError)  # still an OSError for the code that handles those
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_a_full_disk_while_scoring_names_the_file_in_one_line(main_cli, trained_run, walkway, tmp_path, monkeypatch):
    import builtins
    import os

    from ognet_video.sinks import files as files_mod

    clip = walkway / "testing" / "frames" / "01"
    monkeypatch.setattr(os, "fsync", _disk_full)  # the first write of the run folder: run.json
    proc = main_cli("score", clip, "--model", trained_run.run_dir, "--project", tmp_path / "a")
    assert proc.returncode == 1 and "Traceback" not in proc.out, proc.out
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "::" not in err, err
    assert str(tmp_path / "a" / "01-1" / "run.json") in err and "free space" in err and proc.stdout.count("error") == 0
    monkeypatch.undo()

    class Full:  # a scores.csv whose writes fail as on a full disk
        def __init__(self, *a, **k):
            self.f = builtins.open(*a, **k)

        def write(self, text):
            _disk_full()

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(files_mod, "open", Full, raising=False)
    res = score_pkg.score([str(clip)], trained_run.run_dir, out=tmp_path / "b", console=quiet_console())
    reason = res.records[0].reason
    assert res.records[0].status == "failed" and "scores.csv" in reason and "free space" in reason, reason


# ---------------------------------------------------------------- item 9: the metrics server stays local


def test_metrics_server_listens_on_localhost_unless_asked(main_cli, trained_run, walkway, tmp_path, monkeypatch):
    from ognet_video.sinks.metrics import MetricsServer
    from ognet_video.watch import WatchOptions

    server = MetricsServer(0)
    try:
        assert server.server.server_address[0] == "127.0.0.1"
    finally:
        server.server.server_close()
    assert WatchOptions().metrics_host == "127.0.0.1"
    monkeypatch.chdir(tmp_path)
    clip = walkway / "testing" / "frames" / "01"
    proc = main_cli("watch", clip, "--model", trained_run.run_dir, "--max-frames", "2", "--metrics-port", "0")
    assert proc.returncode == 0 and "metrics on http://127.0.0.1:" in proc.out, proc.out
    proc = main_cli("watch", clip, "--model", trained_run.run_dir, "--max-frames", "2", "--metrics-port", "0",
                    "--metrics-host", "host.invalid")  # fmt: skip
    assert proc.returncode == 2 and "--metrics-host host.invalid" in proc.stderr and "Traceback" not in proc.out
    root = Path(__file__).resolve().parent.parent
    for doc in ("README.md", "docs/deployment.md"):
        assert "--metrics-host" in (root / doc).read_text(), doc


# ---------------------------------------------------------------- items 6 and 7: signals, one training per run


def _wait_for(pred, timeout: float = 120.0) -> None:
    import time

    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.1)


def test_sigterm_during_train_exits_143_with_a_resume_line(walkway, tmp_path):
    import signal
    import subprocess

    from conftest import TINY, cli_command

    env = {k: v for k, v in __import__("os").environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR")}
    env.update(OMP_NUM_THREADS="1", NO_COLOR="1")
    args = [*cli_command(), "train", "folder", "--data", str(walkway), "--project", str(tmp_path), *TINY,
            "train.epochs=400"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for(lambda: (tmp_path / "folder-1" / "last.safetensors").is_file() or proc.poll() is not None)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err and "error" not in out + err, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("stopped (SIGTERM); resume with: ognet-video train folder") and last.endswith(" --resume")


def _calibrate_run(trained_run, tmp_path) -> Path:
    run = tmp_path / "tiny-1"
    run.mkdir()
    shutil.copy2(trained_run.model_path, run / "model.safetensors")
    return run


def test_ctrl_c_or_sigterm_in_calibrate_says_stopped_and_keeps_the_model(main_cli, trained_run, walkway, tmp_path,
                                                                         monkeypatch):  # fmt: skip
    import os
    import signal

    from ognet_video.calibrate import recalibrate as recal

    run = _calibrate_run(trained_run, tmp_path)
    before = (run / "model.safetensors").read_bytes()
    for sig, code, how in ((signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")):
        def stop(*a, _sig=sig, **k):
            os.kill(os.getpid(), _sig)
            raise AssertionError("the signal did not stop calibrate")

        monkeypatch.setattr(recal, "score_footage", stop)
        proc = main_cli("calibrate", "--model", run, walkway / "training" / "frames" / "01", "--device", "cpu")
        assert proc.returncode == code, proc.out
        assert proc.stderr.strip().splitlines()[-1] == f"stopped ({how}); the model was not changed: run the same " \
            "command again" and "Traceback" not in proc.out  # fmt: skip
    assert (run / "model.safetensors").read_bytes() == before


def test_watch_stopped_while_connecting_is_a_stop_not_a_failure(detector, tmp_path):
    import os
    import signal
    import threading

    from ognet_video.stream.engine import Terminated, install_signal_handlers
    from ognet_video.watch import WatchOptions, watch

    def opener(spec: str):
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(0.5)
        raise ConnectionError("not yet")

    old = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    install_signal_handlers()
    try:
        with pytest.raises(Terminated):
            watch("rtsp://cam.local/live", detector, WatchOptions(connect_timeout=30.0), project=tmp_path,
                  opener=opener, console=quiet_console())  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
    assert not any(tmp_path.iterdir())  # no run folder for a run that never started


def test_a_second_train_or_calibrate_of_one_run_is_refused_while_the_first_runs(main_cli, walkway, tiny_config,
                                                                                tmp_path, trained_run):  # fmt: skip
    from conftest import TINY

    from ognet_video.errors import UserError
    from ognet_video.runs import run_lock
    from ognet_video.training.train import train

    run = tmp_path / "proj" / "lock-1"
    run.mkdir(parents=True)
    (run / "last.safetensors").write_bytes(b"resume state of the first train")
    with run_lock(run, "train"):  # the first `train --resume`, still running
        with pytest.raises(UserError, match="another ognet-video command is writing to .*lock-1"):
            train(tiny_config(), load_dataset("folder", walkway), run, resume=True, console=quiet_console())
        proc = main_cli("train", "folder", "--data", walkway, "--project", tmp_path / "proj", "--name", "lock",
                        "--resume", *TINY)  # fmt: skip
        assert proc.returncode == 2 and "writing to" in proc.stderr and "Traceback" not in proc.out, proc.out
    assert sorted(p.name for p in run.iterdir()) == [".lock", "last.safetensors"]  # the refused ones wrote nothing
    assert (run / "last.safetensors").read_bytes() == b"resume state of the first train"
    (tmp_path / "c").mkdir()
    cal = _calibrate_run(trained_run, tmp_path / "c")
    with run_lock(cal, "train"):
        proc = main_cli("calibrate", "--model", cal, walkway / "training" / "frames" / "01", "--device", "cpu")
        assert proc.returncode == 2 and "writing to" in proc.stderr, proc.out


def test_phase_two_resumes_from_its_last_checkpointed_step_bit_exact(trained_run, walkway_ds, tiny_config, tmp_path,
                                                                     monkeypatch):  # fmt: skip

    from ognet_video.models.checkpoint import load_checkpoint
    from ognet_video.training import train as train_mod

    class Stop(KeyboardInterrupt):
        pass

    real, calls = train_mod.phase_two_step, {"n": 0}

    def step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # steps 1-3 done, a checkpoint after step 2: the stop comes in step 4
            raise Stop
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "PHASE2_CHECKPOINT_EVERY", 2)
    monkeypatch.setattr(train_mod, "phase_two_step", step)
    run = tmp_path / "p2"
    with pytest.raises(Stop):
        train_mod.train(tiny_config(), walkway_ds, run, console=quiet_console())
    _, meta = load_checkpoint(run / "last.safetensors")
    assert meta["phase2_done"] == 2 and meta["epochs_done"] == 2
    calls["n"] = -100  # no more stops
    res = train_mod.train(tiny_config(), walkway_ds, run, resume=True, console=quiet_console())
    assert calls["n"] == -100 + 3  # steps 3, 4 and 5 only: phase two did not start again
    ta, ma = load_checkpoint(trained_run.run_dir / "model.safetensors")
    tb, mb = load_checkpoint(res.model_path)
    assert sorted(ta) == sorted(tb) and [k for k in ta if not same_tensor(ta[k], tb[k])] == []
    assert ma["calibration"] == mb["calibration"]
