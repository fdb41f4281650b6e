"""The per-frame scores around one event, read from a camera folder's ``scores.jsonl`` (watch) or
``scores.csv`` (score) without parsing the whole file.

A live watch appends a line per frame for days, so the file is only scanned once, incrementally: every
``STEP``-th line's frame and byte offset is remembered, and a range is read by seeking to the mark before it
and parsing until past its end. Frames only increase along the file, which is what makes the marks valid;
a file that shrank or was replaced is scanned afresh.
"""

from __future__ import annotations

import csv
import json
import os
import re
import threading
from bisect import bisect_right
from pathlib import Path
from typing import Any

STEP = 512  # lines between two marks
FRAME = re.compile(rb'"frame":\s*(-?\d+)')
NUMBERS = ("time", "raw", "score", "smoothed")


class ScoreFile:
    """One scores file; ``rows(lo, ...)`` are its frames from ``lo`` on, as dicts (None for missing values)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.csv = self.path.suffix == ".csv"
        self._lock = threading.Lock()
        self._reset(None)

    def _reset(self, ident: tuple[int, int] | None) -> None:
        self.ident = ident  # (device, inode) of the file scanned
        self.header: list[str] | None = None
        self.marks: list[tuple[int, int]] = []  # (frame, offset of its line)
        self.scanned = 0  # bytes scanned (whole lines only)
        self.lines = 0

    def _frame(self, line: bytes) -> int | None:
        if self.csv:
            head = line.split(b",", 1)[0]
            return int(head) if head.strip().lstrip(b"-").isdigit() else None
        m = FRAME.search(line)
        return int(m.group(1)) if m else None

    def _scan(self) -> None:
        """Marks for the lines appended since the last scan."""
        st = os.stat(self.path)
        ident = (st.st_dev, st.st_ino)
        if ident != self.ident or st.st_size < self.scanned:
            self._reset(ident)
        if st.st_size == self.scanned:
            return
        with open(self.path, "rb") as f:
            f.seek(self.scanned)
            for line in f:
                if not line.endswith(b"\n"):  # a line still being written
                    break
                if self.csv and self.header is None:
                    self.header = next(csv.reader([line.decode("utf-8", "replace")]))
                else:
                    if self.lines % STEP == 0 and (frame := self._frame(line)) is not None:
                        self.marks.append((frame, self.scanned))
                    self.lines += 1
                self.scanned += len(line)

    def rows(self, lo: int, stop: Any) -> list[dict[str, Any]]:
        """Rows with frame >= ``lo`` until ``stop(row)`` is true (that row excluded)."""
        with self._lock:
            self._scan()
            marks, header = list(self.marks), self.header
        if not marks:
            return []
        i = bisect_right([m[0] for m in marks], lo) - 1
        out: list[dict[str, Any]] = []
        with open(self.path, "rb") as f:
            f.seek(marks[max(i, 0)][1])
            for line in f:
                if not line.endswith(b"\n"):  # still being written
                    break
                frame = self._frame(line)
                if frame is None or frame < lo:
                    continue
                row = self._parse(line, header)
                if row is None:
                    continue
                if stop(row):
                    break
                out.append(row)
        return out

    def _parse(self, line: bytes, header: list[str] | None) -> dict[str, Any] | None:
        try:
            if not self.csv:
                d = json.loads(line)
                return d if isinstance(d, dict) else None
            values = next(csv.reader([line.decode("utf-8", "replace")]))
            d = dict(zip(header or [], values, strict=False))
            out: dict[str, Any] = {"frame": int(d["frame"])}
            for k in NUMBERS:
                out[k] = float(d[k]) if d.get(k) not in (None, "") else None
            out["anomalous"] = d.get("anomalous") in ("1", "true", "True")
            return out
        except (ValueError, KeyError, json.JSONDecodeError):
            return None


def event_window(ev: dict[str, Any], fps: float, after: float = 3.0) -> tuple[int, Any]:
    """The first frame of an event's timeline (its clip's first frame) and the test that ends it: ``after``
    seconds past the event's end (source time where known, else frames at ``fps``)."""
    start, end = int(ev.get("start") or 0), int(ev.get("end") or ev.get("start") or 0)
    lo = ev.get("clip_first_frame")
    lo = int(lo) if isinstance(lo, int | float) else max(0, start - round(after * fps))
    end_time = ev.get("end_time")
    last = end + round(after * fps)

    def stop(row: dict[str, Any]) -> bool:
        t = row.get("time")
        if isinstance(end_time, int | float) and isinstance(t, int | float):
            return t > end_time + after
        return row["frame"] > last

    return lo, stop


def scores_file(folder: Path) -> Path | None:
    """A camera folder's per-frame scores: ``scores.jsonl`` (watch) or ``scores.csv`` (score)."""
    for name in ("scores.jsonl", "scores.csv"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None
