"""The events of the runs the review page shows: every camera folder (a folder with ``events.jsonl``) under
the runs given, its events, their files and labels.

Each event gets an opaque ``eid`` (a short hash of its camera folder and event id): the web API names events
only by it and serves files only from what the index recorded, so no part of a URL ever becomes a path.
``refresh`` is cheap enough to run per request (a walk, one stat per file, re-reading only the files that
changed), so a page over a live ``watch`` sees new events. Lines from older releases (no ``kind``, ``id``,
``camera`` or clip) are listed with defaults; lines that do not parse (a torn last line) are skipped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ognet_video.paths import is_inside
from ognet_video.review.feedback import FEEDBACK, Label, read_labels
from ognet_video.review.timeline import ScoreFile, event_window, scores_file

EVENTS = "events.jsonl"
FILES = {"clip": "clip", "snapshot": "snapshot", "source": "source_clip"}  # API name -> events.jsonl key
MAX_POINTS = 1500  # a timeline longer than this is thinned (keeping each bucket's highest score)


@dataclass
class Entry:
    """One line of an events.jsonl, as the review page needs it."""

    eid: str
    id: str
    kind: str  # anomaly | camera
    folder: Path  # its camera folder
    camera: str
    run: str
    run_kind: str  # watch | score
    data: dict[str, Any]
    when: datetime  # opened_at, else the file's mtime (aware, local zone)
    exact: bool  # ``when`` is the event's own opening time
    order: tuple[float, int]  # newest first sorts on this, descending

    def file(self, name: str) -> Path | None:
        """The event's ``clip``/``snapshot``/``source`` file when it exists inside its camera folder."""
        rel = self.data.get(FILES.get(name, ""))
        if not isinstance(rel, str) or not rel or "\0" in rel:
            return None
        pure = PurePosixPath(rel.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts:
            return None
        path = self.folder / pure
        return path if path.is_file() and is_inside(self.folder, path) else None

    def to_json(self, label: Label | None) -> dict[str, Any]:
        d = self.data
        start, end = _int(d.get("start")), _int(d.get("end"))
        t0, t1 = _num(d.get("start_time")), _num(d.get("end_time"))
        fps = _num(d.get("clip_fps"))
        duration = t1 - t0 if t0 is not None and t1 is not None else None
        if duration is None and fps and start is not None and end is not None:
            duration = (end - start + 1) / fps
        has = {k: self.file(k) is not None for k in FILES}
        return {
            "eid": self.eid, "id": self.id, "kind": self.kind, "camera": self.camera, "run": self.run,
            "run_kind": self.run_kind, "folder": str(self.folder), "when": self.when.isoformat(timespec="seconds"),
            "when_exact": self.exact, "day": self.when.date().isoformat(), "start": start, "end": end,
            "start_time": t0, "end_time": t1, "duration": duration, "peak_frame": _int(d.get("peak_frame")),
            "peak_score": _num(d.get("peak_score")), "threshold": _num(d.get("threshold")),
            "reason": d.get("reason") if isinstance(d.get("reason"), str) else None,
            "clip": f"/api/events/{self.eid}/clip" if has["clip"] else None,
            "snapshot": f"/api/events/{self.eid}/snapshot" if has["snapshot"] else None,
            "source": f"/api/events/{self.eid}/source" if has["source"] else None,
            "label": label.label if label else None, "label_time": label.time if label else None,
        }  # fmt: skip


class Index:
    """The events under ``runs`` (run roots such as runs/watch, run folders or camera folders)."""

    def __init__(self, runs: list[Path]) -> None:
        self.runs = [Path(r) for r in runs]
        self._lock = threading.Lock()
        self._events: dict[Path, tuple[tuple[int, int], list[Entry]]] = {}  # events.jsonl -> (stamp, entries)
        self._labels: dict[Path, tuple[tuple[int, int], dict[str, Label]]] = {}  # camera folder -> labels
        self._scores: dict[Path, ScoreFile] = {}
        self.entries: dict[str, Entry] = {}

    def refresh(self) -> None:
        """Find the camera folders again and re-read the events files that changed since the last call."""
        with self._lock:
            found: dict[Path, tuple[tuple[int, int], list[Entry]]] = {}
            for root in self.runs:
                for folder in camera_folders(root):
                    path = folder / EVENTS
                    try:
                        st = path.stat()
                    except OSError:
                        continue
                    stamp = (st.st_mtime_ns, st.st_size)
                    old = self._events.get(path)
                    found[path] = old if old and old[0] == stamp else (stamp, read_events(root, folder, st.st_mtime))
            self._events = found
            entries: dict[str, Entry] = {}
            for _, items in found.values():
                for e in items:
                    entries.setdefault(e.eid, e)
            self.entries = entries

    def get(self, eid: str) -> Entry | None:
        return self.entries.get(eid)

    def labels(self, folder: Path) -> dict[str, Label]:
        """The labels of a camera folder, re-read when its feedback file changed."""
        path = folder / FEEDBACK
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            return {}
        with self._lock:
            old = self._labels.get(folder)
            if old and old[0] == stamp:
                return old[1]
        labels = read_labels(folder)
        with self._lock:
            self._labels[folder] = (stamp, labels)
        return labels

    def query(self, camera: str | None = None, day: str | None = None, min_score: float | None = None,
              kind: str | None = None, run: str | None = None, label: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """The events that pass every filter given, newest first. ``min_score`` applies to anomalies (a camera
        alert has no score); ``label``: normal, real or none (not labelled yet)."""
        out, labels = [], {}
        for e in sorted(self.entries.values(), key=lambda e: e.order, reverse=True):
            if (camera and e.camera != camera) or (run and e.run != run) or (kind and e.kind != kind):
                continue
            if day and e.when.date().isoformat() != day:
                continue
            peak = _num(e.data.get("peak_score"))
            if min_score is not None and e.kind == "anomaly" and (peak is None or peak < min_score):
                continue
            if e.folder not in labels:
                labels[e.folder] = self.labels(e.folder)
            d = e.to_json(labels[e.folder].get(e.id))
            if label and (d["label"] or "none") != label:
                continue
            out.append(d)
        return out

    def facets(self) -> dict[str, list[str]]:
        """The cameras, runs and days there are to filter on."""
        es = list(self.entries.values())
        return {"cameras": sorted({e.camera for e in es}), "runs": sorted({e.run for e in es}),
                "days": sorted({e.when.date().isoformat() for e in es}, reverse=True)}  # fmt: skip

    def timeline(self, eid: str) -> dict[str, Any] | None:
        """The smoothed score from the event's clip's first frame to a few seconds past its end, with the
        threshold; None for an unknown event. Empty lists when the folder has no scores file."""
        e = self.get(eid)
        if e is None:
            return None
        d = e.data
        out: dict[str, Any] = {"eid": eid, "frames": [], "smoothed": [], "threshold": _num(d.get("threshold")),
                               "start": _int(d.get("start")), "end": _int(d.get("end")),
                               "peak_frame": _int(d.get("peak_frame")), "peak_score": _num(d.get("peak_score"))}  # fmt: skip
        path = scores_file(e.folder)
        if path is None or out["start"] is None:
            return out
        with self._lock:
            sf = self._scores.setdefault(path, ScoreFile(path))
        lo, stop = event_window(d, _num(d.get("clip_fps")) or 10.0)
        rows = [r for r in sf.rows(lo, stop) if _num(r.get("smoothed")) is not None]
        step = max(1, -(-len(rows) // MAX_POINTS))
        for i in range(0, len(rows), step):
            best = max(rows[i : i + step], key=lambda r: r["smoothed"])
            out["frames"].append(best["frame"])
            out["smoothed"].append(round(float(best["smoothed"]), 4))
        return out


def camera_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (itself included) with an events.jsonl; hidden folders (a score run's
    unfinished ``clips/.tmp-*``) are skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if EVENTS in filenames:
            out.append(Path(dirpath))
    return out


def _run_of(root: Path, folder: Path) -> tuple[str, str]:
    """(name, kind) of the run a camera folder belongs to: the highest folder from it up to ``root`` with a
    run record (score's run.json, watch's summary.json); the folder itself without one."""
    run, chain = folder, [folder, *folder.parents]
    top = chain.index(root) if root in chain else 0
    for p in chain[: top + 1]:
        if (p / "run.json").is_file() or (p / "summary.json").is_file():
            run = p
    kind = "score" if (run / "run.json").is_file() or (run / "manifest.jsonl").is_file() else "watch"
    return run.name or str(run.resolve().name), kind


def read_events(root: Path, folder: Path, mtime: float) -> list[Entry]:
    """The events of ``folder``'s events.jsonl (``root``: the run given, for the run's name); ``mtime``: the file's,
    the time of events without their own. Also what ``calibrate --feedback`` reads labelled events with."""
    run, run_kind = _run_of(root, folder)
    base = os.path.realpath(folder)
    file_time = datetime.fromtimestamp(mtime).astimezone()
    out: list[Entry] = []
    seen: set[str] = set()
    try:
        lines = (folder / EVENTS).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for n, line in enumerate(lines, 1):
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(d, dict):
            continue
        eid_text = str(d.get("id") or f"{folder.name}-{n}")
        key = eid_text if eid_text not in seen else f"{eid_text}\n{n}"
        seen.add(eid_text)
        opened = _when(d.get("opened_at"))
        start = _int(d.get("start")) or 0
        when = opened or file_time
        order = (when.timestamp(), start) if opened is None else (when.timestamp(), 0)
        out.append(Entry(
            eid=hashlib.sha256(f"{base}\0{key}".encode()).hexdigest()[:16], id=eid_text,
            kind=str(d.get("kind") or "anomaly"), folder=folder, camera=str(d.get("camera") or folder.name),
            run=run, run_kind=run_kind, data=d, when=when, exact=opened is not None, order=order,
        ))  # fmt: skip
    return out


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.astimezone()


def _num(v: Any) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
