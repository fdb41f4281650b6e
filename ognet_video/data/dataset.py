"""Clip-of-frames datasets in two layouts.

* frames layout (ano_pred_cvpr2018, MNAD, ../shared/data/ped2): ``training/frames/01/000.jpg``,
  ``testing/frames/01/...``, optional ``testing/labels.json`` ({clip: [0/1 per frame]}).
* original UCSD layout: ``UCSDped2/Train/Train001/001.tif``, ``Test/Test001`` (1-based, ``*_gt``
  mask folders skipped).

For Ped2 the frame labels ship with the package (``ped2.py``); a labels.json found on disk must agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ognet_video.errors import UserError
from ognet_video.sources.images import IMAGE_EXTS, image_files, read_gray  # noqa: F401 - re-exported


@dataclass
class Clip:
    name: str
    frames: list[Path]
    labels: np.ndarray | None = None  # 1 = anomalous frame; None for training clips

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class Dataset:
    name: str
    root: Path
    layout: str  # "frames" or "ucsd"
    train: list[Clip]
    test: list[Clip]


def _clips_from(folder: Path, prefix: str = "") -> list[Clip]:
    clips = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if d.name.endswith("_gt") or (prefix and not d.name.startswith(prefix)):
            continue
        frames = image_files(d)
        if not frames:
            raise UserError(f"clip folder {d} holds no images (.jpg/.png/.tif); remove it or restore its frames")
        name = d.name[len(prefix) :] if prefix else d.name
        # Train001 -> 01, matching the frames layout's names
        if prefix and name.isdigit():
            name = f"{int(name):02d}"
        clips.append(Clip(name, frames))
    return clips


def _find_ucsd(root: Path, subset: str) -> Path | None:
    for cand in (root, root / subset, root / "UCSD_Anomaly_Dataset.v1p2" / subset):
        if (cand / "Train").is_dir() and (cand / "Test").is_dir():
            return cand
    return None


def load_dataset(name: str, root: str | Path) -> Dataset:
    """Find the clips of a dataset under ``root`` in either layout and attach test labels."""
    root = Path(root).expanduser()
    if not root.exists():
        hint = " (get it with: ognet-video data download ped2 --root DIR)" if name == "ped2" else ""
        raise UserError(f"dataset folder not found: {root}{hint}")
    if (root / "training" / "frames").is_dir() and (root / "testing" / "frames").is_dir():
        layout = "frames"
        train = _clips_from(root / "training" / "frames")
        test = _clips_from(root / "testing" / "frames")
    elif (ucsd := _find_ucsd(root, "UCSDped2" if name == "ped2" else "")) is not None:
        layout = "ucsd"
        train = _clips_from(ucsd / "Train", "Train")
        test = _clips_from(ucsd / "Test", "Test")
    else:
        raise UserError(
            f"{root} is not a recognised dataset layout: expected training/frames/ and testing/frames/ "
            "(frames layout) or UCSDped2/Train and UCSDped2/Test (original UCSD layout)"
        )
    if not train:
        raise UserError(f"{root}: no training clips found")
    if not test:
        raise UserError(f"{root}: no test clips found")
    disk_labels = _read_labels_json(root, layout)
    if name == "ped2":
        from ognet_video.data.ped2 import check_ped2, ped2_labels

        check_ped2(root, train, test)
        labels = ped2_labels()
        if disk_labels is not None:
            for clip, lab in labels.items():
                if clip in disk_labels and list(disk_labels[clip]) != lab.tolist():
                    raise UserError(f"{root}: labels.json disagrees with the UCSD ground truth for clip {clip}")
    else:
        labels = {k: np.asarray(v, dtype=np.int64) for k, v in (disk_labels or {}).items()}
    for clip in test:
        if clip.name in labels:
            lab = labels[clip.name]
            if len(lab) != len(clip):
                raise UserError(f"{root}: clip {clip.name} has {len(clip)} frames but {len(lab)} labels")
            clip.labels = lab
    return Dataset(name, root, layout, train, test)


def _read_labels_json(root: Path, layout: str) -> dict[str, list[int]] | None:
    path = root / "testing" / "labels.json"
    if layout != "frames" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must map clip names to lists of 0/1 frame labels")
    return data
