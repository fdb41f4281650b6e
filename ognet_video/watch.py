"""``ognet-video watch SOURCE``: score a recorded or live camera as it plays.

A composition of the one run loop (``engine``): the source, the model's ``StreamScorer`` and these sinks,
all in a numbered run folder ``runs/watch/NAME-N`` that is made when the first frame is scored:

* ``scores.jsonl``: one line per scored frame, flushed as it goes, so a crash or Ctrl-C leaves a valid file;
* ``events.jsonl``: one line per event when it closes (an open event is closed at the end);
* ``annotated.mp4`` with ``--save-video``; ``summary.json``: counts, stop reason and speed;
* the live panel (in a terminal), a console line per event, a window with ``--show``.

Frame numbers in the outputs are the source's own (they skip with ``--stride`` and dropped frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ognet_video.detector import Detector
from ognet_video.engine import STOP_REASONS, Engine, Sink, Stream
from ognet_video.errors import UserError
from ognet_video.runs import load_model, new_run_dir
from ognet_video.scoring import misfit_warning
from ognet_video.sinks import (
    AnnotatedVideo,
    EventLog,
    EventsJsonl,
    Folder,
    LivePanel,
    ScoresJsonl,
    SummaryJson,
    Window,
    display_unavailable,
)
from ognet_video.sources import Opener, open_source, source_name


@dataclass
class WatchOptions:
    save_video: bool = False
    show: bool = False
    stride: int = 1
    max_frames: int | None = None
    fps: float = 10.0  # frame rate of a frame folder or glob (timestamps, saved video)
    batch: int | None = None  # frames per forward pass (default score.batch_frames)
    connect_timeout: float = 15.0
    reconnect_timeout: float = 60.0
    live_panel: bool | None = None  # default: when the console is a terminal


@dataclass
class WatchResult:
    run_dir: Path
    stream: Stream
    model: str

    @property
    def exit_code(self) -> int:
        return self.stream.stats.exit_code

    def __getattr__(self, name: str) -> object:  # frames, dropped, reconnects, events, stopped, message, ...
        return getattr(self.stream.stats, name)


def watch(source: str, model: str | Path | Detector | None = None, opts: WatchOptions | None = None, *,
          project: Path = Path("runs/watch"), name: str | None = None, device: str = "auto",
          label: str | None = None, console: Console | None = None, opener: Opener | None = None,
          train_project: Path = Path("runs/train")) -> WatchResult:  # fmt: skip
    """Score ``source`` into ``project/NAME-N``; see the module doc. Bad input raises UserError before a run
    folder is made; Ctrl-C and SIGTERM end the run cleanly (exit codes 130 and 143)."""
    console = console or Console()
    opts = opts or WatchOptions()
    if opts.max_frames is not None and opts.max_frames < 1:
        raise UserError(f"--max-frames must be 1 or more, got {opts.max_frames}")
    if not 0 < opts.connect_timeout < math.inf:
        raise UserError(f"--connect-timeout must be a positive number of seconds, got {opts.connect_timeout:g}")
    log = lambda msg: console.print(f"[yellow]{escape(msg)}[/]", highlight=False)
    src = open_source(source, stride=opts.stride, fps=opts.fps, opener=opener, connect_timeout=opts.connect_timeout,
                      reconnect_timeout=opts.reconnect_timeout, log=log)  # fmt: skip
    det, found = load_model(model, device, train_project)
    label = label or found
    show = opts.show
    if show and (why := display_unavailable()):
        console.print(f"[yellow]--show:[/] {escape(why)}; continuing without a window", highlight=False)
        show = False
    if src.live and src.kind == "stream":
        console.print(f"connecting to {src.kind} {escape(src.display)} (up to {opts.connect_timeout:g} s)")

    def make_dir() -> Path:
        d = new_run_dir(project, name or source_name(source))
        console.print(f"watching [bold]{escape(src.display)}[/] ({escape(src.describe())}) with {escape(label)} "
                      f"-> {escape(str(d))}", highlight=False)  # fmt: skip
        return d

    folder = Folder(make=make_dir)
    sinks: list[Sink] = [ScoresJsonl(folder), EventsJsonl(folder), EventLog(console)]
    if opts.save_video:
        sinks.append(AnnotatedVideo(folder))
    if show:
        sinks.append(Window())
    if console.is_terminal if opts.live_panel is None else opts.live_panel:
        sinks.append(LivePanel(console))
    sinks.append(SummaryJson(folder))
    stream = Stream(source_name(source), src, sinks, opts.max_frames, keep_partial=True, info={"model": label})
    Engine(det, opts.batch, fail_fast=True).run([stream])
    if stream.stats.frames == 0:
        raise UserError(stream.stats.message or f"{src.kind} {src.display!r} gave no frames")
    res = WatchResult(folder.path, stream, label)
    print_summary(res, console)
    return res


def print_summary(res: WatchResult, console: Console) -> None:
    """The closing lines: what was scored, why it stopped, the events, and the speed line."""
    st, src = res.stream.stats, res.stream.source
    colour = "green" if res.exit_code == 0 else "yellow"
    extra = f" ({st.message})" if st.message else ""
    console.print(
        f"[{colour}]{STOP_REASONS[st.stopped]}[/]{escape(extra)}: {st.frames} frames scored (stride {src.stride}, "
        f"{st.dropped} dropped, {st.reconnects} reconnects), {st.events} events -> {escape(str(res.run_dir))}",
        highlight=False,
    )
    scorer = res.stream.scorer
    if scorer is not None and (warn := misfit_warning({src.display: (scorer.flagged / max(1, st.frames), st.frames)})):
        console.print(f"[yellow]{escape(warn)}[/]", highlight=False)
    ms = st.ms_per_frame()
    model_fps = 1000.0 / ms["model"] if ms["model"] > 0 else 0.0
    decode = "read" if src.live else "decode"
    console.print(
        f"speed: {decode} {ms['decode']:.1f} ms (own thread), extract {ms['extract']:.1f} ms, model {ms['model']:.1f} ms, "
        f"outputs {ms['outputs']:.1f} ms; total {ms['total']:.1f} ms per frame = {st.fps:.1f} fps end to end "
        f"(model only {model_fps:.0f} fps)",
        highlight=False,
    )
