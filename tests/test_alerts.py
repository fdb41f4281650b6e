"""Live event messages: a local HTTP receiver, a dead and a hanging webhook, stdout, a file and a real MQTT
broker (mosquitto: ``.ci/run`` installs it, and CI fails without it) get ``start`` / ``update`` / ``end`` for every
event, with the frames of ``events.jsonl`` and a JPEG snapshot of the peak; a receiver that fails never slows
scoring and is counted."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import quiet_console, service_missing
from test_watch import anomaly_clip, read_jsonl, watch  # noqa: F401 - the planted-anomaly clip fixture

from ognet_video.errors import UserError
from ognet_video.sinks.alerts import parse_sink

FIELDS = {"type", "kind", "camera", "event", "run", "time", "source_time", "frame", "start", "start_time", "end",
          "end_time", "peak_frame", "score", "threshold", "box", "snapshot", "clip", "drop_rate", "lag_s"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A local HTTP server that keeps every JSON body posted to it (or hangs, with ``delay``)."""

    def __init__(self, delay: float = 0.0) -> None:
        got, self.got = [], []
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if delay:
                    time.sleep(delay)
                got.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def check_messages(msgs: list[dict], events: list[dict], camera: str) -> None:
    """Each event of events.jsonl as start, updates, end (in that order), with the same frames."""
    by_event: dict[str, list[dict]] = {}
    for m in msgs:
        assert set(m) == FIELDS and m["camera"] == camera
        by_event.setdefault(m["event"], []).append(m)
    assert len(by_event) == len(events) >= 1
    for ms, ev in zip(by_event.values(), events, strict=True):
        types = [m["type"] for m in ms]
        assert types[0] == "start" and types[-1] == "end" and set(types[1:-1]) <= {"update"}, types
        end = ms[-1]
        assert (end["start"], end["end"], end["peak_frame"], end["box"]) == (ev["start"], ev["end"], ev["peak_frame"],
                                                                             ev["peak_box"])  # fmt: skip
        assert end["score"] == pytest.approx(ev["peak_score"], abs=1e-4) and end["score"] > end["threshold"]
        assert [m["frame"] for m in ms] == sorted(m["frame"] for m in ms) and ms[0]["end"] is None
        assert all(m["start"] == ev["start"] for m in ms)
        # the end names the event's clip, the one events.jsonl names (written when its post-roll has passed)
        assert all(m["clip"] is None for m in ms[:-1]) and Path(end["clip"]).name == Path(ev["clip"]).name
        assert Path(end["clip"]).is_file()
        for m in ms:
            assert datetime.fromisoformat(m["time"]).tzinfo is not None
            snap = Path(m["snapshot"])
            assert snap.is_file() and snap.read_bytes()[:3] == b"\xff\xd8\xff" and snap.parent.name == "snapshots"
            assert f"-{m['peak_frame']}.jpg" in snap.name


def test_webhook_gets_start_update_end_for_every_event(anomaly_clip, detector, tmp_path):  # noqa: F811 - the imported fixture
    rx = Receiver()
    try:
        res = watch(str(anomaly_clip.path), detector, project=tmp_path, sinks=[f"webhook={rx.url}"],
                    update_every=0.05, console=quiet_console())  # fmt: skip
    finally:
        rx.stop()
    events = read_jsonl(res.run_dir / "events.jsonl")
    check_messages(rx.got, events, res.stream.name)
    assert any(m["type"] == "update" for m in rx.got)  # a 0.05 s update interval, events of several frames
    assert all(m["run"] == res.run_dir.name for m in rx.got)
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert summary["sinks"] == {f"webhook={rx.url}": {"sent": len(rx.got), "failed": 0, "dropped": 0}}


def test_dead_or_hanging_webhook_does_not_slow_scoring_and_is_counted(anomaly_clip, detector, tmp_path):  # noqa: F811 - the imported fixture
    base = watch(str(anomaly_clip.path), detector, project=tmp_path, console=quiet_console())
    hang = Receiver(delay=3.0)
    dead = f"webhook=http://127.0.0.1:{free_port()}/hook"
    out = quiet_console()
    t = time.monotonic()
    try:
        res = watch(str(anomaly_clip.path), detector, project=tmp_path, sinks=[dead, f"webhook={hang.url}"],
                    update_every=0.05, drain_timeout=0.5, console=out)  # fmt: skip
    finally:
        hang.stop()
    wall = time.monotonic() - t
    n = res.stream.info["messages"]
    assert n >= 2 * len(read_jsonl(res.run_dir / "events.jsonl")) >= 2
    assert res.stream.stats.seconds < base.stream.stats.seconds + 1.0  # scoring never waited on a receiver
    assert wall < base.stream.stats.seconds + 6.0  # the end waits drain_timeout, not every retry
    st = res.sinks[dead]
    assert st["sent"] == 0 and st["failed"] + st["dropped"] == n
    hung = res.sinks[f"webhook={hang.url}"]
    assert hung["sent"] < n and sum(hung.values()) == n  # every message is sent, failed or dropped
    text = out.file.getvalue()
    assert text.count("cannot deliver") == 1  # the dead one, once per burst
    assert f"sink {dead}: 0 messages sent, {st['failed']} failed" in text
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert summary["sinks"][dead]["failed"] == st["failed"]


def test_file_sink_and_bad_sinks(anomaly_clip, detector, tmp_path, main_cli, trained_run):  # noqa: F811 - the imported fixture
    path = tmp_path / "alerts.jsonl"
    res = watch(str(anomaly_clip.path), detector, project=tmp_path, sinks=[f"file={path}"], console=quiet_console())
    check_messages(read_jsonl(path), read_jsonl(res.run_dir / "events.jsonl"), res.stream.name)
    for bad in ("webhook=ftp://x/y", "mqtt://host", "kafka://x/y", "file=", "webhook=http://"):
        with pytest.raises(UserError, match="give stdout, file=PATH"):
            parse_sink(bad)
    r = main_cli("watch", anomaly_clip.path, "--model", trained_run.run_dir, "--sink", "smtp://x")
    lines = [line for line in r.out.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "--sink 'smtp://x'" in lines[0] and "Traceback" not in r.out


def test_cli_sink_stdout_is_json_lines_only(cli, anomaly_clip, trained_run, tmp_path):  # noqa: F811
    proc = cli("watch", anomaly_clip.path, "--model", trained_run.run_dir, "--sink", "stdout", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    msgs = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is a message
    run = tmp_path / "runs" / "watch" / f"{anomaly_clip.path.stem}-1"
    check_messages(msgs, read_jsonl(run / "events.jsonl"), anomaly_clip.path.stem)
    assert "speed:" in proc.stderr and "sink stdout:" in proc.stderr


@pytest.fixture
def mosquitto(tmp_path):
    """A private broker on a free port; without one the MQTT sink is untested, which CI must not allow."""
    exe = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).is_file()), None)
    if exe is None:
        service_missing("no mosquitto broker installed (apt-get install mosquitto); the MQTT sink is not tested")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        proc.wait(5)
        pytest.fail(f"{exe} is installed but did not listen on port {port} in 5 s: {log.read_text()[-500:]}")
    yield port
    proc.terminate()
    proc.wait(5)


def test_mqtt_broker_gets_every_message(anomaly_clip, detector, tmp_path, mosquitto):  # noqa: F811 - the imported fixture
    import paho.mqtt.client as mqtt

    got: list[dict] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    ready = threading.Event()
    sub.on_connect = lambda c, u, f, rc, p: (c.subscribe("ognet/events", qos=1), ready.set())
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    sub.connect("127.0.0.1", mosquitto)
    sub.loop_start()
    try:
        assert ready.wait(5)
        time.sleep(0.2)  # the subscription is in place
        res = watch(str(anomaly_clip.path), detector, project=tmp_path, update_every=0.05,
                    sinks=[f"mqtt://127.0.0.1:{mosquitto}/ognet/events"], console=quiet_console())  # fmt: skip
        deadline = time.monotonic() + 5
        while len(got) < res.stream.info["messages"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
    check_messages(got, read_jsonl(res.run_dir / "events.jsonl"), res.stream.name)
    assert res.sinks[f"mqtt://127.0.0.1:{mosquitto}/ognet/events"]["sent"] == len(got)


def test_unreachable_broker_is_a_warning_and_counted(anomaly_clip, detector, tmp_path):  # noqa: F811 - the imported fixture
    out = quiet_console()
    spec = f"mqtt://127.0.0.1:{free_port()}/ognet"
    res = watch(str(anomaly_clip.path), detector, project=tmp_path, sinks=[spec], drain_timeout=0.5, console=out)
    text = out.file.getvalue()
    assert "no broker answered" in text and "Traceback" not in text and res.exit_code == 0
    st = res.sinks[spec]
    assert st["sent"] == 0 and st["failed"] + st["dropped"] == res.stream.info["messages"] > 0


def test_mqtt_discovery_announces_each_camera_to_home_assistant(anomaly_clip, detector, tmp_path, mosquitto):  # noqa: F811 - the imported fixture
    """With ``?discovery=homeassistant`` the camera appears in Home Assistant as a device with a binary sensor
    "anomaly" and a score sensor, announced and kept retained, and their states follow the events."""
    import paho.mqtt.client as mqtt

    got: list[tuple[str, str, bool]] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    ready = threading.Event()
    sub.on_connect = lambda c, u, f, rc, p: (c.subscribe([("homeassistant/#", 1), ("ognet/#", 1)]), ready.set())
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload.decode(), bool(m.retain)))
    sub.connect("127.0.0.1", mosquitto)
    sub.loop_start()
    spec = f"mqtt://127.0.0.1:{mosquitto}/ognet/events?discovery=homeassistant"
    try:
        assert ready.wait(5)
        time.sleep(0.2)
        res = watch(str(anomaly_clip.path), detector, project=tmp_path, update_every=0.05, sinks=[spec],
                    console=quiet_console())  # fmt: skip
        deadline = time.monotonic() + 5
        while sum(t == "ognet/events" for t, _, _ in got) < res.stream.info["messages"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
    camera = res.stream.name
    configs = {t: json.loads(p) for t, p, _ in got if t.startswith("homeassistant/") and t.endswith("/config")}
    binary = next(c for t, c in configs.items() if "/binary_sensor/" in t)
    score = next(c for t, c in configs.items() if "/sensor/" in t)
    assert binary["device_class"] == "problem" and binary["device"] == score["device"]
    assert camera in binary["device"]["name"] and binary["unique_id"] != score["unique_id"]
    states = [p for t, p, _ in got if t == binary["state_topic"]]
    assert states[0] == "OFF" and "ON" in states and states[-1] == "OFF"  # announced idle, on in events, off at end
    peaks = [float(p) for t, p, _ in got if t == score["state_topic"]]
    events = read_jsonl(res.run_dir / "events.jsonl")
    assert events and max(peaks) == pytest.approx(max(e["peak_score"] for e in events), abs=1e-3)
    # retained: a hub that connects later still learns the camera and its last state
    late: dict[str, str] = {}
    sub2 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub2.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
    sub2.on_message = lambda c, u, m: late.__setitem__(m.topic, m.payload.decode())
    sub2.connect("127.0.0.1", mosquitto)
    sub2.loop_start()
    time.sleep(1.0)
    sub2.loop_stop()
    assert set(configs) <= set(late) and late[binary["state_topic"]] == "OFF" and "ognet/events" not in late


def test_mqtt_sink_options_are_checked():
    for spec in ("mqtt://127.0.0.1:1/ognet?retain=1", "mqtt://127.0.0.1:1/ognet?discovery=home/assistant"):
        with pytest.raises(UserError, match="discovery=PREFIX"):
            parse_sink(spec)


class FakeFrigate:
    """Frigate's event API as far as an outside detector uses it: create (returns an event_id) and end."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def _record(self, method: str) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                calls.append((method, self.path, body))
                out = json.dumps({"success": True, "message": "ok", "event_id": f"frigate-{len(calls)}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self) -> None:  # noqa: N802
                self._record("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._record("PUT")

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_frigate_sink_opens_and_ends_a_frigate_event_per_event(anomaly_clip, detector, tmp_path):  # noqa: F811 - the imported fixture
    fr = FakeFrigate()
    try:
        res = watch(str(anomaly_clip.path), detector, project=tmp_path, sinks=[f"frigate={fr.url}"],
                    update_every=0.05, console=quiet_console())  # fmt: skip
    finally:
        fr.stop()
    events = read_jsonl(res.run_dir / "events.jsonl")
    camera = res.stream.name
    creates = [c for c in fr.calls if c[0] == "POST"]
    ends = [c for c in fr.calls if c[0] == "PUT"]
    assert len(creates) == len(ends) == len(events) >= 1
    for _, path, body in creates:  # open until ended; the sub-label: the score at the start against the threshold
        assert path == f"/api/events/{camera}/anomaly/create" and body["duration"] is None
        assert re.fullmatch(r"score -?\d+\.\d\d > -?\d+\.\d\d", body["sub_label"]), body["sub_label"]
    ids = [f"frigate-{fr.calls.index(c) + 1}" for c in creates]
    assert [path for _, path, _ in ends] == [f"/api/events/{i}/end" for i in ids]
    assert all(isinstance(body["end_time"], float) for _, _, body in ends)
    with pytest.raises(UserError, match="frigate="):
        parse_sink("frigate=ftp://host")
