"""``--metrics-port``: Prometheus metrics scraped over HTTP hold the run's real counts; ``/healthz`` is 200
while a camera runs and 503 once none does."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

from conftest import quiet_console
from prometheus_client.parser import text_string_to_metric_families
from test_watch import ImageCapture, anomaly_clip, read_jsonl, watch  # noqa: F401

from ognet_video.errors import UserError
from ognet_video.sinks.metrics import MetricsServer


class SlowCapture(ImageCapture):
    def read(self):
        time.sleep(0.02)
        return super().read()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(port: int) -> dict[tuple[str, str], float]:
    code, body = get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, s.labels.get("camera") or s.labels.get("sink", ""))] = s.value
    return out


def test_metrics_and_healthz_over_http(anomaly_clip, detector, tmp_path):  # noqa: F811
    script = [(0, 20), (20, 20)]

    def opener(spec: str) -> SlowCapture:
        if not script:
            raise UserError("cannot open stream source (fake camera is gone)")
        return SlowCapture(anomaly_clip.frames, *script.pop(0))

    server = MetricsServer(0, "127.0.0.1").start()
    live: list[tuple[int, dict]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            code, body = get(f"http://127.0.0.1:{server.port}/healthz")
            live.append((code, json.loads(body)))
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    alerts = tmp_path / "alerts.jsonl"
    try:
        res = watch("rtsp://cam.local/live", detector, project=tmp_path, opener=opener, reconnect_timeout=0.3,
                    sinks=[f"file={alerts}"], metrics=server, console=quiet_console())  # fmt: skip
        stop.set()
        poller.join(5)
        m = scrape(server.port)
        after = get(f"http://127.0.0.1:{server.port}/healthz")
        assert get(f"http://127.0.0.1:{server.port}/nothing")[0] == 404
    finally:
        server.stop()
    cam = "cam.local"
    assert any(code == 200 and doc["cameras"] == {cam: "running"} for code, doc in live)
    assert after[0] == 503 and json.loads(after[1]) == {"ok": False, "cameras": {cam: "lost"}}
    assert m[("ognet_frames_total", cam)] == res.frames > 0
    assert m[("ognet_reconnects_total", cam)] == res.reconnects == 1
    assert m[("ognet_dropped_frames_total", cam)] == res.dropped
    assert m[("ognet_events_total", cam)] == len(read_jsonl(res.run_dir / "events.jsonl"))
    assert m[("ognet_camera_up", cam)] == 0.0 and m[("ognet_latency_seconds", cam)] > 0
    sent = len(read_jsonl(alerts))
    assert m[("ognet_sink_sent_total", f"file={alerts}")] == sent > 0
    assert m[("ognet_sink_failed_total", f"file={alerts}")] == 0


def test_metrics_port_in_use_is_one_line(main_cli, anomaly_clip, trained_run, tmp_path):  # noqa: F811
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        r = main_cli("watch", anomaly_clip.path, "--model", trained_run.run_dir, "--project", tmp_path,
                     "--metrics-port", port)  # fmt: skip
    lines = [line for line in r.out.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and f"--metrics-port {port}: cannot listen" in lines[0], r.out
    r = main_cli("watch", anomaly_clip.path, "--model", trained_run.run_dir, "--project", tmp_path,
                 "--metrics-port", "0", "--max-frames", "4")  # fmt: skip
    assert r.returncode == 0 and "/metrics and /healthz" in r.out, r.out
