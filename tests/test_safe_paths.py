"""Nothing outside the run is ever written, moved or deleted (issue 39, item 1): names from a manifest, a cameras
file, a clip or ``--name`` that would leave their folder are refused in one line, before anything is touched."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import quiet_console

from ognet_video import score as score_pkg
from ognet_video.cameras import Camera, cameras_from_args, read_cameras
from ognet_video.errors import UserError
from ognet_video.paths import natural_sorted, plain_name, safe_child
from ognet_video.runs import latest_run_dir, new_run_dir
from ognet_video.score.clip_folder import publish


def snapshot(root: Path, skip: Path | None = None) -> dict[str, object]:
    """Every entry under ``root`` (links as their target, files as bytes), except the folder ``skip``."""
    out: dict[str, object] = {}
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirs[:] = []
            continue
        for n in dirs + files:
            p = here / n
            rel = str(p.relative_to(root))
            out[rel] = ("link", os.readlink(p)) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
    return out


def error_line(proc) -> str:
    """Exit 2, no traceback, and the last line is the one ``error:`` line."""
    lines = [line for line in proc.out.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.out, proc.out
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]], proc.out
    return lines[-1]


@pytest.fixture
def scored(tmp_path, trained_run, walkway, monkeypatch):
    """A finished score run ``proj/run-1`` of one clip, and ``proj/victim``, a sibling folder with a file."""
    monkeypatch.chdir(tmp_path)
    clip = walkway / "testing" / "frames" / "01"
    proj = tmp_path / "proj"
    res = score_pkg.score([str(clip)], trained_run.run_dir, project=proj, name="run", console=quiet_console())
    assert res.exit_code == 0
    victim = proj / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (victim / "scores.csv").write_text("not yours")
    return SimpleNamespace(out=res.out, clip=clip, proj=proj, victim=victim, model=trained_run.run_dir, root=tmp_path)


def _resume(main_cli, s):
    return main_cli("score", s.clip, "--model", s.model, "--project", s.proj, "--name", "run", "--resume")


def _evil_line(s, name: str) -> None:
    """Append a manifest line for the real clip, marked failed (so resume rescores it), with ``name``."""
    rec = json.loads((s.out / "manifest.jsonl").read_text().splitlines()[0])
    rec.update(name=name, status="failed")
    with open(s.out / "manifest.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")


@pytest.mark.parametrize("name", ["../../victim", "ABS", "../x", "..", ".", "a/../../victim", ".tmp-0123456789ab"])
def test_resume_refuses_a_manifest_name_that_leaves_the_run(main_cli, scored, name):
    name = str(scored.victim) if name == "ABS" else name
    _evil_line(scored, name)
    before = snapshot(scored.root, skip=scored.out)
    inside = snapshot(scored.out)
    line = error_line(_resume(main_cli, scored))
    assert "manifest.jsonl line 2" in line and repr(name) in line
    assert snapshot(scored.root, skip=scored.out) == before  # nothing outside created, moved or deleted
    assert snapshot(scored.out) == inside  # and the refused run did not touch its own folder either


def test_resume_refuses_a_clip_folder_that_is_a_symlink_out(main_cli, scored):
    shutil.rmtree(scored.out / "clips" / "01")
    (scored.out / "clips" / "01").symlink_to(scored.victim, target_is_directory=True)
    _evil_line(scored, "01")
    before = snapshot(scored.root, skip=scored.out)
    assert "leads out of" in error_line(_resume(main_cli, scored))
    assert snapshot(scored.root, skip=scored.out) == before


@pytest.mark.parametrize("what", ["clips", "manifest.jsonl", "summary.csv", "run.json", ".lock"])
def test_resume_refuses_a_run_file_that_is_a_symlink_out(main_cli, scored, what):
    target = scored.victim / "keep.txt"
    if what == "clips":
        shutil.rmtree(scored.out / "clips")
        target = scored.victim
    else:
        (scored.out / what).unlink(missing_ok=True)
    (scored.out / what).symlink_to(target)
    _evil_line(scored, "01") if what != "manifest.jsonl" else None
    before = snapshot(scored.root, skip=scored.out)
    assert "leads out of" in error_line(_resume(main_cli, scored))
    assert snapshot(scored.root, skip=scored.out) == before


def test_resume_refuses_a_run_folder_that_is_a_symlink_out(main_cli, scored):
    elsewhere = scored.root / "elsewhere" / "copy"
    shutil.copytree(scored.out, elsewhere)
    shutil.rmtree(elsewhere / "clips")
    (elsewhere / "manifest.jsonl").write_text("")
    (scored.proj / "run-2").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(scored.root, skip=scored.out)
    assert "outside" in error_line(_resume(main_cli, scored))
    assert snapshot(scored.root, skip=scored.out) == before


@pytest.mark.parametrize("name", ["../x", "../../x", "ABS", "a/b", ".", ".."])
def test_score_and_watch_refuse_a_name_that_leaves_the_project(main_cli, trained_run, walkway, tmp_path, name,
                                                               monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    name = str(tmp_path / "abs") if name == "ABS" else name
    clip = walkway / "testing" / "frames" / "01"
    proj = tmp_path / "deep" / "proj"
    for cmd in ("score", "watch"):
        before = snapshot(tmp_path)
        line = error_line(main_cli(cmd, clip, "--model", trained_run.run_dir, "--project", proj, "--name", name))
        assert "--name" in line and repr(name) in line, (cmd, line)
        assert snapshot(tmp_path) == before, cmd


@pytest.mark.parametrize("name", [".", "..", "...", "a/b", "../x"])
def test_a_camera_name_that_is_not_a_plain_folder_name_is_refused(tmp_path, name):
    cams = tmp_path / "cams.yaml"
    cams.write_text(json.dumps([{"name": name, "url": "rtsp://h/x"}]))
    with pytest.raises(UserError, match="name") as err:
        read_cameras(cams)
    assert repr(name) in str(err.value)
    with pytest.raises(UserError, match="camera name"):
        cameras_from_args([Camera(name, "rtsp://h/x")])
    assert all(plain_name(c.name, "x") for c in cameras_from_args(["..", ".", "/", "rtsp://h/a"]))


def test_safe_child_and_run_folders(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "out").mkdir()
    (root / "link").symlink_to(tmp_path / "out")
    assert safe_child(root, "a") == root / "a" and safe_child(root, "a/b") == root / "a" / "b"
    for bad in ("", ".", "..", "../a", "a/../..", "/etc", "link", "link/x", "a\0b"):
        with pytest.raises(UserError):
            safe_child(root, bad, "thing")
    for bad in ("../a", "/abs", "a/b", "..", "."):
        with pytest.raises(UserError, match="--name"):
            new_run_dir(root, bad)
        with pytest.raises(UserError, match="--name"):
            latest_run_dir(root, bad)
    assert not (tmp_path / "a-1").exists() and sorted(p.name for p in root.iterdir()) == ["link"]


def test_publish_moves_aside_only_what_is_inside_and_never_follows_a_link(tmp_path):
    clips, victim = tmp_path / "clips", tmp_path / "victim"
    clips.mkdir()
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (clips / "out").symlink_to(victim, target_is_directory=True)
    (clips / "y").mkdir()
    (clips / "in").symlink_to(clips / "y", target_is_directory=True)
    tmp = clips / ".tmp-0123456789ab"
    tmp.mkdir()
    (tmp / "scores.csv").write_text("new")
    for bad in (clips / "out", clips / ".." / "victim", victim):
        with pytest.raises(UserError):
            publish(tmp, bad)
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and (victim / "keep.txt").read_text() == "precious"
    publish(tmp, clips / "in")  # a link inside the run: the link is replaced, never followed
    assert (clips / "in" / "scores.csv").read_text() == "new" and not (clips / "in").is_symlink()
    assert (clips / "y").is_dir() and sorted(p.name for p in clips.iterdir()) == ["in", "out", "y"]


def test_natural_order():
    names = ["frame10.jpg", "frame2.jpg", "frame1.jpg", "frame0.jpg", "frame19.jpg"]
    assert natural_sorted(names) == ["frame0.jpg", "frame1.jpg", "frame2.jpg", "frame10.jpg", "frame19.jpg"]
    assert natural_sorted(["cam10/1.jpg", "cam2/5.jpg", "cam2/10.jpg"]) == ["cam2/5.jpg", "cam2/10.jpg", "cam10/1.jpg"]
    assert natural_sorted(["001.jpg", "1.jpg", "01.jpg"]) == natural_sorted(["1.jpg", "01.jpg", "001.jpg"])
