"""Clip-of-frames datasets in two layouts; nothing here knows any particular dataset.

* frames layout (as in ano_pred_cvpr2018 and MNAD): ``training/frames/01/000.jpg``,
  ``testing/frames/01/...``, optional ``testing/labels.json`` ({clip: [0/1 per frame]}).
* original UCSD layout: ``UCSDped2/Train/Train001/001.tif``, ``Test/Test001`` (1-based, ``*_gt``
  mask folders skipped).

``load_folder`` reads any such dataset with the labels of its labels.json. A dataset with labels of
its own (``ped1.py``, ``ped2.py``) finds its clips with ``find_clips`` and attaches them with ``attach_labels``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ognet_video.errors import UserError
from ognet_video.paths import natural_sorted
from ognet_video.sources.files import ImageFiles
from ognet_video.sources.images import IMAGE_EXTS, image_files, read_gray  # noqa: F401 - re-exported


@dataclass
class Clip:
    name: str
    frames: list[Path]
    labels: np.ndarray | None = None  # 1 = anomalous frame; None for training clips

    def __len__(self) -> int:
        return len(self.frames)

    def source(self, fps: float = 10.0) -> ImageFiles:
        """The clip as a source: the reader ``watch`` and ``score`` use for frame folders, so ``train`` and
        ``eval`` read frames exactly as they do."""
        return ImageFiles(self.name, fps=fps, files=self.frames)


@dataclass
class Dataset:
    name: str
    root: Path
    layout: str  # "frames" or "ucsd"
    train: list[Clip]
    test: list[Clip]


def _clips_from(folder: Path, prefix: str = "") -> list[Clip]:
    clips = []
    for d in natural_sorted(p for p in folder.iterdir() if p.is_dir()):  # clip 2 before clip 10
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


def find_clips(root: Path, ucsd_subset: str = "", missing_hint: str = "") -> tuple[str, list[Clip], list[Clip]]:
    """``(layout, train, test)`` under ``root`` in either layout, test clips unlabelled.

    ``ucsd_subset`` names the folder of the UCSD layout to look for below ``root`` (e.g. ``UCSDped2``);
    ``missing_hint`` is appended to the error for a ``root`` that does not exist.
    """
    if not root.exists():
        raise UserError(f"dataset folder not found: {root}{missing_hint}")
    if (root / "training" / "frames").is_dir() and (root / "testing" / "frames").is_dir():
        layout = "frames"
        train = _clips_from(root / "training" / "frames")
        test = _clips_from(root / "testing" / "frames")
    elif (ucsd := _find_ucsd(root, ucsd_subset)) is not None:
        layout = "ucsd"
        train = _clips_from(ucsd / "Train", "Train")
        test = _clips_from(ucsd / "Test", "Test")
    else:
        ucsd = f"{ucsd_subset}/" if ucsd_subset else ""
        raise UserError(
            f"{root} is not a recognised dataset layout: expected training/frames/ and testing/frames/ "
            f"(frames layout) or {ucsd}Train and {ucsd}Test (original UCSD layout)"
        )
    if not train:
        raise UserError(f"{root}: no training clips found")
    if not test:
        raise UserError(f"{root}: no test clips found")
    return layout, train, test


def read_labels_json(root: Path, layout: str) -> dict[str, list[int]] | None:
    """The frames layout's ``testing/labels.json`` ({clip: [0/1 per frame]}), or None when there is none."""
    path = root / "testing" / "labels.json"
    if layout != "frames" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must map clip names to lists of 0/1 frame labels")
    for clip, lab in data.items():
        if not isinstance(lab, list) or not all(v in (0, 1) and not isinstance(v, float) for v in lab):
            shown = (
                repr(lab)
                if not isinstance(lab, list)
                else next(repr(v) for v in lab if v not in (0, 1) or isinstance(v, float))
            )
            raise UserError(
                f"{path}: clip {clip!r} must have a list of 0/1 labels, one per frame (found {shown[:40]}); fix it"
            )
    return data


def attach_labels(root: Path, test: list[Clip], labels: dict[str, np.ndarray]) -> None:
    """Give each test clip named in ``labels`` its frame labels; their count must be the clip's."""
    for clip in test:
        if clip.name in labels:
            lab = labels[clip.name]
            if len(lab) != len(clip):
                raise UserError(f"{root}: clip {clip.name} has {len(clip)} frames but {len(lab)} labels")
            clip.labels = lab


def load_folder(root: str | Path, name: str = "folder") -> Dataset:
    """Any dataset in either layout; test clips get the labels of ``testing/labels.json`` if present."""
    root = Path(root).expanduser()
    layout, train, test = find_clips(root)
    disk_labels = read_labels_json(root, layout)
    labels = {k: np.asarray(v, dtype=np.int64) for k, v in (disk_labels or {}).items()}
    attach_labels(root, test, labels)
    return Dataset(name, root, layout, train, test)
