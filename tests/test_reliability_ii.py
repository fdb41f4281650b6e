"""Issue 39 (Reliability II): frames in their true order, diagnostics on stderr, the metrics server on localhost,
signals that say what they are, one training per run folder, reads that cannot hang."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from conftest import quiet_console

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
