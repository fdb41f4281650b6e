"""UCSD Ped2: built-in frame labels and the clip and frame count check; loading, download and verify in ``ucsd.py``.

Clips are found by the generic reader (``dataset.py``) in either layout; the frame labels ship here
(from the dataset's ``UCSDped2.m``), and a labels.json found on disk must agree with them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ognet_video.data.dataset import Clip, Dataset
from ognet_video.data.ucsd import (  # noqa: F401 - sha256_file re-exported
    UCSD_SHA256,
    UCSD_URL,
    Subset,
    download_subset,
    interval_labels,
    load_subset,
    sha256_file,
    verify_dataset,
)
from ognet_video.errors import UserError

TRAIN_FRAMES = [120, 150, 150, 180, 180, 150, 150, 120, 180, 180, 180, 180, 180, 150, 150, 150]
# clip -> (frames, first anomalous, last anomalous), 1-based inclusive, from the dataset's UCSDped2.m
TEST_GT = {
    "01": (180, 61, 180), "02": (180, 95, 180), "03": (150, 1, 146), "04": (180, 31, 180),
    "05": (150, 1, 129), "06": (180, 1, 159), "07": (180, 46, 180), "08": (180, 1, 180),
    "09": (120, 1, 120), "10": (150, 1, 150), "11": (180, 1, 180), "12": (180, 88, 180),
}  # fmt: skip


def ped2_labels() -> dict[str, np.ndarray]:
    """0-based per-frame labels (1 = anomalous) for the 12 test clips: 2010 frames, 1648 anomalous."""
    return {clip: interval_labels(n, [(a, b)]) for clip, (n, a, b) in TEST_GT.items()}


def check_ped2(root: Path, train: list[Clip], test: list[Clip]) -> None:
    """The clip and frame counts must be Ped2's; a wrong folder fails here, not mid-training."""
    want_train = {f"{i + 1:02d}": n for i, n in enumerate(TRAIN_FRAMES)}
    for split, clips, want in (("training", train, want_train), ("test", test, {k: v[0] for k, v in TEST_GT.items()})):
        got = {c.name: len(c) for c in clips}
        if set(got) != set(want):
            raise UserError(
                f"{root}: {split} clips {sorted(got)} are not Ped2's {sorted(want)}; point --data at the Ped2 root"
            )
        for name, n in want.items():
            if got[name] != n:
                raise UserError(f"{root}: {split} clip {name} has {got[name]} frames, Ped2 has {n}; re-download it")


PED2 = Subset("ped2", "Ped2", "UCSDped2", (240, 360), ped2_labels, check_ped2)


def load_ped2(root: str | Path) -> Dataset:
    """Ped2 under ``root`` in either layout, its counts checked and its built-in labels attached."""
    return load_subset(PED2, root)


def download_ped2(root: str | Path, url: str = UCSD_URL, sha256: str = UCSD_SHA256) -> Path:
    """Download the official tarball, check its sha256, extract only UCSDped2/ safely. Returns its folder."""
    return download_subset(PED2, root, url, sha256)


def verify_ped2(root: str | Path, read_frames: bool = True) -> dict[str, int]:
    """Check layout, counts, labels and (optionally) that every frame decodes. Returns counts."""
    return verify_dataset(PED2, load_ped2(root), root, read_frames)
