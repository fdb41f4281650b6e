"""One ``source`` argument for every kind of input, as Ultralytics does: a video file, a folder of
frames, a glob of images, a webcam index ("0") or a stream URL (rtsp://, http(s)://).

A source yields ``Frame``s (index, seconds from the start, uint8 image as decoded: BGR or gray, any
size). Converting to the model's input (gray, resized to the training resolution) is the patch
extractor's job (``PatchExtractor.prepare``), so every source is scored the same way.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ognet_video.data.dataset import IMAGE_EXTS, image_files, read_gray
from ognet_video.errors import UserError

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".ts", ".flv"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass
class Frame:
    index: int  # position in the source, counting dropped frames
    time: float | None  # seconds from the start (frame index / fps for files and folders)
    image: np.ndarray  # uint8, BGR or gray, as decoded


def source_kind(spec: str) -> str:
    """'webcam', 'stream', 'video', 'folder' or 'glob' (does not touch the source)."""
    if spec.isdigit():
        return "webcam"
    if spec.lower().startswith(STREAM_PREFIXES):
        return "stream"
    if any(ch in spec for ch in "*?["):
        return "glob"
    p = Path(spec)
    if p.is_dir():
        return "folder"
    if p.exists() or p.suffix.lower() in VIDEO_EXTS:
        return "video"
    raise UserError(
        f"source {spec!r} does not exist: give a video file, a folder of frames, a glob, a webcam index or a URL"
    )


def image_list(spec: str) -> list[Path]:
    """The frames of a folder or a glob, sorted by name."""
    if source_kind(spec) == "folder":
        files = image_files(Path(spec))
    else:
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).suffix.lower() in IMAGE_EXTS)
    if not files:
        raise UserError(f"no images in {spec!r} (looked for {', '.join(sorted(IMAGE_EXTS))}); check the path")
    return files


def iter_images(spec: str, fps: float = 10.0) -> Iterator[Frame]:
    """Frame files decoded straight to gray with ``read_gray``, exactly as ``train`` and ``eval`` read them,
    so a frame folder scores identically everywhere (the models are gray-only)."""
    for i, p in enumerate(image_list(spec)):
        yield Frame(i, i / fps, read_gray(p))


def open_capture(spec: str) -> cv2.VideoCapture:
    """An opened VideoCapture for a file, webcam index or URL; UserError naming the source otherwise."""
    kind = source_kind(spec)
    cap = cv2.VideoCapture(int(spec)) if kind == "webcam" else cv2.VideoCapture(spec)
    if not cap.isOpened():
        cap.release()
        hint = {
            "webcam": "check that the camera is connected and not used by another program",
            "stream": "check the URL, credentials and network",
            "video": "check that it is a video file opencv can decode (mp4, avi, ...)",
        }.get(kind, "check the path")
        raise UserError(f"cannot open {kind} source {spec!r}: {hint}")
    return cap


def iter_video(spec: str) -> Iterator[Frame]:
    """Frames of a video file (or any VideoCapture source) until it ends."""
    cap = open_capture(spec)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    try:
        i = 0
        while True:
            ok, img = cap.read()
            if not ok:
                if i == 0:
                    raise UserError(f"video {spec!r} has no decodable frames; check that the file is complete")
                return
            pos = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = pos / 1000.0 if pos and pos > 0 else (i / fps if fps > 0 else None)
            yield Frame(i, t, img)
            i += 1
    finally:
        cap.release()


def iter_frames(spec: str, fps: float = 10.0) -> Iterator[Frame]:
    """Frames of any source, in order, in the calling thread (no dropping)."""
    kind = source_kind(spec)
    if kind in ("folder", "glob"):
        return iter_images(spec, fps)
    return iter_video(spec)
