"""Where an event's files lie: one naming rule for the clip sink, ``events.jsonl``, the alerts and the review page."""

from __future__ import annotations

EVENTS_DIR = "events"  # in the stream's folder


def event_id(camera: str, number: int) -> str:
    """CAMERA-N: the event's name in the live messages, ``events.jsonl`` and the feedback labels."""
    return f"{camera}-{number}"


def clip_paths(camera: str, number: int) -> dict[str, str]:
    """The event's clip, snapshot and source clip, relative to its stream's folder."""
    eid = event_id(camera, number)
    return {"clip": f"{EVENTS_DIR}/{eid}.mp4", "snapshot": f"{EVENTS_DIR}/{eid}.jpg",
            "source_clip": f"{EVENTS_DIR}/{eid}-source.mp4"}  # fmt: skip
