"""Live event messages (``start`` / ``update`` / ``end``) and the channels that deliver them.

``Alerts`` is a stream's sink: it turns the engine's ``EventMessage``s into JSON objects (camera, event id,
wall-clock and source time, score, threshold, box, the path of a JPEG of the peak frame under
``snapshots/``) and hands each to every channel. A ``Channel`` delivers in its own thread from a bounded
queue that drops its oldest message when full, so a slow or dead receiver never stalls scoring; what could
not be delivered is counted (``stats``) and logged once per burst of failures.

Channels: ``stdout`` (JSON lines), ``file=PATH`` (JSONL, appended), ``webhook=URL`` (HTTP POST, retried
with backoff), ``mqtt://HOST[:PORT]/TOPIC`` (paho-mqtt). ``parse_sink`` reads those forms.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ognet_video.clips.paths import clip_paths, event_id
from ognet_video.decide import EventMessage
from ognet_video.errors import UserError
from ognet_video.health import CameraMessage
from ognet_video.health.checks import DESCRIBE
from ognet_video.sinks.channel import Channel, Log, why
from ognet_video.sinks.files import Folder, now_iso, write_jpeg
from ognet_video.sinks.frigate import FrigateChannel
from ognet_video.stream.engine import Batch, Sink, Stream

SINK_FORMS = ("stdout, file=PATH, webhook=http(s)://HOST/PATH, frigate=http(s)://HOST:PORT or "
              "mqtt://HOST[:PORT]/TOPIC[?discovery=homeassistant]")
DISCOVERY = "discovery"  # the kind of the message that announces a camera to Home Assistant (MQTT only)


class StdoutChannel(Channel):
    def __init__(self, log: Log | None = None) -> None:
        super().__init__("stdout", log)

    def deliver(self, msg: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


class FileChannel(Channel):
    def __init__(self, path: Path, log: Log | None = None) -> None:
        super().__init__(f"file={path}", log)
        self.path = path
        try:
            self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by shutdown
        except OSError as exc:
            raise UserError(f"--sink file={path}: cannot open it for writing ({exc.strerror})") from None

    def deliver(self, msg: dict[str, Any]) -> None:
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()

    def shutdown(self) -> None:
        self.f.close()


class WebhookChannel(Channel):
    retries = 3

    def __init__(self, url: str, log: Log | None = None, timeout: float = 5.0) -> None:
        super().__init__(f"webhook={url}", log)
        self.url, self.timeout = url, timeout

    def deliver(self, msg: dict[str, Any]) -> None:
        req = urllib.request.Request(self.url, json.dumps(msg).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the user's own URL
            resp.read()


class MqttChannel(Channel):
    """Publishes each message to TOPIC (QoS 1); paho's own thread keeps the connection and reconnects.

    ``discovery``: Home Assistant's discovery prefix (``homeassistant``). Each camera is then announced (retained)
    as a device with a binary sensor "anomaly" (on while an event is open) and a sensor "anomaly score" (the
    open or last event's peak), whose states are kept, retained, on ``TOPIC/CAMERA/anomaly`` and
    ``TOPIC/CAMERA/score``, so the hub shows them as soon as it connects."""

    def __init__(self, host: str, port: int, topic: str, log: Log | None = None, wait: float = 3.0,
                 discovery: str | None = None) -> None:  # fmt: skip
        import paho.mqtt.client as mqtt

        super().__init__(f"mqtt://{host}:{port}/{topic}", log)
        self.topic = topic
        self.discovery = discovery
        self._announced: set[str] = set()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"ognet-video-{os.getpid()}")
        self.client.reconnect_delay_set(1, 30)
        self._connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: self._connected.set() if not rc.is_failure else None
        self.client.on_disconnect = lambda *a: self._connected.clear()
        try:
            self.client.connect_async(host, port)
        except (OSError, ValueError) as exc:
            raise UserError(f"--sink mqtt://{host}:{port}/{topic}: {why(exc)}") from None
        self.client.loop_start()
        if not self._connected.wait(wait):
            self.log(f"sink {self.name}: no broker answered within {wait:g} s; retrying in the background")

    def announce(self, camera: str) -> None:
        if self.discovery and camera not in self._announced:
            self._announced.add(camera)
            self.put({"kind": DISCOVERY, "camera": camera})

    def deliver(self, msg: dict[str, Any]) -> None:
        if not self._connected.is_set():
            raise ConnectionError("not connected to the broker")
        for topic, payload, retain in self.publications(msg):
            info = self.client.publish(topic, payload, qos=1, retain=retain)
            info.wait_for_publish(timeout=5.0)
            if not info.is_published():
                raise ConnectionError("the broker did not acknowledge the message")

    def publications(self, msg: dict[str, Any]) -> list[tuple[str, str, bool]]:
        """(topic, payload, retained) for one message: the message itself, and with ``discovery`` the camera's
        announcement or its states."""
        camera = str(msg.get("camera", ""))
        state = f"{self.topic}/{ha_id(camera)}"
        if msg.get("kind") == DISCOVERY:
            return [*ha_config(self.discovery or "", camera, state), (f"{state}/anomaly", "OFF", True)]
        out = [(self.topic, json.dumps(msg), False)]
        if self.discovery and msg.get("kind") == "anomaly":
            out.append((f"{state}/anomaly", "OFF" if msg.get("type") == "end" else "ON", True))
            if msg.get("score") is not None:
                out.append((f"{state}/score", str(msg["score"]), True))
        return out

    def shutdown(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ha_id(camera: str) -> str:
    """A camera name as Home Assistant ids and topic levels allow: letters, digits, _ and -."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", camera) or "camera"


def ha_config(prefix: str, camera: str, state: str) -> list[tuple[str, str, bool]]:
    """Home Assistant MQTT discovery for one camera: a device with the binary sensor and the score sensor."""
    cid = ha_id(camera)
    device = {"identifiers": [f"ognet_video_{cid}"], "name": f"ognet-video {camera}", "manufacturer": "ognet-video",
              "model": "OGNet anomaly detector"}  # fmt: skip
    anomaly = {"name": "anomaly", "unique_id": f"ognet_video_{cid}_anomaly", "state_topic": f"{state}/anomaly",
               "device_class": "problem", "payload_on": "ON", "payload_off": "OFF", "device": device}  # fmt: skip
    score = {"name": "anomaly score", "unique_id": f"ognet_video_{cid}_score", "state_topic": f"{state}/score",
             "state_class": "measurement", "device": device}  # fmt: skip
    return [(f"{prefix}/binary_sensor/ognet_video_{cid}/anomaly/config", json.dumps(anomaly), True),
            (f"{prefix}/sensor/ognet_video_{cid}/score/config", json.dumps(score), True)]  # fmt: skip


def parse_sink(spec: str, log: Log | None = None) -> Channel:
    """A started channel for one ``--sink`` value; UserError (one line) for a malformed one."""
    bad = f"--sink {spec!r}: give {SINK_FORMS}"
    if spec == "stdout":
        return StdoutChannel(log).start()
    if spec.startswith("file="):
        if not spec[5:]:
            raise UserError(bad)
        return FileChannel(Path(spec[5:]), log).start()
    for prefix, channel in (("webhook=", WebhookChannel), ("frigate=", FrigateChannel)):
        if spec.startswith(prefix):
            url = spec[len(prefix) :]
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UserError(bad)
            return channel(url, log).start()
    if spec.startswith("mqtt://"):
        parts = urlsplit(spec)
        topic = parts.path.strip("/")
        try:
            port = parts.port or 1883
        except ValueError:
            raise UserError(bad) from None
        if not parts.hostname or not topic:
            raise UserError(bad)
        query = parse_qs(parts.query, keep_blank_values=True)
        prefix = query.pop("discovery", [None])[-1]
        if query or (prefix is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", prefix)):
            raise UserError(f"--sink {spec!r}: the only option of an MQTT sink is ?discovery=PREFIX (Home "
                            "Assistant's discovery prefix, usually homeassistant)")  # fmt: skip
        return MqttChannel(parts.hostname, port, topic, log, discovery=prefix).start()
    raise UserError(bad)


class Alerts(Sink):
    """A stream's event messages as JSON to every channel, with a snapshot of the peak frame."""

    def __init__(self, folder: Folder, channels: list[Channel], camera: str, run: Folder | None = None,
                 clips: bool = False) -> None:  # fmt: skip
        self.folder, self.channels, self.camera, self.run = folder, channels, camera, run
        self.clips = clips  # the end message names the event's clip (written when its post-roll has passed)
        self._snap: dict[int, tuple[int, str]] = {}  # event number -> (peak frame, snapshot path)
        self._camera_snap: dict[int, str | None] = {}  # camera event number -> its snapshot
        self.messages = 0
        for ch in channels:
            ch.announce(camera)

    def write(self, batch: Batch) -> None:
        st, threshold = batch.stats, batch.info.threshold if batch.info is not None else None
        for m in batch.messages:
            msg = self.message(m, threshold)
            # how far behind the camera scoring was: an alert from a machine that cannot keep up says so
            msg["drop_rate"], msg["lag_s"] = round(st.drop_rate, 4), round(st.lag_s, 3)
            self._put(msg)
        for c in batch.camera:
            msg = self.camera_message(c)
            msg["drop_rate"], msg["lag_s"] = round(st.drop_rate, 4), round(st.lag_s, 3)
            self._put(msg)

    def _put(self, msg: dict[str, Any]) -> None:
        self.messages += 1
        for ch in self.channels:
            ch.put(msg)

    def close(self, stream: Stream) -> None:
        stream.info["messages"] = self.messages

    def snapshot(self, m: EventMessage) -> str | None:
        """The JPEG of the peak frame, written once per peak (a new peak gets a new file)."""
        ev = m.event
        got = self._snap.get(m.number)
        if got is not None and got[0] == ev.peak_frame:
            return got[1]
        if m.image is None:
            return None
        path = self.folder.path / "snapshots" / f"{self.camera}-{m.number}-{ev.peak_frame}.jpg"
        if not write_jpeg(path, m.image):
            return None
        self._snap[m.number] = (ev.peak_frame, str(path.resolve()))
        return self._snap[m.number][1]

    def message(self, m: EventMessage, threshold: float | None) -> dict[str, Any]:
        ev = m.event
        snap = self.snapshot(m)
        if m.type == "end":
            self._snap.pop(m.number, None)
        clip = None
        if self.clips and m.type == "end":
            clip = str((self.folder.path / clip_paths(self.camera, m.number)["clip"]).resolve())
        return {
            "type": m.type, "kind": "anomaly", "camera": self.camera, "event": event_id(self.camera, m.number), "run": self.run.path.name if self.run else "",
            "time": now_iso(), "source_time": None if m.time is None else round(m.time, 3), "frame": m.frame,
            "start": ev.start, "start_time": _r(ev.start_time), "end": ev.end if m.type == "end" else None,
            "end_time": _r(ev.end_time) if m.type == "end" else None, "peak_frame": ev.peak_frame,
            "score": round(ev.peak_score, 4), "threshold": None if threshold is None else round(threshold, 4),
            "box": ev.peak_box, "snapshot": snap, "clip": clip,
        }  # fmt: skip

    def camera_message(self, m: CameraMessage) -> dict[str, Any]:
        """A camera-health message: the reason, since when, and a snapshot of what the camera showed then."""
        ev = m.event
        if m.type == "start" and m.image is not None:
            path = self.folder.path / "snapshots" / f"{self.camera}-camera-{m.number}-{ev.reason}.jpg"
            self._camera_snap[m.number] = str(path.resolve()) if write_jpeg(path, m.image) else None
        snap = self._camera_snap.pop(m.number, None) if m.type == "end" else self._camera_snap.get(m.number)
        return {
            "type": m.type, "kind": "camera", "reason": ev.reason, "camera": self.camera,
            "event": f"{self.camera}-camera-{m.number}", "run": self.run.path.name if self.run else "",
            "time": now_iso(), "source_time": _r(m.time), "frame": m.frame, "start": ev.start,
            "start_time": _r(ev.start_time), "end": ev.end if m.type == "end" else None,
            "end_time": _r(ev.end_time) if m.type == "end" else None,
            "detail": f"{DESCRIBE[ev.reason]}: anomaly decisions suspended" if m.type != "end"
            else f"{DESCRIBE[ev.reason]}: over, anomaly decisions resumed", "snapshot": snap,
        }  # fmt: skip


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
