"""``summary.csv`` and the closing table: one row per clip, worst (highest max score) first, failed last."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from ognet_video.models.checkpoint import atomic_write_text
from ognet_video.paths import safe_child
from ognet_video.score.manifest import ClipRecord

SUMMARY = "summary.csv"
SUMMARY_FIELDS = ("clip", "input", "kind", "frames", "max_score", "anomalous_share", "events", "first_event_time",
                  "first_event_frame", "status", "reason")  # fmt: skip


def _sort_key(r: ClipRecord) -> tuple:
    return (r.status == "failed", -(r.max_score if r.max_score is not None else -np.inf), r.name)


def _row(r: ClipRecord) -> dict[str, Any]:
    d = asdict(r)
    d["clip"] = d.pop("name")
    row = {k: ("" if d[k] is None else d[k]) for k in SUMMARY_FIELDS}
    for k in ("max_score", "anomalous_share"):
        if row[k] != "":
            row[k] = f"{row[k]:.6g}"
    if row["first_event_time"] != "":
        row["first_event_time"] = f"{row['first_event_time']:.3f}"
    return row


def write_summary(out: Path, records: dict[str, ClipRecord]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in sorted(records.values(), key=_sort_key):
        w.writerow(_row(r))
    path = safe_child(out, SUMMARY, "summary")
    atomic_write_text(path, buf.getvalue())
    return path


def summary_table(records: list[ClipRecord], out: Path, top: int = 30) -> Table:
    recs = sorted(records, key=_sort_key)
    shown = recs[:top] + [r for r in recs[top:] if not r.ok]
    t = Table(title=f"{len(records)} clips, worst first (full list: {out / SUMMARY})")
    for col in ("clip", "frames", "max score", "anomalous", "events", "first event", "status"):
        t.add_column(col, justify="left" if col in ("clip", "status") else "right")
    for r in shown:
        if r.status == "failed":
            t.add_row(escape(r.name), "", "", "", "", "", f"[red]failed[/]: {escape(r.reason)}")
            continue
        first = "" if r.first_event_frame is None else (
            f"{r.first_event_time:.1f} s" if r.first_event_time is not None else f"frame {r.first_event_frame}")  # fmt: skip
        status = f"[yellow]{r.status}[/]: {escape(r.reason)}" if not r.ok else \
            f"ok, {r.skipped} unreadable frame{'s' * (r.skipped > 1)} skipped" if r.skipped else "ok"  # fmt: skip
        score = "" if r.max_score is None else f"{r.max_score:.2f}"
        t.add_row(escape(r.name), str(r.frames), score, f"{100 * (r.anomalous_share or 0):.1f}%", str(r.events),
                  first, status)  # fmt: skip
    if len(shown) < len(recs):
        t.caption = f"{len(recs) - len(shown)} more clips in summary.csv"
    return t
