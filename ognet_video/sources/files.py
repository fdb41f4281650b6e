"""Recorded sources: a video file and a sequence of frame files (a folder, a glob or a list).

Both are read completely, in order: nothing is dropped, whatever the consumer's speed.
"""

from __future__ import annotations

import glob
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2

from ognet_video.errors import UserError
from ognet_video.paths import natural_sorted, special_file
from ognet_video.sources.base import NOT_FOUND, Capture, Frame, Opener, Source, is_glob, open_capture
from ognet_video.sources.images import IMAGE_EXTS, image_files, read_gray
from ognet_video.sources.resample import Resampler


class VideoFile(Source):
    """A video file decoded with OpenCV. Frame ``i`` is at ``i / fps`` while the container's timestamps agree
    (to half a frame); from the first frame where they do not (a variable-rate file) times are the timestamps
    and frames are picked for the analysis rate by them, so motion is measured across the real interval.
    Without a stated rate the timestamps decide throughout. ``opener`` replaces ``open_capture`` (tests)."""

    kind = "video"

    def __init__(self, spec: str, stride: int = 1, opener: Opener | None = None) -> None:
        super().__init__(spec, stride)
        self.opener = opener or open_capture
        self._cap: Capture | None = None
        self.variable = False  # timestamps left index / fps: picked and timed by them from then on
        self._t0: float | None = None  # the first frame's timestamp (a stream may not start at 0)
        self._by_time: Resampler | None = None

    def _open(self) -> None:
        if self.opener is open_capture and not Path(self.spec).is_file():
            if what := special_file(self.spec):  # never opened: a FIFO blocks, a device never ends
                raise UserError(f"source {self.spec!r} is {what}, not a video file: {NOT_FOUND}")
            raise UserError(f"source {self.spec!r} does not exist: {NOT_FOUND}")
        self._cap = self.opener(self.spec)
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0) or None
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.length = n if n > 0 else None

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        self.open()
        cap = self._cap
        assert cap is not None
        self.connected = True
        index = 0
        last_kept: float | None = None
        while stop is None or not stop.is_set():
            t = time.perf_counter()
            keep = self.keeps(index) if not self.variable else index % self.stride == 0
            ok, img = cap.read() if keep else (cap.grab(), None)
            self.decode_seconds += time.perf_counter() - t
            if not ok:
                if index == 0:
                    raise UserError(f"video {self.display!r} has no decodable frames; check that the file is complete")
                return
            self.decoded += 1
            stamp = self._stamp(index, cap)
            if not self.variable and self.fps and stamp is not None and abs(stamp - index / self.fps) > 0.5 / self.fps:
                self._vary(last_kept)
            if self.variable:
                assert self._by_time is not None
                if keep and stamp is not None and self._by_time.keep_time(stamp):
                    last_kept = stamp
                    yield Frame(index, stamp, img)
            elif keep:
                at = self._time(index, cap)
                if self.keeps_time(at):  # a file that does not state its rate: its timestamps decide
                    last_kept = at
                    yield Frame(index, at, img)
            index += 1

    def _stamp(self, index: int, cap: Capture) -> float | None:
        """The container's timestamp of the frame just read, from the first frame's (None where it gives none)."""
        pos = cap.get(cv2.CAP_PROP_POS_MSEC)
        valid = isinstance(pos, (int, float)) and math.isfinite(pos) and (index == 0 or pos > 0)
        if index == 0:
            self._t0 = pos / 1000.0 if valid else None  # no first timestamp: the times stay index / fps
        if not valid or self._t0 is None:
            return None
        return pos / 1000.0 - self._t0

    def _vary(self, last_kept: float | None) -> None:
        """From now on pick frames and give times by the timestamps, continuing the analysis grid."""
        self.variable = True
        self._by_time = Resampler(self.analysis_fps, None)
        if last_kept is not None and self.analysis_fps:
            self._by_time._last = math.floor(last_kept * self.analysis_fps + 1e-6)

    def _time(self, index: int, cap: Capture) -> float | None:
        if self.fps:
            return index / self.fps
        pos = cap.get(cv2.CAP_PROP_POS_MSEC)
        return pos / 1000.0 if pos and pos > 0 else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFiles(Source):
    """Frame files decoded straight to gray with ``read_gray``, exactly as ``train`` and ``eval`` read them,
    so a frame folder scores identically everywhere. ``spec`` is a folder or a glob; ``files`` an explicit
    list (a dataset clip) that is taken as given. Frame ``i`` is at ``i / fps``."""

    kind = "folder"

    def __init__(self, spec: str | Path, stride: int = 1, fps: float = 10.0, files: list[Path] | None = None) -> None:
        super().__init__(str(spec), stride)
        if not 0 < fps < math.inf:
            raise UserError(f"--fps must be a positive number (got {fps})")
        self.fps = float(fps)
        self.kind = "glob" if files is None and is_glob(self.spec) and not Path(self.spec).exists() else "folder"
        self.files = files

    def _open(self) -> None:
        if self.files is None:
            self.files = self._list()
        self.length = len(self.files)

    def _list(self) -> list[Path]:
        if self.kind == "folder":
            p = Path(self.spec)
            if not p.is_dir():
                raise UserError(f"source {self.spec!r} does not exist: {NOT_FOUND}")
            files = image_files(p)
        else:
            files = natural_sorted(Path(p) for p in glob.glob(self.spec) if Path(p).suffix.lower() in IMAGE_EXTS)
        if not files:
            raise UserError(f"no images in {self.spec!r} (looked for {', '.join(sorted(IMAGE_EXTS))}); check the path")
        return files

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        self.open()
        assert self.files is not None and self.fps
        self.connected = True
        for i in range(0, len(self.files), self.stride):
            if stop is not None and stop.is_set():
                return
            if not self.keeps(i):
                continue
            t = time.perf_counter()
            img = read_gray(self.files[i])
            self.decode_seconds += time.perf_counter() - t
            self.decoded += 1
            yield Frame(i, i / self.fps, img)
