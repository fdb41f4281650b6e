"""``ognet-video score``: score an archive of clips once, resumably, with one model.

Inputs (video files, frame folders, folders of those, globs) expand into clips. Worker threads decode
clips in parallel; the main thread owns the one ``Detector`` and runs every clip through the shared
streaming path (``StreamScorer``, also used by ``watch``), one forward pass per ``score.batch_frames``
chunk, so a frame folder's raw scores equal ``eval``'s.

Layout of ``--out``::

    run.json          model id (sha256 of the checkpoint) and settings; a different model is refused
    manifest.jsonl    one line per finished clip (appended, flushed, fsynced): the resume record
    summary.csv       one row per clip, worst first
    clips/NAME/       scores.csv, events.jsonl [, timeline.png] [, annotated.mp4]

Safety: a clip's files are written into ``clips/.tmp-*`` and renamed into place as one folder, and
only then is its manifest line appended, so a kill at any moment leaves either a complete clip folder
or none (an orphan folder without a manifest line is rescored). Rerunning skips clips whose manifest
line matches the input's path, size, mtime and the model; failed clips are tried again.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import hashlib
import io
import itertools
import json
import os
import queue
import re
import shutil
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ognet_video.checkpoint import atomic_write_text
from ognet_video.data.dataset import IMAGE_EXTS, image_files, read_gray
from ognet_video.detector import Detector, resolve_model_path
from ognet_video.errors import UserError
from ognet_video.report import plot_timeline
from ognet_video.scoring import FrameResult, StreamScorer
from ognet_video.sources import VIDEO_EXTS, Frame, iter_frames, iter_video

MANIFEST = "manifest.jsonl"
SUMMARY = "summary.csv"
RUN_INFO = "run.json"
CLIPS = "clips"
GLOB_CHARS = "*?["
EXIT_FAILED_BASE = 10  # exit code = 10 + failed clips (capped at 110): clear of 1 (crash), 2 (usage), 128+ (signals)
SUMMARY_FIELDS = ("clip", "input", "kind", "frames", "max_score", "anomalous_share", "events", "first_event_time",
                  "first_event_frame", "status", "reason")  # fmt: skip


# ---------------------------------------------------------------- discovery


@dataclass(frozen=True, order=True)
class ClipInput:
    path: Path  # absolute
    kind: str  # "video" (a file) or "frames" (a folder whose images form one clip)


def _hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _has_images(d: Path) -> bool:
    try:
        return any(e.is_file() and e.suffix.lower() in IMAGE_EXTS and not _hidden(e) for e in d.iterdir())
    except OSError:
        return False


def _skip_dir(d: Path, exclude: tuple[Path, ...]) -> bool:
    """Hidden folders, UCSD's ``*_gt`` mask folders and our own output folders are never clips."""
    return _hidden(d) or d.name.endswith("_gt") or any(d == e or e in d.parents for e in exclude)


def _scan_dir(top: Path, recursive: bool, exclude: tuple[Path, ...]) -> list[ClipInput]:
    """Videos and frame folders in ``top`` (one level of subfolders, or all with ``recursive``)."""
    found: list[ClipInput] = []
    for root, dirs, files in os.walk(top):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not _skip_dir(here / d, exclude))
        names = [f for f in files if not f.startswith(".")]
        if any(Path(f).suffix.lower() in IMAGE_EXTS for f in names):
            found.append(ClipInput(here, "frames"))
        found += [ClipInput(here / f, "video") for f in names if Path(f).suffix.lower() in VIDEO_EXTS]
        if not recursive:
            found += [ClipInput(here / d, "frames") for d in dirs if _has_images(here / d)]
            break
    return found


def _classify(p: Path, recursive: bool, exclude: tuple[Path, ...], explicit: bool) -> list[ClipInput]:
    if p.is_dir():
        return [] if _skip_dir(p, exclude) and not explicit else _scan_dir(p, recursive, exclude)
    ext = p.suffix.lower()
    if ext in IMAGE_EXTS:  # a frame picked by a glob (or named) stands for its folder
        return [ClipInput(p.parent, "frames")]
    if ext in VIDEO_EXTS or explicit:  # a named file of another type is tried as a video
        return [ClipInput(p, "video")]
    return []


def discover(inputs: list[str], recursive: bool = False, exclude: list[Path] | None = None) -> list[ClipInput]:
    """Expand inputs into clips, sorted by path, each once.

    A video file is a clip; a folder whose images form one clip is a clip; a folder is searched one
    level deep for videos and frame folders (all levels with ``recursive``); a glob's matches are
    classified the same way (an image it matches stands for its folder; ``**`` matches any depth).
    """
    if not inputs:
        raise UserError("no inputs: give video files, frame folders, folders of those or globs")
    ex = tuple(Path(os.path.abspath(e)) for e in (exclude or []))
    clips: set[ClipInput] = set()
    for spec in inputs:
        p = Path(os.path.abspath(os.path.expanduser(spec)))
        if p.exists():
            found = _classify(p, recursive, ex, explicit=True)
            if not found:
                hint = "" if recursive or not p.is_dir() else " (add --recursive to search deeper subfolders)"
                raise UserError(f"{spec!r} holds no videos or frame folders{hint}")
        elif any(ch in spec for ch in GLOB_CHARS):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            found = [c for m in matches for c in _classify(Path(os.path.abspath(m)), recursive, ex, explicit=False)]
            if not found:
                raise UserError(f"glob {spec!r} matched no videos or frame folders ({len(matches)} paths matched)")
        else:
            raise UserError(f"input {spec!r} does not exist: give video files, frame folders or globs")
        clips.update(ClipInput(Path(os.path.realpath(c.path)), c.kind) for c in found)
    return sorted(clips, key=lambda c: str(c.path))


def clip_names(clips: list[ClipInput]) -> list[str]:
    """Readable unique output names: the shortest tail of each path that no other clip shares."""
    parts = [c.path.parts[1:] or (c.path.name,) for c in clips]
    depth = [1] * len(clips)
    while True:
        names = ["__".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        seen: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            seen.setdefault(n, []).append(i)
        dup = [i for idx in seen.values() if len(idx) > 1 for i in idx if depth[i] < len(parts[i])]
        if not dup:
            return [re.sub(r"[^\w.\-]+", "_", n) for n in names]
        for i in dup:
            depth[i] += 1


def fingerprint(clip: ClipInput) -> tuple[int, int, int]:
    """(bytes, newest mtime in ns, files): a changed input is scored again."""
    if clip.kind == "video":
        st = clip.path.stat()
        return st.st_size, st.st_mtime_ns, 1
    files = image_files(clip.path)
    stats = [f.stat() for f in files]
    return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0), len(files)


def iter_clip(clip: ClipInput, fps: float = 10.0) -> Iterator[Frame]:
    """A clip's frames through ``sources``: frame folders are read as ``eval`` reads them."""
    spec = str(clip.path)
    if clip.kind == "video":
        return iter_video(spec)
    if not any(ch in spec for ch in GLOB_CHARS):
        return iter_frames(spec, fps)
    # sources would take a folder named like a glob for a glob: same reader, by hand
    return (Frame(i, i / fps, read_gray(f)) for i, f in enumerate(image_files(clip.path)))


def expected_frames(clip: ClipInput) -> int | None:
    if clip.kind == "frames":
        return len(image_files(clip.path))
    cap = cv2.VideoCapture(str(clip.path))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    finally:
        cap.release()
    return n or None


# ---------------------------------------------------------------- manifest


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
    status: str  # "done" or "failed"
    reason: str = ""
    frames: int = 0
    max_score: float | None = None  # max of the smoothed, normalised score (what the threshold applies to)
    anomalous_share: float | None = None
    events: int = 0
    first_event_time: float | None = None
    first_event_frame: int | None = None
    extras: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary_row(self) -> dict[str, Any]:
        r = asdict(self)
        r["clip"] = r.pop("name")
        return {k: ("" if r[k] is None else r[k]) for k in SUMMARY_FIELDS}


def model_id(path: Path) -> str:
    """sha256 of the checkpoint file: weights, config and calibration together."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(out: Path) -> dict[str, ClipRecord]:
    """Latest record per input; a torn last line (killed mid-append) is ignored."""
    path = out / MANIFEST
    recs: dict[str, ClipRecord] = {}
    if not path.is_file():
        return recs
    for line in path.read_text().splitlines():
        try:
            r = ClipRecord(**json.loads(line))
        except (json.JSONDecodeError, TypeError):
            continue
        recs[r.input] = r
    return recs


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Manifest:
    """Append-only JSON lines, one fsynced write per clip."""

    def __init__(self, out: Path) -> None:
        self.path = out / MANIFEST
        self.records = read_manifest(out)
        self.f = open(self.path, "a+b")  # noqa: SIM115 - held for the run
        self.f.seek(0, os.SEEK_END)
        if self.f.tell() > 0:
            self.f.seek(-1, os.SEEK_END)
            if self.f.read(1) != b"\n":  # a torn line from a kill: end it so the next record parses
                self.f.write(b"\n")

    def append(self, rec: ClipRecord) -> None:
        self.f.write((json.dumps(asdict(rec)) + "\n").encode())
        self.f.flush()
        os.fsync(self.f.fileno())
        self.records[rec.input] = rec

    def close(self) -> None:
        self.f.close()


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """One ``score`` per output folder at a time (the lock dies with the process, SIGKILL included)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks, go on
        yield
        return
    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(
                f"another 'ognet-video score' is writing to {out}; wait for it or use another --out"
            ) from None
        yield


def check_run_info(out: Path, info: dict[str, Any]) -> None:
    """Refuse to mix models (or frame rates) in one output folder; record them on first use."""
    path = out / RUN_INFO
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        if old is not None:
            if old.get("model_sha256") != info["model_sha256"]:
                raise UserError(
                    f"{out} was scored with another model ({old.get('model')}, sha256 {str(old.get('model_sha256'))[:12]}); "
                    f"this one is {info['model']} (sha256 {info['model_sha256'][:12]}): use a new --out"
                )
            if old.get("fps") != info["fps"]:
                raise UserError(f"{out} was scored with --fps {old.get('fps')}; use the same --fps or a new --out")
            return
    atomic_write_text(path, json.dumps(info, indent=2) + "\n")


# ---------------------------------------------------------------- per-clip outputs


def _num(v: float | None) -> str:
    return "" if v is None or not np.isfinite(v) else repr(float(v))


class ClipWriter:
    """A clip's outputs, streamed into a hidden temp folder and renamed into place when complete."""

    def __init__(self, clips_dir: Path, name: str, threshold: float, timelines: bool,
                 video: Callable[[Path], Any] | None = None) -> None:  # fmt: skip
        self.clips_dir, self.name, self.threshold, self.timelines = clips_dir, name, threshold, timelines
        self.tmp = clips_dir / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir(parents=True)
        self.csv = open(self.tmp / "scores.csv", "w", newline="")  # noqa: SIM115 - closed in finish/abort
        self.csv.write("frame,time,raw,score,smoothed,flag\n")
        self.z, self.smoothed = array("d"), array("d")
        self.flags = 0
        self.video_factory = video
        self.video: Any = None

    def write(self, results: list[FrameResult], images: list[np.ndarray], scorer: StreamScorer) -> None:
        buf = io.StringIO()
        for r in results:
            buf.write(f"{r.index},{_num(r.time)},{_num(r.raw)},{_num(r.score)},{_num(r.smoothed)},{int(r.anomalous)}\n")
            self.z.append(r.score)
            self.smoothed.append(r.smoothed)
            self.flags += bool(r.anomalous)
        self.csv.write(buf.getvalue())
        if self.video_factory is not None:
            if self.video is None:
                self.video = self.video_factory(self.tmp / "annotated.mp4")
            for r, img in zip(results, images, strict=True):
                self.video.write(img, r, scorer.boxes_for(img.shape))

    def finish(self, events: list) -> dict[str, Any]:
        """Close, fsync and publish the folder; return the clip's summary numbers."""
        self.csv.flush()
        os.fsync(self.csv.fileno())
        self.csv.close()
        ev_text = "".join(json.dumps(e.to_dict()) + "\n" for e in events)
        atomic_write_text(self.tmp / "events.jsonl", ev_text)
        extras = []
        if self.video is not None:
            self.video.close()
            extras.append("video")
        if self.timelines:
            series = {"score": np.asarray(self.z), "causal": np.asarray(self.smoothed)}
            plot_timeline(self.tmp / "timeline.png", f"{self.name}", series, self.threshold)
            extras.append("timeline")
        for p in self.tmp.iterdir():
            os.chmod(p, 0o644)
        _fsync_dir(self.tmp)
        final = self.clips_dir / self.name
        old = None
        if final.exists():  # left by a run killed after publishing but before its manifest line
            old = self.clips_dir / f".old-{self.name}-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(self.tmp, final)
        os.chmod(final, 0o755)
        _fsync_dir(self.clips_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        n = len(self.z)
        sm = np.asarray(self.smoothed)
        first = events[0] if events else None
        return {
            "frames": n,
            "max_score": float(sm.max()) if n else None,
            "anomalous_share": self.flags / n if n else None,
            "events": len(events),
            "first_event_time": None if first is None else first.start_time,
            "first_event_frame": None if first is None else first.start,
            "extras": extras,
        }

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.csv.close()
        if self.video is not None:
            with contextlib.suppress(Exception):
                getattr(self.video, "abort", self.video.close)()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- the run


@dataclass
class BatchOptions:
    recursive: bool = False
    workers: int | None = None  # decode threads; None: 1 on CPU (decoding is ~20x faster than the model), 2 on a GPU
    timelines: bool = False
    save_video: bool = False
    fps: float = 10.0  # frame rate of frame folders, for the time column

    @property
    def extras(self) -> list[str]:
        return [x for x, on in (("timeline", self.timelines), ("video", self.save_video)) if on]


@dataclass
class BatchResult:
    out: Path
    records: list[ClipRecord]  # every clip of this invocation, in discovery order
    scored: int  # clips scored by this invocation (done or failed)
    skipped: int  # clips finished by an earlier run
    frames: int  # frames scored by this invocation
    seconds: float

    @property
    def failed(self) -> list[ClipRecord]:
        return [r for r in self.records if r.status != "done"]

    @property
    def exit_code(self) -> int:
        """0 when every clip is scored, else 10 + the number of failed clips (at most 110)."""
        n = len(self.failed)
        return 0 if n == 0 else EXIT_FAILED_BASE + min(n, 100)


@dataclass
class _Job:
    idx: int
    clip: ClipInput
    name: str
    fp: tuple[int, int, int]


_STOP = object()


class _Decoder:
    """Worker threads: each decodes one clip at a time into chunks of ``batch`` frames for the main thread.

    Threads (not processes): OpenCV and torch release the GIL, and decoded frames need no copying.
    """

    def __init__(self, jobs: list[_Job], workers: int, batch: int, fps: float) -> None:
        self.todo: queue.Queue = queue.Queue()
        for j in jobs:
            self.todo.put(j)
        self.out: queue.Queue = queue.Queue(maxsize=4 * workers)
        self.stop = threading.Event()
        self.batch, self.fps = batch, fps
        self.threads = [threading.Thread(target=self._work, args=(w,), daemon=True, name=f"decode-{w}")
                        for w in range(workers)]  # fmt: skip
        for t in self.threads:
            t.start()

    def _put(self, msg: tuple) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(msg, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, slot: int) -> None:
        while not self.stop.is_set():
            try:
                job: _Job = self.todo.get_nowait()
            except queue.Empty:
                break
            try:
                est = expected_frames(job.clip)
            except Exception:
                est = None
            if not self._put(("start", slot, job, est)):
                return
            frames: list[np.ndarray] = []
            times: list[float | None] = []
            try:
                for fr in iter_clip(job.clip, self.fps):
                    frames.append(fr.image)
                    times.append(fr.time)
                    if len(frames) == self.batch:
                        if not self._put(("frames", slot, job, (frames, times))):
                            return
                        frames, times = [], []
                if frames and not self._put(("frames", slot, job, (frames, times))):
                    return
                msg: tuple = ("end", slot, job, None)
            except Exception as exc:  # unreadable clip: reported, the run goes on
                msg = ("error", slot, job, _reason(exc))
            if not self._put(msg):
                return
        self._put(("exit", slot, None, None))

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]scoring"), BarColumn(), TextColumn("clips {task.fields[clips]}"),
        TextColumn("{task.completed:,.0f} frames"), TextColumn("{task.fields[fps]:.0f} fps"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[now]}"),
        console=console, transient=False,
    )  # fmt: skip


def _clean_tmp(clips_dir: Path) -> None:
    if clips_dir.is_dir():
        for p in clips_dir.iterdir():
            if p.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(p, ignore_errors=True)


def _assign_names(clips: list[ClipInput], records: dict[str, ClipRecord]) -> list[str]:
    """Keep the name an earlier run gave an input; new inputs get a name no other input holds."""
    taken = {r.name: inp for inp, r in records.items()}
    names = []
    for clip, name in zip(clips, clip_names(clips), strict=True):
        key = str(clip.path)
        if key in records:
            names.append(records[key].name)
            continue
        base, k = name, 2
        while name in taken and taken[name] != key:
            name, k = f"{base}-{k}", k + 1
        taken[name] = key
        names.append(name)
    return names


def _is_finished(
    rec: ClipRecord | None, fp: tuple[int, int, int], mid: str, extras: list[str], clips_dir: Path
) -> bool:
    return (
        rec is not None
        and rec.status == "done"
        and (rec.size, rec.mtime_ns, rec.files) == fp
        and rec.model == mid
        and set(extras) <= set(rec.extras)
        and (clips_dir / rec.name / "scores.csv").is_file()
    )


def run_batch(clips: list[ClipInput], detector: Detector, mid: str, out: Path, opts: BatchOptions,
              console: Console | None = None, video_writer: Callable[[Path, float], Any] | None = None) -> BatchResult:  # fmt: skip
    """Score ``clips`` into ``out`` (which already passed ``check_run_info``), skipping finished ones."""
    console = console or Console()
    t0 = time.perf_counter()
    clips_dir = out / CLIPS
    clips_dir.mkdir(parents=True, exist_ok=True)
    _clean_tmp(clips_dir)
    manifest = Manifest(out)
    names = _assign_names(clips, manifest.records)
    jobs, records, skipped = [], {}, 0
    for i, (clip, name) in enumerate(zip(clips, names, strict=True)):
        try:
            fp = fingerprint(clip)
        except OSError as exc:
            fp = (0, 0, 0)
            rec = ClipRecord(str(clip.path), clip.kind, name, *fp, mid, "failed", _reason(exc))
            manifest.append(rec)
            records[i] = rec
            continue
        rec = manifest.records.get(str(clip.path))
        if _is_finished(rec, fp, mid, opts.extras, clips_dir):
            records[i], skipped = rec, skipped + 1
        else:
            jobs.append(_Job(i, clip, name, fp))
    if skipped:
        console.print(f"{skipped} of {len(clips)} clips already scored in {out} (skipped); {len(jobs)} to go")
    frames_done = 0
    try:
        if jobs:
            frames_done = _score_jobs(jobs, detector, mid, clips_dir, opts, console, manifest, records, video_writer)
    finally:
        manifest.close()
    write_summary(out, read_manifest(out))
    ordered = [records[i] for i in range(len(clips))]
    return BatchResult(out, ordered, len(jobs), skipped, frames_done, time.perf_counter() - t0)


def _score_jobs(jobs: list[_Job], detector: Detector, mid: str, clips_dir: Path, opts: BatchOptions,
                console: Console, manifest: Manifest, records: dict[int, ClipRecord],
                video_writer: Callable[[Path, float], Any] | None) -> int:  # fmt: skip
    threshold = detector.calibration.threshold if detector.calibration else 0.0
    workers = max(1, min(opts.workers or 1, len(jobs)))
    batch = detector.cfg.score.batch_frames
    scorers = [StreamScorer(detector) for _ in range(workers)]  # one per decoding slot, all sharing the model
    active: dict[int, tuple[_Job, ClipWriter, float]] = {}
    known = {j.idx: j.fp[2] for j in jobs if j.clip.kind == "frames"}  # frames per clip, for the ETA
    frames_done, clips_done, t0, last_summary = 0, 0, time.perf_counter(), time.perf_counter()

    def estimate() -> float:
        mean = sum(known.values()) / len(known) if known else 0
        return sum(known.get(j.idx, mean) for j in jobs)

    def finish(job: _Job, status: str, reason: str = "", **stats: Any) -> None:
        nonlocal clips_done
        rec = ClipRecord(str(job.clip.path), job.clip.kind, job.name, *job.fp, mid, status, reason,
                         seconds=round(time.perf_counter() - active[job.idx][2], 3), **stats)  # fmt: skip
        manifest.append(rec)
        records[job.idx] = rec
        del active[job.idx]
        clips_done += 1
        if status != "done":
            console.print(f"[red]failed[/] {escape(job.name)}: {escape(reason)}", highlight=False)

    dec = _Decoder(jobs, workers, batch, opts.fps)
    running = workers
    try:
        with _progress(console) as progress:
            task = progress.add_task("score", total=estimate(), clips=f"0/{len(jobs)}", fps=0.0, now="")
            while running:
                kind, slot, job, payload = dec.out.get()
                if kind == "exit":
                    running -= 1
                    continue
                if kind == "start":
                    if payload:
                        known.setdefault(job.idx, payload)
                    factory = None
                    if video_writer is not None:
                        factory = lambda p, fps=_clip_fps(job.clip, opts.fps): video_writer(p, fps)  # noqa: E731
                    writer = ClipWriter(clips_dir, job.name, threshold, opts.timelines, factory)
                    active[job.idx] = (job, writer, time.perf_counter())
                    scorers[slot].reset()
                elif kind == "frames":
                    if job.idx not in active:  # the clip already failed in scoring; drain its frames
                        continue
                    frames, times = payload
                    try:
                        results, _ = scorers[slot].push(frames, times)
                        active[job.idx][1].write(results, frames, scorers[slot])
                    except Exception as exc:
                        active[job.idx][1].abort()
                        finish(job, "failed", _reason(exc))
                        continue
                    frames_done += len(frames)
                elif job.idx in active:  # "end" or "error"
                    writer = active[job.idx][1]
                    if kind == "error":
                        writer.abort()
                        finish(job, "failed", payload)
                    else:
                        try:
                            scorers[slot].finish()
                            stats = writer.finish(list(scorers[slot].events))
                        except Exception as exc:
                            writer.abort()
                            finish(job, "failed", _reason(exc))
                        else:
                            known[job.idx] = stats["frames"]
                            finish(job, "done", **stats)
                    if time.perf_counter() - last_summary > 10:
                        write_summary(clips_dir.parent, manifest.records)
                        last_summary = time.perf_counter()
                now = ", ".join(escape(j.name) for j, _, _ in active.values())
                elapsed = max(time.perf_counter() - t0, 1e-9)
                progress.update(task, completed=frames_done, total=max(estimate(), frames_done),
                                clips=f"{clips_done}/{len(jobs)}", fps=frames_done / elapsed, now=now)  # fmt: skip
    finally:
        dec.close()
        for _, writer, _ in list(active.values()):
            writer.abort()
    return frames_done


def _clip_fps(clip: ClipInput, default: float) -> float:
    if clip.kind == "video":
        cap = cv2.VideoCapture(str(clip.path))
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
        cap.release()
        if fps and fps > 0:
            return float(fps)
    return default


# ---------------------------------------------------------------- summary


def _sort_key(r: ClipRecord) -> tuple:
    return (r.status != "done", -(r.max_score if r.max_score is not None else -np.inf), r.name)


def write_summary(out: Path, records: dict[str, ClipRecord]) -> Path:
    """``summary.csv``: one row per clip recorded in ``out``, worst (highest max score) first, failed last."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in sorted(records.values(), key=_sort_key):
        row = r.summary_row()
        for k in ("max_score", "anomalous_share", "first_event_time"):
            if row[k] != "":
                row[k] = f"{row[k]:.6g}" if k != "first_event_time" else f"{row[k]:.3f}"
        w.writerow(row)
    path = out / SUMMARY
    atomic_write_text(path, buf.getvalue())
    return path


def summary_table(result: BatchResult, top: int = 30) -> Table:
    recs = sorted(result.records, key=_sort_key)
    shown = recs[:top] + [r for r in recs[top:] if r.status != "done"]
    t = Table(title=f"{len(result.records)} clips, worst first (full list: {result.out / SUMMARY})")
    for col in ("clip", "frames", "max score", "anomalous", "events", "first event", "status"):
        t.add_column(col, justify="left" if col in ("clip", "status") else "right")
    for r in shown:
        if r.status != "done":
            t.add_row(escape(r.name), "", "", "", "", "", f"[red]failed[/]: {escape(r.reason)}")
            continue
        first = "" if r.first_event_frame is None else (
            f"{r.first_event_time:.1f} s" if r.first_event_time is not None else f"frame {r.first_event_frame}")  # fmt: skip
        t.add_row(escape(r.name), str(r.frames), f"{r.max_score:.2f}", f"{100 * (r.anomalous_share or 0):.1f}%",
                  str(r.events), first, "ok")  # fmt: skip
    if len(shown) < len(recs):
        t.caption = f"{len(recs) - len(shown)} more clips in summary.csv"
    return t


# ---------------------------------------------------------------- entry point for the CLI


def score(inputs: list[str], model: str | Path | None = None, out: Path | None = None, *,
          opts: BatchOptions | None = None, device: str = "auto", name: str | None = None,
          project: Path = Path("runs/score"), train_project: Path = Path("runs/train"),
          console: Console | None = None) -> BatchResult:  # fmt: skip
    """Discover, check, score and summarise: what ``ognet-video score`` does."""
    from ognet_video.runs import latest_run_dir, new_run_dir

    console = console or Console()
    opts = opts or BatchOptions()
    if opts.workers is not None and opts.workers < 1:
        raise UserError(f"--workers must be at least 1 (got {opts.workers})")
    if not opts.fps > 0:
        raise UserError(f"--fps must be positive (got {opts.fps})")
    exclude = [out] if out is not None else [project]
    clips = discover(inputs, opts.recursive, exclude)
    model_path = resolve_model_path(
        model if model is not None else latest_run_dir(train_project, need="model.safetensors")
    )
    n_video = sum(c.kind == "video" for c in clips)
    console.print(f"found {len(clips)} clips ({n_video} videos, {len(clips) - n_video} frame folders)")
    detector = Detector.load(model_path, device=device)
    if detector.calibration is None:
        raise UserError(f"{model_path} has no calibration (training did not finish); score needs a finished run")
    if opts.workers is None:
        opts = dataclasses.replace(opts, workers=1 if detector.device.type == "cpu" else 2)
    video_writer = _video_writer(detector) if opts.save_video else None
    mid = model_id(model_path)
    if out is None:
        out = new_run_dir(project, _run_name(inputs[0]) if name is None else name)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if out.is_dir() and not (out / RUN_INFO).is_file() and any(p.name != ".lock" for p in out.iterdir()):
        raise UserError(f"--out {out} holds other files and no {RUN_INFO}: it is not a score folder; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    console.print(
        f"model {model_path} (sha256 {mid[:12]}) on {detector.device}, decode workers: {opts.workers} -> {out}"
    )
    with _lock(out):
        info = {
            "model": str(model_path),
            "model_sha256": mid,
            "fps": opts.fps,
            "threshold": detector.calibration.threshold,
        }
        check_run_info(out, info)
        return run_batch(clips, detector, mid, out, opts, console, video_writer)


def _run_name(spec: str) -> str:
    """``runs/score/NAME-N`` is named after the first input's path up to its first glob part."""
    parts = Path(os.path.abspath(os.path.expanduser(spec))).parts
    plain = list(itertools.takewhile(lambda p: not any(c in p for c in GLOB_CHARS), parts))
    stem = Path(plain[-1]).stem if len(plain) > 1 else ""
    return re.sub(r"[^\w.\-]+", "_", stem).strip("._-") or "score"


def _video_writer(detector: Detector) -> Callable[[Path, float], Any]:
    try:
        from ognet_video.annotate import AnnotatedVideoWriter
    except ImportError:  # pragma: no cover - annotate ships with watch
        raise UserError("--save-video needs ognet_video.annotate, which this install lacks") from None
    cal = detector.calibration
    return lambda path, fps: AnnotatedVideoWriter(path, fps, cal.threshold if cal else 0.0, cal)
