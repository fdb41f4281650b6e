"""Frame files: which files count as frames, their order, and how one is decoded."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ognet_video.errors import UserError
from ognet_video.paths import natural_sorted, special_file

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


class BadFrame(UserError):
    """A frame file that holds no whole image (missing, empty, damaged, cut off): a recorded source skips it,
    where a file that must never be opened (a FIFO) fails its clip."""


def image_files(folder: Path) -> list[Path]:
    """Images in a folder in natural order (``frame2`` before ``frame10``: unpadded numbers are common and a
    text sort would read them out of order, without a word). Every command lists frames through here."""
    return natural_sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))


def read_gray(path: Path) -> np.ndarray:
    """A frame as 2-D uint8 gray. Unreadable files raise UserError naming the file, and so do JPEGs cut off
    before their end marker, which OpenCV would decode with their lower part gray, without a word."""
    if what := special_file(path):  # reading a FIFO would block the run forever
        raise UserError(f"cannot read frame {path}: it is {what}, not a regular file; replace or remove it")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        data = np.zeros(0, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if img is None:
        raise BadFrame(f"cannot read frame {path}: file is missing, empty or not an image; replace or remove it")
    if Path(path).suffix.lower() in (".jpg", ".jpeg") and not _jpeg_complete(data):
        raise BadFrame(f"frame {path} is a truncated JPEG (no end marker); replace or remove it")
    return img


def _jpeg_complete(data: np.ndarray) -> bool:
    tail = data[-64:].tobytes().rstrip(b"\x00\r\n ")  # some writers pad after the end marker
    return tail.endswith(b"\xff\xd9")
