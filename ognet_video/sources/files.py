"""Recorded sources: a video file and a sequence of frame files (a folder, a glob or a list).

Both are read completely, in order: nothing is dropped, whatever the consumer's speed. A frame that cannot be
decoded (a damaged file, a decoder error mid-video) is skipped with a warning naming it, and the frames after
it start a new link, as after a live reconnect: motion restarts there and the steps count the missing
interval, so one bad frame costs one frame's score, not the clip's. A source with no readable frame fails.
"""

from __future__ import annotations

import glob
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ognet_video.errors import UserError
from ognet_video.paths import natural_sorted, special_file
from ognet_video.sources.base import NOT_FOUND, Capture, Frame, Opener, Source, is_glob, open_capture
from ognet_video.sources.images import IMAGE_EXTS, BadFrame, image_files, read_gray
from ognet_video.sources.resample import Resampler

MAX_WARNINGS = 10  # skipped frames named one line each per source; the rest in one line
LISTED = 5  # skipped frames named in the clip's record
RETRY_READS = 3  # failed video reads in a row before the file is taken to end there


class Recorded(Source):
    """What both recorded sources share: skipping a frame that cannot be decoded (see the module doc)."""

    def __init__(self, spec: str, stride: int = 1, log: Callable[[str], None] | None = None) -> None:
        super().__init__(spec, stride)
        self.log = log
        self.gap = 0  # the link of the next frame: +1 after each skipped frame
        self._held: list[str] = []  # warnings before the first good frame: a source with none fails in one line
        self._good = False

    def skip(self, name: str, why: str) -> None:
        """Leave out one frame: counted, named, and the next frame starts a new link."""
        self.skipped += 1
        self.gap += 1
        if len(self.skipped_frames) < LISTED:
            self.skipped_frames.append(name)
        if self.skipped <= MAX_WARNINGS:
            self._held.append(f"skipped a frame: {why}")
        elif self.skipped == MAX_WARNINGS + 1:
            self._held.append(f"{self.display}: more unreadable frames are skipped without a line each")
        if self._good:
            self._say()

    def good(self) -> None:
        """A frame was read: the warnings held so far are said."""
        self._good = True
        self._say()

    def _say(self) -> None:
        held, self._held = self._held, []
        for line in held:
            if self.log is not None:
                self.log(line)

    def none_read(self) -> UserError:
        """The one error of a source whose every frame was skipped."""
        first = self.skipped_frames[0] if self.skipped_frames else "?"
        return UserError(f"no frame of {self.kind} {self.display!r} could be read: all {self.skipped} are damaged or "
                         f"not images (the first: {first}); replace them or leave this input out")  # fmt: skip


class VideoFile(Recorded):
    """A video file decoded with OpenCV. Frame ``i`` is at ``i / fps`` while the container's timestamps agree
    (to half a frame); from the first frame where they do not (a variable-rate file) times are the timestamps
    and frames are picked for the analysis rate by them, so motion is measured across the real interval.
    Without a stated rate the timestamps decide throughout. ``opener`` replaces ``open_capture`` (tests)."""

    kind = "video"

    def __init__(self, spec: str, stride: int = 1, opener: Opener | None = None,
                 log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        super().__init__(spec, stride, log)
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
        failed: list[tuple[int, str]] = []  # reads that failed since the last good one: skipped if one follows
        while stop is None or not stop.is_set():
            t = time.perf_counter()
            keep = self.keeps(index) if not self.variable else index % self.stride == 0
            ok, img, why = self._read(cap, keep)
            self.decode_seconds += time.perf_counter() - t
            if not ok:
                if len(failed) < RETRY_READS and (self.length is None or index + 1 < self.length):
                    failed.append((index, why))
                    index += 1
                    continue
                if self.decoded == 0:
                    raise UserError(f"video {self.display!r} has no decodable frames; check that the file is complete")
                return  # the end, or a file cut off there (the clip's record says so)
            for i, w in failed:
                self.skip(f"frame {i}", f"frame {i} of video {self.display!r}: {w}")
            failed = []
            self.decoded += 1
            stamp = self._stamp(index, cap)
            if not self.variable and self.fps and stamp is not None and abs(stamp - index / self.fps) > 0.5 / self.fps:
                self._vary(last_kept)
            if self.variable:
                assert self._by_time is not None
                if keep and stamp is not None and self._by_time.keep_time(stamp):
                    last_kept = stamp
                    self.good()
                    yield Frame(index, stamp, img, self.gap)
            elif keep:
                at = self._time(index, cap)
                if self.keeps_time(at):  # a file that does not state its rate: its timestamps decide
                    last_kept = at
                    self.good()
                    yield Frame(index, at, img, self.gap)
            index += 1

    @staticmethod
    def _read(cap: Capture, keep: bool) -> tuple[bool, np.ndarray | None, str]:
        """One frame (decoded when ``keep``): ok, the image, and why not (a decoder error is not raised)."""
        try:
            ok, img = cap.read() if keep else (cap.grab(), None)
        except cv2.error as exc:
            return False, None, str(exc).strip().splitlines()[-1] if str(exc).strip() else "decoder error"
        return bool(ok), img, "the decoder gave no picture"

    def _stamp(self, index: int, cap: Capture) -> float | None:
        """The container's timestamp of the frame just read, from the first frame's (None where it gives none)."""
        pos = cap.get(cv2.CAP_PROP_POS_MSEC)
        first = self.decoded == 1  # frame 0, or the first that decoded
        valid = isinstance(pos, (int, float)) and math.isfinite(pos) and (first or pos > 0)
        if first:
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


class ImageFiles(Recorded):
    """Frame files decoded straight to gray with ``read_gray``, exactly as ``train`` and ``eval`` read them,
    so a frame folder scores identically everywhere. ``spec`` is a folder or a glob; ``files`` an explicit
    list (a dataset clip) that is taken as given. Frame ``i`` is at ``i / fps``."""

    kind = "folder"

    def __init__(self, spec: str | Path, stride: int = 1, fps: float = 10.0, files: list[Path] | None = None,
                 log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        super().__init__(str(spec), stride, log)
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
            try:
                img = read_gray(self.files[i])
            except BadFrame as exc:  # a FIFO or device is not skipped: it fails the clip
                self.skip(self.files[i].name, str(exc))
                continue
            finally:
                self.decode_seconds += time.perf_counter() - t
            self.decoded += 1
            self.good()
            yield Frame(i, i / self.fps, img, self.gap)
        if self.skipped and not self._good:
            raise self.none_read()
