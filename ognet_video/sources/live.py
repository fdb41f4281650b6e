"""Live sources: a webcam and a network stream (RTSP, HTTP, ...).

They connect when read, not when opened. A source that stops delivering is reopened with exponential
backoff (each new connection is a new ``link``: motion is not measured across the gap); one that does not
come back within ``reconnect_timeout`` is given up (``lost``). A first connection that does not succeed
within ``connect_timeout`` is a UserError; a webcam that cannot be opened fails at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import cv2

from ognet_video.errors import UserError
from ognet_video.sources.base import Capture, Frame, Opener, Source, open_capture

# a camera's stated rate above this is a stream clock, not frames per second (RTSP often states 90000)
MAX_STATED_FPS = 240.0


def _stated_fps(spec: str, cap: Capture) -> float | None:
    """The rate a live capture states, when it is one. An IP camera's MJPEG over HTTP (multipart JPEGs) carries
    no timing and FFmpeg states its default 25 fps whatever the camera sends: unknown too. Unknown: every frame
    is analysed."""
    stated = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    mjpeg = int(cap.get(cv2.CAP_PROP_FOURCC) or 0) == cv2.VideoWriter_fourcc(*"MJPG")
    if mjpeg and stated == 25.0 and spec.lower().startswith(("http://", "https://")):
        return None
    return stated if 1.0 <= stated <= MAX_STATED_FPS else None


class LiveSource(Source):
    live = True

    def __init__(self, spec: str, stride: int = 1, opener: Opener | None = None, connect_timeout: float = 15.0,
                 reconnect_timeout: float = 60.0, backoff: tuple[float, float] = (0.5, 8.0),
                 log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        super().__init__(spec, stride)
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.backoff = backoff
        self.opener = opener or (lambda s: open_capture(s, timeout_s=min(connect_timeout, 10.0)))
        self.log = log or (lambda msg: None)
        self._cap: Capture | None = None
        self._lock = threading.Lock()

    def never_connected(self) -> str:
        hint = "check the URL, credentials and network" if self.kind == "stream" else "check the camera"
        return f"{self.kind} {self.display!r} did not connect within {self.connect_timeout:g} s: {hint}"

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        stop = stop or threading.Event()
        cap = self._connect(self.connect_timeout, True, stop)
        if cap is None:
            return
        self.connected = True
        self.fps = _stated_fps(self.spec, cap)
        index, link, t0 = 0, 0, None
        while not stop.is_set():
            t = time.perf_counter()
            keep = self.keeps(index)
            ok, img = cap.read() if keep else (cap.grab(), None)
            self.decode_seconds += time.perf_counter() - t
            if not ok:
                self.close()
                cap = self._connect(self.reconnect_timeout, False, stop)
                if cap is None:
                    if not stop.is_set():
                        self.lost = f"{self.kind} {self.display!r} lost; no frames for {self.reconnect_timeout:g} s"
                    return
                link += 1
                continue
            self.decoded += 1
            if keep:
                now = time.monotonic()
                t0 = now if t0 is None else t0
                yield Frame(index, now - t0, img, link)
            index += 1

    def _connect(self, budget: float, first: bool, stop: threading.Event) -> Capture | None:
        """Open the source, retrying with exponential backoff for ``budget`` seconds. A first connect tries at
        once; a reconnect waits first. None when stopped or, for a reconnect, out of time."""
        deadline = time.monotonic() + budget
        delay, attempt = self.backoff[0], 0
        reason = f"{self.display}: no frame, connection lost"
        while not stop.is_set():
            if not first or attempt > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    if first:
                        raise UserError(self.never_connected())
                    return None
                wait = min(delay, left)
                if not first:  # a first connect says once that it waits (the caller does), not on every try
                    self.log(f"{reason}; reconnecting in {wait:.1f} s (attempt {attempt + 1})")
                if stop.wait(wait):
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
            with self._lock:
                self._cap = cap
            return cap
        return None

    def close(self) -> None:
        with self._lock:
            cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class Webcam(LiveSource):
    kind = "webcam"


class NetworkStream(LiveSource):
    kind = "stream"
