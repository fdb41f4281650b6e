"""One ``source`` argument for every kind of input, as Ultralytics does: a video file, a folder of
frames, a glob of images, a webcam index ("0") or a stream URL (rtsp://, http(s)://).

A source yields ``Frame``s (index, seconds from the start, uint8 image as decoded: BGR or gray, any
size). Converting to the model's input (gray, resized to the training resolution) is the patch
extractor's job (``PatchExtractor.prepare``), so every source is scored the same way.

``FrameReader`` decodes in its own thread into a bounded queue, so the scorer never waits on I/O.
Recorded sources (files, folders, globs) are read completely: the reader waits when the queue is
full. Live sources (webcam, stream) keep the newest frames instead: when the scorer falls behind,
the oldest queued frame is dropped and counted. A live source that stops delivering is reopened
with exponential backoff; one that never connects fails after ``connect_timeout`` seconds.
"""

from __future__ import annotations

import glob
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from ognet_video.errors import UserError
from ognet_video.sources.images import IMAGE_EXTS, image_files, read_gray

# OpenCV and FFmpeg print their own warnings for every source that fails to open ("moov atom not found",
# "can't open camera by index"); our errors already say it in one line. Set these variables to see them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when the FFmpeg backend starts
if "OPENCV_LOG_LEVEL" not in os.environ:
    _logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if _logging is not None and hasattr(_logging, "setLogLevel"):
        _logging.setLogLevel(_logging.LOG_LEVEL_ERROR)

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".ts", ".flv"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
LIVE_KINDS = ("webcam", "stream")


@dataclass
class Frame:
    index: int  # position in the source, counting dropped frames
    time: float | None  # seconds from the start (frame index / fps for files and folders)
    image: np.ndarray  # uint8, BGR or gray, as decoded
    link: int = 0  # which connection delivered it: 0, then +1 per reconnect (a gap lies between links)


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


def open_capture(spec: str, timeout_s: float | None = None) -> cv2.VideoCapture:
    """An opened VideoCapture for a file, webcam index or URL; UserError naming the source otherwise.

    ``timeout_s`` bounds FFmpeg's open and read calls on streams, so a dead camera cannot hang a thread forever.
    """
    kind = source_kind(spec)
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
        }.get(kind, "check the path")
        raise UserError(f"cannot open {kind} source {display_source(spec)!r}: {hint}")
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


def display_source(spec: str) -> str:
    """The source as it may be printed and logged: a stream URL's password is masked."""
    if source_kind_quiet(spec) != "stream":
        return spec
    parts = urlsplit(spec)
    if parts.password is None:
        return spec
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def source_kind_quiet(spec: str) -> str | None:
    """``source_kind`` or None for a path that does not exist."""
    try:
        return source_kind(spec)
    except UserError:
        return None


def source_name(spec: str) -> str:
    """A short name for run folders: the file's stem, the folder's name, ``webcam0``, a stream's host."""
    kind = source_kind_quiet(spec)
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
    """What ``FrameReader`` needs of a capture: ``cv2.VideoCapture`` or a test double."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def grab(self) -> bool: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


Opener = Callable[[str], Capture]
_END = object()  # queue sentinel: the producer is done (see FrameReader.error / .lost)


class FrameReader:
    """Decodes a source in its own thread into a bounded queue; the consumer takes batches.

    ``opener(spec)`` opens a capture (default ``open_capture``) and raises UserError when it cannot;
    tests inject failing or flaky ones. Frame indices count every frame of the source, including
    skipped (``stride``) and dropped ones, so they match the source's own numbering.
    """

    def __init__(self, spec: str, *, stride: int = 1, queue_size: int | None = None, live: bool | None = None,
                 fps: float = 10.0, opener: Opener | None = None, connect_timeout: float = 15.0,
                 reconnect_timeout: float = 60.0, backoff: tuple[float, float] = (0.5, 8.0),
                 log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.kind = source_kind(spec)  # UserError for a path that does not exist
        if self.kind == "video" and not Path(spec).is_file():
            raise UserError(f"source {spec!r} does not exist: give a video file, a folder of frames, a glob, "
                            "a webcam index or a URL")  # fmt: skip
        self.display = display_source(spec)
        self.live = self.kind in LIVE_KINDS if live is None else live
        self.stride = max(1, int(stride))
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.backoff = backoff
        self.opener = opener or (lambda s: open_capture(s, timeout_s=min(connect_timeout, 10.0)))
        self.log = log or (lambda msg: None)
        # live: a few frames of slack so several can be batched, little latency; recorded: read ahead
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size or (4 if self.live else 32))
        self.fps: float | None = fps if self.kind in ("folder", "glob") else None  # source frame rate
        self.length: int | None = None  # frames in the source, when known
        self.total: int | None = None  # frames that will be delivered (every ``stride``-th), when known
        self.decoded = 0  # frames read from the source (skipped and dropped ones included)
        self.delivered = 0
        self.dropped = 0
        self.reconnects = 0
        self.decode_seconds = 0.0
        self.connected = False
        self.error: BaseException | None = None  # ends the run with this error
        self.lost: str | None = None  # a live source that went away and did not come back
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files: list[Path] | None = None
        self._cap: Capture | None = None
        self._ended = False
        self._started_at = 0.0

    # ---- consumer side -------------------------------------------------------------------------
    def start(self) -> FrameReader:
        """Check the source and start decoding; recorded sources that cannot be read fail here."""
        if self.kind in ("folder", "glob"):
            self._files = image_list(self.spec)
            self.length = len(self._files)
            self.total = math.ceil(self.length / self.stride)
        elif not self.live:
            self._cap = self.opener(self.spec)
            self.fps = self._cap.get(cv2.CAP_PROP_FPS) or None
            n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            self.length = n if n > 0 else None
            self.total = math.ceil(n / self.stride) if n > 0 else None
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"reader:{self.display}", daemon=True)
        self._thread.start()
        return self

    def get_batch(self, max_frames: int, timeout: float = 0.1) -> list[Frame] | None:
        """Up to ``max_frames`` queued frames, waiting at most ``timeout`` for the first; [] when none came
        yet, None at the end of the source. Errors of the reader thread are raised here."""
        if self._ended:
            return self._end()
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            self._check_connect_deadline()
            return []
        batch: list[Frame] = []
        while True:
            if item is _END:
                self._ended = True
                break
            batch.append(item)
            if len(batch) >= max_frames:
                break
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
        if not batch:
            return self._end()
        self.delivered += len(batch)
        return batch

    def __iter__(self) -> Iterator[Frame]:
        while (batch := self.get_batch(1, timeout=0.5)) is not None:
            yield from batch

    def stop(self) -> None:
        """Stop decoding and release the source (safe to call twice)."""
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._cap is not None and (self._thread is None or not self._thread.is_alive()):
            self._cap.release()
            self._cap = None

    def __enter__(self) -> FrameReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _end(self) -> None:
        if self.error is not None:
            raise self.error
        return None

    def _check_connect_deadline(self) -> None:
        # the opener may block inside FFmpeg; this bound holds whatever the thread is doing
        if self.live and not self.connected and self.error is None:
            if time.monotonic() - self._started_at > self.connect_timeout + 1.0:
                self._stop.set()
                raise UserError(self._never_connected())

    def _never_connected(self) -> str:
        hint = "check the URL, credentials and network" if self.kind == "stream" else "check the camera"
        return f"{self.kind} {self.display!r} did not connect within {self.connect_timeout:g} s: {hint}"

    # ---- producer side (reader thread) ---------------------------------------------------------
    def _run(self) -> None:
        try:
            if self._files is not None:
                self._read_files(self._files)
            else:
                self._read_capture()
        except Exception as exc:  # handed to the consumer, raised by get_batch
            self.error = exc
        finally:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._put(_END, drop=False)

    def _read_files(self, files: list[Path]) -> None:
        fps = self.fps or 10.0
        for i in range(0, len(files), self.stride):
            if self._stop.is_set():
                return
            t = time.perf_counter()
            img = read_gray(files[i])
            self.decode_seconds += time.perf_counter() - t
            self.decoded += 1
            self.connected = True
            self._put(Frame(i, i / fps, img))

    def _read_capture(self) -> None:
        if self._cap is None:  # live: connect in this thread, it may take a while
            self._cap = self._connect(self.connect_timeout, first=True)
            if self._cap is None:
                return
            self.fps = self._cap.get(cv2.CAP_PROP_FPS) or None
        self.connected = True
        index, t0, link = 0, None, 0
        while not self._stop.is_set():
            t = time.perf_counter()
            keep = index % self.stride == 0
            if keep:
                ok, img = self._cap.read()
            else:
                ok, img = self._cap.grab(), None
            self.decode_seconds += time.perf_counter() - t
            if not ok:
                if not self.live:
                    if index == 0:
                        raise UserError(
                            f"video {self.display!r} has no decodable frames; check that the file is complete"
                        )
                    return
                self._cap.release()
                self._cap = self._connect(self.reconnect_timeout, first=False)
                if self._cap is None:
                    if not self._stop.is_set():
                        self.lost = f"{self.kind} {self.display!r} lost; no frames for {self.reconnect_timeout:g} s"
                    return
                link += 1
                continue
            self.decoded += 1
            if keep:
                if self.live:
                    now = time.monotonic()
                    t0 = now if t0 is None else t0
                    ts: float | None = now - t0
                else:
                    ts = index / self.fps if self.fps else _pos_seconds(self._cap)
                self._put(Frame(index, ts, img, link))
            index += 1

    def _connect(self, budget: float, first: bool) -> Capture | None:
        """Open the source, retrying with exponential backoff for ``budget`` seconds. A first connect
        tries at once (a webcam that cannot open fails at once); a reconnect waits first. None when
        stopped or, for a reconnect, out of time."""
        deadline = time.monotonic() + budget
        delay, attempt = self.backoff[0], 0
        reason = f"{self.display}: no frame, connection lost"
        while not self._stop.is_set():
            if not first or attempt > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    if first:
                        raise UserError(self._never_connected())
                    return None
                wait = min(delay, left)
                if not first:  # a first connect says once that it waits (watch does), not on every try
                    self.log(f"{reason}; reconnecting in {wait:.1f} s (attempt {attempt + 1})")
                if self._stop.wait(wait):
                    return None
                delay = min(delay * 2, self.backoff[1])
            attempt += 1
            try:
                cap = self.opener(self.spec)
            except UserError as exc:
                if first and self.kind == "webcam":
                    raise
                reason = str(exc)
                continue
            if not first:
                self.reconnects += 1
                self.log(f"{self.display}: reconnected after {attempt} attempt{'s' * (attempt > 1)}")
            return cap
        return None

    def _put(self, item: object, drop: bool | None = None) -> None:
        """Blocking put for recorded sources; for live ones drop the oldest queued frame instead of waiting."""
        drop = self.live if drop is None else drop
        while True:
            if drop:
                try:
                    self.queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        if self.queue.get_nowait() is not _END:
                            self.dropped += 1
                    except queue.Empty:
                        pass
            else:
                if self._stop.is_set() and item is not _END:
                    return
                try:
                    self.queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    if self._stop.is_set():
                        return


def _pos_seconds(cap: Capture) -> float | None:
    pos = cap.get(cv2.CAP_PROP_POS_MSEC)
    return pos / 1000.0 if pos and pos > 0 else None
