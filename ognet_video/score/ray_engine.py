"""``score --engine ray``: the same scoring, one Ray task per clip, on one machine or a cluster.

A clip is the unit because optical flow and the causal smoothing need each clip's frames in order. A task
loads the model (its bytes travel through Ray's object store; the worker checks their sha256 against the
model id), builds the clip's stream exactly as the local engine does (``run.clip_stream``: the same
``Engine``, the same sinks) into a temp folder of its own, and returns the clip's files and manifest record.
The driver alone writes the output folder: it puts the files into the clip's temp folder, publishes it with
``clip_folder.publish`` and appends the record, so resume, skipped clips, the model checks of ``run.json``,
failure isolation, exit codes and ``summary.csv`` are the local engine's. A worker that dies mid-clip has
left nothing in the output folder, and Ray runs its task again (``max_retries``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from ognet_video.clips.paths import EVENTS_DIR
from ognet_video.config import Config
from ognet_video.errors import UserError, writing
from ognet_video.models.detector import Detector
from ognet_video.score.clip_folder import publish
from ognet_video.score.manifest import ClipRecord, Manifest
from ognet_video.score.run import (
    CLIPS,
    Job,
    ScoreOptions,
    ScoreResult,
    clip_stream,
    expected_frames,
    finish,
    plan_jobs,
    score_progress,
)
from ognet_video.sources.discover import fingerprint
from ognet_video.stream.engine import SIGNALS, Engine, Terminated

RAY_INSTALL = 'pip install "ognet-video[ray]"'


@dataclass
class RayOptions:
    address: str | None = None  # None: start a Ray instance on this machine; "auto" or HOST:PORT: a cluster
    cpus_per_task: float = 1.0  # also the torch threads of a task
    gpus_per_task: float = 0.0  # a fraction shares one GPU between tasks
    max_retries: int = 3  # a task whose worker died (killed, out of memory, node lost) runs again


@dataclass
class ModelSpec:
    """What a worker needs to rebuild the driver's detector: the checkpoint's id and file type, and the
    settings the driver applied at scoring time (overrides, threshold) as the driver's objects."""

    mid: str
    suffix: str
    device: str
    cfg: Config
    calibration: Any


def import_ray() -> Any:
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--engine ray needs Ray: {RAY_INSTALL}") from None
    return ray


def check_ray_options(ray_opts: RayOptions) -> None:
    """Bad values, and a HOST:PORT nothing listens on (Ray itself would retry it for minutes), before any work."""
    if not ray_opts.cpus_per_task > 0:
        raise UserError(f"--cpus-per-task must be positive (got {ray_opts.cpus_per_task:g})")
    if not ray_opts.gpus_per_task >= 0:
        raise UserError(f"--gpus-per-task must be 0 or more (got {ray_opts.gpus_per_task:g})")
    addr = ray_opts.address
    if addr is None or addr == "auto" or "://" in addr:
        return
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address must be auto or HOST:PORT (got {addr!r})")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at {addr} ({exc.strerror or exc}): start one there with "
                        "'ray start --head', or leave out --address to use this machine") from None  # fmt: skip


# ---------------------------------------------------------------- the worker


class _Captured:
    """Stands in for the manifest on a worker: keeps the record the ``ClipFolder`` would append."""

    def __init__(self) -> None:
        self.records: list[ClipRecord] = []

    def append(self, rec: ClipRecord) -> None:
        self.records.append(rec)


_DETECTOR: dict[str, Any] = {}  # one per worker process, reused by the tasks it runs


def _detector(data: bytes, spec: ModelSpec) -> Detector:
    key = (spec.mid, spec.device, json.dumps(spec.cfg.to_dict(), sort_keys=True), repr(spec.calibration))
    if _DETECTOR.get("key") != key:
        if hashlib.sha256(data).hexdigest() != spec.mid:
            raise UserError(f"the model reached the worker changed (sha256 is not {spec.mid[:12]})")
        with tempfile.TemporaryDirectory(prefix="ognet-video-model-") as d:
            path = Path(d) / f"model{spec.suffix}"
            path.write_bytes(data)
            det = Detector.load(path, device=spec.device)
        det.cfg, det.calibration = spec.cfg, spec.calibration
        _DETECTOR.update(key=key, det=det)
    return _DETECTOR["det"]


def score_task(data: bytes, spec: ModelSpec, job: Job, opts: ScoreOptions,
               threads: int) -> tuple[ClipRecord, dict[str, bytes]] | None:  # fmt: skip
    """One clip on a worker: its record and files (none when it failed); None if it was interrupted."""
    import cv2
    import torch

    # the task holds ``threads`` CPUs: torch and OpenCV keep to them, and with one the stages run one after the
    # other (the overlap thread would take a second core; the scores are the same either way)
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    where = socket.gethostname()
    try:  # bytes and files, not mtimes: another mount of the same storage may round them
        here: tuple[int, int] | None = fingerprint(job.clip)[::2]
    except OSError:
        here = None
    if here != job.fp[::2]:
        why = "cannot be read" if here is None else "differs"
        reason = f"on worker {where} the input {why}: every node must see the inputs at the same path"
        return ClipRecord(str(job.clip.path), job.clip.kind, job.name, *job.fp, spec.mid, "failed", reason), {}
    det = _detector(data, spec)
    with tempfile.TemporaryDirectory(prefix="ognet-video-clip-") as tmp:
        cap = _Captured()
        stream = clip_stream(job, Path(tmp), spec.mid, cap, opts, [])  # type: ignore[arg-type]  # duck-typed
        engine = Engine(det, fail_fast=False)
        engine.overlap = threads > 1
        engine.run([stream])
        if not cap.records:
            return None
        rec = cap.records[-1]
        folder = Path(tmp) / job.name
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
            if folder.is_dir() else {}  # fmt: skip
        return rec, files


# ---------------------------------------------------------------- the driver


def _ray_error(exc: BaseException) -> str:
    ray = import_ray()
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        text = str(cause).strip().splitlines()
        return (
            text[0] if isinstance(cause, UserError) and text else f"{type(cause).__name__}: {text[0] if text else ''}"
        )
    if isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        return "the Ray worker died on every try (killed, out of memory or its node lost)"
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return "Ray stopped the task: its node ran out of memory"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


@contextlib.contextmanager
def ray_session(ray_opts: RayOptions, slots: int | None, console: Console) -> Iterator[int]:
    """Connect to a cluster (``address``) or start a quiet local instance sized for ``slots`` tasks; yield
    how many tasks to keep in flight. A Ray runtime the caller started (``ray.init``) is used as it is and
    left running."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        kw: dict[str, Any] = dict(log_to_driver=False, include_dashboard=False, logging_level=logging.ERROR)
        if ray_opts.address is None:
            cpus = (slots or max(1, int((os.cpu_count() or 1) // ray_opts.cpus_per_task))) * ray_opts.cpus_per_task
            kw.update(address="local", num_cpus=max(1, round(cpus)))
        else:
            kw.update(address=ray_opts.address)
        try:
            ray.init(**kw)
        except ConnectionError:
            raise UserError(f"no Ray cluster at {ray_opts.address}: start one with 'ray start --head', or leave "
                            "out --address to use this machine") from None  # fmt: skip
        except (RuntimeError, ValueError) as exc:
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"Ray did not start: {line}") from None
        finally:
            if threading.current_thread() is threading.main_thread():  # ray.init replaced SIGTERM's handler
                for s, h in handlers.items():
                    if h is not None:
                        signal.signal(s, h)
    try:
        res = ray.cluster_resources()
        cpus, gpus = res.get("CPU", 0.0), res.get("GPU", 0.0)
        fit = int(cpus // ray_opts.cpus_per_task)
        if ray_opts.gpus_per_task > 0:
            fit = min(fit, int(gpus // ray_opts.gpus_per_task))
        if fit < 1:
            raise UserError(f"the Ray cluster ({cpus:g} CPUs, {gpus:g} GPUs) cannot fit one task of "
                            f"{ray_opts.cpus_per_task:g} CPUs and {ray_opts.gpus_per_task:g} GPUs")  # fmt: skip
        where = (
            "on this machine"
            if ray_opts.address is None and started
            else f"at {ray_opts.address or 'the running Ray instance'}"
        )
        console.print(f"ray {where} ({cpus:g} CPUs, {gpus:g} GPUs): {min(fit, slots or fit)} clips at once, each "
                      f"with {ray_opts.cpus_per_task:g} CPU and {ray_opts.gpus_per_task:g} GPU")  # fmt: skip
        yield min(fit, slots) if slots else 2 * fit  # a queue of one more task per slot keeps every slot busy
    finally:
        if started:
            ray.shutdown()


def _clip_file(fname: str) -> Path:
    """A returned file's place in the clip's folder: a plain name, or one in its ``events/`` folder."""
    parts = PurePosixPath(fname).parts
    if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == EVENTS_DIR)) or any(
            p in ("", ".", "..") or "\\" in p for p in parts):  # fmt: skip
        raise UserError(f"a Ray worker returned a file outside the clip's folder: {fname!r}")
    return Path(*parts)


def _write_clip(clips_dir: Path, name: str, files: dict[str, bytes]) -> None:
    """The returned files into a temp folder of the output, then published as the local engine does."""
    tmp = clips_dir / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        for fname, data in files.items():
            rel = _clip_file(fname)
            (tmp / rel).parent.mkdir(exist_ok=True)
            with writing(tmp.parent / name / rel), open(tmp / rel, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        publish(tmp, clips_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _Driver:
    """Submits one task per job, keeps ``slots`` in flight, and records each clip as it comes back."""

    def __init__(self, jobs: list[Job], out: Path, manifest: Manifest, console: Console) -> None:
        self.jobs, self.clips_dir, self.manifest, self.console = jobs, out / CLIPS, manifest, console
        self.frames = self.done = 0
        self.interrupted: str | None = None

    def run(self, spec: ModelSpec, data: bytes, opts: ScoreOptions, ray_opts: RayOptions, slots: int,
            progress: Progress) -> None:  # fmt: skip
        ray = import_ray()
        remote = ray.remote(num_cpus=ray_opts.cpus_per_task, num_gpus=ray_opts.gpus_per_task,
                            max_retries=ray_opts.max_retries)(score_task)  # fmt: skip  # looked up now: tests wrap it
        threads = max(1, int(ray_opts.cpus_per_task))
        data_ref = ray.put(data)
        bar = progress.add_task("score", total=expected_frames(self.jobs), clips=f"0/{len(self.jobs)}", fps=0.0, now="")
        todo, pending = iter(self.jobs), {}
        t0 = time.perf_counter()
        SIGNALS.running += 1
        try:
            while True:
                while len(pending) < slots and (job := next(todo, None)) is not None:
                    pending[remote.remote(data_ref, spec, job, opts, threads)] = job
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                SIGNALS.check()
                for ref in ready:
                    self._collect(ray, ref, pending.pop(ref), spec.mid)
                fps = self.frames / max(time.perf_counter() - t0, 1e-9)
                progress.update(bar, completed=self.frames, clips=f"{self.done}/{len(self.jobs)}", fps=fps,
                                now=f"{len(pending)} running")  # fmt: skip
        except KeyboardInterrupt as exc:
            self.interrupted = "terminated" if isinstance(exc, Terminated) else "interrupted"
            for ref in pending:  # their clips left nothing in the output folder: scored again next time
                ray.cancel(ref, force=True)
        finally:
            SIGNALS.running -= 1
            SIGNALS.requested = None

    def _collect(self, ray: Any, ref: Any, job: Job, mid: str) -> None:
        self.done += 1
        try:
            got = ray.get(ref)
        except ray.exceptions.RayError as exc:
            got = ClipRecord(str(job.clip.path), job.clip.kind, job.name, *job.fp, mid, "failed", _ray_error(exc)), {}
        if got is None:  # stopped on the worker: like an interrupted local clip, no record
            return
        rec, files = got
        if rec.status != "failed":
            try:
                _write_clip(self.clips_dir, job.name, files)
            except OSError as exc:
                rec = ClipRecord(rec.input, rec.kind, rec.name, rec.size, rec.mtime_ns, rec.files, mid, "failed",
                                 f"{type(exc).__name__}: {exc}")  # fmt: skip
        if rec.status == "failed":
            self.console.print(f"[red]failed[/] {escape(job.name)}: {escape(rec.reason)}")
        elif rec.skipped:  # the worker's own warnings stay on its node: the record names the frames
            self.console.print(f"[yellow]warning:[/] {escape(job.name)}: {escape(rec.reason)}", highlight=False)
        self.frames += rec.frames
        self.manifest.append(rec)


def score_clips_ray(clips: list[Any], detector: Detector, model_path: Path, mid: str, out: Path,
                    opts: ScoreOptions, ray_opts: RayOptions, device: str = "auto",
                    console: Console | None = None) -> ScoreResult:  # fmt: skip
    """``run.score_clips`` with each clip scored by a Ray task; the output folder is the same."""
    console = console or Console()
    import_ray()
    t0 = time.perf_counter()
    manifest, jobs, skipped = plan_jobs(clips, mid, out, opts, console)
    driver = _Driver(jobs, out, manifest, console)
    spec = ModelSpec(mid, model_path.suffix, device, detector.cfg, detector.calibration)
    try:
        if jobs:
            with ray_session(ray_opts, opts.workers, console) as slots, score_progress(console) as progress:
                driver.run(spec, model_path.read_bytes(), opts, ray_opts, slots, progress)
    finally:
        result = finish(out, clips, manifest, skipped, driver.frames, t0, driver.interrupted)
    return result
