"""``watch --review-port``: the live board, a sink that keeps what the review page shows of running cameras.

Per camera (``stream.name``): the latest frame as JPEG, frames per second, drop rate, status, the open event
and camera problem; and every event message (start, update, end) pushed to the page's server-sent-events
subscribers as it happens. One board may serve every stream of a watch. The run loop calls the sink methods
and the web server reads from another thread, so all state sits behind one lock. Encoding a JPEG costs a few
milliseconds of the run loop, so at most ``frames_per_second`` frames per camera are encoded, and only the
newest is kept.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ognet_video.stream.engine import STOP_REASONS, Batch, Sink, Stream
from ognet_video.stream.values import StreamInfo


@dataclass
class _Camera:
    name: str
    status: str = "open"  # open | ended | failed
    stopped: str | None = None  # why it ended (a key of STOP_REASONS)
    message: str | None = None
    frames: int = 0
    dropped: float = 0.0  # drop rate
    fps: float = 0.0  # after the end: the whole run's
    events: int = 0
    jpeg: bytes | None = None
    jpeg_at: float = 0.0  # time.monotonic() of the encode
    jpeg_wall: str | None = None
    open_event: dict[str, Any] | None = None
    problem: str | None = None  # the open camera-health event's reason
    ticks: collections.deque[tuple[float, int]] = field(default_factory=lambda: collections.deque(maxlen=64))

    def rate(self, window: float = 5.0) -> float:
        """Frames scored per second over the last ``window`` seconds (``stats.fps`` is only known at the end)."""
        now = time.monotonic()
        ticks = [t for t in self.ticks if t[0] >= now - window]
        if len(ticks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = ticks[0], ticks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class LiveBoard(Sink):
    """The live state of every stream it is a sink of; ``state()``, ``frame(camera)`` and ``subscribe()`` are
    for the web server's thread. ``frames_per_second``: JPEG encodes per camera at most; ``width``: frames
    wider than this are scaled down first; ``keep``: recent messages ``state()`` lists."""

    def __init__(self, frames_per_second: float = 2.0, width: int = 640, quality: int = 80, keep: int = 50) -> None:
        self.interval = 1.0 / frames_per_second if frames_per_second > 0 else 0.0
        self.width, self.quality = width, quality
        self._lock = threading.Lock()
        self._cameras: dict[str, _Camera] = {}
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._subs: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = []
        self._seq = 0

    # --- the run loop's side (Sink)

    def open(self, info: StreamInfo) -> None:
        with self._lock:
            self._cameras[info.name] = _Camera(info.name)
        self._publish({"type": "status", "camera": info.name, "status": "open"})

    def write(self, batch: Batch) -> None:
        assert batch.info is not None
        name, st, now = batch.info.name, batch.stats, time.monotonic()
        with self._lock:
            cam = self._cameras.setdefault(name, _Camera(name))
            due = bool(batch.frames) and now - cam.jpeg_at >= self.interval
            if batch.frames:
                cam.ticks.append((now, st.frames))
            cam.frames, cam.dropped, cam.fps = st.frames, st.drop_rate, cam.rate()
        jpeg = self._encode(batch.frames[-1].image) if due else None  # outside the lock: the slow part
        msgs = [_message(name, "anomaly", m) for m in batch.messages]
        msgs += [_message(name, "camera", m) for m in batch.camera]
        with self._lock:
            if jpeg is not None:
                cam.jpeg, cam.jpeg_at, cam.jpeg_wall = jpeg, now, _now()
            for m in msgs:
                if m["kind"] == "anomaly":
                    cam.events += m["type"] == "start"
                    cam.open_event = None if m["type"] == "end" else m
                else:
                    cam.problem = None if m["type"] == "end" else m["event"].get("reason")
        for m in msgs:
            self._publish(m)

    def close(self, stream: Stream) -> None:
        self._ended(stream, "ended")

    def abort(self, stream: Stream) -> None:
        self._ended(stream, "failed")

    def _ended(self, stream: Stream, status: str) -> None:
        st = stream.stats
        with self._lock:
            cam = self._cameras.setdefault(stream.name, _Camera(stream.name))
            cam.status, cam.stopped, cam.message = status, st.stopped, st.message
            cam.frames, cam.dropped, cam.fps, cam.open_event = st.frames, st.drop_rate, st.fps, None
        self._publish({"type": "status", "camera": stream.name, "status": status, "stopped": st.stopped})

    def _encode(self, image: Any) -> bytes | None:
        import cv2

        h, w = image.shape[:2]
        if w > self.width:
            image = cv2.resize(image, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return buf.tobytes() if ok else None

    # --- the web server's side

    def state(self) -> dict[str, Any]:
        """Every camera's card (name, status, fps, drop rate, ...) and the recent messages, as JSON."""
        with self._lock:
            cams = [
                {"name": c.name, "status": c.status, "stopped": c.stopped,
                 "stopped_text": STOP_REASONS.get(c.stopped or "", c.stopped), "message": c.message,
                 "frames": c.frames, "fps": round(c.rate() if c.status == "open" else c.fps, 2),
                 "drop_rate": round(c.dropped, 4), "events": c.events, "has_frame": c.jpeg is not None,
                 "frame_time": c.jpeg_wall, "open_event": c.open_event, "problem": c.problem}
                for c in self._cameras.values()
            ]  # fmt: skip
            return {"cameras": cams, "recent": list(self._recent)}

    def frame(self, camera: str) -> bytes | None:
        """The latest JPEG of ``camera``; None for an unknown camera or before its first frame."""
        with self._lock:
            cam = self._cameras.get(camera)
            return cam.jpeg if cam is not None else None

    def subscribe(self, maxsize: int = 256) -> asyncio.Queue[dict[str, Any]]:
        """A queue of the messages from now on; call from the event loop that reads it (a full queue drops
        messages: the page refreshes from the events files anyway)."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        with self._lock:
            self._subs.append((asyncio.get_running_loop(), q))
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s[1] is not q]

    def _publish(self, msg: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            msg["seq"] = self._seq
            if msg["type"] != "status":
                self._recent.append(msg)
            subs = list(self._subs)
        for loop, q in subs:
            try:
                loop.call_soon_threadsafe(_offer, q, msg)
            except RuntimeError:  # its loop is closed: the server stopped
                self.unsubscribe(q)


def _offer(q: asyncio.Queue[dict[str, Any]], msg: dict[str, Any]) -> None:
    try:
        q.put_nowait(msg)
    except asyncio.QueueFull:
        pass


def _message(camera: str, kind: str, m: Any) -> dict[str, Any]:
    """An ``EventMessage`` or ``CameraMessage`` as JSON (its image left out)."""
    ev = m.event
    if hasattr(ev, "to_dict"):
        event = ev.to_dict()
    elif dataclasses.is_dataclass(ev):
        event = dataclasses.asdict(ev)  # type: ignore[arg-type]
    else:
        event = dict(vars(ev))
    return {"type": m.type, "kind": kind, "camera": camera, "number": m.number, "frame": getattr(m, "frame", None),
            "time": m.time, "event": event, "wall": _now()}  # fmt: skip


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")
