"""The ``ognet-video`` command line, run as a real subprocess through its installed entry point."""

from __future__ import annotations

import json

import pytest


def lines(proc) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


def assert_one_line_error(proc, *needles: str) -> str:
    out = lines(proc)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(out) == 1, out
    assert out[0].startswith("error:"), out
    for needle in needles:
        assert needle in out[0], out
    return out[0]


def test_train_missing_data_is_one_line(cli, tmp_path):
    proc = cli("train", "ped2", "--data", "/nonexistent", "--project", tmp_path / "runs")
    assert_one_line_error(proc, "not found", "/nonexistent")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_eval_missing_model_is_one_line(cli, tmp_path):
    proc = cli("eval", "--model", "/nonexistent", "--data", tmp_path)
    assert_one_line_error(proc, "not found")


def test_eval_corrupt_checkpoint_is_one_line(cli, walkway, tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00garbage" * 100)
    proc = cli("eval", "--model", bad, "--data", walkway, "--dataset", "folder", "--device", "cpu")
    assert_one_line_error(proc, str(bad))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "kitti", "--data", "."], "unknown dataset"),
        (["train", "folder", "--data", "{walkway}", "train.epochz=3"], "unknown setting"),
        (["train", "folder", "--data", "{walkway}", "train.epochs=abc"], "train.epochs"),
        (["train", "folder", "--data", "{walkway}", "--config", "/nonexistent.yaml"], "not found"),
        (["info", "--model", "/nonexistent/model.safetensors"], "not found"),
        (["eval", "--data", "{walkway}", "--model", "/nonexistent", "score.causal_window=3"], "not found"),
        (["data", "verify", "ped2", "--data", "/nonexistent"], "not found"),
    ],
)
def test_user_errors_are_one_line(main_cli, walkway, tmp_path, args, needle):
    args = [a.replace("{walkway}", str(walkway)) for a in args]
    proc = main_cli(*args, "--project", tmp_path) if args[0] == "train" else main_cli(*args)
    assert_one_line_error(proc, needle)


@pytest.mark.parametrize("args", [["train"], ["eval"], ["train", "folder", "--data", ".", "--bogus"], []])
def test_usage_error_exits_2_without_traceback(main_cli, args):
    proc = main_cli(*args)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2


def test_help(main_cli):
    proc = main_cli("--help")
    assert proc.returncode == 0
    assert "train" in proc.stdout and "eval" in proc.stdout and "demo" in proc.stdout


def test_eval_and_info_on_a_trained_run(cli, trained_run, walkway, tmp_path):
    run = trained_run.run_dir
    proc = cli(
        "eval", "--model", run, "--data", walkway, "--dataset", "folder", "--project", tmp_path, "--device", "cpu"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((tmp_path / f"{run.name}-1" / "metrics.json").read_text())
    assert metrics["frames"] == 40 and metrics["preset"] == "custom"
    again = cli("eval", "--model", run, "--data", walkway, "--dataset", "folder", "--project", tmp_path, "--name", "x",
                "score.event_frames=1")  # fmt: skip
    assert again.returncode == 0 and (tmp_path / "x-1" / "metrics.json").is_file(), again.stdout + again.stderr
    fixed = cli("eval", "--model", run, "--data", walkway, "--dataset", "folder", "--project", tmp_path,
                "score.causal_window=2")  # fmt: skip
    assert_one_line_error(fixed, "score.causal_window is fixed when the model is trained")
    info = cli("info", "--model", trained_run.model_path)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "calibration" in info.stdout and "g_channels" in info.stdout
    assert "label-free check on the held-out footage: AUC" in " ".join(info.stdout.split())
    default = cli("info", cwd=run.parent.parent.parent)  # the newest finished run under ./runs/train
    assert default.returncode == 0 or "no trained model" in default.stderr


def test_every_command_shows_examples_and_no_bool_metavars(main_cli):
    for cmd in ("train", "eval", "info", "watch", "score", "demo"):
        proc = main_cli(cmd, "--help")
        assert proc.returncode == 0 and "Examples" in proc.stdout, cmd
        flags = [line for line in proc.stdout.splitlines() if "<bool>" in line and "Show this message" not in line]
        assert not flags, (cmd, flags)  # a flag takes no value: it is shown without one


@pytest.mark.parametrize("path", ["/nonexistent/clips [x]", "/nonexistent/clips[/x]"])
def test_error_message_with_brackets_is_printed_verbatim(main_cli, tmp_path, path):
    proc = main_cli("train", "folder", "--data", path, "--project", tmp_path)
    assert_one_line_error(proc, "not found", path)


def test_override_with_invalid_yaml_is_one_line(main_cli, walkway, tmp_path):
    proc = main_cli("train", "folder", "--data", walkway, "--project", tmp_path, "model.g_channels=[4,8")
    assert_one_line_error(proc, "g_channels")
