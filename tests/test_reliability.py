"""Bad input, signals and damaged files: one line that names the input and says what to do, no lost work,
never a silent wrong result. Each test is a probe a careful tester ran against an earlier version."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
from conftest import quiet_console

from ognet_video.config import SECTIONS, load_config
from ognet_video.data import load_dataset
from ognet_video.errors import UserError
from ognet_video.models.checkpoint import load_checkpoint, save_checkpoint
from ognet_video.models.detector import Detector
from ognet_video.sources import read_gray

FUZZ_VALUES = [-1, 0, -1e9, 1e12, math.nan, math.inf, "abc", [], True, None]


def one_line_error(proc, code: int = 2) -> str:
    """The run ends on exactly one ``error:`` line (progress lines may come before it), no traceback."""
    lines = [line for line in proc.out.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert proc.returncode == code and errors == [len(lines) - 1], proc.out
    assert "Traceback" not in proc.out
    return lines[-1]


def numeric_fields() -> list[str]:
    out = []
    for name, section in SECTIONS.items():
        for field, value in section().model_dump().items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append(f"{name}.{field}")
    return out


def test_fuzz_every_numeric_setting_is_refused_in_one_line_or_accepted():
    keys = numeric_fields()
    assert len(keys) >= 20, keys  # the fuzz reaches every section
    for key in keys:
        for value in FUZZ_VALUES:
            item = f"{key}={json.dumps(value) if isinstance(value, str | list) or value is None else value}"
            try:
                cfg = load_config(None, [item])
            except UserError as exc:
                assert "\n" not in str(exc) and key in str(exc), (item, str(exc))
                continue
            section, field = key.split(".")
            got = getattr(getattr(cfg, section), field)
            assert isinstance(got, int | float) and math.isfinite(got), (item, got)  # accepted: a usable number


def test_fuzz_checkpoint_header_fields_never_load_into_nan(tmp_path, trained_run):
    tensors, meta = load_checkpoint(trained_run.model_path)
    cases = [("calibration", k) for k in meta["calibration"] if k != "clips"]
    cases += [("config", f"{s}.{f}") for s in ("patches", "score") for f in meta["config"][s]]
    for where, key in cases:
        for value in (0, -1, math.nan, math.inf, "x", None, 10**6):
            m = json.loads(json.dumps(meta))
            if where == "calibration":
                m["calibration"][key] = value
            else:
                section, field = key.split(".")
                m["config"][section][field] = value
            path = save_checkpoint(tmp_path / "fuzz.safetensors", tensors, m)
            try:
                det = Detector.load(path)
            except UserError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc), (key, value, str(exc))
                continue
            cal = det.calibration
            assert cal is not None and cal.std > 0 and all(
                math.isfinite(v) for v in (cal.floor, cal.mean, cal.std, cal.threshold)
            ), (key, value)  # fmt: skip


def test_an_edited_preset_label_is_refused(tmp_path, trained_run):
    """The tiny model relabelled with a named preset loads its weights fine, but is not that preset."""
    tensors, meta = load_checkpoint(trained_run.model_path)
    for preset in ("cpu", "paper"):
        meta["config"]["model"]["preset"] = preset
        path = save_checkpoint(tmp_path / f"{preset}.safetensors", tensors, meta)
        with pytest.raises(UserError, match=f"says preset '{preset}' but holds .*g_channels=\\[4, 8, 8, 8\\]"):
            Detector.load(path)
    meta["config"]["model"]["preset"] = "custom"  # the truth loads
    assert Detector.load(save_checkpoint(tmp_path / "custom.safetensors", tensors, meta)).cfg.model.preset == "custom"


def test_labels_json_with_wrong_values_is_one_line(walkway, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(walkway, root)
    labels = root / "testing" / "labels.json"
    good = json.loads(labels.read_text())
    for bad in ({"01": 5}, {"01": [7] * len(good["01"])}, {"01": [-1] * len(good["01"])}, {"01": [0.5]}):
        labels.write_text(json.dumps(bad))
        with pytest.raises(UserError, match="0/1 labels") as err:
            load_dataset("folder", root)
        assert str(labels) in str(err.value)


def test_a_truncated_jpeg_is_named(walkway, tmp_path):
    frame = sorted((walkway / "testing" / "frames" / "01").iterdir())[3]
    cut = tmp_path / "003.jpg"
    cut.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated JPEG|cannot read frame") as err:
        read_gray(cut)
    assert str(cut) in str(err.value)
    assert read_gray(frame).shape == (240, 360)  # a whole one still reads


def test_command_line_probes_are_one_line_each(main_cli, trained_run, walkway, tmp_path):
    run, clip = trained_run.run_dir, walkway / "testing" / "frames" / "01"
    assert "--max-frames" in one_line_error(main_cli("watch", clip, "--model", run, "--max-frames", "0"))
    assert "--fps" in one_line_error(main_cli("watch", clip, "--model", run, "--fps", "inf"))
    assert "--connect-timeout" in one_line_error(main_cli("watch", clip, "--model", run, "--connect-timeout", "-1"))
    assert "--fps" in one_line_error(main_cli("score", clip, "--model", run, "--fps", "inf"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    err = one_line_error(main_cli("score", clip, "--model", run, "--project", blocker / "sub"), code=1)
    assert str(blocker) in err and "check the path" in err
    assert "failed" in one_line_error(main_cli("data", "download", "ped2", "--root", tmp_path, "--url", "notaurl"))


def test_a_blank_or_broken_manifest_line_in_ped2_verify(tmp_path, monkeypatch):
    from ognet_video.data import ped2

    ds = dataclasses.make_dataclass("D", ["layout", "train", "test"])("frames", [], [])
    monkeypatch.setattr(ped2, "load_ped2", lambda root: ds)
    (tmp_path / "f.txt").write_text("x")
    digest = ped2.sha256_file(tmp_path / "f.txt")
    (tmp_path / "MANIFEST.sha256").write_text(f"{digest}  f.txt\n\n")
    assert ped2.verify_ped2(tmp_path, read_frames=False)["manifest_files_checked"] == 1
    (tmp_path / "MANIFEST.sha256").write_text(f"{digest}  f.txt\nnot-a-line\n")
    with pytest.raises(UserError, match="line 2"):
        ped2.verify_ped2(tmp_path, read_frames=False)


def test_a_failed_training_leaves_no_empty_run_folder(main_cli, walkway, tmp_path):
    proc = main_cli("train", "folder", "--data", walkway, "--project", tmp_path, "patches.motion_threshold=255")
    assert "moving patch" in one_line_error(proc)
    assert not any(tmp_path.iterdir())


def test_a_failed_calibration_keeps_the_trained_networks(walkway_ds, tiny_config, tmp_path, monkeypatch):
    from ognet_video.training import train as train_mod

    def broken(detector, clips):
        raise UserError("calibration broke")

    monkeypatch.setattr(train_mod, "calibrate", broken)
    with pytest.raises(UserError, match="calibration broke"):
        train_mod.train(tiny_config(), walkway_ds, tmp_path / "run", console=quiet_console())
    kept = Detector.load(tmp_path / "run" / "uncalibrated.safetensors")
    assert kept.calibration is None and np.isfinite(next(kept.members[0][1].parameters()).detach().numpy()).all()
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_score_topk_zero_and_out_of_range_percentiles_are_refused_before_training():
    for item in ("score.topk=0", "score.threshold_percentile=150", "train.phase2_steps=0", "train.max_patches=10"):
        with pytest.raises(UserError, match=item.split("=")[0]):
            load_config(None, [item])


def test_openmp_waits_passively_unless_told_and_threads_are_recorded(trained_run):
    """Spinning OpenMP threads starve other processes on a shared machine; the thread count decides a seeded
    run's numbers, so the checkpoint records it next to the seed."""
    import os
    import subprocess
    import sys

    code = "import os, ognet_video, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env | {"OMP_WAIT_POLICY": "ACTIVE"})  # fmt: skip
    assert out.stdout.strip() == "ACTIVE"
    _, meta = load_checkpoint(trained_run.model_path)
    assert meta["environment"]["torch_threads"] == 1 and meta["config"]["train"]["seed"] == 0
