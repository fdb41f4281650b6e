"""The resume record of a score folder: ``manifest.jsonl`` (one fsynced line per finished clip), ``run.json``
(which model and frame rate the folder belongs to) and the lock that keeps one ``score`` per folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ognet_video.errors import UserError, writing
from ognet_video.models.checkpoint import atomic_write_text
from ognet_video.paths import OutsideError, plain_name, safe_child

MANIFEST = "manifest.jsonl"
RUN_INFO = "run.json"
CLIPS = "clips"


@dataclass
class ClipRecord:
    """One manifest line: what was scored, from which bytes, with which model, and what came out."""

    input: str
    kind: str
    name: str
    size: int
    mtime_ns: int
    files: int
    model: str
    status: str  # "done", "short" (the source ended before its stated length) or "failed"
    reason: str = ""
    frames: int = 0
    max_score: float | None = None  # max of the smoothed, normalised score (what the threshold applies to)
    anomalous_share: float | None = None
    events: int = 0
    first_event_time: float | None = None
    first_event_frame: int | None = None
    extras: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: int = 0  # frames left out because they could not be decoded (named in ``reason``)

    @property
    def ok(self) -> bool:
        return self.status == "done"


def model_id(path: Path) -> str:
    """sha256 of the checkpoint file: weights, config and calibration together."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def clip_dir(out: Path, name: str, what: str = "clip name") -> Path:
    """``out/clips/NAME``, refused unless NAME is one plain, visible name that stays inside ``out/clips``:
    a manifest line is data anyone with write access to a shared run folder can edit."""
    if str(name).startswith("."):  # .tmp-* and .old-* are the run's own temporary folders
        raise UserError(f"{what} {name!r} starts with '.': give a visible name")
    plain_name(name, what)
    return safe_child(safe_child(out, CLIPS, "clips folder"), name, what)


def read_manifest(out: Path) -> dict[str, ClipRecord]:
    """Latest record per input; a torn last line (killed mid-append) is ignored; a clip name that would
    lead out of ``out/clips`` (``../x``, an absolute path, a symlink out) is refused in one line."""
    path = safe_child(out, MANIFEST, "manifest")
    recs: dict[str, ClipRecord] = {}
    if not path.is_file():
        return recs
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            r = ClipRecord(**json.loads(line))
        except (json.JSONDecodeError, TypeError):
            continue
        if not isinstance(r.name, str) or not isinstance(r.input, str):
            raise UserError(f"{path} line {i}: clip name and input must be text; the manifest was edited or "
                            "damaged: remove the line or score into a new folder")  # fmt: skip
        try:
            clip_dir(out, r.name, f"{path} line {i}: clip name")
        except UserError as exc:
            raise OutsideError(f"{exc}; the manifest was edited or damaged: remove the line or score into a new "
                            "folder") from None  # fmt: skip
        recs[r.input] = r
    return recs


def fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Manifest:
    """Append-only JSON lines, one fsynced write per clip."""

    def __init__(self, out: Path) -> None:
        self.path = safe_child(out, MANIFEST, "manifest")
        self.records = read_manifest(out)
        self.scored = 0  # clips scored (done or short) by this run: its lines, not earlier runs' ones
        self.f = open(self.path, "a+b")  # noqa: SIM115 - held for the run
        self.f.seek(0, os.SEEK_END)
        if self.f.tell() > 0:
            self.f.seek(-1, os.SEEK_END)
            if self.f.read(1) != b"\n":  # a torn line from a kill: end it so the next record parses
                self.f.write(b"\n")

    def append(self, rec: ClipRecord) -> None:
        with writing(self.path):
            self.f.write((json.dumps(asdict(rec)) + "\n").encode())
            self.f.flush()
            os.fsync(self.f.fileno())
        self.records[rec.input] = rec
        self.scored += rec.status != "failed"

    def close(self) -> None:
        self.f.close()


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """One ``score`` per output folder at a time (an OS lock: it dies with the process, SIGKILL included)."""
    lock = FileLock(safe_child(out, ".lock", "lock file"), timeout=0)
    try:
        with lock:
            yield
    except Timeout:
        raise UserError(f"another 'ognet-video score' is writing to {out}; wait for it or use another --name") from None


def check_run_info(out: Path, info: dict[str, Any]) -> None:
    """Refuse to mix models (or frame rates) in one output folder; record them on first use."""
    path = safe_child(out, RUN_INFO, "run record")
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        if old is not None:
            if old.get("model_sha256") != info["model_sha256"]:
                raise UserError(
                    f"{out} was scored with another model ({old.get('model')}, sha256 {str(old.get('model_sha256'))[:12]}); "
                    f"this one is {info['model']} (sha256 {info['model_sha256'][:12]}): score into a new folder"
                )
            if old.get("fps") != info["fps"]:
                raise UserError(f"{out} was scored with --fps {old.get('fps')}; use the same --fps or a new folder")
            if old.get("threshold", info["threshold"]) != info["threshold"]:
                raise UserError(f"{out} was scored at threshold {old['threshold']:g}; use the same --threshold "
                                "or a new folder")  # fmt: skip
            if old.get("event_frames", info["event_frames"]) != info["event_frames"]:
                raise UserError(f"{out} was scored with score.event_frames={old['event_frames']}; use the same "
                                "setting or a new folder")  # fmt: skip
            return
    atomic_write_text(path, json.dumps(info, indent=2) + "\n")
