"""A local MJPEG-over-HTTP camera for tests and benchmarks: what IP cameras serve and OpenCV's FFmpeg backend
reads from an ``http://`` URL (``multipart/x-mixed-replace``, one JPEG per part).

``MjpegServer(frames, fps=10)`` serves a list of uint8 frames (BGR or gray) or a folder of images, paced at
``fps`` from the moment a client connects, looping or ending (the connection is then closed). ``cut()``
closes every open connection at once, so a client must reconnect, and refuses new ones for ``refuse_s``
seconds (HTTP 503), as a camera that reboots does. Each connection starts where the clip is at that
moment of its clock (a live camera does not rewind for a new viewer), unless ``restart=True``.

    with MjpegServer(frames, fps=10) as cam:
        cap = cv2.VideoCapture(cam.url, cv2.CAP_FFMPEG)
        ...
        cam.cut(refuse_s=1.0)

``Recorder`` is an opener for ``watch``/``open_source`` that opens the real capture and keeps every frame it
delivers (source index, connection, image, arrival time), so a test can score exactly the frames a live run
saw, alone, and compare (``rescore``, ``compare``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np

BOUNDARY = "ognetframe"
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def encode_jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cannot encode frame as JPEG")
    return buf.tobytes()


def load_frames(folder: Path) -> list[np.ndarray]:
    """The images of a frames folder, in name order, as decoded (gray images stay gray)."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise ValueError(f"no images in {folder}")
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths]


class MjpegServer:
    """One camera on ``http://127.0.0.1:PORT/PATH`` (port 0: a free one); see the module doc."""

    def __init__(self, frames: list[np.ndarray] | Path | str, fps: float = 10.0, loop: bool = True,
                 path: str = "/stream.mjpg", host: str = "127.0.0.1", port: int = 0, quality: int = 90,
                 restart: bool = False) -> None:  # fmt: skip
        imgs = load_frames(Path(frames)) if isinstance(frames, (str, Path)) else list(frames)
        if not imgs:
            raise ValueError("MjpegServer needs at least one frame")
        self.jpegs = [encode_jpeg(f, quality) for f in imgs]
        self.fps, self.loop, self.path, self.restart = float(fps), loop, path, restart
        self.sent = 0  # frames sent, over all connections
        self.connections = 0  # accepted (streamed) connections
        self.refused = 0
        self._refuse_until = 0.0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._t0: float | None = None  # the clip's clock: set by the first connection
        self._closed = False
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"mjpeg:{self.port}", daemon=True)  # fmt: skip

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> MjpegServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        self.cut(0.0)
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cut(self, refuse_s: float = 0.0) -> int:
        """Close the open connections now (the client sees the stream end) and answer 503 for ``refuse_s``
        seconds; the number of connections closed."""
        with self._lock:
            self._refuse_until = time.monotonic() + refuse_s
            socks, self._open = list(self._open), set()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(socks)

    @property
    def streaming(self) -> int:
        """Connections open now."""
        with self._lock:
            return len(self._open)

    def _first_frame(self) -> int:
        """The clip frame a new connection starts at: where the camera's clock is (0 with ``restart``)."""
        now = time.monotonic()
        with self._lock:
            if self._t0 is None or self.restart:
                self._t0 = now
                return 0
            return int((now - self._t0) * self.fps)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != server.path:
                    self.send_error(404)
                    return
                with server._lock:
                    refuse = time.monotonic() < server._refuse_until or server._closed
                if refuse:
                    server.refused += 1
                    self.send_error(503, "camera restarting")
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                with server._lock:
                    server._open.add(self.connection)
                    server.connections += 1
                try:
                    self._stream()
                except OSError:  # the client went away, or ``cut`` closed the socket
                    pass
                finally:
                    with server._lock:
                        server._open.discard(self.connection)
                    self.close_connection = True

            def _stream(self) -> None:
                n, i = len(server.jpegs), server._first_frame()
                start, sent = time.monotonic(), 0
                while not server._closed and self.connection in server._open:
                    if i >= n and not server.loop:
                        return
                    jpg = server.jpegs[i % n]
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpg + b"\r\n")
                    self.wfile.flush()
                    server.sent += 1
                    sent, i = sent + 1, i + 1
                    wait = start + sent / server.fps - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)

        return Handler


@dataclass
class Delivered:
    index: int  # the live source's frame index (counts every frame read, over all connections)
    link: int  # 0 for the first connection, +1 per reconnect
    image: np.ndarray
    at: float  # time.monotonic() when it was read


class RecordingCapture:
    """A real capture that records what it delivers into its ``Recorder``."""

    def __init__(self, cap: object, rec: Recorder, spec: str, link: int) -> None:
        self.cap, self.rec, self.spec, self.link = cap, rec, spec, link

    def read(self) -> tuple[bool, np.ndarray | None]:
        ok, img = self.cap.read()  # type: ignore[attr-defined]
        if ok:
            self.rec.add(self.spec, self.link, img)
        return ok, img

    def grab(self) -> bool:
        ok, img = self.read()  # every frame is recorded, skipped ones too, so indices stay the source's
        return ok

    def get(self, prop: int) -> float:
        return self.cap.get(prop)  # type: ignore[attr-defined]

    def release(self) -> None:
        self.cap.release()  # type: ignore[attr-defined]


class Recorder:
    """``opener`` for live sources: ``open_capture`` (FFmpeg, with timeouts) plus a record per URL."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self.frames: dict[str, list[Delivered]] = {}
        self.opens: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, spec: str) -> RecordingCapture:
        from ognet_video.sources import open_capture

        cap = open_capture(spec, timeout_s=self.timeout_s)  # raises UserError when refused
        with self._lock:
            link = self.opens.get(spec, 0)
            self.opens[spec] = link + 1
        return RecordingCapture(cap, self, spec, link)

    def add(self, spec: str, link: int, img: np.ndarray) -> None:
        with self._lock:
            got = self.frames.setdefault(spec, [])
            got.append(Delivered(len(got), link, img.copy(), time.monotonic()))

    def count(self, spec: str) -> int:
        with self._lock:
            return len(self.frames.get(spec, []))

    def by_index(self, spec: str) -> dict[int, Delivered]:
        with self._lock:
            return {d.index: d for d in self.frames.get(spec, [])}


def score_from_file(detector: object, delivered: Iterable[Delivered]) -> dict[int, Any]:
    """Every frame a camera delivered (dropped ones too), scored one after the other per connection, as ``score``
    scores a recording: its ``FrameResult`` by frame index."""
    from ognet_video.stream.scoring import StreamScorer

    frames = sorted(delivered, key=lambda d: d.index)
    ss, out = StreamScorer(detector), {}  # type: ignore[arg-type]
    for link in sorted({d.link for d in frames}):
        part = [d for d in frames if d.link == link]
        ss.break_motion()
        for i in range(0, len(part), 16):
            res, _ = ss.push([d.image for d in part[i : i + 16]], None, [d.index for d in part[i : i + 16]])
            out.update({r.index: r for r in res})
    return out


def rescore(detector: object, rows: list[dict], delivered: dict[int, Delivered]) -> list:
    """What ``rows`` (a live run's ``scores.jsonl``) should be, from the file: every frame the camera delivered
    (dropped ones too) scored one after the other per connection, as ``score`` scores a recording, gives each
    row's raw and calibrated score; the decision (smoothing, threshold) is then taken at the rows' frames over
    source time, their steps. A reconnect's gap is counted as longer than any window, as the cuts here are. A
    frame whose row says a camera problem was open (``camera``, e.g. a clip of another scene than the model's is
    "moved") has its decision suspended alike: the camera checks are tested in tests/test_health.py."""
    from types import SimpleNamespace

    from ognet_video.decide import CausalSmoother

    file = score_from_file(detector, delivered.values())
    picked = [file[r["frame"]] for r in rows]
    steps = [r["frame"] + 1000 * delivered[r["frame"]].link for r in rows]
    cfg, cal = detector.cfg.score, detector.calibration  # type: ignore[attr-defined]
    smoothed = CausalSmoother(cfg.causal_window, cal.empty)(np.array([p.score for p in picked]), steps)
    return [SimpleNamespace(index=p.index, raw=p.raw, smoothed=float(sm),
                            anomalous=bool(sm > cal.threshold) and r.get("camera") is None)
            for p, sm, r in zip(picked, smoothed, rows, strict=True)]  # fmt: skip


def compare(rows: list[dict], results: list) -> dict:
    """Whether a run's rows equal ``rescore``'s results: frames, raw/smoothed scores (float noise of the
    batching) and decisions; with the largest raw difference."""
    nan = lambda v: np.nan if v is None else v
    raw = np.array([nan(r["raw"]) for r in rows], dtype=float)
    ref = np.array([r.raw for r in results], dtype=float)
    sm = np.array([nan(r["smoothed"]) for r in rows], dtype=float)
    sm_ref = np.array([r.smoothed for r in results], dtype=float)
    same_frames = [r["frame"] for r in rows] == [r.index for r in results]
    both = np.isfinite(raw) & np.isfinite(ref)
    diff = float(np.abs(raw[both] - ref[both]).max()) if both.any() else 0.0
    equal = (same_frames and len(raw) == len(ref) and np.allclose(raw, ref, atol=1e-5, equal_nan=True)
             and np.allclose(sm, sm_ref, atol=1e-5, equal_nan=True)
             and [r["anomalous"] for r in rows] == [bool(r.anomalous) for r in results])  # fmt: skip
    bad = [i for i in range(min(len(sm), len(sm_ref))) if not np.isclose(sm[i], sm_ref[i], atol=1e-5, equal_nan=True)
           or rows[i]["anomalous"] != bool(results[i].anomalous)]  # fmt: skip
    first = None if not bad else {"frame": rows[bad[0]]["frame"], "smoothed": sm[bad[0]], "file": sm_ref[bad[0]]}
    return {"equal": bool(equal), "frames": len(rows), "max_raw_diff": diff, "first_difference": first}
