"""Picture sinks: the annotated MP4 and the ``--show`` window (both drawn by ``annotate.Annotator``)."""

from __future__ import annotations

import os
import sys

import cv2

from ognet_video.annotate import AnnotatedVideoWriter, Annotator
from ognet_video.sinks.files import Folder
from ognet_video.stream.engine import Batch, Sink, StopRun, Stream

WINDOW = "ognet-video"


class AnnotatedVideo(Sink):
    """``annotated.mp4``: every scored frame with its heat map, worst box and score strip; written to a
    temporary name and renamed on close, so the file at the final path is always complete."""

    def __init__(self, folder: Folder, name: str = "annotated.mp4") -> None:
        self.folder, self.name = folder, name
        self.writer: AnnotatedVideoWriter | None = None

    def write(self, batch: Batch) -> None:
        info = batch.info
        assert info is not None
        if self.writer is None and batch.frames:
            fps = batch.stats.source_fps or 10.0 / info.stride
            self.writer = AnnotatedVideoWriter(self.folder.path / self.name, fps, info.threshold, info.cal)
        for f, r, boxes in zip(batch.frames, batch.results, batch.boxes, strict=True):
            self.writer.write(f.image, r, boxes)  # type: ignore[union-attr]

    def close(self, stream: Stream) -> None:
        if self.writer is not None:
            stream.info["video"] = self.name if self.writer.close() else None

    def abort(self, stream: Stream) -> None:
        if self.writer is not None:
            self.writer.abort()


def display_unavailable() -> str | None:
    """Why a window cannot be opened here, or None when it can."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display ($DISPLAY is not set)"
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        return "this OpenCV build has no window support (opencv-python-headless); install opencv-python for --show"
    return None


class Window(Sink):
    """The annotated frames in a window; q or Esc ends the run (``StopRun("quit")``)."""

    def __init__(self) -> None:
        self.annotator: Annotator | None = None

    def write(self, batch: Batch) -> None:
        info = batch.info
        assert info is not None
        if self.annotator is None:
            self.annotator = Annotator(info.threshold, info.cal)
        shown = None
        for f, r, boxes in zip(batch.frames, batch.results, batch.boxes, strict=True):
            shown = self.annotator.render(f.image, r, boxes)
        if shown is not None:
            cv2.imshow(WINDOW, shown)
            if (cv2.waitKey(1) & 0xFF) in (ord("q"), 27):
                raise StopRun("quit")

    def close(self, stream: Stream) -> None:
        cv2.destroyAllWindows()

    abort = close
