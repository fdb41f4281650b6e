"""Datasets: clips of frame files, with frame labels for test clips.

``load_dataset(name, root)`` looks ``name`` up in ``LOADERS``: ``"folder"`` reads any dataset in the
frames or UCSD layout (``dataset.py``), ``"ped2"`` is UCSD Ped2 with its built-in labels (``ped2.py``).
A dataset module imports the generic ``dataset.py``; only this registry imports the dataset modules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ognet_video.data.dataset import Clip, Dataset, load_folder
from ognet_video.data.ped2 import load_ped2
from ognet_video.errors import UserError
from ognet_video.sources.images import read_gray

LOADERS: dict[str, Callable[[str | Path], Dataset]] = {
    "folder": load_folder,
    "ped2": load_ped2,
}


def load_dataset(name: str, root: str | Path) -> Dataset:
    """The dataset ``name`` (a key of ``LOADERS``) found under ``root``, test clips labelled."""
    loader = LOADERS.get(name)
    if loader is None:
        known = ", ".join(repr(k) for k in sorted(LOADERS))
        raise UserError(f"unknown dataset {name!r}: known datasets are {known}")
    return loader(root)


__all__ = ["LOADERS", "Clip", "Dataset", "load_dataset", "read_gray"]
