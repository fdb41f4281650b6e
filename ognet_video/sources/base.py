"""What every source shares: the ``Frame`` it yields, how a spec names a kind, and the ``Source`` base.

A source reads in the calling thread (``Source.frames``); ``Reader`` moves that into a thread of its own.
Frame indices count every frame of the source (strided and dropped ones included), so outputs use the
source's own numbering. Timestamps are seconds from the start: ``index / fps`` for recorded sources whose
rate is known (the container's position where it is not), wall-clock seconds since the first frame for
live ones.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from ognet_video.errors import UserError
from ognet_video.sources.resample import Resampler

# OpenCV and FFmpeg print their own warnings for every source that fails to open ("moov atom not found",
# "can't open camera by index"); our errors already say it in one line. Set these variables to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when the FFmpeg backend starts
if "OPENCV_LOG_LEVEL" not in os.environ:
    _logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if _logging is not None and hasattr(_logging, "setLogLevel"):
        _logging.setLogLevel(_logging.LOG_LEVEL_ERROR)

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".ts", ".flv"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
GLOB_CHARS = "*?["
MAX_WEBCAM = 9999  # OpenCV takes an int; a larger all-digit source is a mistake, not a camera
NOT_FOUND = "give a video file, a folder of frames, a glob, a webcam index or a URL"


@dataclass
class Frame:
    index: int  # position in the source, counting strided and dropped frames
    time: float | None  # seconds from the start
    image: np.ndarray  # uint8, BGR or gray, as decoded
    link: int = 0  # which connection delivered it: 0, then +1 per reconnect (a gap lies between links)
    # Set by ``Reader``: the frame's place on the analysis grid (source time in analysis intervals, counting
    # frames dropped later; -1: not known, taken as the next one), and the image the source delivered just
    # before it on the same link, so motion is measured over one interval even when that frame was dropped.
    step: int = -1
    prev: np.ndarray | None = field(default=None, repr=False)
    arrived: float | None = None  # time.monotonic() when the reader queued it (how far scoring lags behind)


def is_glob(spec: str) -> bool:
    return any(ch in spec for ch in GLOB_CHARS)


def source_kind(spec: str) -> str:
    """'webcam', 'stream', 'video', 'folder' or 'glob' (does not touch the source). An all-digit name is a webcam
    index unless a file or folder of that name exists here (``watch 01`` in a frames folder means the clip)."""
    if spec.isdigit() and not Path(spec).exists():
        if int(spec) > MAX_WEBCAM:
            raise UserError(f"webcam index {spec} is out of range (0-{MAX_WEBCAM}); give a webcam index, a video "
                            "file, a folder of frames, a glob or a URL")  # fmt: skip
        return "webcam"
    if spec.lower().startswith(STREAM_PREFIXES):
        return "stream"
    if is_glob(spec) and not Path(spec).exists():
        return "glob"
    p = Path(spec)
    if p.is_dir():
        return "folder"
    if p.exists() or p.suffix.lower() in VIDEO_EXTS:
        return "video"
    raise UserError(f"source {spec!r} does not exist: {NOT_FOUND}")


def display_source(spec: str) -> str:
    """The source as it may be printed and logged: a stream URL's password is masked."""
    if not spec.lower().startswith(STREAM_PREFIXES):
        return spec
    parts = urlsplit(spec)
    if parts.password is None:
        return spec
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def source_name(spec: str) -> str:
    """A short name for run folders: the file's stem, the folder's name, ``webcam0``, a stream's host."""
    try:
        kind = source_kind(spec)
    except UserError:
        kind = "video"
    if kind == "webcam":
        name = f"webcam{spec}"
    elif kind == "stream":
        name = urlsplit(spec).hostname or "stream"
    elif kind == "glob":
        prefix = re.split(r"[*?\[]", spec, maxsplit=1)[0]
        name = Path(prefix).name if prefix and not prefix.endswith(("/", "\\")) else Path(prefix or ".").resolve().name
    elif kind == "folder":
        name = Path(spec).resolve().name
    else:
        name = Path(spec).stem
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return name or "source"


class Capture(Protocol):
    """What a video source needs of a capture: ``cv2.VideoCapture`` or a test double."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def grab(self) -> bool: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


Opener = Callable[[str], Capture]


def open_capture(spec: str, timeout_s: float | None = None) -> cv2.VideoCapture:
    """An opened VideoCapture for a file, webcam index or URL; UserError naming the source otherwise.

    ``timeout_s`` bounds FFmpeg's open and read calls on streams, so a dead camera cannot hang a thread forever.
    """
    kind = "webcam" if spec.isdigit() and not Path(spec).exists() else "stream" if spec.lower().startswith(STREAM_PREFIXES) else "video"
    if kind == "webcam":
        cap = cv2.VideoCapture(int(spec))
    elif kind == "stream" and timeout_s and hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC"):
        ms = int(timeout_s * 1000)
        cap = cv2.VideoCapture(
            spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        )
    else:
        cap = cv2.VideoCapture(spec)
    if not cap.isOpened():
        cap.release()
        hint = {
            "webcam": "check that the camera is connected and not used by another program",
            "stream": "check the URL, credentials and network",
            "video": "check that it is a video file opencv can decode (mp4, avi, ...)",
        }[kind]
        raise UserError(f"cannot open {kind} source {display_source(spec)!r}: {hint}")
    return cap


class Source:
    """One input, read in the calling thread. Subclasses set ``kind`` and implement ``_open``/``frames``.

    ``open`` checks the source and learns what it can (``fps``, ``length``); a recorded source that cannot be
    read fails there with a UserError naming it. Counters are read by ``Reader`` and the run loop.
    """

    kind: ClassVar[str] = "source"
    live: ClassVar[bool] = False

    def __init__(self, spec: str, stride: int = 1) -> None:
        if stride < 1:
            raise UserError(f"--stride must be 1 or more, got {stride}")
        self.spec = spec
        self.display = display_source(spec)
        self.stride = int(stride)
        self.fps: float | None = None  # source frame rate, when known
        self.length: int | None = None  # frames in the source, when known
        self.decoded = 0  # frames read from the source (strided ones included)
        self.reconnects = 0
        self.decode_seconds = 0.0
        self.connected = False
        self.lost: str | None = None  # a live source that went away and did not come back
        self.skipped = 0  # recorded sources: frames left out because they could not be decoded
        self.skipped_frames: list[str] = []  # the first few of them, by name, for the clip's record
        self.log: Callable[[str], None] | None = None  # warnings (a skipped frame, a reconnect)
        self.opened = False
        self.analysis_fps = 0.0  # the model's analysis rate (0: every frame); see ``analyse_at``
        self._resampler = Resampler()

    def analyse_at(self, rate: float) -> Source:
        """Deliver only the frames of an analysis at ``rate`` fps (0: every frame), chosen from the source's
        timestamps (``sources.resample``); the run loop sets it from the model, before the source opens."""
        self.analysis_fps = float(rate or 0.0)
        self._resampler = Resampler(self.analysis_fps, self.fps)
        return self

    def keeps(self, index: int) -> bool:
        """Whether frame ``index`` is delivered, judged before it is decoded: every ``stride``-th frame, and of
        those the ones on the analysis grid when the source's rate is known."""
        if index % self.stride:
            return False
        if self._resampler.fps != self.fps:  # the rate became known when the source opened
            self._resampler = Resampler(self.analysis_fps, self.fps)
        return not self._resampler.by_index or self._resampler.keep_index(index)

    def keeps_time(self, time: float | None) -> bool:
        """For a source of unknown rate: whether a decoded frame at ``time`` is on the analysis grid."""
        return self._resampler.by_index or self._resampler.keep_time(time)

    @property
    def delivered_fps(self) -> float | None:
        """The rate of the frames this source delivers (after stride and the analysis rate), when known."""
        rate = min(self.fps, self.analysis_fps) if self.fps and self.analysis_fps else self.fps or None
        return None if rate is None else rate / self.stride

    @property
    def total(self) -> int | None:
        """Frames that will be delivered (every ``stride``-th, at the analysis rate), when known."""
        if self.length is None:
            return None
        if self._resampler.active and self.fps:
            return sum(1 for i in range(self.length) if self.keeps(i))
        return math.ceil(self.length / self.stride)

    def open(self) -> Source:
        if not self.opened:
            self._open()
            self.opened = True
        return self

    def _open(self) -> None:
        """Check the source; recorded ones fail here. Live sources connect in ``frames`` instead."""

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the source (safe to call twice)."""

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        try:
            yield from self.frames()
        finally:
            self.close()

    def describe(self) -> str:
        """One phrase for the console: kind, length, rate and stride."""
        text = self.kind + (f", {self.length} frames" if self.length else "")
        text += f" at {self.fps:g} fps" if self.fps else ""
        if self.analysis_fps and (not self.fps or self.fps > self.analysis_fps * (1 + 1e-6)):
            text += f", analysed at {self.analysis_fps:g} fps"
        return text + (f", scoring 1 frame in {self.stride}" if self.stride > 1 else "")
