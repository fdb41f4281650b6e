from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ognet_video.data import LOADERS, load_dataset, read_gray
from ognet_video.data.ped2 import TEST_GT, TRAIN_FRAMES, ped2_labels, verify_ped2
from ognet_video.errors import UserError
from pipelines.settings import PED2

needs_ped2 = pytest.mark.skipif(not PED2.is_dir(), reason=f"no Ped2 at {PED2} (set OGNET_PED2 to a Ped2 root)")

# ---------------------------------------------------------------------------------------------------
# built-in Ped2 labels


def test_ped2_builtin_labels_counts():
    labels = ped2_labels()
    assert sorted(labels) == [f"{i:02d}" for i in range(1, 13)]
    assert sum(len(v) for v in labels.values()) == 2010
    assert sum(int(v.sum()) for v in labels.values()) == 1648
    for v in labels.values():
        assert set(np.unique(v)) <= {0, 1}
        # one contiguous anomalous span per clip
        assert np.count_nonzero(np.diff(np.concatenate([[0], v, [0]]))) == 2
    # spot checks against UCSDped2.m (1-based inclusive): clip 01 frames 61..180, clip 03 frames 1..146
    assert labels["01"][:60].sum() == 0 and labels["01"][60:].all()
    assert labels["03"][:146].all() and labels["03"][146:].sum() == 0


def test_ped2_builtin_labels_match_labels_json_on_disk():
    path = PED2 / "testing" / "labels.json"
    if not path.is_file():
        pytest.skip(f"no {path} (set OGNET_PED2 to a frames-layout Ped2 root)")
    disk = json.loads(path.read_text())
    builtin = ped2_labels()
    assert sorted(disk) == sorted(builtin)
    for clip, lab in builtin.items():
        assert list(disk[clip]) == lab.tolist(), clip


@needs_ped2
def test_real_ped2_layout_and_labels():
    ds = load_dataset("ped2", PED2)
    assert ds.layout in ("frames", "ucsd")
    assert [len(c) for c in ds.train] == TRAIN_FRAMES
    assert [c.name for c in ds.test] == [f"{i:02d}" for i in range(1, 13)]
    assert all(c.labels is not None and len(c.labels) == len(c) for c in ds.test)
    assert sum(int(c.labels.sum()) for c in ds.test) == 1648
    img = read_gray(ds.test[0].frames[0])
    assert img.shape == (240, 360) and img.dtype == np.uint8


@needs_ped2
def test_real_ped2_verify_quick():
    info = verify_ped2(PED2, read_frames=False)
    assert info["train_clips"] == 16 and info["test_clips"] == 12
    assert info["anomalous_frames"] == 1648
    manifest = PED2 / "MANIFEST.sha256"
    if manifest.is_file():
        assert info["manifest_files_checked"] == len(manifest.read_text().splitlines())


# ---------------------------------------------------------------------------------------------------
# fake Ped2 with the exact clip/frame counts (empty files: layout checks never decode frames)


def fake_ped2_ucsd(base: Path) -> Path:
    ped2 = base / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2"
    for i, n in enumerate(TRAIN_FRAMES, 1):
        d = ped2 / "Train" / f"Train{i:03d}"
        d.mkdir(parents=True)
        for k in range(1, n + 1):
            (d / f"{k:03d}.tif").touch()
    for i, (n, _, _) in enumerate(TEST_GT.values(), 1):
        d = ped2 / "Test" / f"Test{i:03d}"
        gt = ped2 / "Test" / f"Test{i:03d}_gt"
        d.mkdir(parents=True)
        gt.mkdir()
        for k in range(1, n + 1):
            (d / f"{k:03d}.tif").touch()
            (gt / f"{k:03d}.bmp").touch()
    return ped2


def fake_ped2_frames(base: Path, labels: dict | None = None) -> Path:
    for split, counts in (("training", TRAIN_FRAMES), ("testing", [v[0] for v in TEST_GT.values()])):
        for i, n in enumerate(counts, 1):
            d = base / split / "frames" / f"{i:02d}"
            d.mkdir(parents=True)
            for k in range(n):
                (d / f"{k:03d}.jpg").touch()
    if labels is not None:
        (base / "testing" / "labels.json").write_text(json.dumps(labels))
    return base


def test_ped2_ucsd_layout_found_from_any_parent(tmp_path):
    ped2 = fake_ped2_ucsd(tmp_path)
    for root in (tmp_path, ped2.parent, ped2):
        ds = load_dataset("ped2", root)
        assert ds.layout == "ucsd"
        assert [c.name for c in ds.train] == [f"{i:02d}" for i in range(1, 17)]
        assert [c.name for c in ds.test] == [f"{i:02d}" for i in range(1, 13)]  # *_gt folders skipped
        assert sum(len(c) for c in ds.test) == 2010
        assert sum(int(c.labels.sum()) for c in ds.test) == 1648
        assert ds.test[0].frames[0].name == "001.tif"


def test_ped2_wrong_frame_count_is_user_error(tmp_path):
    ped2 = fake_ped2_ucsd(tmp_path)
    (ped2 / "Test" / "Test003" / "150.tif").unlink()
    with pytest.raises(UserError, match="03"):
        load_dataset("ped2", tmp_path)


def test_ped2_missing_clip_is_user_error(tmp_path):
    ped2 = fake_ped2_ucsd(tmp_path)
    for f in (ped2 / "Train" / "Train016").iterdir():
        f.unlink()
    (ped2 / "Train" / "Train016").rmdir()
    with pytest.raises(UserError, match="Ped2"):
        load_dataset("ped2", tmp_path)


def test_ped2_frames_layout_labels_json_must_agree(tmp_path):
    good = {k: v.tolist() for k, v in ped2_labels().items()}
    ds = load_dataset("ped2", fake_ped2_frames(tmp_path / "good", good))
    assert ds.layout == "frames"
    assert all(np.array_equal(c.labels, ped2_labels()[c.name]) for c in ds.test)

    bad = {k: list(v) for k, v in good.items()}
    bad["07"][0] = 1 - bad["07"][0]
    with pytest.raises(UserError, match="07"):
        load_dataset("ped2", fake_ped2_frames(tmp_path / "bad", bad))


# ---------------------------------------------------------------------------------------------------
# frames layout vs original UCSD layout on a tiny non-Ped2 dataset


def _frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 40), dtype=np.uint8)


CLIPS = {"Train": [12, 3], "Test": [4, 11]}


def test_frames_and_ucsd_layout_parity(tmp_path):
    frames_root = tmp_path / "frames_layout"
    ucsd_root = tmp_path / "ucsd" / "UCSDped2"
    seed = 0
    for split, lengths in CLIPS.items():
        fsplit = "training" if split == "Train" else "testing"
        for i, n in enumerate(lengths, 1):
            fd = frames_root / fsplit / "frames" / f"{i:02d}"
            ud = ucsd_root / split / f"{split}{i:03d}"
            fd.mkdir(parents=True)
            ud.mkdir(parents=True)
            for k in range(n):
                img = _frame(seed)
                seed += 1
                assert cv2.imwrite(str(fd / f"{k:03d}.png"), img)
                assert cv2.imwrite(str(ud / f"{k + 1:03d}.tif"), img)
            if split == "Test":  # ground-truth masks and stray files must be ignored
                gt = ucsd_root / split / f"{split}{i:03d}_gt"
                gt.mkdir()
                cv2.imwrite(str(gt / "001.bmp"), np.zeros((24, 40), np.uint8))
        (ucsd_root / split / ".DS_Store").write_bytes(b"junk")
    (frames_root / "training" / "frames" / "01" / "notes.txt").write_text("not a frame")

    a = load_dataset("folder", frames_root)
    b = load_dataset("folder", ucsd_root)
    assert (a.layout, b.layout) == ("frames", "ucsd")
    for split in ("train", "test"):
        ca, cb = getattr(a, split), getattr(b, split)
        assert [c.name for c in ca] == [c.name for c in cb] == ["01", "02"]
        assert [len(c) for c in ca] == [len(c) for c in cb] == CLIPS["Train" if split == "train" else "Test"]
        for x, y in zip(ca, cb, strict=True):
            for fx, fy in zip(x.frames, y.frames, strict=True):
                assert np.array_equal(read_gray(fx), read_gray(fy))
    # frame order is frame-number order: frame k of clip 01 is the k-th image written
    first = a.train[0]
    assert [np.array_equal(read_gray(f), _frame(k)) for k, f in enumerate(first.frames)] == [True] * 12


# ---------------------------------------------------------------------------------------------------
# errors


def test_missing_root_is_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset("folder", tmp_path / "nope")
    with pytest.raises(UserError, match="download ped2"):
        load_dataset("ped2", tmp_path / "nope")


def test_unknown_dataset_name_is_user_error_naming_the_known_ones(tmp_path):
    assert sorted(LOADERS) == ["folder", "ped1", "ped2"]
    with pytest.raises(UserError, match="unknown dataset 'avenue'.*'folder', 'ped1', 'ped2'"):
        load_dataset("avenue", tmp_path)


def test_generic_reader_imports_no_dataset_module():
    """dataset.py is the generic part: dataset modules import it, never the other way (no import cycle)."""
    import ast

    import ognet_video.data.dataset as generic

    tree = ast.parse(Path(generic.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m == "ognet_video.data" or m.startswith("ognet_video.data.")}


def test_unrecognised_layout_is_user_error(tmp_path):
    (tmp_path / "some" / "thing").mkdir(parents=True)
    with pytest.raises(UserError, match="layout"):
        load_dataset("folder", tmp_path)


def test_empty_clip_folder_is_user_error(tmp_path):
    root = write_tiny_frames(tmp_path)
    (root / "testing" / "frames" / "02").mkdir()
    with pytest.raises(UserError, match="frames/02 holds no images"):
        load_dataset("folder", root)


def test_labels_length_mismatch_is_user_error(tmp_path):
    root = write_tiny_frames(tmp_path)
    (root / "testing" / "labels.json").write_text(json.dumps({"01": [0, 1]}))
    with pytest.raises(UserError, match="labels"):
        load_dataset("folder", root)


def test_labels_json_attached(tmp_path):
    root = write_tiny_frames(tmp_path)
    (root / "testing" / "labels.json").write_text(json.dumps({"01": [0, 1, 1]}))
    ds = load_dataset("folder", root)
    assert ds.test[0].labels.tolist() == [0, 1, 1]
    assert all(c.labels is None for c in ds.train)


def test_invalid_labels_json_is_user_error(tmp_path):
    root = write_tiny_frames(tmp_path)
    (root / "testing" / "labels.json").write_text("{not json")
    with pytest.raises(UserError, match="labels.json"):
        load_dataset("folder", root)


def write_tiny_frames(root: Path) -> Path:
    for split in ("training", "testing"):
        d = root / split / "frames" / "01"
        d.mkdir(parents=True)
        for k in range(3):
            cv2.imwrite(str(d / f"{k:03d}.png"), _frame(k))
    return root


@pytest.mark.parametrize("content", [b"", b"this is not a jpeg at all" * 10])
def test_unreadable_frame_names_the_file(tmp_path, content):
    bad = tmp_path / "clip" / "007.jpg"
    bad.parent.mkdir()
    bad.write_bytes(content)
    with pytest.raises(UserError) as err:
        read_gray(bad)
    assert str(bad) in str(err.value)


def test_read_gray_converts_color(tmp_path):
    p = tmp_path / "c.png"
    img = np.zeros((10, 12, 3), np.uint8)
    img[..., 2] = 255  # pure red in BGR
    cv2.imwrite(str(p), img)
    g = read_gray(p)
    assert g.shape == (10, 12) and g.dtype == np.uint8
    assert abs(int(g[0, 0]) - round(0.299 * 255)) <= 1


# ---------------------------------------------------------------------------------------------------
# synthetic walkway


def test_synthetic_walkway_is_labelled_frames_layout(walkway_ds):
    ds = walkway_ds
    assert ds.layout == "frames"
    assert [c.name for c in ds.train] == ["01", "02", "03"]
    assert [c.name for c in ds.test] == ["01", "02"]
    assert all(len(c) == 20 for c in ds.train + ds.test)
    for c in ds.test:
        assert c.labels is not None and 0 < c.labels.sum() < len(c)  # both classes in every test clip
    assert read_gray(ds.train[0].frames[0]).shape == (240, 360)


def test_synthetic_walkway_is_deterministic(tmp_path):
    from ognet_video.data.synthetic import write_walkway

    a = write_walkway(tmp_path / "a", train_clips=1, test_clips=1, frames=6, seed=3)
    b = write_walkway(tmp_path / "b", train_clips=1, test_clips=1, frames=6, seed=3)
    c = write_walkway(tmp_path / "c", train_clips=1, test_clips=1, frames=6, seed=4)
    fa = sorted(a.rglob("*.jpg"))
    assert [f.read_bytes() for f in fa] == [(b / f.relative_to(a)).read_bytes() for f in fa]
    assert (a / "testing" / "labels.json").read_text() == (b / "testing" / "labels.json").read_text()
    assert any(f.read_bytes() != (c / f.relative_to(a)).read_bytes() for f in fa)
