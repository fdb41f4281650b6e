"""``EventClips``: a stream's sink that keeps a short H.264 clip of every event, for a person to look at.

Each event gets, in the stream's ``events/`` folder (paths from ``clip_paths``):

* ``CAMERA-N.mp4``: the annotated frames (heat map, box, score strip with the threshold) from ``pre_roll``
  seconds before the event's first frame to ``post_roll`` seconds after its last, at the source's timing;
* ``CAMERA-N.jpg``: the annotated peak frame (the review page's snapshot);
* ``CAMERA-N-source.mp4``: the same frames' gray picture, the model's input, stored losslessly
  (``encode.read_gray`` gives it back bit for bit): what ``calibrate --feedback`` scores again when an operator
  labels the event, so the refit sees exactly the scores the live decision saw.

The pre-roll comes from a bounded buffer of the last few seconds of frames (by source time, and at most
``max_buffer_mb``: a camera with large frames gets a shorter pre-roll, said once). Rendering and encoding run in
one worker thread per stream, so an event does not stall scoring; files are written under temporary names
and renamed when the post-roll has passed (or the stream ended), so a clip at its final path is whole.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ognet_video.annotate import Annotator
from ognet_video.clips.encode import H264Writer
from ognet_video.clips.paths import clip_paths
from ognet_video.decide import ASSUMED_FPS, EventMessage
from ognet_video.errors import UserError
from ognet_video.sinks.files import Folder, write_jpeg
from ognet_video.stream.engine import Batch, Sink, Stream
from ognet_video.stream.scoring import FrameResult

MAX_ROLL_S = 60.0  # a pre- or post-roll longer than this is a recording, not an event clip
SLACK_S = 5.0  # buffered beyond the pre-roll: an event's first frame lies k frames and up to a batch back


@dataclass
class ClipSettings:
    """How much of the footage around an event its clip keeps."""

    pre_roll: float = 3.0  # seconds before the event's first frame
    post_roll: float = 3.0  # seconds after its last frame
    max_buffer_mb: float = 256.0  # memory for the pre-roll buffer, per camera

    def check(self) -> ClipSettings:
        """One line naming the option when a roll is negative or longer than a clip should be."""
        for what, v in (("--pre-roll", self.pre_roll), ("--post-roll", self.post_roll)):
            if not 0 <= v <= MAX_ROLL_S:
                raise UserError(f"{what} must be 0 to {MAX_ROLL_S:g} seconds, got {v:g}")
        return self


@dataclass
class _Buffered:
    t: float  # source time, seconds
    image: np.ndarray
    result: FrameResult
    boxes: np.ndarray


class _Recorder:
    """One event's files; used only in the worker thread."""

    def __init__(self, folder: Path, camera: str, number: int, fps: float, threshold: float, cal: Any) -> None:
        paths = clip_paths(camera, number)
        self.paths = {k: folder / v for k, v in paths.items()}
        self.annotated = H264Writer(self.paths["clip"], fps, crf=23)
        self.source = H264Writer(self.paths["source_clip"], fps, gray=True)
        self.annotator = Annotator(threshold, cal)
        self.peak: tuple[float, np.ndarray] | None = None  # highest smoothed score above threshold, and its picture

    def add(self, f: _Buffered) -> None:
        shown = self.annotator.render(f.image, f.result, f.boxes)
        self.annotated.write(shown, f.t)
        self.source.write(f.image, f.t)
        r = f.result
        if r.anomalous and (self.peak is None or r.smoothed > self.peak[0]):
            self.peak = (r.smoothed, shown)

    def finish(self) -> None:
        self.annotated.close()
        self.source.close()
        if self.peak is not None:
            write_jpeg(self.paths["snapshot"], self.peak[1])

    def abort(self) -> None:
        self.annotated.abort()
        self.source.abort()


class EventClips(Sink):
    """See the module doc. ``on_clip``: called (in the worker thread) with each finished clip's path, e.g. to
    apply a retention limit; ``log``: hears a clip that could not be written."""

    def __init__(self, folder: Folder, settings: ClipSettings | None = None,
                 on_clip: Callable[[Path], None] | None = None, log: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.folder, self.settings = folder, settings or ClipSettings()
        self.on_clip, self.log = on_clip, log or (lambda msg: None)
        self.buffer: deque[_Buffered] = deque()
        self._bytes = 0
        self._warned = False
        # events being recorded: number -> source time after which the clip is complete (None until it ends)
        self.active: dict[int, float | None] = {}
        self.written = 0
        self._queue: queue.Queue[tuple[str, int, Any]] = queue.Queue(maxsize=512)
        self._thread: threading.Thread | None = None
        self._recorders: dict[int, _Recorder] = {}  # worker thread only
        self._make: Callable[[int], _Recorder] | None = None

    # run-loop side
    def write(self, batch: Batch) -> None:
        info = batch.info
        if info is None:
            return
        if self._make is None:
            fps = batch.stats.source_fps or ASSUMED_FPS / info.stride
            threshold, cal, camera = info.threshold, info.cal, info.name
            self._make = lambda n: _Recorder(self.folder.path, camera, n, fps, threshold, cal)
            self._fps = fps
        by_frame: dict[int, list[EventMessage]] = {}
        for m in batch.messages:
            by_frame.setdefault(m.frame, []).append(m)
        for f, r, boxes in zip(batch.frames, batch.results, batch.boxes, strict=True):
            t = f.time if f.time is not None else f.index / self._fps
            item = _Buffered(t, f.image, r, boxes)
            self._remember(item)
            for n, until in self.active.items():
                if until is None or t <= until:
                    self._put("frame", n, item)
            for m in by_frame.pop(f.index, []):
                self._message(m)
            self._finish_passed(t)
        for ms in by_frame.values():  # made on no frame of this batch (the stream's end closes an open event)
            for m in ms:
                self._message(m)

    def _message(self, m: EventMessage) -> None:
        ev = m.event
        if m.type == "start":
            start = ev.start_time if ev.start_time is not None else ev.start / self._fps
            self.active[m.number] = None
            self._put("open", m.number, None)
            for item in self.buffer:
                if item.t >= start - self.settings.pre_roll - 1e-6:
                    self._put("frame", m.number, item)
        elif m.type == "end" and m.number in self.active:
            end = ev.end_time if ev.end_time is not None else ev.end / self._fps
            self.active[m.number] = end + self.settings.post_roll + 1e-6

    def _finish_passed(self, t: float) -> None:
        for n in [n for n, until in self.active.items() if until is not None and t >= until]:
            del self.active[n]
            self._put("finish", n, None)

    def _remember(self, item: _Buffered) -> None:
        self.buffer.append(item)
        self._bytes += item.image.nbytes
        keep = self.settings.pre_roll + SLACK_S
        limit = self.settings.max_buffer_mb * 1e6
        while len(self.buffer) > 1 and (self.buffer[0].t < item.t - keep or self._bytes > limit):
            if self._bytes > limit and self.buffer[0].t >= item.t - self.settings.pre_roll and not self._warned:
                self._warned = True
                self.log(f"event clips: frames of {item.image.shape[1]}x{item.image.shape[0]} fill the "
                         f"{self.settings.max_buffer_mb:g} MB pre-roll buffer in less than "
                         f"{self.settings.pre_roll:g} s; clips get a shorter pre-roll")  # fmt: skip
            self._bytes -= self.buffer.popleft().image.nbytes

    def _put(self, op: str, number: int, item: Any) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="event-clips", daemon=True)
            self._thread.start()
        self._queue.put((op, number, item))

    def close(self, stream: Stream) -> None:
        for n in list(self.active):
            self._put("finish", n, None)
        self.active.clear()
        self._stop()
        stream.info["clips"] = self.written

    def abort(self, stream: Stream) -> None:
        for n in list(self.active):
            self._put("abort", n, None)
        self.active.clear()
        self._stop()

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(("stop", 0, None))
            self._thread.join()
            self._thread = None

    # worker side
    def _work(self) -> None:
        while True:
            op, n, item = self._queue.get()
            if op == "stop":
                return
            try:
                self._do(op, n, item)
            except Exception as exc:  # noqa: BLE001 - a clip that cannot be written never stops scoring
                rec = self._recorders.pop(n, None)
                if rec is not None:
                    rec.abort()
                self.log(f"event clip {n} not written: {exc}")

    def _do(self, op: str, n: int, item: Any) -> None:
        if op == "open":
            assert self._make is not None
            self._recorders[n] = self._make(n)
        elif op == "frame" and n in self._recorders:
            self._recorders[n].add(item)
        elif op == "finish" and n in self._recorders:
            rec = self._recorders.pop(n)
            rec.finish()
            self.written += 1
            if self.on_clip is not None:
                self.on_clip(rec.paths["clip"])
        elif op == "abort" and n in self._recorders:
            self._recorders.pop(n).abort()
