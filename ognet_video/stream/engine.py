"""The one run loop: sources -> ``StreamScorer`` -> sinks. ``watch`` and ``score`` are compositions of it.

A ``Stream`` is one source with its sinks. ``run`` keeps up to ``concurrency`` streams open at once (each
decoded by its own ``Reader`` thread and prepared for the model, optical flow included, by its own
``Prefetcher`` thread while the previous batch is scored), takes whatever batches each has prepared, scores
the moving patches of all of them in one forward pass of the one shared model in the calling thread (a
patch's score does not depend on what it is batched with) and hands every ``Batch`` to its stream's sinks. It times each stage
(decode, extract, model, outputs) per stream; a shared pass is shared out by patch count.

Ending: at the end of a source every sink is closed (its outputs are complete). A failed stream (unreadable
source, a sink that cannot write) is aborted: ``keep_partial`` streams close instead, keeping what was
written. Ctrl-C and SIGTERM end every open stream the same way, as ``interrupted``/``terminated``; a sink
raising ``StopRun`` (a window closed) ends the run normally.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ognet_video.decide import Event, EventMessage
from ognet_video.errors import UserError
from ognet_video.health import CameraMessage
from ognet_video.models.detector import Detector
from ognet_video.sources import Frame, Reader, Source
from ognet_video.stream.prefetch import END, Prefetcher, Prepared
from ognet_video.stream.scoring import FrameResult, StreamScorer
from ognet_video.stream.signals import SIGNALS, Terminated, install_signal_handlers  # noqa: F401 - re-exported
from ognet_video.stream.values import Counters, StreamInfo

STOP_REASONS = {
    "end": "end of source",
    "max-frames": "--max-frames reached",
    "interrupted": "stopped with Ctrl-C",
    "terminated": "stopped by SIGTERM",
    "quit": "window closed",
    "lost": "source lost",
    "failed": "failed",
    "stopped": "stopped by the caller",
}
EXIT_CODES = {"interrupted": 130, "terminated": 143, "lost": 1, "failed": 1}


class StopRun(Exception):  # noqa: N818 - a request, not an error
    """Raised by a sink to end the run cleanly, e.g. ``StopRun("quit")`` when its window is closed."""

    def __init__(self, reason: str = "quit") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class StreamStats:
    frames: int = 0  # scored
    dropped: int = 0  # live frames dropped because scoring was behind
    reconnects: int = 0
    events: int = 0
    stopped: str = "end"  # a key of STOP_REASONS
    message: str | None = None  # why it failed or was given up
    seconds: float = 0.0  # from the start of the stream to its end
    decode_s: float = 0.0  # in the reader thread
    extract_s: float = 0.0
    model_s: float = 0.0
    output_s: float = 0.0
    lag_s: float = 0.0  # last batch: seconds from its newest frame's arrival off the source to its scores
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=2048), repr=False)  # recent frames' lags
    camera: dict[str, int] = field(default_factory=dict)  # camera events (``health``) started, per reason
    suspended: int = 0  # frames whose anomaly decision was suspended by an open camera event
    flagged: int = 0  # frames above the threshold (the misfit warning's count)
    decoded: int = 0  # frames read from the source, strided ones included (at the end)
    skipped: int = 0  # recorded sources: unreadable frames left out (at the end)
    skipped_frames: list[str] = field(default_factory=list)  # the first few of them, by name

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def drop_rate(self) -> float:
        """The share of the frames the source delivered for analysis that scoring was too slow to take."""
        seen = self.frames + self.dropped
        return self.dropped / seen if seen else 0.0

    def lag_percentiles(self) -> dict[str, float]:
        """p50 and p95 of the recent frames' lag in milliseconds ({} before any)."""
        if not self.lags:
            return {}
        p50, p95 = np.percentile(np.fromiter(self.lags, float), [50, 95])
        return {"p50_ms": round(1000 * float(p50), 1), "p95_ms": round(1000 * float(p95), 1)}

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.stopped, 0)

    def ms_per_frame(self) -> dict[str, float]:
        n = max(1, self.frames)
        parts = {"decode": self.decode_s, "extract": self.extract_s, "model": self.model_s, "outputs": self.output_s}
        return {k: 1000 * v / n for k, v in parts.items()} | {"total": 1000 * self.seconds / n}


class Sink:
    """One output of a stream. Each method is called in the run loop's thread; the default does nothing.

    A sink gets what it needs as values (``StreamInfo`` at ``open`` and on every batch, the batch's boxes and
    ``Counters``), not by reaching through ``Stream`` into the scorer, reader or source: those are the engine's."""

    def open(self, info: StreamInfo) -> None:
        """The stream's source is open (its length is known; a live one's rate once it connects); nothing has
        been scored yet."""

    def write(self, batch: Batch) -> None:
        """Scored frames and the events that closed on them (a last batch may hold an event and no frame)."""

    def close(self, stream: Stream) -> None:
        """The stream ended (``stream.stats.stopped`` says why); complete the outputs from ``stream.stats`` and
        ``stream.opened`` (``stream.info`` collects what the sinks add to the summary)."""

    def abort(self, stream: Stream) -> None:
        """The stream failed; drop partial outputs. May come without ``open`` (the source did not open)."""


@dataclass
class Batch:
    stream: Stream
    frames: list[Frame]
    results: list[FrameResult]
    events: list[Event]  # closed on these frames
    messages: list[EventMessage] = field(default_factory=list)  # start / update / end, as they happened
    camera: list[CameraMessage] = field(default_factory=list)  # camera-health start / update / end messages
    taken: float = 0.0  # time.monotonic() when its frames were taken off the source's queue
    info: StreamInfo | None = None  # the stream as it opened (always set by the engine)
    boxes: list[np.ndarray] = field(default_factory=list)  # per frame: its cells' boxes in source pixels
    stats: Counters = field(default_factory=Counters)  # the stream's counters as this batch was handed out


@dataclass
class Stream:
    name: str
    source: Source
    sinks: list[Sink]
    max_frames: int | None = None
    keep_partial: bool = True  # a failed or interrupted stream keeps its outputs (watch) or drops them (score)
    info: dict[str, Any] = field(default_factory=dict)  # whatever the composing command wants its sinks to see
    update_every: float = 5.0  # seconds of source time between an open event's update messages
    stats: StreamStats = field(default_factory=StreamStats)
    scorer: StreamScorer | None = None
    reader: Reader | None = None
    prefetch: Prefetcher | None = None
    opened: StreamInfo | None = None  # what its sinks were given at open
    _t0: float = 0.0
    _seen: float | None = None  # time.monotonic() of its last frame (for the silent check)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"


class Engine:
    """Runs streams through one model; see the module docstring."""

    overlap = True  # False: decode, extract, model one after the other (the speed benchmark's baseline)
    health = True  # camera checks (when the model holds their reference and ``health.enabled``)

    def __init__(self, detector: Detector, batch_frames: int | None = None, fail_fast: bool = True) -> None:
        self.detector = detector
        self.batch = max(1, batch_frames or detector.cfg.score.batch_frames)
        self.fail_fast = fail_fast  # a failed stream raises (watch) or is recorded and the run goes on (score)
        self.interrupted: str | None = None

    def run(self, streams: Iterable[Stream], concurrency: int = 1) -> list[Stream]:
        """Every stream to its end; the streams, with their stats, in the order they were started."""
        done: list[Stream] = []
        for _ in self.batches(streams, concurrency, done):
            pass
        return done

    def batches(self, streams: Iterable[Stream], concurrency: int = 1,
                started: list[Stream] | None = None) -> Iterator[Batch]:  # fmt: skip
        """The run loop as a generator: each batch once its sinks have it (the Python API iterates this).
        ``started`` collects the streams as they start. Stopping the iteration early ends the open streams."""
        todo, active = iter(streams), []
        started = [] if started is None else started
        SIGNALS.running += 1
        try:
            while True:
                SIGNALS.check()
                while len(active) < concurrency and (s := next(todo, None)) is not None:
                    if self._start(s):
                        active.append(s)
                    started.append(s)
                if not active:
                    return
                for batch in self._round(active, 0.1 if len(active) == 1 else 0.02):
                    yield batch
                    SIGNALS.check()
        except KeyboardInterrupt as exc:
            self.interrupted = "terminated" if isinstance(exc, Terminated) else "interrupted"
            for s in active:
                self._end(s, self.interrupted, keep=s.keep_partial)
        except StopRun as stop:
            for s in active:
                self._end(s, stop.reason)
        except GeneratorExit:  # the caller stopped iterating
            for s in active:
                self._end(s, "stopped")
            raise
        finally:
            SIGNALS.running -= 1
            SIGNALS.requested = None

    def _start(self, s: Stream) -> bool:
        s._t0 = time.perf_counter()
        try:
            s.source.analyse_at(self.detector.cfg.patches.analysis_fps)  # the model's motion scale, from any camera
            s.reader = Reader(s.source).start()
            s.scorer = StreamScorer(self.detector, s.update_every, self.health, s.source.live)
            s.opened = StreamInfo.of(s.name, s.source, s.scorer)
            for sink in s.sinks:
                sink.open(s.opened)
            s.prefetch = Prefetcher(s.reader, s.scorer, self.batch, s.max_frames, threaded=self.overlap).start()
        except Exception as exc:
            self._fail(s, exc)
            return False
        return True

    def _round(self, active: list[Stream], wait: float) -> list[Batch]:
        """One pass over the open streams: take what each has prepared, score it all, write each batch."""
        taken = [(s, ready) for s in list(active) if (ready := self._take(s, wait, active))]
        out, now = [], time.monotonic()
        scored = self._score(taken, active) + self._silent(active, {id(s) for s, _ in taken}, now)
        for s, batch in scored:
            batch.taken = now
            try:
                self._write(s, batch)
                out.append(batch)
            except (KeyboardInterrupt, StopRun):
                raise
            except Exception as exc:
                self._drop(s, exc, active)
        return out

    @staticmethod
    def _silent(active: list[Stream], fed: set[int], now: float) -> list[tuple[Stream, Batch]]:
        """The camera messages of the open streams that gave no frame this round (a live one silent too long)."""
        out = []
        for s in active:
            if id(s) not in fed and s.scorer is not None and s._seen is not None:
                if msgs := s.scorer.silence(now - s._seen):
                    out.append((s, Batch(s, [], [], [], camera=msgs)))
        return out

    def _take(self, s: Stream, wait: float, active: list[Stream]) -> list[Prepared]:
        """The batches ``s`` has prepared (ending it, and taking it out of ``active``, at its end or failure)."""
        assert s.prefetch is not None
        try:
            taken = s.prefetch.take(timeout=wait)
            if taken.end is not None:
                active.remove(s)
                if taken.end == END:
                    self._end(s, "lost" if s.source.lost else "end", message=s.source.lost)
                else:
                    self._end(s, "max-frames")
            return taken.batches
        except (KeyboardInterrupt, StopRun):
            raise
        except Exception as exc:
            self._drop(s, exc, active)
            return []

    def _score(self, taken: list[tuple[Stream, list[Prepared]]], active: list[Stream]) -> list[tuple[Stream, Batch]]:
        """Every stream's prepared frames through one forward pass."""
        parts = [p for _, ready in taken for r in ready for p in r.parts]
        if not parts:
            return []
        xs = [p.scores.x for p in parts]
        m = time.perf_counter()  # the forward pass alone, so extract and model time can be told apart
        try:
            scores = self.detector.patch_scores(xs[0] if len(xs) == 1 else torch.cat(xs))
        except Exception as exc:
            for s, _ in taken:
                self._drop(s, exc, active)
            return []
        model, total = time.perf_counter() - m, max(1, len(scores))
        split = iter(np.split(scores, np.cumsum([len(x) for x in xs])[:-1]))
        out = []
        for s, ready in taken:
            assert s.scorer is not None
            t, frames, results, closed, messages, camera = time.perf_counter(), [], [], [], [], []
            for r in ready:
                frames += r.frames
                for p in r.parts:
                    res, c = s.scorer.complete(p, next(split))
                    results += res
                    closed += c
                    messages += s.scorer.messages
                    camera += s.scorer.camera_messages
            share = sum(len(p.scores.x) for r in ready for p in r.parts) / total if len(taken) > 1 else 1.0
            s.stats.model_s += model * share
            s.stats.extract_s += sum(r.seconds for r in ready) + time.perf_counter() - t
            s.stats.frames += len(frames)
            s.stats.flagged = s.scorer.flagged
            self._behind(s, frames)
            if frames:
                s._seen = time.monotonic()
            boxes = [s.scorer.boxes_for(f.image.shape) for f in frames]
            out.append((s, Batch(s, frames, results, closed, messages, camera, boxes=boxes)))
        return out

    @staticmethod
    def _behind(s: Stream, frames: list[Frame]) -> None:
        """How far scoring is behind the source: its drops so far and each frame's lag."""
        if s.reader is not None:
            s.stats.dropped = s.reader.dropped
        s.stats.reconnects = s.source.reconnects
        now = time.monotonic()
        lags = [now - f.arrived for f in frames if f.arrived is not None]
        if lags:
            s.stats.lags.extend(lags)
            s.stats.lag_s = lags[-1]

    def _write(self, s: Stream, batch: Batch) -> None:
        t = time.perf_counter()
        s.stats.events += len(batch.events)
        s.stats.suspended += sum(r.camera is not None for r in batch.results)
        for m in batch.camera:
            if m.type == "start":
                s.stats.camera[m.event.reason] = s.stats.camera.get(m.event.reason, 0) + 1
        st = s.stats
        batch.info = s.opened
        batch.stats = Counters(st.frames, st.dropped, st.drop_rate, st.lag_s, st.reconnects, st.events,
                               s.source.delivered_fps)  # fmt: skip
        for sink in s.sinks:
            sink.write(batch)
        s.stats.output_s += time.perf_counter() - t

    def _finalize(self, s: Stream, stopped: str, message: str | None) -> None:
        if s.prefetch is not None:
            s.prefetch.stop()
        if s.reader is not None:
            s.reader.stop()
            s.stats.dropped = s.reader.dropped
        s.stats.stopped, s.stats.message = stopped, message
        s.stats.reconnects = s.source.reconnects
        s.stats.decoded, s.stats.skipped = s.source.decoded, s.source.skipped
        s.stats.skipped_frames = list(s.source.skipped_frames)
        s.stats.decode_s = s.source.decode_seconds
        s.stats.seconds = time.perf_counter() - s._t0

    def _end(self, s: Stream, stopped: str, message: str | None = None, keep: bool = True) -> None:
        """Close the stream's open event and its sinks (or abort them when ``keep`` is False)."""
        self._finalize(s, stopped, message)
        if not keep or (s.keep_partial and s.stats.frames == 0):  # nothing scored: nothing to keep
            self._abort(s)
            return
        try:
            self._close(s)
        except Exception as exc:
            self._fail(s, exc)

    def _close(self, s: Stream) -> None:
        """The open event closes at its last frame above threshold; then every sink completes its outputs."""
        ev = s.scorer.finish() if s.scorer is not None else None
        camera = list(s.scorer.camera_messages) if s.scorer is not None else []
        if ev is not None or camera:
            self._write(s, Batch(s, [], [], [ev] if ev else [], list(s.scorer.messages), camera))  # type: ignore[union-attr]
        for sink in s.sinks:
            sink.close(s)

    def _abort(self, s: Stream) -> None:
        for sink in s.sinks:
            try:
                sink.abort(s)
            except Exception:  # noqa: S110 - aborting is best effort; the failure is already recorded
                pass

    def _drop(self, s: Stream, exc: Exception, active: list[Stream]) -> None:
        """``s`` failed: out of the open streams, then failed (which raises when ``fail_fast``)."""
        if s in active:
            active.remove(s)
        self._fail(s, exc)

    def _fail(self, s: Stream, exc: Exception) -> None:
        self._finalize(s, "failed", _reason(exc))
        if s.keep_partial and s.stats.frames > 0:
            try:
                self._close(s)  # keep what was written: a watch run that failed still has its files
            except Exception:  # noqa: S110 - the first error is the one to report
                pass
        else:
            self._abort(s)
        if self.fail_fast:
            raise exc
