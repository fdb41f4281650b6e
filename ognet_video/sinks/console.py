"""Terminal sinks: the live panel (rich re-renders it a few times a second) and a line per event."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ognet_video.decide import Event
from ognet_video.health.checks import DESCRIBE
from ognet_video.stream.engine import Batch, Sink, Stream
from ognet_video.stream.values import Counters, StreamInfo

SPARK = "▁▂▃▄▅▆▇█"


class EventLog(Sink):
    """One console line per event as it closes."""

    def __init__(self, console: Console, camera: str = "") -> None:
        self.console = console
        self.who = f"{escape(camera)} " if camera else ""  # with several cameras: whose event

    def write(self, batch: Batch) -> None:
        for m in batch.camera:
            if m.type == "update":
                continue
            ev = m.event
            at = "" if m.time is None else f" ({m.time:.1f} s)"
            what = "anomaly decisions suspended" if m.type == "start" else "over, decisions resumed"
            self.console.print(f"{self.who}[yellow]camera {ev.reason}[/] at frame {m.frame}{at}: "
                               f"{DESCRIBE[ev.reason]}; {what}", highlight=False)  # fmt: skip
        for ev in batch.events:
            when = "" if ev.start_time is None else f" ({ev.start_time:.1f}-{(ev.end_time or ev.start_time):.1f} s)"
            self.console.print(
                f"{self.who}[red]event[/] frames {ev.start}-{ev.end}{when}, peak {ev.peak_score:+.2f} at frame {ev.peak_frame}",
                highlight=False,
            )


class DropWarning(Sink):
    """One line the first time a live camera drops frames: scoring is behind it. Scores stay right (each frame
    is scored from its own predecessor), but a share of the camera's time goes unscored."""

    def __init__(self, console: Console, camera: str = "") -> None:
        self.console, self.camera, self.warned = console, camera, False

    def write(self, batch: Batch) -> None:
        st = batch.stats
        if self.warned or not st.dropped:
            return
        self.warned = True
        who = escape(self.camera or (batch.info.display if batch.info is not None else ""))
        self.console.print(
            f"[yellow]warning: {who} is faster than this machine scores it: {st.dropped} frames dropped so far "
            f"(lag {st.lag_s:.1f} s); scores stay right but part of its time goes unscored: use fewer "
            "cameras per machine, an exported model (ognet-video export) or a GPU[/]",
            highlight=False,
        )


class LivePanel(Sink):
    """Frames, fps, drops, the smoothed score as a sparkline against the threshold, events, output folder."""

    def __init__(self, console: Console, output: str = "") -> None:
        self.console, self.output = console, output
        self.info: StreamInfo | None = None
        self.counters = Counters()  # the last batch's
        self.open_since: int | None = None  # the open event's first frame
        self.live: Live | None = None
        self.recent: deque[tuple[float, bool]] = deque(maxlen=48)
        self.ticks: deque[tuple[float, int]] = deque()
        self.events: list[Event] = []
        self.lock = threading.Lock()  # rich renders from its own thread while the loop updates

    def open(self, info: StreamInfo) -> None:
        self.info = info
        self.live = Live(self, console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def write(self, batch: Batch) -> None:
        with self.lock:
            self.recent.extend((r.smoothed, r.anomalous) for r in batch.results)
            self.events += batch.events
            self.counters = batch.stats
            for m in batch.messages:
                self.open_since = None if m.type == "end" else m.event.start
            now = time.monotonic()
            self.ticks.append((now, batch.stats.frames))
            while len(self.ticks) > 2 and now - self.ticks[0][0] > 2.0:
                self.ticks.popleft()

    def close(self, stream: Stream) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    abort = close

    @property
    def fps(self) -> float:
        if len(self.ticks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.ticks[0], self.ticks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def sparkline(self, threshold: float) -> Text:
        text = Text()
        if not self.recent:
            return text
        vals = np.array([v for v, _ in self.recent])
        lo, hi = min(vals.min(), threshold - 2.0), max(vals.max(), threshold + 0.5)
        for v, flag in self.recent:
            k = int(round((v - lo) / (hi - lo) * (len(SPARK) - 1))) if hi > lo else 0
            text.append(SPARK[k], style="red" if flag else "cyan")
        return text

    def __rich__(self) -> Panel:
        with self.lock:
            return self._render()

    def _render(self) -> Panel:
        info, st = self.info, self.counters
        assert info is not None
        total, dropped = info.total, st.dropped
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        of = f" / {total}" if total else ""
        t.add_row(
            "frames", f"{st.frames}{of}   {self.fps:.1f} fps   dropped {dropped}   reconnects {st.reconnects}"
        )
        if self.recent:
            smoothed, flag = self.recent[-1]
            thr = info.threshold
            state = Text("ANOMALY", style="bold red") if flag else Text("normal", style="green")
            line = Text(f"{smoothed:+.2f} (threshold {thr:+.2f})  ")
            t.add_row("score", line + self.sparkline(thr) + Text("  ") + state)
        ev = f"{len(self.events)}"
        if self.open_since is not None:
            ev += f"   open since frame {self.open_since}"
        elif self.events:
            e = self.events[-1]
            ev += f"   last: frames {e.start}-{e.end}, peak {e.peak_score:+.2f}"
        t.add_row("events", ev)
        if self.output:
            t.add_row("output", escape(self.output))
        return Panel(t, title=escape(f"ognet-video watch {info.display}"), title_align="left", expand=False)
