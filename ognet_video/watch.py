"""``ognet-video watch SOURCE``: score a recorded or live camera as it plays.

The loop is thin on purpose: ``FrameReader`` decodes in its own thread, ``StreamScorer`` (the same
scorer as ``eval`` and ``score``) turns whatever frames are queued into results in one forward pass,
and this module writes them out as they come:

* ``scores.jsonl``: one line per scored frame, flushed at once, so a crash or Ctrl-C leaves a valid file;
* ``events.jsonl``: one line per event when it closes (an open event is closed at the end);
* ``annotated.mp4`` with ``--save-video``; ``summary.json``: counts, stop reason and speed.

Frame numbers in the outputs are the source's own (they skip with ``--stride`` and dropped frames).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ognet_video.annotate import AnnotatedVideoWriter, Annotator
from ognet_video.checkpoint import atomic_write_text
from ognet_video.detector import Detector, resolve_model_path
from ognet_video.errors import UserError
from ognet_video.events import Event
from ognet_video.runs import latest_run_dir, new_run_dir
from ognet_video.scoring import FrameResult, StreamScorer
from ognet_video.sources import Frame, FrameReader, Opener, source_name

WINDOW = "ognet-video watch"
STOP_REASONS = {
    "end": "end of source",
    "max-frames": "--max-frames reached",
    "interrupted": "stopped with Ctrl-C",
    "quit": "window closed",
    "lost": "source lost",
}


@dataclass
class WatchResult:
    run_dir: Path
    source: str  # as displayed (passwords masked)
    kind: str
    model: str
    frames: int  # scored
    dropped: int  # live frames dropped because the scorer was behind
    reconnects: int
    stride: int
    stopped: str  # a key of STOP_REASONS
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # from the first frame to the last result
    ms_per_frame: dict[str, float] = field(default_factory=dict)  # decode, extract, model, outputs, total
    video: Path | None = None
    message: str | None = None  # why a live source was given up

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_fps(self) -> float:
        ms = self.ms_per_frame.get("model", 0.0)
        return 1000.0 / ms if ms > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return {"interrupted": 130, "lost": 1}.get(self.stopped, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "kind": self.kind, "model": self.model, "frames": self.frames,
            "dropped": self.dropped, "reconnects": self.reconnects, "stride": self.stride, "stopped": self.stopped,
            "message": self.message, "events": len(self.events), "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2), "model_fps": round(self.model_fps, 2),
            "ms_per_frame": {k: round(v, 3) for k, v in self.ms_per_frame.items()},
            "video": self.video.name if self.video else None,
        }  # fmt: skip


def load_detector(model: str | Path | Detector | None, device: str = "auto",
                  train_project: Path = Path("runs/train")) -> tuple[Detector, str]:  # fmt: skip
    """The model to watch with and how to name it: a Detector, a run folder, a checkpoint, or (None)
    the newest run in ``train_project`` that holds a finished ``model.safetensors``."""
    if isinstance(model, Detector):
        det, label = model, "(in memory)"
    else:
        if model is None:
            try:
                path = latest_run_dir(train_project, need="model.safetensors") / "model.safetensors"
            except UserError:
                raise UserError(
                    f"no trained model in {train_project} (no run folder with model.safetensors): pass --model "
                    "RUN_DIR or train one first (ognet-video train ped2 --data DIR)"
                ) from None
        else:
            path = resolve_model_path(model)
        det, label = Detector.load(path, device=device), str(path)
    if det.calibration is None:
        raise UserError(f"{label} has no calibration (saved before training finished); use a finished run's model")
    return det, label


class _TimedDetector:
    """The detector with its forward pass timed, so the speed line can split extract from model time."""

    def __init__(self, det: Detector) -> None:
        self._det = det
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._det, name)

    def patch_scores(self, x: Any) -> np.ndarray:
        t = time.perf_counter()
        try:
            return self._det.patch_scores(x)
        finally:
            self.seconds += time.perf_counter() - t


SPARK = "▁▂▃▄▅▆▇█"


class _Panel:
    """The live terminal panel; rich re-renders it a few times a second from the current state."""

    def __init__(self, title: str, total: int | None, threshold: float, reader: FrameReader, run_dir: Path) -> None:
        self.title, self.total, self.threshold, self.reader, self.run_dir = title, total, threshold, reader, run_dir
        self.frames = 0
        self.last: FrameResult | None = None
        self.recent: deque[tuple[float, bool]] = deque(maxlen=48)
        self.ticks: deque[tuple[float, int]] = deque()
        self.events: list[Event] = []
        self.open_since: int | None = None
        self.lock = threading.Lock()  # rich renders from its own thread while the loop updates

    def update(self, results: list[FrameResult], open_since: int | None) -> None:
        with self.lock:
            self.frames += len(results)
            self.last = results[-1]
            self.recent.extend((r.smoothed, r.anomalous) for r in results)
            now = time.monotonic()
            self.ticks.append((now, self.frames))
            while len(self.ticks) > 2 and now - self.ticks[0][0] > 2.0:
                self.ticks.popleft()
            self.open_since = open_since

    @property
    def fps(self) -> float:
        if len(self.ticks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.ticks[0], self.ticks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def sparkline(self) -> Text:
        text = Text()
        if not self.recent:
            return text
        vals = np.array([v for v, _ in self.recent])
        lo, hi = min(vals.min(), self.threshold - 2.0), max(vals.max(), self.threshold + 0.5)
        for v, flag in self.recent:
            k = int(round((v - lo) / (hi - lo) * (len(SPARK) - 1))) if hi > lo else 0
            text.append(SPARK[k], style="red" if flag else "cyan")
        return text

    def __rich__(self) -> Panel:
        with self.lock:
            return self._render()

    def _render(self) -> Panel:
        r = self.reader
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        total = f" / {self.total}" if self.total else ""
        t.add_row(
            "frames", f"{self.frames}{total}   {self.fps:.1f} fps   dropped {r.dropped}   reconnects {r.reconnects}"
        )
        if self.last is not None:
            state = Text("ANOMALY", style="bold red") if self.last.anomalous else Text("normal", style="green")
            line = Text(f"{self.last.smoothed:+.2f} (threshold {self.threshold:+.2f})  ")
            t.add_row("score", line + self.sparkline() + Text("  ") + state)
        ev = f"{len(self.events)}"
        if self.open_since is not None:
            ev += f"   open since frame {self.open_since}"
        elif self.events:
            e = self.events[-1]
            ev += f"   last: frames {e.start}-{e.end}, peak {e.peak_score:+.2f}"
        t.add_row("events", ev)
        t.add_row("output", escape(str(self.run_dir)))
        return Panel(t, title=escape(self.title), title_align="left", expand=False)


def display_unavailable() -> str | None:
    """Why ``--show`` cannot open a window here, or None when it can."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display ($DISPLAY is not set)"
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        return "this OpenCV build has no window support (opencv-python-headless); install opencv-python for --show"
    return None


def _first_batch(reader: FrameReader, n: int) -> list[Frame]:
    while True:
        batch = reader.get_batch(n, timeout=0.2)
        if batch is None:
            raise UserError(reader.lost or f"{reader.kind} {reader.display!r} gave no frames")
        if batch:
            return batch


def watch(source: str, model: str | Path | Detector | None = None, *, project: Path = Path("runs/watch"),
          name: str | None = None, device: str = "auto", stride: int = 1, save_video: bool = False,
          show: bool = False, max_frames: int | None = None, fps: float = 10.0, batch: int | None = None,
          connect_timeout: float = 15.0, reconnect_timeout: float = 60.0, console: Console | None = None,
          live_panel: bool | None = None, opener: Opener | None = None,
          train_project: Path = Path("runs/train")) -> WatchResult:  # fmt: skip
    """Score ``source`` frame by frame into a numbered run folder ``project/NAME-N``; see the module doc.

    ``fps`` is the frame rate of a frame folder or glob (timestamps, saved video). ``batch`` caps the frames
    scored per forward pass (default ``score.batch_frames``). ``opener`` replaces ``open_capture`` (tests).
    Bad input raises UserError before a run folder is made; Ctrl-C ends the run cleanly (exit code 130).
    """
    console = console or Console()
    if stride < 1:
        raise UserError(f"--stride must be 1 or more, got {stride}")
    log = lambda msg: console.print(f"[yellow]{escape(msg)}[/]", highlight=False)
    reader = FrameReader(source, stride=stride, fps=fps, opener=opener, connect_timeout=connect_timeout,
                         reconnect_timeout=reconnect_timeout, log=log)  # fmt: skip
    det, model_label = load_detector(model, device, train_project)
    timed = _TimedDetector(det)
    scorer = StreamScorer(timed)  # type: ignore[arg-type]  # a transparent proxy of the Detector
    batch_max = max(1, batch or det.cfg.score.batch_frames)
    if show and (why := display_unavailable()):
        console.print(f"[yellow]--show:[/] {escape(why)}; continuing without a window", highlight=False)
        show = False
    if reader.kind == "stream":
        console.print(f"connecting to {reader.kind} {escape(reader.display)} (up to {connect_timeout:g} s)")
    reader.start()
    try:  # until the loop's own try/finally takes over, stop the reader on any failure
        pending: list[Frame] | None = _first_batch(reader, batch_max)
        last_link = 0  # connection of the last scored frame: a new one means a gap, so motion restarts
        run_dir = new_run_dir(project, name or source_name(source))
        total = reader.total if max_frames is None else min(reader.total or max_frames, max_frames)
        rate = (reader.fps or fps) / stride
        desc = (
            f"{reader.kind}" + (f", {reader.length} frames" if reader.length else "") + f" at {reader.fps or fps:g} fps"
        )
        desc += f", scoring 1 frame in {stride}" if stride > 1 else ""
        console.print(
            f"watching [bold]{escape(reader.display)}[/] ({desc}) with {escape(model_label)} -> {escape(str(run_dir))}",
            highlight=False,
        )
        res = WatchResult(run_dir, reader.display, reader.kind, model_label, 0, 0, 0, stride, "end")
        threshold = scorer.threshold
        writer = (
            AnnotatedVideoWriter(run_dir / "annotated.mp4", rate, threshold, det.calibration) if save_video else None
        )
        annotator = Annotator(threshold, det.calibration) if show and writer is None else None
        panel = _Panel(f"ognet-video watch {reader.display}", total, threshold, reader, run_dir)
        use_live = console.is_terminal if live_panel is None else live_panel
        push_s = out_s = 0.0
        scores_f = open(run_dir / "scores.jsonl", "w", encoding="utf-8")  # closed in the loop's finally
        events_f = open(run_dir / "events.jsonl", "w", encoding="utf-8")
    except BaseException:
        reader.stop()
        raise

    def write_event(ev: Event) -> None:
        panel.events.append(ev)
        res.events.append(ev.to_dict())
        events_f.write(json.dumps(ev.to_dict()) + "\n")
        events_f.flush()
        when = "" if ev.start_time is None else f" ({ev.start_time:.1f}-{(ev.end_time or ev.start_time):.1f} s)"
        console.print(
            f"[red]event[/] frames {ev.start}-{ev.end}{when}, peak {ev.peak_score:+.2f} at frame {ev.peak_frame}",
            highlight=False,
        )

    t_start = time.perf_counter()
    try:
        with Live(panel, console=console, refresh_per_second=4, transient=False) if use_live else _nullctx():
            while True:
                if pending is None:
                    pending = reader.get_batch(batch_max, timeout=0.1)
                    if pending is None:
                        break
                    if not pending:
                        pending = None
                        if show and _window_quit():
                            res.stopped = "quit"
                            break
                        continue
                frames = pending if max_frames is None else pending[: max_frames - res.frames]
                pending = None
                t = time.perf_counter()
                results, closed = [], []
                for link, run in itertools.groupby(frames, key=lambda f: f.link):  # one run per connection
                    part = list(run)
                    if link != last_link:
                        scorer.break_motion()
                        last_link = link
                    r_part, c_part = scorer.push(
                        [f.image for f in part], [f.time for f in part], [f.index for f in part]
                    )
                    results += r_part
                    closed += c_part
                push_s += time.perf_counter() - t
                t = time.perf_counter()
                shown = None
                for f, r in zip(frames, results, strict=True):
                    scores_f.write(json.dumps(r.to_dict()) + "\n")
                    scores_f.flush()
                    if writer is not None or annotator is not None:
                        boxes = scorer.boxes_for(f.image.shape)
                        if writer is not None:
                            shown = writer.write(f.image, r, boxes)
                        else:
                            shown = annotator.render(f.image, r, boxes)  # type: ignore[union-attr]
                res.frames += len(frames)
                for ev in closed:
                    write_event(ev)
                tr = scorer.tracker
                panel.update(results, None if tr.open is None else tr.open.start)
                if shown is not None and show:
                    cv2.imshow(WINDOW, shown)
                    if _window_quit():
                        res.stopped = "quit"
                        break
                out_s += time.perf_counter() - t
                if max_frames is not None and res.frames >= max_frames:
                    res.stopped = "max-frames"
                    break
    except KeyboardInterrupt:
        res.stopped = "interrupted"
    finally:
        res.seconds = time.perf_counter() - t_start
        reader.stop()
        try:
            if (ev := scorer.finish()) is not None:
                write_event(ev)
        finally:
            scores_f.close()
            events_f.close()
            if writer is not None:
                res.video = writer.close()
            if show:
                cv2.destroyAllWindows()
    if reader.lost and res.stopped == "end":
        res.stopped, res.message = "lost", reader.lost
    res.dropped, res.reconnects = reader.dropped, reader.reconnects
    n = max(1, res.frames)
    res.ms_per_frame = {
        "decode": 1000 * reader.decode_seconds / n,
        "extract": 1000 * (push_s - timed.seconds) / n,
        "model": 1000 * timed.seconds / n,
        "outputs": 1000 * out_s / n,
        "total": 1000 * res.seconds / n,
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(res.to_dict(), indent=2))
    print_summary(res, console)
    return res


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _window_quit() -> bool:
    return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)


def print_summary(res: WatchResult, console: Console) -> None:
    """The closing lines: what was scored, why it stopped, the events, and the speed line."""
    colour = "green" if res.exit_code == 0 else "yellow"
    extra = f" ({res.message})" if res.message else ""
    console.print(
        f"[{colour}]{STOP_REASONS[res.stopped]}[/]{escape(extra)}: {res.frames} frames scored (stride {res.stride}, "
        f"{res.dropped} dropped, {res.reconnects} reconnects), {len(res.events)} events -> {escape(str(res.run_dir))}",
        highlight=False,
    )
    for e in res.events[:10]:
        console.print(
            f"  event frames {e['start']}-{e['end']}: peak {e['peak_score']:+.2f} at frame {e['peak_frame']}, "
            f"box {e['peak_box']}",
            highlight=False,
        )
    if len(res.events) > 10:
        console.print(f"  ... {len(res.events) - 10} more in events.jsonl", highlight=False)
    ms = res.ms_per_frame
    decode = "read" if res.kind in ("webcam", "stream") else "decode"
    console.print(
        f"speed: {decode} {ms['decode']:.1f} ms (own thread), extract {ms['extract']:.1f} ms, model {ms['model']:.1f} ms, "
        f"outputs {ms['outputs']:.1f} ms; total {ms['total']:.1f} ms per frame = {res.fps:.1f} fps end to end "
        f"(model only {res.model_fps:.0f} fps)",
        highlight=False,
    )
