"""``ognet-video score``: an archive of clips scored once, resumably, with one model.

A composition of the one run loop (``engine``): each clip is a stream whose sinks are ``scores.csv``,
``events.jsonl`` [, ``timeline.png``] [, ``annotated.mp4``] and the ``ClipFolder`` that publishes them and
appends the clip's manifest line. ``workers`` clips are decoded at once, each by its own reader thread; the
main thread owns the model. Layout of the output folder::

    run.json          model id (sha256 of the checkpoint) and settings; a different model is refused
    manifest.jsonl    one line per finished clip: the resume record
    summary.csv       one row per clip, worst first
    clips/NAME/       scores.csv, events.jsonl, events/ (a clip per event) [, timeline.png] [, annotated.mp4]

Rerunning skips clips whose manifest line matches the input's path, size, mtime and the model.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ognet_video.clips.sink import ClipSettings, EventClips
from ognet_video.models.detector import Detector
from ognet_video.paths import safe_child
from ognet_video.score.clip_folder import ClipFolder
from ognet_video.score.manifest import CLIPS, ClipRecord, Manifest, clip_dir, read_manifest
from ognet_video.score.summary import write_summary
from ognet_video.sinks import AnnotatedVideo, EventsJsonl, ScoresCsv, Timeline
from ognet_video.sources.discover import ClipInput, clip_names, fingerprint
from ognet_video.stream.engine import Batch, Engine, Sink, Stream
from ognet_video.stream.values import StreamInfo

EXIT_FAILED_BASE = 10  # exit code = 10 + failed clips (capped at 110): clear of 1 (crash), 2 (usage), 128+ (signals)


@dataclass
class ScoreOptions:
    recursive: bool = False
    workers: int | None = None  # clips decoded at once; None: 1 on CPU (the model is the bottleneck), 2 on a GPU
    timelines: bool = False
    save_video: bool = False
    fps: float = 10.0  # frame rate of frame folders, for the time column
    clips: bool = True  # an H.264 clip of each event, cut from the file (``clips.sink``)
    pre_roll: float = 3.0
    post_roll: float = 3.0

    @property
    def extras(self) -> list[str]:
        return [x for x, on in (("timeline", self.timelines), ("video", self.save_video), ("clips", self.clips)) if on]


@dataclass
class ScoreResult:
    out: Path
    records: list[ClipRecord]  # every clip of this invocation, in discovery order (None-free)
    scored: int  # clips this invocation finished scoring (not counting failed or interrupted ones)
    skipped: int  # clips finished by an earlier run
    frames: int  # frames scored by this invocation
    seconds: float
    interrupted: str | None = None  # "interrupted" or "terminated" when stopped by a signal

    @property
    def failed(self) -> list[ClipRecord]:
        return [r for r in self.records if not r.ok]

    @property
    def exit_code(self) -> int:
        """130/143 when stopped by a signal; 0 when every clip is scored, else 10 + the clips not done."""
        if self.interrupted:
            return 143 if self.interrupted == "terminated" else 130
        n = len(self.failed)
        return 0 if n == 0 else EXIT_FAILED_BASE + min(n, 100)


class _ProgressSink(Sink):
    """One rich progress bar over every clip of the run (the same sink object sits in every stream)."""

    def __init__(self, progress: Progress, total: float, clips: int) -> None:
        self.progress, self.clips, self.done, self.frames = progress, clips, 0, 0
        self.active: dict[int, str] = {}
        self.t0 = time.perf_counter()
        self.task = progress.add_task("score", total=total, clips=f"0/{clips}", fps=0.0, now="")

    def open(self, info: StreamInfo) -> None:
        self.active[id(info)] = info.name
        self._update()

    def write(self, batch: Batch) -> None:
        self.frames += len(batch.results)
        self._update()

    def close(self, stream: Stream) -> None:
        self.active.pop(id(stream.opened), None)
        self.done += 1
        self._update()

    abort = close

    def _update(self) -> None:
        fps = self.frames / max(time.perf_counter() - self.t0, 1e-9)
        now = ", ".join(escape(n) for n in self.active.values())
        total = max(self.progress.tasks[0].total or 0, self.frames)
        self.progress.update(self.task, completed=self.frames, total=total, clips=f"{self.done}/{self.clips}", fps=fps,
                             now=now)  # fmt: skip


def score_progress(console: Console) -> Progress:
    """The one progress bar of a score run, local or on Ray: clips, frames, fps, ETA and the clip being scored."""
    return Progress(
        TextColumn("[bold]scoring"), BarColumn(), TextColumn("clips {task.fields[clips]}"),
        TextColumn("{task.completed:,.0f} frames"), TextColumn("{task.fields[fps]:.0f} fps"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[now]}"),
        console=console, transient=False,
    )  # fmt: skip


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


_OWN_TMP = re.compile(r"^\.(tmp|old)-[0-9a-f]{12}$")


def _clean_tmp(clips_dir: Path) -> None:
    """Remove the temporary folders a killed run left: only real folders named as ``ClipFolder`` names them
    (never a symlink, never anything else), and ``rmtree`` does not follow links inside them."""
    for p in clips_dir.iterdir():
        if _OWN_TMP.match(p.name) and not p.is_symlink() and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


@dataclass
class Job:
    """One clip to score: its input, its name in the run, and its file fingerprint (what resume checks)."""

    clip: ClipInput
    name: str
    fp: tuple[int, int, int]


def plan_jobs(clips: list[ClipInput], mid: str, out: Path, opts: ScoreOptions,
              console: Console) -> tuple[Manifest, list[Job], int]:  # fmt: skip
    """Open the manifest and split ``clips`` into jobs to score and finished ones (skipped); an input that
    cannot be read is recorded as failed. Every engine starts here, so resume behaves the same in all."""
    clips_dir = safe_child(out, CLIPS, "clips folder")
    records = read_manifest(out)  # its names are checked before anything is created, moved or deleted
    names = _assign_names(clips, records)
    for clip, name in zip(clips, names, strict=True):
        clip_dir(out, name, f"output folder of {clip.path}")
    clips_dir.mkdir(exist_ok=True)
    _clean_tmp(clips_dir)
    manifest = Manifest(out)
    jobs, skipped = [], 0
    for clip, name in zip(clips, names, strict=True):
        try:
            fp = fingerprint(clip)
        except OSError as exc:
            manifest.append(ClipRecord(str(clip.path), clip.kind, name, 0, 0, 0, mid, "failed", str(exc)))
            continue
        rec = manifest.records.get(str(clip.path))
        if rec is not None and rec.ok and (rec.size, rec.mtime_ns, rec.files) == fp and rec.model == mid \
                and set(opts.extras) <= set(rec.extras) and (clips_dir / rec.name / "scores.csv").is_file():  # fmt: skip
            skipped += 1
        else:
            jobs.append(Job(clip, name, fp))
    if skipped:
        console.print(f"{skipped} of {len(clips)} clips already scored in {out} (skipped); {len(jobs)} to go")
    return manifest, jobs, skipped


def expected_frames(jobs: list[Job]) -> float:
    """The progress bar's total: frame folders count their files; videos count as the mean of those."""
    known = [j.fp[2] for j in jobs if j.clip.kind == "frames"]
    mean = sum(known) / len(known) if known else 0
    return sum(j.fp[2] if j.clip.kind == "frames" else mean for j in jobs)


def finish(out: Path, clips: list[ClipInput], manifest: Manifest, skipped: int, frames: int, t0: float,
           interrupted: str | None) -> ScoreResult:  # fmt: skip
    """Close the manifest and write ``summary.csv`` (also after Ctrl-C: what finished is listed). Clips scored
    are those this run finished (its manifest lines), not those it started: a stop leaves some unscored."""
    scored = manifest.scored
    manifest.close()
    recs = read_manifest(out)
    write_summary(out, recs)
    ordered = [recs[str(c.path)] for c in clips if str(c.path) in recs]
    return ScoreResult(out, ordered, scored, skipped, frames, time.perf_counter() - t0, interrupted)


def score_clips(clips: list[ClipInput], detector: Detector, mid: str, out: Path, opts: ScoreOptions,
                console: Console | None = None) -> ScoreResult:  # fmt: skip
    """Score ``clips`` into ``out`` (which already passed ``check_run_info``), skipping finished ones."""
    console = console or Console()
    t0 = time.perf_counter()
    manifest, jobs, skipped = plan_jobs(clips, mid, out, opts, console)
    engine = Engine(detector, fail_fast=False)
    frames = 0
    try:
        if jobs:
            with score_progress(console) as progress:
                bar = _ProgressSink(progress, expected_frames(jobs), len(jobs))
                streams = engine.run(_streams(jobs, out / CLIPS, mid, manifest, opts, bar, console), opts.workers or 1)
                frames = sum(s.stats.frames for s in streams)
                for s in streams:
                    if s.stats.stopped == "failed":
                        console.print(f"[red]failed[/] {escape(s.name)}: {escape(s.stats.message or '')}")
    finally:
        result = finish(out, clips, manifest, skipped, frames, t0, engine.interrupted)
    return result


def clip_stream(job: Job, clips_dir: Path, mid: str, manifest: Manifest, opts: ScoreOptions,
                first: list[Sink], log: Callable[[str], None] | None = None) -> Stream:  # fmt: skip
    """One clip's stream: ``first`` (e.g. the progress bar), its files, and the ``ClipFolder`` that publishes
    them into ``clips_dir`` and appends the record to ``manifest``. A Ray worker builds the same one.
    ``log`` hears the source's warnings (a skipped frame)."""
    publish = ClipFolder(clips_dir, job.clip, job.name, job.fp, mid, manifest, opts.extras)
    sinks: list[Sink] = [*first, ScoresCsv(publish.folder), EventsJsonl(publish.folder, clips=opts.clips, clock=False)]
    if opts.clips:
        sinks.append(EventClips(publish.folder, ClipSettings(opts.pre_roll, opts.post_roll), log=log))
    if opts.timelines:
        sinks.append(Timeline(publish.folder, job.name))
    if opts.save_video:
        sinks.append(AnnotatedVideo(publish.folder))
    return Stream(job.name, job.clip.source(opts.fps, log), [*sinks, publish], keep_partial=False)


def _streams(jobs: list[Job], clips_dir: Path, mid: str, manifest: Manifest, opts: ScoreOptions,
             bar: _ProgressSink, console: Console) -> Iterator[Stream]:  # fmt: skip
    """One stream per clip, made as the engine takes it (so its temp folder exists only while it runs)."""

    def warn(msg: str) -> None:
        console.print(f"[yellow]warning:[/] {escape(msg)}", highlight=False, soft_wrap=True)

    for job in jobs:
        yield clip_stream(job, clips_dir, mid, manifest, opts, [bar], warn)
