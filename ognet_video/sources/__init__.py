"""One ``source`` argument for every kind of input, as Ultralytics does: a video file, a folder of frames,
a glob of images, a webcam index ("0") or a stream URL (rtsp://, http(s)://).

``open_source(spec)`` picks the reader class for the kind; every source yields ``Frame``s (source index,
seconds from the start, the uint8 image as decoded: BGR or gray, any size). Converting to the model's input
is the patch extractor's job (``PatchExtractor.prepare``), so every source is scored the same way.
``Reader`` runs any source in its own thread with a bounded queue (drop-oldest for live sources).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ognet_video.errors import UserError
from ognet_video.paths import special_file
from ognet_video.sources.base import (
    GLOB_CHARS,
    NOT_FOUND,
    STREAM_PREFIXES,
    VIDEO_EXTS,
    Capture,
    Frame,
    Opener,
    Source,
    display_source,
    is_glob,
    open_capture,
    source_kind,
    source_name,
)
from ognet_video.sources.files import ImageFiles, VideoFile
from ognet_video.sources.images import IMAGE_EXTS, image_files, read_gray
from ognet_video.sources.live import LiveSource, NetworkStream, Webcam
from ognet_video.sources.reader import Reader

__all__ = [
    "GLOB_CHARS", "IMAGE_EXTS", "STREAM_PREFIXES", "VIDEO_EXTS", "Capture", "Frame", "ImageFiles", "LiveSource",
    "NetworkStream", "Opener", "Reader", "Source", "VideoFile", "Webcam", "display_source", "image_files",
    "is_glob", "open_capture", "open_source", "read_gray", "source_kind", "source_name",
]  # fmt: skip


def open_source(spec: str | Path, *, stride: int = 1, fps: float = 10.0, opener: Opener | None = None,
                connect_timeout: float = 15.0, reconnect_timeout: float = 60.0,
                backoff: tuple[float, float] = (0.5, 8.0), log: Callable[[str], None] | None = None) -> Source:  # fmt: skip
    """The source for ``spec`` (not yet opened). ``fps`` is the frame rate of a frame folder or glob;
    ``opener`` replaces ``open_capture`` for videos and live sources (tests); ``log`` hears warnings (a
    reconnect, a skipped frame)."""
    spec = str(spec)
    kind = source_kind(spec)  # UserError for a path that does not exist
    if kind in ("folder", "glob"):
        return ImageFiles(spec, stride, fps, log=log)
    if kind == "video":
        if opener is None and not Path(spec).is_file():
            what = special_file(spec)  # never opened: a FIFO blocks, a device never ends
            raise UserError(f"source {spec!r} is {what}, not a video file: {NOT_FOUND}" if what else
                            f"source {spec!r} does not exist: {NOT_FOUND}")  # fmt: skip
        return VideoFile(spec, stride, opener, log)
    cls = Webcam if kind == "webcam" else NetworkStream
    return cls(spec, stride, opener, connect_timeout, reconnect_timeout, backoff, log)
