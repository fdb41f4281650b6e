"""Video files for tests and benchmarks: frames written as an MP4 and read back, one helper for all of them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_mp4(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Gray or BGR frames as an mp4v MP4 (what OpenCV's wheel can encode)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f)
    writer.release()
    return path


def decode(path: Path) -> list[np.ndarray]:
    """Every frame of a video, as OpenCV decodes it."""
    cap, out = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        out.append(got[1])
    cap.release()
    return out
