"""UCSD Ped1: built-in frame labels and the clip and frame count check; loading, download and verify in ``ucsd.py``.

Clips are found by the generic reader (``dataset.py``) in either layout; the frame labels of all 36 test
clips ship here (from the dataset's ``UCSDped1.m``), and a labels.json found on disk must agree with them.
Unlike Ped2, a copy may hold only some of Ped1's clips (e.g. the odd-numbered ones, half the size): any
of them is accepted, as long as each is a Ped1 clip of Ped1's 200 frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ognet_video.data.dataset import Clip, Dataset
from ognet_video.data.ucsd import Subset, interval_labels, load_subset
from ognet_video.errors import UserError

CLIP_FRAMES = 200  # every Ped1 clip, training and test
TRAIN_CLIPS = [f"{i:02d}" for i in range(1, 35)]  # Train001..Train034
# clip -> anomalous intervals (first, last), 1-based inclusive, from the dataset's UCSDped1.m (Test001..Test036)
TEST_GT = {
    "01": ((60, 152),), "02": ((50, 175),), "03": ((91, 200),), "04": ((31, 168),),
    "05": ((5, 90), (140, 200)), "06": ((1, 100), (110, 200)), "07": ((1, 175),), "08": ((1, 94),),
    "09": ((1, 48),), "10": ((1, 140),), "11": ((70, 165),), "12": ((130, 200),),
    "13": ((1, 156),), "14": ((1, 200),), "15": ((138, 200),), "16": ((123, 200),),
    "17": ((1, 47),), "18": ((54, 120),), "19": ((64, 138),), "20": ((45, 175),),
    "21": ((31, 200),), "22": ((16, 107),), "23": ((8, 165),), "24": ((50, 171),),
    "25": ((40, 135),), "26": ((77, 144),), "27": ((10, 122),), "28": ((105, 200),),
    "29": ((1, 15), (45, 113)), "30": ((175, 200),), "31": ((1, 180),), "32": ((1, 52), (65, 115)),
    "33": ((5, 165),), "34": ((1, 121),), "35": ((86, 200),), "36": ((15, 108),),
}  # fmt: skip


def ped1_labels() -> dict[str, np.ndarray]:
    """0-based per-frame labels (1 = anomalous) for the 36 test clips: 7200 frames."""
    return {clip: interval_labels(CLIP_FRAMES, spans) for clip, spans in TEST_GT.items()}


def check_ped1(root: Path, train: list[Clip], test: list[Clip]) -> None:
    """Each clip present must be one of Ped1's, of 200 frames; a wrong folder fails here, not mid-training."""
    for split, clips, known in (("training", train, TRAIN_CLIPS), ("test", test, list(TEST_GT))):
        for clip in clips:
            folder = clip.frames[0].parent
            if clip.name not in known:
                raise UserError(f"{folder}: not a Ped1 {split} clip (Ped1's are {known[0]} to {known[-1]}); "
                                f"remove it or point --data at a Ped1 root")  # fmt: skip
            if len(clip) != CLIP_FRAMES:
                raise UserError(f"{folder}: {len(clip)} frames, Ped1's clips have {CLIP_FRAMES}; restore its frames "
                                "or point --data at a Ped1 root")  # fmt: skip


PED1 = Subset("ped1", "Ped1", "UCSDped1", (158, 238), ped1_labels, check_ped1)


def load_ped1(root: str | Path) -> Dataset:
    """Ped1 (all of it or some of its clips) under ``root`` in either layout, counts checked, labels attached."""
    return load_subset(PED1, root)
