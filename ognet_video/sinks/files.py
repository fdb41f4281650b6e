"""File sinks. Each writes into a ``Folder``, which is made on first use: a run that fails before its
first frame leaves no folder behind. Line-per-frame files are flushed after every batch, so a crash or
Ctrl-C leaves valid lines; whole files (summary, timeline) are written atomically at the end. A write that
fails (a full disk) names its file (``errors.writing``): the OSError of a write or fsync does not."""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from ognet_video.clips.paths import clip_paths, event_id
from ognet_video.decide import Event
from ognet_video.errors import writing
from ognet_video.models.checkpoint import atomic_write_bytes, atomic_write_text
from ognet_video.stream.engine import Batch, Sink, Stream

SCORE_FIELDS = ("frame", "time", "raw", "score", "smoothed", "anomalous")


class Folder:
    """A folder made when first asked for: a fixed path, or ``make()`` (e.g. the next numbered run folder)."""

    def __init__(self, path: Path | None = None, make: Callable[[], Path] | None = None) -> None:
        self._path, self._make = path, make

    @property
    def made(self) -> bool:
        return self._path is not None and self._path.is_dir()

    @property
    def path(self) -> Path:
        if self._path is None:
            assert self._make is not None
            self._path = self._make()
        self._path.mkdir(parents=True, exist_ok=True)
        return self._path


class _LineFile(Sink):
    """A text file opened at the first write, flushed per batch, fsynced on close."""

    def __init__(self, folder: Folder, name: str) -> None:
        self.folder, self.name = folder, name
        self.f: IO[str] | None = None
        self.path = Path(name)  # the file's full path once opened

    def _file(self) -> IO[str]:
        if self.f is None:
            self.path = self.folder.path / self.name
            with writing(self.path):
                self.f = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
                self.start(self.f)
        return self.f

    def start(self, f: IO[str]) -> None:
        """Write a header, if the format has one."""

    def close(self, stream: Stream) -> None:
        f = self._file()
        with writing(self.path):
            f.flush()
            os.fsync(f.fileno())
            f.close()

    def abort(self, stream: Stream) -> None:
        if self.f is not None:
            with contextlib.suppress(OSError):
                self.f.close()


class ScoresJsonl(_LineFile):
    """``scores.jsonl``: one ``FrameResult.to_dict()`` per line (null for missing values)."""

    def __init__(self, folder: Folder, name: str = "scores.jsonl") -> None:
        super().__init__(folder, name)

    def write(self, batch: Batch) -> None:
        if batch.results:
            f = self._file()
            with writing(self.path):
                f.write("".join(json.dumps(r.to_dict()) + "\n" for r in batch.results))
                f.flush()


class ScoresCsv(_LineFile):
    """``scores.csv``: the same values as ``scores.jsonl`` (``SCORE_FIELDS``), empty for missing, 0/1 flags."""

    def __init__(self, folder: Folder, name: str = "scores.csv") -> None:
        super().__init__(folder, name)
        self.w: Any = None
        self.fields: tuple[str, ...] | None = None

    def start(self, f: IO[str]) -> None:
        self.w = csv.writer(f, lineterminator="\n")
        self.w.writerow(self.fields or SCORE_FIELDS)

    def write(self, batch: Batch) -> None:
        if batch.results:
            if self.fields is None:  # a model with the object cue says, per frame, which cue decided
                self.fields = SCORE_FIELDS + (("cue",) if batch.results[0].cue is not None else ())
            f = self._file()
            with writing(self.path):
                for r in batch.results:
                    d = r.to_dict()
                    row = ["" if d.get(k) is None else int(d[k]) if k == "anomalous" else d[k] for k in self.fields]
                    self.w.writerow(row)
                f.flush()


class EventsJsonl(_LineFile):
    """``events.jsonl``: one line per event when it closes (an open event is closed at the end).

    An anomaly event's line says which event it is (``id`` CAMERA-N, as in the live messages), the threshold it
    crossed, when it opened by the wall clock, and with ``clips`` the paths of its clip, snapshot and source
    clip (``clips.sink.clip_paths``, relative to this folder): what the review page lists. ``clock``: False for
    an archive (``score``), whose files must not depend on when it was scored (a resumed run equals a whole one)."""

    def __init__(self, folder: Folder, name: str = "events.jsonl", clips: bool = False, clock: bool = True) -> None:
        super().__init__(folder, name)
        self.clips, self.clock = clips, clock
        self._opened: dict[int, str] = {}  # event number -> wall-clock time its start message was seen

    def write(self, batch: Batch) -> None:
        for m in batch.messages:
            if m.type == "start" and self.clock:
                self._opened[m.number] = now_iso()
        info = batch.info
        assert info is not None
        lines = [self.line(e, info.name, round(info.threshold, 4)) for e in batch.events]
        # camera-health events (``"kind": "camera"``) get a line of their own when they end
        lines += [m.event.to_dict() for m in batch.camera if m.type == "end"]
        if lines:
            f = self._file()
            with writing(self.path):
                f.write("".join(json.dumps(d) + "\n" for d in lines))
                f.flush()

    def line(self, e: Event, camera: str, threshold: float | None) -> dict[str, Any]:
        d = {"kind": "anomaly", "id": event_id(camera, e.number), "camera": camera, **e.to_dict(), "threshold": threshold,
             "opened_at": self._opened.pop(e.number, None)}  # fmt: skip
        if self.clips:
            d.update(clip_paths(camera, e.number))
        return d


def write_jpeg(path: Path, image: Any) -> bool:
    """A frame as a JPEG (quality 90), written atomically (a full disk names ``path``); False when it cannot be
    encoded. The one snapshot writer of the alerts and the event clips."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if ok:
        atomic_write_bytes(path, buf.tobytes())
    return bool(ok)


def now_iso() -> str:
    """Wall-clock time with its zone, e.g. 2026-12-02T13:50:14.123+00:00."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")


class SummaryJson(Sink):
    """``summary.json`` at the end: counts, why it stopped, speed, and the command's own ``stream.info``."""

    def __init__(self, folder: Folder, name: str = "summary.json") -> None:
        self.folder, self.name = folder, name

    def close(self, stream: Stream) -> None:
        atomic_write_text(self.folder.path / self.name, json.dumps(summary_dict(stream), indent=2))


def summary_dict(stream: Stream) -> dict[str, Any]:
    """From the stream's end-of-stream stats and ``StreamInfo`` (a stream that never opened: its source's spec)."""
    st, info = stream.stats, stream.opened
    display, kind, stride = (info.display, info.kind, info.stride) if info is not None else \
        (stream.source.display, stream.source.kind, stream.source.stride)  # fmt: skip
    return {
        "source": display, "kind": kind, "frames": st.frames, "dropped": st.dropped,
        "reconnects": st.reconnects, "stride": stride, "stopped": st.stopped, "message": st.message,
        "events": st.events, "seconds": round(st.seconds, 3), "fps": round(st.fps, 2),
        # falling behind a live source: the share of its frames dropped, so the share of its time scored
        "drop_rate": round(st.drop_rate, 4), "scored_share": round(1.0 - st.drop_rate, 4),
        "lag": st.lag_percentiles(),
        "ms_per_frame": {k: round(v, 3) for k, v in st.ms_per_frame().items()}, "camera_health": camera_summary(stream),
        **stream.info,
    }  # fmt: skip


def camera_summary(stream: Stream) -> dict[str, Any]:
    """The camera checks of a stream: on or off (and why), events per reason, frames whose decision was held."""
    info = stream.opened
    if info is None or not info.camera_checks:
        return {"checks": "off", "why": info.camera_checks_why if info is not None else "switched off (health.enabled=false)"}
    st = stream.stats
    return {"checks": "on", "events": sum(st.camera.values()), "by_reason": dict(st.camera),
            "suspended_frames": st.suspended}  # fmt: skip


class Timeline(Sink):
    """``timeline.png``: the calibrated and the smoothed score over time, with the threshold."""

    def __init__(self, folder: Folder, title: str, name: str = "timeline.png") -> None:
        self.folder, self.title, self.name = folder, title, name
        self.z: list[float] = []
        self.smoothed: list[float] = []

    def write(self, batch: Batch) -> None:
        self.z += [r.score for r in batch.results]
        self.smoothed += [r.smoothed for r in batch.results]

    def close(self, stream: Stream) -> None:
        from ognet_video.evaluation.report import plot_timeline  # matplotlib: only when a timeline is asked for

        assert stream.opened is not None
        series = {"score": np.asarray(self.z), "causal": np.asarray(self.smoothed)}
        plot_timeline(self.folder.path / self.name, self.title, series, stream.opened.threshold)
