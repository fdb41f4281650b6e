"""UCSD Ped1: built-in labels, any subset of its clips, one-line refusals, verify, and the CLI's ped1 routes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from ognet_video.data import UCSD_SUBSETS, load_dataset
from ognet_video.data.ped1 import CLIP_FRAMES, PED1, TEST_GT, ped1_labels
from ognet_video.data.ucsd import verify_subset
from ognet_video.errors import UserError
from pipelines.settings import PED1 as PED1_ROOT

ODD_TRAIN = [f"{i:02d}" for i in range(1, 35, 2)]
ODD_TEST = [f"{i:02d}" for i in range(1, 37, 2)]


def fake_ped1_frames(base: Path, train=ODD_TRAIN, test=ODD_TEST, labels: dict | None = None, image=None) -> Path:
    """A frames-layout Ped1 copy of the given clips, 200 frames each: empty files unless ``image`` is given."""
    for split, clips in (("training", train), ("testing", test)):
        for clip in clips:
            d = base / split / "frames" / clip
            d.mkdir(parents=True)
            for k in range(CLIP_FRAMES):
                if image is None:
                    (d / f"{k:03d}.jpg").touch()
                else:
                    assert cv2.imwrite(str(d / f"{k:03d}.png"), image)
    if labels is not None:
        (base / "testing" / "labels.json").write_text(json.dumps(labels))
    return base


def fake_ucsd(base: Path, folder: str, train: list[int], test: list[int], frames: int = CLIP_FRAMES) -> Path:
    """The original UCSD layout (1-based .tif names, ``_gt`` mask folders) of one subset."""
    sub = base / "UCSD_Anomaly_Dataset.v1p2" / folder
    for split, clips in (("Train", train), ("Test", test)):
        for i in clips:
            d = sub / split / f"{split}{i:03d}"
            d.mkdir(parents=True)
            for k in range(1, frames + 1):
                (d / f"{k:03d}.tif").touch()
            if split == "Test":
                (sub / split / f"{split}{i:03d}_gt").mkdir()
    return sub


def test_ped1_labels_transcribed_from_ucsdped1_m():
    labels = ped1_labels()
    assert sorted(labels) == [f"{i:02d}" for i in range(1, 37)]
    assert all(len(v) == 200 and set(np.unique(v)) <= {0, 1} for v in labels.values())
    # Test005 is [5:90, 140:200] (1-based inclusive): 0-based 4..89 and 139..199
    t5 = labels["05"]
    assert t5[:4].sum() == 0 and t5[4:90].all() and t5[90:139].sum() == 0 and t5[139:].all()
    assert int(t5.sum()) == 147
    # the clips with two intervals are exactly 05, 06, 29 and 32
    runs = {k: np.count_nonzero(np.diff(np.concatenate([[0], v, [0]]))) // 2 for k, v in labels.items()}
    assert sorted(k for k, n in runs.items() if n == 2) == ["05", "06", "29", "32"]
    assert set(runs.values()) == {1, 2}
    assert labels["01"][58] == 0 and labels["01"][59] == 1 and labels["01"][151] == 1 and labels["01"][152] == 0
    odd = [labels[c] for c in ODD_TEST]
    assert sum(len(v) for v in odd) == 3600 and sum(int(v.sum()) for v in odd) == 2087
    assert sum(int(v.sum()) for v in labels.values()) == 4045


def test_ped1_labels_match_the_original_gt_file():
    gt = PED1_ROOT / "testing" / "original_gt" / "UCSDped1.m"
    if not gt.is_file():
        pytest.skip(f"no {gt} (set OGNET_PED1 to the shared Ped1 copy)")
    lines = [ln for ln in gt.read_text().splitlines() if "gt_frame" in ln]
    parsed = {
        f"{i:02d}": tuple(tuple(int(x) for x in span.split(":")) for span in re.findall(r"\d+:\d+", ln))
        for i, ln in enumerate(lines, 1)
    }
    assert parsed == TEST_GT


def test_real_ped1_quick_verify_agrees_with_its_labels_json():
    if not (PED1_ROOT / "testing" / "labels.json").is_file():
        pytest.skip(f"no Ped1 at {PED1_ROOT} (set OGNET_PED1 to a Ped1 root)")
    ds = load_dataset("ped1", PED1_ROOT)  # its labels.json must agree with the built-in labels
    assert [c.name for c in ds.test] == ODD_TEST and [c.name for c in ds.train] == ODD_TRAIN
    assert sum(int(c.labels.sum()) for c in ds.test) == 2087


def test_a_subset_of_ped1_clips_is_accepted_and_labelled(tmp_path):
    labels = {k: v.tolist() for k, v in ped1_labels().items()}  # all 36: a copy may hold fewer clips
    ds = load_dataset("ped1", fake_ped1_frames(tmp_path, labels=labels))
    assert ds.name == "ped1" and ds.layout == "frames"
    assert [c.name for c in ds.train] == ODD_TRAIN and [c.name for c in ds.test] == ODD_TEST
    assert sum(int(c.labels.sum()) for c in ds.test) == 2087
    assert all(np.array_equal(c.labels, ped1_labels()[c.name]) for c in ds.test)


def test_ucsd_layout_finds_ped1_beside_ped2(tmp_path):
    fake_ucsd(tmp_path, "UCSDped2", [1], [1], frames=120)  # the whole tarball extracted: both subsets
    ped1 = fake_ucsd(tmp_path, "UCSDped1", list(range(1, 35)), list(range(1, 37)))
    for root in (tmp_path, ped1.parent, ped1):
        ds = load_dataset("ped1", root)
        assert ds.layout == "ucsd" and len(ds.train) == 34 and len(ds.test) == 36  # *_gt folders skipped
        assert ds.test[4].name == "05" and ds.test[4].frames[0].name == "001.tif"
        assert sum(int(c.labels.sum()) for c in ds.test) == 4045


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_wrong_frame_count_is_one_line_naming_the_clip_folder(tmp_path):
    root = fake_ped1_frames(tmp_path)
    (root / "testing" / "frames" / "07" / "199.jpg").unlink()
    with pytest.raises(UserError) as err:
        load_dataset("ped1", root)
    msg = one_line(err)
    assert str(root / "testing" / "frames" / "07") in msg and "199 frames" in msg and "200" in msg


def test_unknown_clip_is_one_line_naming_its_folder(tmp_path):
    root = fake_ped1_frames(tmp_path, train=["01", "35"])  # Ped1 has training clips 01 to 34
    with pytest.raises(UserError) as err:
        load_dataset("ped1", root)
    msg = one_line(err)
    assert str(root / "training" / "frames" / "35") in msg and "not a Ped1 training clip" in msg


def test_ped2_is_not_ped1(tmp_path):
    ped2 = fake_ucsd(tmp_path, "UCSDped2", [1, 2], [1], frames=120)
    with pytest.raises(UserError, match="120 frames, Ped1's clips have 200"):
        load_dataset("ped1", ped2)
    with pytest.raises(UserError, match="download ped1"):
        load_dataset("ped1", tmp_path / "missing")


def test_labels_json_must_agree_for_the_clips_present(tmp_path):
    bad = {k: v.tolist() for k, v in ped1_labels().items() if k in ODD_TEST}
    bad["05"][100] = 1  # between Test005's two intervals
    with pytest.raises(UserError, match="labels.json disagrees.*clip 05"):
        load_dataset("ped1", fake_ped1_frames(tmp_path / "bad", labels=bad))
    other = {"02": [1] * 200}  # wrong, but for a clip this copy does not hold
    assert load_dataset("ped1", fake_ped1_frames(tmp_path / "ok", labels=other)).test[0].labels is not None


def test_verify_decodes_frames_at_ped1_size(tmp_path):
    good = fake_ped1_frames(tmp_path / "good", ["01"], ["05"], image=np.full((158, 238), 90, np.uint8))
    info = verify_subset(PED1, good)
    assert info == {"layout": "frames", "train_clips": 1, "test_clips": 1, "frames_read": 400,
                    "anomalous_frames": 147, "manifest_files_checked": 0}  # fmt: skip
    wrong = fake_ped1_frames(tmp_path / "wrong", ["01"], ["05"], image=np.zeros((240, 360), np.uint8))
    with pytest.raises(UserError, match="360x240, Ped1 frames are 238x158"):
        verify_subset(PED1, wrong)
    assert verify_subset(PED1, wrong, read_frames=False)["frames_read"] == 0


def test_cli_verify_and_download_know_ped1(main_cli, tmp_path):
    root = fake_ped1_frames(tmp_path / "ped1", ["01"], ["03"])
    proc = main_cli("data", "verify", "ped1", "--data", root, "--quick")
    assert proc.returncode == 0, proc.out
    assert "Ped1 at" in proc.out and "110" in proc.out  # Test003: frames 91..200 anomalous
    for args in (["data", "verify", "avenue", "--data", root], ["data", "download", "avenue", "--root", tmp_path]):
        proc = main_cli(*args)
        assert proc.returncode == 2 and "ped1 or ped2" in proc.out and "Traceback" not in proc.out
        assert len(proc.out.strip().splitlines()) == 1


def test_cli_train_ped1_loads_ped1(main_cli, tmp_path, monkeypatch):
    """``train ped1 --data`` reaches training with Ped1 loaded (training itself is stubbed: it is tested elsewhere)."""
    import ognet_video.training.train

    seen = {}

    def stop(cfg, ds, run_dir, **kw):  # noqa: ANN001, ANN202
        seen["ds"] = ds
        raise UserError("stopped before training")

    monkeypatch.setattr(ognet_video.training.train, "train", stop)
    root = fake_ped1_frames(tmp_path / "ped1", ["01", "03"], ["05"])
    proc = main_cli("train", "PED1", "--data", root, "--project", tmp_path / "runs")
    assert "stopped before training" in proc.out, proc.out
    assert seen["ds"].name == "ped1" and [c.name for c in seen["ds"].train] == ["01", "03"]
    assert int(seen["ds"].test[0].labels.sum()) == 147
    assert not any((tmp_path / "runs").rglob("*.safetensors"))


def test_eval_defaults_to_the_models_dataset(main_cli, tmp_path, tiny_config):
    """A model trained on ped1 is evaluated as Ped1 without --dataset; any other model still defaults to ped2."""
    from ognet_video.models.detector import Detector
    from ognet_video.models.model import build_models

    root = fake_ped1_frames(tmp_path / "ped1", ["01"], ["03"])
    (root / "testing" / "frames" / "03" / "000.jpg").unlink()  # a count check names the dataset that was loaded
    for trained_on, needle in (("ped1", "Ped1's clips have 200"), ("folder", "not Ped2's")):
        model = Detector(tiny_config(), [build_models(tiny_config())], meta={"dataset": trained_on})
        path = model.save(tmp_path / f"{trained_on}.safetensors")
        proc = main_cli("eval", "--model", path, "--data", root, "--project", tmp_path / "eval", "--device", "cpu")
        assert proc.returncode == 2 and needle in proc.out, proc.out
    assert set(UCSD_SUBSETS) == {"ped1", "ped2"}
