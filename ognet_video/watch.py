"""``ognet-video watch SOURCE...``: score recorded or live cameras as they play.

A composition of the one run loop (``engine``): the sources, the model's ``StreamScorer`` and these sinks,
all in a numbered run folder ``runs/watch/NAME-N`` that is made when the first frame is scored (with
several cameras, one subfolder per camera and a ``summary.json`` of them all):

* ``scores.jsonl``: one line per scored frame, flushed as it goes, so a crash or Ctrl-C leaves a valid file;
* ``events.jsonl``: one line per event when it closes (an open event is closed at the end);
* ``events/``: an H.264 clip of each event with a pre- and post-roll, its snapshot and its source frames
  (``clips.sink``; the oldest are deleted beyond ``--clip-days`` / ``--clip-gb`` under the project folder);
* ``annotated.mp4`` with ``--save-video``; ``summary.json``: counts, stop reason and speed;
* the live panel (in a terminal, one camera), a console line per event, a window with ``--show``;
* event messages as they happen (``--sink``: stdout, a file, a webhook, MQTT) with peak snapshots under
  ``snapshots/``; Prometheus metrics and ``/healthz`` with ``--metrics-port``; the review page, live, with
  ``--review-port`` (each camera's latest frame, fps, drops and status, and events as they open).

Several cameras share the one model and its forward passes, each with its own state and outputs; a
camera that drops reconnects on its own and one that is lost for good leaves the others running.

Frame numbers in the outputs are the source's own (they skip with ``--stride`` and dropped frames).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ognet_video.cameras import Camera, cameras_from_args
from ognet_video.clips.retention import Retention
from ognet_video.clips.sink import ClipSettings, EventClips
from ognet_video.errors import UserError
from ognet_video.models.checkpoint import atomic_write_text
from ognet_video.models.detector import Detector
from ognet_video.review.app import start_server
from ognet_video.review.live import LiveBoard
from ognet_video.runs import load_model, new_run_dir
from ognet_video.sinks import (
    AnnotatedVideo,
    DropWarning,
    EventLog,
    EventsJsonl,
    Folder,
    LivePanel,
    ScoresJsonl,
    SummaryJson,
    Window,
    display_unavailable,
)
from ognet_video.sinks.alerts import Alerts, Channel, parse_sink
from ognet_video.sinks.files import summary_dict
from ognet_video.sinks.metrics import Health, MetricsServer
from ognet_video.sources import Opener, Source, open_source, source_name
from ognet_video.stream.engine import STOP_REASONS, Engine, Sink, Stream, Terminated
from ognet_video.stream.scoring import misfit_warning


@dataclass
class WatchOptions:
    save_video: bool = False
    show: bool = False
    stride: int = 1
    max_frames: int | None = None
    fps: float = 10.0  # frame rate of a frame folder or glob (timestamps, saved video)
    batch: int | None = None  # frames per forward pass and camera (default score.batch_frames)
    connect_timeout: float = 15.0
    reconnect_timeout: float = 60.0
    live_panel: bool | None = None  # default: when the console is a terminal and there is one camera
    sinks: list[str] = field(default_factory=list)  # --sink values: stdout, file=PATH, webhook=URL, mqtt://...
    update_every: float = 5.0  # seconds of source time between an open event's update messages
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"  # this machine only unless asked (--metrics-host): the endpoints have no auth
    drain_timeout: float = 5.0  # seconds to deliver queued messages at the end
    clips: bool = True  # an H.264 clip of each event (``clips.sink``)
    pre_roll: float = 3.0  # seconds of each clip before its event
    post_roll: float = 3.0  # and after it
    clip_days: float | None = 14.0  # retention: event files older than this are deleted (oldest first)
    clip_gb: float | None = 5.0  # and beyond this much disk under the project folder
    review_port: int | None = None  # serve the review page live (``review``): the cameras, and events as they open
    review_host: str = "127.0.0.1"  # beyond this machine, labelling needs the token printed with the URL


@dataclass
class WatchResult:
    run_dir: Path
    stream: Stream  # the first camera's
    model: str
    streams: list[Stream] = field(default_factory=list)
    sinks: dict[str, dict[str, int]] = field(default_factory=dict)  # per --sink: sent, failed, dropped

    @property
    def exit_code(self) -> int:
        return max(s.stats.exit_code for s in self.streams or [self.stream])

    def __getattr__(self, name: str) -> object:  # frames, dropped, reconnects, events, stopped, message, ...
        return getattr(self.stream.stats, name)


def watch(source: str | Camera | list[str | Camera], model: str | Path | Detector | None = None,
          opts: WatchOptions | None = None, *, project: Path = Path("runs/watch"), name: str | None = None,
          device: str = "auto", label: str | None = None, console: Console | None = None,
          opener: Opener | None = None, train_project: Path = Path("runs/train"),
          metrics: MetricsServer | None = None) -> WatchResult:  # fmt: skip
    """Score ``source`` (one, or a list of sources, cameras and cameras files) into ``project/NAME-N``; see
    the module doc. Bad input raises UserError before a run folder is made; Ctrl-C and SIGTERM end the run
    cleanly (exit codes 130 and 143). ``metrics``: a started server to report to (the caller stops it)."""
    opts = opts or WatchOptions()
    console = console or Console(stderr="stdout" in opts.sinks)
    _check(opts)
    log = lambda msg: console.print(f"[yellow]{escape(msg)}[/]", highlight=False)
    cams = cameras_from_args(source if isinstance(source, list) else [source], log)
    if not cams:
        raise UserError("watch needs a SOURCE: a video, frames, a webcam index, a URL or a cameras file")
    srcs = [_open(c, opts, opener, log) for c in cams]
    det, found = load_model(model, device, train_project)
    label = label or found
    if det.health is None and det.cfg.health.enabled:  # said once, not per camera
        console.print(f"[yellow]camera checks off: {escape(label)} holds no camera reference (trained before the "
                      "checks); ognet-video calibrate adds one[/]", highlight=False)  # fmt: skip
    show = opts.show
    if show and (why := display_unavailable()):
        console.print(f"[yellow]--show:[/] {escape(why)}; continuing without a window", highlight=False)
        show = False
    for src in srcs:
        if src.live and src.kind == "stream":
            console.print(f"connecting to {src.kind} {escape(src.display)} (up to {opts.connect_timeout:g} s)")
    run_name = name or (source_name(cams[0].url) if len(cams) == 1 else "cameras")

    def make_dir() -> Path:
        d = new_run_dir(project, run_name)
        what = f"{escape(srcs[0].display)} ({escape(srcs[0].describe())})" if len(srcs) == 1 else f"{len(srcs)} cameras"
        console.print(f"watching [bold]{what}[/] with {escape(label)} -> {escape(str(d))}", highlight=False)
        return d

    run = Folder(make=make_dir)
    retention = Retention(project, opts.clip_days, opts.clip_gb) if opts.clips else None
    channels = [parse_sink(spec, log) for spec in opts.sinks]
    own_metrics = metrics is None and opts.metrics_port is not None
    board, review = (LiveBoard(), None) if opts.review_port is not None else (None, None)
    try:
        if board is not None:  # the page over every run of the project, this one's events as they open
            review = start_server([project], opts.review_host, opts.review_port, board=board)  # type: ignore[arg-type]
            console.print(f"review page on {escape(review.url)}", highlight=False, soft_wrap=True)
        if own_metrics:
            metrics = MetricsServer(opts.metrics_port, opts.metrics_host).start()  # type: ignore[arg-type]
            console.print(f"metrics on http://{opts.metrics_host}:{metrics.port}/metrics and /healthz", highlight=False)
        if metrics is not None:
            metrics.channels += channels
        made = [_stream(c, src, run, len(cams) > 1, label, channels, metrics, opts, show, console, retention, board)
                for c, src in zip(cams, srcs, strict=True)]  # fmt: skip
        streams = [s for s, _ in made]
        Engine(det, opts.batch, fail_fast=len(streams) == 1).run(streams, concurrency=len(streams))
    finally:
        for ch in channels:
            ch.close(opts.drain_timeout)
        if own_metrics and metrics is not None:
            metrics.stop()
        if review is not None:
            review.stop()
    if not any(s.stats.frames for s in streams):
        if streams[0].stats.stopped in ("interrupted", "terminated"):  # stopped while connecting: a stop, not a failure
            raise Terminated() if streams[0].stats.stopped == "terminated" else KeyboardInterrupt()
        raise UserError(streams[0].stats.message or f"{srcs[0].kind} {srcs[0].display!r} gave no frames")
    res = WatchResult(run.path, streams[0], label, streams, {ch.name: ch.stats for ch in channels})
    _final_summaries(res, [f for _, f in made])
    for s in streams:
        print_summary(res, console, s, res.run_dir / s.name if len(streams) > 1 else None)
    _print_sinks(res, console)
    return res


def _open(cam: Camera, opts: WatchOptions, opener: Opener | None, log: Callable[[str], None]) -> Source:
    return open_source(cam.url, stride=cam.stride or opts.stride, fps=cam.fps or opts.fps, opener=opener, log=log,
                       connect_timeout=opts.connect_timeout, reconnect_timeout=opts.reconnect_timeout)  # fmt: skip


def _check(opts: WatchOptions) -> None:
    if opts.max_frames is not None and opts.max_frames < 1:
        raise UserError(f"--max-frames must be 1 or more, got {opts.max_frames}")
    if not 0 < opts.connect_timeout < math.inf:
        raise UserError(f"--connect-timeout must be a positive number of seconds, got {opts.connect_timeout:g}")
    if not 0 <= opts.update_every < math.inf:
        raise UserError(f"--update-every must be 0 or more seconds, got {opts.update_every:g}")
    ClipSettings(opts.pre_roll, opts.post_roll).check()
    for what, v in (("--clip-days", opts.clip_days), ("--clip-gb", opts.clip_gb)):
        if v is not None and not 0 < v < math.inf:
            raise UserError(f"{what} must be a positive number, got {v:g}")
    for what, port in (("--metrics-port", opts.metrics_port), ("--review-port", opts.review_port)):
        if port is not None and not 0 <= port <= 65535:
            raise UserError(f"{what} must be 0-65535, got {port}")


def _stream(cam: Camera, src: Source, run: Folder, many: bool, label: str, channels: list[Channel],
            metrics: MetricsServer | None, opts: WatchOptions, show: bool, console: Console,
            retention: Retention | None = None, board: LiveBoard | None = None) -> tuple[Stream, Folder]:  # fmt: skip
    """One camera's stream: its files (in the run folder, or its own subfolder of it), clips, alerts, pictures."""
    folder = Folder(make=lambda: run.path / cam.name) if many else run
    sinks: list[Sink] = [ScoresJsonl(folder), EventsJsonl(folder, clips=opts.clips),
                         EventLog(console, cam.name if many else "")]  # fmt: skip
    if opts.clips:
        warn = lambda msg: console.print(f"[yellow]{escape(cam.name)}: {escape(msg)}[/]", highlight=False)
        sinks.append(EventClips(folder, ClipSettings(opts.pre_roll, opts.post_roll),
                                on_clip=retention.maybe_prune if retention else None, log=warn))  # fmt: skip
    if board is not None:  # after events.jsonl: an event's line is written when its end message reaches the page
        sinks.append(board)
    if src.live:
        sinks.append(DropWarning(console, cam.name))
    if channels:
        sinks.append(Alerts(folder, channels, cam.name, run=run, clips=opts.clips))
    if metrics is not None:
        metrics.health.append(health := Health(cam.name))
        sinks.append(health)
    if opts.save_video:
        sinks.append(AnnotatedVideo(folder))
    if show and not many:
        sinks.append(Window())
    if not many and (console.is_terminal if opts.live_panel is None else opts.live_panel):
        sinks.append(LivePanel(console))
    sinks.append(SummaryJson(folder))
    info = {"model": label, "camera": cam.name}
    stream = Stream(cam.name, src, sinks, opts.max_frames, keep_partial=True, info=info, update_every=opts.update_every)
    return stream, folder


def _final_summaries(res: WatchResult, folders: list[Folder]) -> None:
    """Rewrite each camera's summary.json with the sinks' final counts; with several cameras, one of all."""
    cams = {}
    for s, folder in zip(res.streams, folders, strict=True):
        doc = summary_dict(s) | {"sinks": res.sinks}
        cams[s.name] = doc
        if folder.made and s.stats.frames:
            atomic_write_text(folder.path / "summary.json", json.dumps(doc, indent=2))
    if len(res.streams) > 1:
        seconds = max(s.stats.seconds for s in res.streams)
        frames = sum(s.stats.frames for s in res.streams)
        total = {"cameras": len(cams), "frames": frames, "seconds": round(seconds, 3),
                 "fps": round(frames / seconds, 2) if seconds else 0.0, "sinks": res.sinks}  # fmt: skip
        atomic_write_text(res.run_dir / "summary.json", json.dumps(total | {"per_camera": cams}, indent=2))


def _print_sinks(res: WatchResult, console: Console) -> None:
    if len(res.streams) > 1:
        seconds = max(s.stats.seconds for s in res.streams) or 1.0
        frames = sum(s.stats.frames for s in res.streams)
        console.print(f"{len(res.streams)} cameras: {frames} frames in {seconds:.1f} s = {frames / seconds:.1f} fps "
                      f"in all -> {escape(str(res.run_dir))}", highlight=False)  # fmt: skip
    for name, st in res.sinks.items():
        colour = "yellow" if st["failed"] or st["dropped"] else "green"
        console.print(f"sink [{colour}]{escape(name)}[/]: {st['sent']} messages sent, {st['failed']} failed, "
                      f"{st['dropped']} dropped (queue full)", highlight=False)  # fmt: skip


def print_summary(res: WatchResult, console: Console, stream: Stream | None = None,
                  folder: Path | None = None) -> None:  # fmt: skip
    """The closing lines of a camera (default: the first): what was scored, why it stopped, the events, and
    the speed line; with several cameras each line starts with the camera's name."""
    stream = stream or res.stream
    st, info, src = stream.stats, stream.opened, stream.source
    stride = info.stride if info is not None else src.stride
    who = f"[bold]{escape(stream.name)}[/] " if folder is not None else ""
    colour = "green" if st.exit_code == 0 else "yellow"
    extra = f" ({st.message})" if st.message else ""
    console.print(
        f"{who}[{colour}]{STOP_REASONS[st.stopped]}[/]{escape(extra)}: {st.frames} frames scored (stride {stride}, "
        f"{st.dropped} dropped = {100 * st.drop_rate:.1f}%, {st.reconnects} reconnects), {st.events} events "
        f"-> {escape(str(folder or res.run_dir))}",
        highlight=False,
    )
    if info is not None and info.camera_checks:
        cam = ", ".join(f"{k} {v}" for k, v in st.camera.items())
        console.print(f"{who}camera checks: " + (f"[yellow]{sum(st.camera.values())} alert(s) ({cam})[/], anomaly "
                      f"decisions suspended on {st.suspended} frames" if st.camera else "no camera alert"),
                      highlight=False)  # fmt: skip
    if info is not None and (warn := misfit_warning({info.display: (st.flagged / max(1, st.frames), st.frames)})):
        console.print(f"[yellow]{escape(warn)}[/]", highlight=False)
    ms = st.ms_per_frame()
    model_fps = 1000.0 / ms["model"] if ms["model"] > 0 else 0.0
    decode = "read" if (info.live if info is not None else src.live) else "decode"
    runtime = info.runtime if info is not None else "torch"
    console.print(
        f"{who}speed: {decode} {ms['decode']:.1f} ms (own thread), extract {ms['extract']:.1f} ms, "
        f"model {ms['model']:.1f} ms ({runtime}), "
        f"outputs {ms['outputs']:.1f} ms; total {ms['total']:.1f} ms per frame = {st.fps:.1f} fps end to end "
        f"(model only {model_fps:.0f} fps)",
        highlight=False,
    )
