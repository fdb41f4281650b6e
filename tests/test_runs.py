from __future__ import annotations

import os

import pytest

from ognet_video.errors import UserError
from ognet_video.runs import latest_run_dir, new_run_dir


def test_new_run_dir_numbers_and_creates(tmp_path):
    a = new_run_dir(tmp_path / "train", "ped2")
    b = new_run_dir(tmp_path / "train", "ped2")
    c = new_run_dir(tmp_path / "train", "other")
    assert (a.name, b.name, c.name) == ("ped2-1", "ped2-2", "other-1")
    assert a.is_dir() and b.is_dir()
    (tmp_path / "train" / "ped2-10").mkdir()
    assert new_run_dir(tmp_path / "train", "ped2").name == "ped2-11"


def test_latest_run_dir_needs_runs(tmp_path):
    with pytest.raises(UserError, match="no runs"):
        latest_run_dir(tmp_path / "missing")
    (tmp_path / "ped2-1").mkdir()
    with pytest.raises(UserError, match="last.safetensors"):
        latest_run_dir(tmp_path, "ped2", need="last.safetensors")
    (tmp_path / "ped2-1" / "last.safetensors").touch()
    assert latest_run_dir(tmp_path, "ped2", need="last.safetensors").name == "ped2-1"


def test_latest_run_dir_picks_newest(tmp_path):
    for i, t in ((1, 1000), (2, 2000)):
        d = tmp_path / f"ped2-{i}"
        d.mkdir()
        os.utime(d, (t, t))
    assert latest_run_dir(tmp_path, "ped2").name == "ped2-2"


def test_latest_run_dir_does_not_mix_run_names(tmp_path):
    mine = tmp_path / "ped2-1"
    other = tmp_path / "ped2-cpu-1"
    for d, t in ((mine, 1000), (other, 2000)):
        d.mkdir()
        os.utime(d, (t, t))
    assert latest_run_dir(tmp_path, "ped2") == mine


def test_latest_run_dir_orders_by_run_number(tmp_path):
    for i in (9, 10):
        d = tmp_path / f"ped2-{i}"
        d.mkdir()
        os.utime(d, (1000, 1000))
    assert latest_run_dir(tmp_path, "ped2").name == "ped2-10"
