"""Frame files: which files count as frames, their order, and how one is decoded."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ognet_video.errors import UserError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def image_files(folder: Path) -> list[Path]:
    """Images in a folder, sorted by name (zero-padded names sort in frame order)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))


def read_gray(path: Path) -> np.ndarray:
    """A frame as 2-D uint8 gray. Unreadable files raise UserError naming the file."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise UserError(f"cannot read frame {path}: file is missing, empty or not an image; replace or remove it")
    return img
