"""Datasets: clips of frame files, with frame labels for test clips.

``load_dataset(name, root)`` looks ``name`` up in ``LOADERS``: ``"folder"`` reads any dataset in the
frames or UCSD layout (``dataset.py``), ``"ped1"`` and ``"ped2"`` are UCSD Ped1 and Ped2 with their built-in
labels (``ped1.py``, ``ped2.py``; what the two share, download and verify included, is in ``ucsd.py``).
A dataset module imports the generic ``dataset.py``; only this registry imports the dataset modules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ognet_video.data.dataset import Clip, Dataset, load_folder
from ognet_video.data.ped1 import PED1, load_ped1
from ognet_video.data.ped2 import PED2, load_ped2
from ognet_video.data.ucsd import Subset
from ognet_video.errors import UserError
from ognet_video.sources.images import read_gray

LOADERS: dict[str, Callable[[str | Path], Dataset]] = {
    "folder": load_folder,
    "ped1": load_ped1,
    "ped2": load_ped2,
}
# the datasets with built-in labels that ``ognet-video data download|verify`` know
UCSD_SUBSETS: dict[str, Subset] = {"ped1": PED1, "ped2": PED2}


def load_dataset(name: str, root: str | Path) -> Dataset:
    """The dataset ``name`` (a key of ``LOADERS``) found under ``root``, test clips labelled."""
    loader = LOADERS.get(name)
    if loader is None:
        known = ", ".join(repr(k) for k in sorted(LOADERS))
        raise UserError(f"unknown dataset {name!r}: known datasets are {known}")
    return loader(root)


def ucsd_subset(name: str, what: str) -> Subset:
    """The UCSD subset ``name`` for the command ``what`` (e.g. "download"); any other name is a UserError."""
    sub = UCSD_SUBSETS.get(name.lower())
    if sub is None:
        known = " or ".join(sorted(UCSD_SUBSETS))
        raise UserError(f"cannot {what} {name!r}: give {known} (the UCSD datasets)")
    return sub


__all__ = ["LOADERS", "UCSD_SUBSETS", "Clip", "Dataset", "load_dataset", "read_gray", "ucsd_subset"]
