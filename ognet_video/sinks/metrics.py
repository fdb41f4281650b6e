"""``--metrics-port``: Prometheus metrics and ``/healthz`` over HTTP, from a thread of their own.

Values are read when Prometheus scrapes (a custom collector): each stream's counters as of its last batch
(``Health`` keeps them, with a small record of recent batches) and the channels' counts, so the run loop does
no extra work per frame. ``/healthz`` answers
200 while at least one camera is running (scoring, waiting or reconnecting) and 503 once none is, with
each camera's state as JSON.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ognet_video.errors import UserError
from ognet_video.health import REASONS
from ognet_video.sinks.channel import Channel
from ognet_video.stream.engine import Batch, Sink, Stream
from ognet_video.stream.values import Counters, StreamInfo


class Health(Sink):
    """One per stream: its state, and enough of its recent batches for fps and latency."""

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.counters = Counters()  # the last batch's
        self.state = "starting"
        self.ticks: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self.latency = 0.0  # seconds from taking the last batch off its queue to its outputs
        self.events = 0
        self.camera_events: dict[str, int] = {}  # camera-health events started, per reason
        self.camera_problem: str | None = None  # the open camera event's reason

    def open(self, info: StreamInfo) -> None:
        self.state = "running"

    def write(self, batch: Batch) -> None:
        now = time.monotonic()
        self.counters = batch.stats
        if batch.frames:
            self.ticks.append((now, batch.stats.frames))
            self.latency = now - batch.taken if batch.taken else 0.0
        self.events += sum(m.type == "start" for m in batch.messages)
        for m in batch.camera:
            if m.type == "start":
                self.camera_events[m.event.reason] = self.camera_events.get(m.event.reason, 0) + 1
            self.camera_problem = None if m.type == "end" else m.event.reason

    def close(self, stream: Stream) -> None:
        self.state = stream.stats.stopped
        self._final(stream)

    def abort(self, stream: Stream) -> None:
        self.state = stream.stats.stopped or "failed"
        self._final(stream)

    def _final(self, stream: Stream) -> None:
        """The end-of-stream counters (the reader's last drops and the source's reconnections included)."""
        st = stream.stats
        self.counters = Counters(st.frames, st.dropped, st.drop_rate, st.lag_s, st.reconnects, st.events)

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "running")

    def fps(self, window: float = 5.0) -> float:
        ticks = [t for t in self.ticks if t[0] >= time.monotonic() - window]
        if len(ticks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = ticks[0], ticks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class _Collector:
    def __init__(self, health: list[Health], channels: list[Channel]) -> None:
        self.health, self.channels = health, channels

    def collect(self) -> Any:
        cam = ["camera"]
        fams = {
            "fps": GaugeMetricFamily("ognet_fps", "Frames scored per second, last 5 s", labels=cam),
            "latency": GaugeMetricFamily("ognet_latency_seconds", "Last batch: queue to outputs", labels=cam),
            "up": GaugeMetricFamily("ognet_camera_up", "1 while the camera's stream is running", labels=cam),
            "frames": CounterMetricFamily("ognet_frames", "Frames scored", labels=cam),
            "dropped": CounterMetricFamily("ognet_dropped_frames", "Live frames dropped (scoring behind)", labels=cam),
            "drop_rate": GaugeMetricFamily("ognet_drop_rate", "Share of the camera's frames dropped so far", labels=cam),
            "lag": GaugeMetricFamily("ognet_lag_seconds", "Last batch: a frame's arrival to its scores", labels=cam),
            "reconnects": CounterMetricFamily("ognet_reconnects", "Reconnections of the source", labels=cam),
            "events": CounterMetricFamily("ognet_events", "Events opened", labels=cam),
            "seeing": GaugeMetricFamily("ognet_camera_ok", "1 while no camera-health event is open", labels=cam),
        }
        alerts = CounterMetricFamily("ognet_camera_alerts", "Camera-health events started", labels=["camera", "reason"])
        for h in self.health:
            c = h.counters
            vals = {"fps": h.fps(), "latency": h.latency, "up": float(h.alive), "events": h.events,
                    "frames": c.frames, "dropped": c.dropped, "drop_rate": c.drop_rate, "lag": c.lag_s,
                    "reconnects": c.reconnects,
                    "seeing": float(h.camera_problem is None)}  # fmt: skip
            for k, v in vals.items():
                fams[k].add_metric([h.camera], v)
            for reason in REASONS:
                alerts.add_metric([h.camera, reason], h.camera_events.get(reason, 0))
        yield from fams.values()
        yield alerts
        sink = ["sink"]
        per = [("sent", "Messages delivered"), ("failed", "Messages not delivered"),
               ("dropped", "Messages dropped from a full queue")]  # fmt: skip
        for key, doc in per:
            fam = CounterMetricFamily(f"ognet_sink_{key}", doc, labels=sink)
            for ch in self.channels:
                fam.add_metric([ch.name], ch.stats[key])
            yield fam



class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """``/metrics`` and ``/healthz`` on ``host:port`` (port 0: any free port; see ``port``). ``host`` is
    127.0.0.1 unless asked: the endpoints have no authentication, so they reach the network only on purpose
    (``--metrics-host 0.0.0.0`` or the address of one interface; an IPv6 address such as ``::`` works too)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.health: list[Health] = []
        self.channels: list[Channel] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self.health, self.channels))  # type: ignore[arg-type]
        try:
            server = _Server6 if ":" in host else ThreadingHTTPServer
            self.server = server((host, port), self._handler())
        except OSError as exc:
            raise UserError(f"--metrics-host {host} --metrics-port {port}: cannot listen there "
                            f"({exc.strerror or exc}); check the address and that the port is free") from None
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def healthz(self) -> tuple[int, dict[str, Any]]:
        states = {h.camera: h.state for h in self.health}
        ok = any(h.alive for h in self.health)
        return (200 if ok else 503), {"ok": ok, "cameras": states}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                if path == "/metrics":
                    code, body, kind = 200, generate_latest(server.registry), CONTENT_TYPE_LATEST
                elif path == "/healthz":
                    code, doc = server.healthz()
                    body, kind = json.dumps(doc).encode(), "application/json"
                else:
                    code, body, kind = 404, b"try /metrics or /healthz\n", "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # quiet: no line per scrape
                pass

        return Handler
