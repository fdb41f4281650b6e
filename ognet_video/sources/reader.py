"""``Reader``: a source decoded in its own thread into a bounded queue, so scoring never waits on I/O.

Recorded sources are read completely (the thread waits while the queue is full). Live sources keep the
newest frames instead: when the consumer falls behind, the oldest queued frame is dropped and counted.
Errors of the thread (an unreadable frame, a camera that never connected) are raised to the consumer.

Dropping never changes a score: before a frame is queued it is given its ``step`` on the analysis grid and the
image delivered just before it (``Frame.prev``), so the scorer measures motion over one analysis interval and
smooths over source time even when the frames between two scored ones were dropped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

from ognet_video.errors import UserError
from ognet_video.sources.base import Frame, Source

_END = object()  # queue sentinel: the thread is done
STALL_SECONDS = 60.0  # a recorded source that yields no frame for this long fails (a hung disk or decoder)


def stop_worker(stop: threading.Event, q: queue.Queue, thread: threading.Thread | None, timeout: float = 2.0) -> None:
    """Stop a producer thread that feeds a bounded queue: set ``stop``, empty the queue (a producer blocked on a
    full one wakes up and sees ``stop``), and wait for it, unless it is the caller itself or never started."""
    stop.set()
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            break
    if thread is not None and thread.is_alive() and thread is not threading.current_thread():  # never started: none
        thread.join(timeout=timeout)


class Reader:
    def __init__(self, source: Source, queue_size: int | None = None, stall_seconds: float = STALL_SECONDS) -> None:
        self.source = source
        self.stall_seconds = stall_seconds  # recorded sources: no frame for this long fails the source, with a line
        self._last_item = 0.0
        # live: a few frames of slack so several can be batched with little latency; recorded: read ahead
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size or (4 if source.live else 32))
        self.dropped = 0
        self.delivered = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = False
        self._started_at = 0.0

    def start(self) -> Reader:
        """Open the source (recorded ones that cannot be read fail here) and start its thread."""
        self.source.open()
        self._started_at = self._last_item = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"reader:{self.source.display}", daemon=True)
        self._thread.start()
        return self

    def get_batch(self, max_frames: int, timeout: float = 0.1) -> list[Frame] | None:
        """Up to ``max_frames`` frames, waiting at most ``timeout`` for the first; [] when none came yet, None at
        the end of the source. A live source gives what is queued; a recorded one a full batch (fewer only at
        its end), so a clip is always scored in the same chunks, whatever the decoder's pace."""
        if self._ended:
            return self._end()
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            self._check_connect_deadline()
            self._check_stall()
            return []
        self._last_item = time.monotonic()
        batch: list[Frame] = []
        while True:
            if item is _END:
                self._ended = True
                break
            batch.append(item)
            if len(batch) >= max_frames:
                break
            try:
                item = self.queue.get_nowait() if self.source.live else self.queue.get(timeout=self.stall_seconds)
            except queue.Empty:
                break
        if not batch:
            return self._end()
        self.delivered += len(batch)
        return batch

    def __iter__(self) -> Iterator[Frame]:
        while (batch := self.get_batch(1, timeout=0.5)) is not None:
            yield from batch

    def stop(self) -> None:
        """Stop the thread and release the source (safe to call twice)."""
        stop_worker(self._stop, self.queue, self._thread)
        if self._thread is None or not self._thread.is_alive():
            self.source.close()

    def __enter__(self) -> Reader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _end(self) -> None:
        if self.error is not None:
            raise self.error
        return None

    def _check_connect_deadline(self) -> None:
        # the opener may block inside FFmpeg; this bound holds whatever the thread is doing
        src = self.source
        limit = getattr(src, "connect_timeout", None)
        if src.live and limit is not None and not src.connected and self.error is None:
            if time.monotonic() - self._started_at > limit + 1.0:
                self._stop.set()
                raise UserError(src.never_connected())  # type: ignore[attr-defined]

    def _check_stall(self) -> None:
        # a recorded source is read as fast as it goes: a long silence is a hung read, not a slow camera
        src = self.source
        if not src.live and self.error is None and time.monotonic() - self._last_item > self.stall_seconds:
            self._stop.set()
            raise UserError(f"{src.kind} {src.display!r} gave no frame for {self.stall_seconds:g} s (a hung disk, "
                            "network share or decoder?); check that it can be read")

    def _run(self) -> None:
        try:
            last: Frame | None = None
            link_start: Frame | None = None
            for frame in self.source.frames(self._stop):
                if last is None or frame.link == last.link:
                    frame.step = last.step + 1 if last is not None else 0
                    frame.prev = last.image if last is not None else None
                else:  # a reconnect: no predecessor, and the steps skip the time the source was away
                    frame.step = last.step + 1 + self._missed_steps(link_start, last, frame)
                    link_start = None
                link_start = link_start or frame
                last = frame
                frame.arrived = time.monotonic()
                self._put(frame)
        except Exception as exc:  # handed to the consumer, raised by get_batch
            self.error = exc
        finally:
            self.source.close()
            self._put(_END, drop=False)

    def _missed_steps(self, first: Frame | None, last: Frame, frame: Frame) -> int:
        """Analysis steps that fit between ``last`` and ``frame`` (a gap), at the rate of the last link; a recorded
        source (a frame skipped after a link of one frame) at the rate it delivers."""
        if last.time is None or frame.time is None:
            return 0
        if first is not None and first.time is not None and last.step > first.step:
            interval = (last.time - first.time) / (last.step - first.step)
        elif not self.source.live and self.source.delivered_fps:
            interval = 1.0 / self.source.delivered_fps
        else:
            return 0
        if interval <= 0:
            return 0
        return max(0, round((frame.time - last.time) / interval) - 1)

    def _put(self, item: object, drop: bool | None = None) -> None:
        """Blocking put for recorded sources; for live ones drop the oldest queued frame instead of waiting."""
        drop = self.source.live if drop is None else drop
        while True:
            if drop:
                try:
                    self.queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        if self.queue.get_nowait() is not _END:
                            self.dropped += 1
                    except queue.Empty:
                        pass
            else:
                if self._stop.is_set() and item is not _END:
                    return
                try:
                    self.queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    if self._stop.is_set():
                        return
