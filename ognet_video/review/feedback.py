"""Labels a person gives events on the review page: ``feedback.jsonl`` in the event's camera folder.

Append-only, one JSON line per label (``{"event", "label", "time", "by"}``); the last line for an event wins,
so changing one's mind is one more line and the file never needs rewriting (a reader never sees it half
rewritten, and a crash loses at most the line being written). Each append is flushed and fsynced under a lock,
so two review pages (or a page and ``calibrate --feedback``) never interleave lines. ``calibrate --feedback``
reads the same file with ``read_labels``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from filelock import FileLock

from ognet_video.errors import UserError, writing

FEEDBACK = "feedback.jsonl"
LABELS = ("normal", "real")  # normal: a false alarm; real: an anomaly worth the alert
LOCK = ".feedback.lock"


@dataclass(frozen=True)
class Label:
    event: str  # the event's ``id`` in events.jsonl
    label: str  # one of LABELS
    time: str  # wall clock with zone, ISO 8601
    by: str = "review"


def append_label(folder: Path, event_id: str, label: str, by: str = "review") -> Label:
    """Record ``label`` for event ``event_id`` of the camera folder ``folder`` (one fsynced line)."""
    if label not in LABELS:
        raise UserError(f"label {label!r} is not one of {', '.join(LABELS)}")
    if not event_id:
        raise UserError("a label needs the event's id")
    rec = Label(str(event_id), label, datetime.now().astimezone().isoformat(timespec="milliseconds"), by)
    path = Path(folder) / FEEDBACK
    with FileLock(str(Path(folder) / LOCK), timeout=10), writing(path):
        new = not path.exists()
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(rec)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if new:  # the file's name must survive a crash too
            _fsync_dir(path.parent)
    return rec


def read_labels(folder: Path) -> dict[str, Label]:
    """The current label of each labelled event of ``folder`` (last line wins); {} without a feedback file.
    Lines that do not parse (a torn last line, a hand edit) are skipped."""
    path = Path(folder) / FEEDBACK
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    out: dict[str, Label] = {}
    for line in text.splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(d, dict) and d.get("label") in LABELS and isinstance(d.get("event"), str) and d["event"]:
            out[d["event"]] = Label(d["event"], d["label"], str(d.get("time") or ""), str(d.get("by") or "review"))
    return out


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible everywhere (Windows); the file itself is synced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
