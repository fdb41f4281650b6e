"""The demo's plumbing (its detection is what test_detects checks): runs under the project folder, clips
reused for the same seed, and a next command that works as printed."""

from __future__ import annotations

import io
import shlex

from conftest import quiet_console, run_cli
from rich.console import Console

from ognet_video import demo


def test_demo_keeps_its_run_and_next_command_works(tmp_path, monkeypatch, tiny_config):
    monkeypatch.setattr(demo, "demo_config", lambda seed=0: tiny_config(f"train.seed={seed}"))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    first = demo.run_demo(project=tmp_path / "runs", console=Console(file=out, width=300), train_clips=3,
                          test_clips=2, frames=20)  # fmt: skip
    assert "label-free check on the held-out footage: AUC" in out.getvalue()  # what a user without labels sees
    assert first.run_dir == tmp_path / "runs" / "train" / "demo-1" and first.model_path.is_file()
    assert (first.run_dir / "metrics.json").is_file() and not first.reused_data
    assert first.data_dir == tmp_path / "runs" / "demo" / "walkway"
    second = demo.run_demo(project=tmp_path / "runs", console=quiet_console(), train_clips=3, test_clips=2, frames=20)
    assert second.reused_data and second.run_dir.name == "demo-2"
    other = demo.run_demo(project=tmp_path / "runs", seed=1, console=quiet_console(), train_clips=3, test_clips=2,
                          frames=20)  # fmt: skip
    assert not other.reused_data  # another seed: other clips
    args = shlex.split(other.next_command)
    assert args[:2] == ["ognet-video", "watch"] and "--model" in args
    proc = run_cli(*args[1:], "--project", tmp_path / "w", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (next((tmp_path / "w").iterdir()) / "annotated.mp4").stat().st_size > 0
