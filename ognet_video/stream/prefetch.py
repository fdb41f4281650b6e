"""``Prefetcher``: a stream's next batches prepared for the model (resize, frame difference, optical flow, the
moving patches) in their own thread while the run loop scores the current one, so decode, flow and the model
overlap on separate cores instead of running one after the other.

Why the results stay bit-identical: the prefetcher is the only caller of the stream scorer's ``prepare``
(the motion state: the previous frame) and the run loop the only caller of its ``complete`` (smoothing,
threshold, events); the two halves share no state, and batches are cut exactly as before (a recorded source
in full batches, a live one in what is queued). OpenCV and torch release the GIL, so the threads really run
at once. A small bounded queue between the two keeps memory flat; when scoring is behind a live camera the
reader drops its oldest frames, as it did before.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from ognet_video.sources import Frame, Reader
from ognet_video.sources.reader import stop_worker
from ognet_video.stream.scoring import PendingPush, StreamScorer

END, MAX_FRAMES = "end", "max-frames"  # why a stream ended: its source ended, or ``max_frames`` were taken


@dataclass
class Prepared:
    """One batch of a stream's frames, ready for the forward pass (one part per connection of a live source)."""

    frames: list[Frame]
    parts: list[PendingPush]
    seconds: float  # spent preparing it


@dataclass
class Taken:
    """What one ``take`` hands the run loop: the batches prepared by now, or (with none) why the stream ended."""

    batches: list[Prepared]
    end: str | None = None  # END or MAX_FRAMES once everything was taken


class Prefetcher:
    def __init__(self, reader: Reader, scorer: StreamScorer, batch: int, max_frames: int | None = None,
                 depth: int = 2, threaded: bool = True) -> None:  # fmt: skip
        self.threaded = threaded  # False: each batch is prepared inside ``take`` (the stages one after the other)
        self.reader, self.scorer, self.batch, self.max_frames = reader, scorer, batch, max_frames
        self.queue: queue.Queue[Prepared | str | BaseException] = queue.Queue(maxsize=depth)
        self.taken = 0  # frames taken off the reader
        self._held: Prepared | str | BaseException | None = None  # taken off the queue, not yet handed out
        self._link = 0
        self._last_step = -1  # the step of the last frame prepared
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"prefetch:{reader.source.display}", daemon=True)

    def start(self) -> Prefetcher:
        if self.threaded:
            self._thread.start()
        return self

    def take(self, timeout: float) -> Taken:
        """The batches prepared by now, up to ``batch`` frames in all (waiting at most ``timeout`` for the first;
        none when none came): a recorded source gives one full batch per call, as scoring it alone did. Once
        everything is taken, no batch and ``end`` set; an error of the reader or of preparing is raised here, in
        the run loop's thread, after the batches prepared before it."""
        if self._held is None:
            try:
                self._held = self.queue.get(timeout=timeout) if self.threaded else self._step(timeout)
            except queue.Empty:
                return Taken([])
            if self._held is None:
                return Taken([])
        out: list[Prepared] = []
        while self._held is not None:
            item = self._held
            if isinstance(item, str):
                return Taken(out) if out else Taken([], item)  # the end stays held for the next call
            if isinstance(item, BaseException):
                if out:
                    return Taken(out)
                raise item
            if out and sum(len(p.frames) for p in out) + len(item.frames) > self.batch:
                return Taken(out)
            out.append(item)
            try:
                self._held = self.queue.get_nowait() if self.threaded else None
            except queue.Empty:
                self._held = None
        return Taken(out)

    def stop(self) -> None:
        """Stop the thread (safe to call twice); the caller stops the reader."""
        stop_worker(self._stop, self.queue, self._thread)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._step()
            if item is not None:
                self._put(item)
                if not isinstance(item, Prepared):
                    return

    def _step(self, timeout: float = 0.1) -> Prepared | str | BaseException | None:
        """The next item for the queue: a prepared batch, the end, an error; None when no frame came."""
        try:
            want = self.batch if self.max_frames is None else min(self.batch, self.max_frames - self.taken)
            if want <= 0:
                return MAX_FRAMES
            frames = self.reader.get_batch(want, timeout=timeout)
            if frames is None:
                return END
            if not frames:
                return None
            self.taken += len(frames)
            t = time.perf_counter()
            parts = self._prepare(frames)
            return Prepared(frames, parts, time.perf_counter() - t)
        except BaseException as exc:  # noqa: BLE001 - handed to the run loop, which decides
            return exc

    def _prepare(self, frames: list[Frame]) -> list[PendingPush]:
        """One part per run of frames that follow each other: a frame whose predecessor was dropped (or lies
        across a reconnect) starts a part of its own, its motion measured from that predecessor (or none)."""
        parts: list[PendingPush] = []
        run: list[Frame] = []
        for f in frames:
            follows = f.link == self._link and (f.step < 0 or f.step == self._last_step + 1)
            if not follows:
                if run:
                    parts.append(self._part(run))
                    run = []
                self.scorer.break_motion(f.prev if f.link == self._link else None)
                self._link = f.link
            self._last_step = f.step
            run.append(f)
        if run:
            parts.append(self._part(run))
        return parts

    def _part(self, run: list[Frame]) -> PendingPush:
        steps = [f.step for f in run] if run[0].step >= 0 else None
        return self.scorer.prepare([f.image for f in run], [f.time for f in run], [f.index for f in run], steps)

    def _put(self, item: Prepared | str | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
