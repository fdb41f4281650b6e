"""``frigate=URL``: each anomaly event becomes a Frigate event, so it shows in Frigate's review UI with its
recording, beside the objects Frigate detects itself.

Frigate's HTTP API lets an outside detector add events: ``POST /api/events/{camera}/{label}/create`` opens one
(with no duration it stays open) and returns its ``event_id``; ``PUT /api/events/{event_id}/end`` closes it. The
camera name must be Frigate's name for the same camera (a cameras file's ``name``). The label is ``anomaly``;
the sub-label carries the peak score against the threshold.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any
from urllib.parse import quote

from ognet_video.sinks.channel import Channel, Log

LABEL = "anomaly"


class FrigateChannel(Channel):
    retries = 3

    def __init__(self, url: str, log: Log | None = None, timeout: float = 5.0) -> None:
        super().__init__(f"frigate={url}", log)
        self.base, self.timeout = url.rstrip("/"), timeout
        self.ids: dict[str, str] = {}  # our event id -> Frigate's, while the event is open

    def deliver(self, msg: dict[str, Any]) -> None:
        if msg.get("kind") != "anomaly":  # camera-health messages have no Frigate counterpart
            return
        if msg["type"] == "start":
            body = {"sub_label": sub_label(msg), "duration": None, "include_recording": True, "draw": {}}
            got = self._call("POST", f"/api/events/{quote(msg['camera'], safe='')}/{LABEL}/create", body)
            if not isinstance(got, dict) or not isinstance(got.get("event_id"), str):
                raise ConnectionError(f"Frigate answered without an event_id: {str(got)[:200]}")
            self.ids[msg["event"]] = got["event_id"]
        elif msg["type"] == "end" and msg["event"] in self.ids:
            self._call("PUT", f"/api/events/{quote(self.ids[msg['event']], safe='')}/end", {"end_time": time.time()})
            del self.ids[msg["event"]]

    def _call(self, method: str, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.base + path, json.dumps(body).encode(), {"Content-Type": "application/json"},
                                     method=method)  # fmt: skip
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the user's own Frigate
            text = resp.read()
        return json.loads(text) if text else None


def sub_label(msg: dict[str, Any]) -> str:
    """What Frigate shows beside the label: the event's score against the threshold (Frigate caps it at 100 chars)."""
    thr = msg.get("threshold")
    return (f"score {msg['score']:.2f}" + (f" > {thr:.2f}" if thr is not None else ""))[:100]
