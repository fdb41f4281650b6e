"""H.264 MP4 files that a browser plays, written with PyAV (its wheels carry FFmpeg with libx264).

OpenCV's wheels encode only mp4v (MPEG-4 part 2), which browsers do not play; an event clip is for a person on
the review page, so it is H.264 (yuv420p, ``+faststart`` so the player can start before the file is loaded).
Each file is written to a temporary name in its folder and renamed when complete: a file at the final path
is whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ognet_video.errors import writing
from ognet_video.patches import to_gray


class H264Writer:
    """Frames (gray or BGR uint8) -> ``path``; the first frame fixes the size (later ones are resized to it).

    ``fps``: the clip's frame rate (a frame's duration is 1/fps). ``crf``: x264's quality (lower is better;
    23 is its default). ``preset``: x264's speed; ultrafast costs a quarter of veryfast's time per frame for
    files about twice as large, and clips are encoded while the model scores. ``gray``: store the frames' gray picture losslessly (H.264 4:0:0 at qp 0) instead: the
    model's own input, bit for bit (``read_gray``), for footage that is to be scored again; browsers do not
    play it."""

    def __init__(self, path: Path, fps: float, crf: int = 23, preset: str = "ultrafast", gray: bool = False) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 10.0
        self.crf, self.preset, self.gray = crf, preset, gray
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial.mp4")
        self.frames = 0
        self._pts = -1  # the last frame's presentation time, in frame intervals
        self._t0: float | None = None  # the first frame's source time
        self._out = None
        self._stream = None
        self._size: tuple[int, int] | None = None

    def _open(self, w: int, h: int) -> None:
        import av  # the encoder: only when a clip is written

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with writing(self.tmp):
            self._out = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._out.add_stream("libx264", rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "gray" if self.gray else "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.options = {"qp": "0", "preset": self.preset} if self.gray else {"crf": str(self.crf), "preset": self.preset}
        stream.codec_context.thread_count = 1  # clips are encoded off the scoring thread: leave the cores to it
        self._stream, self._size = stream, (w, h)

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Append a frame. ``time``: its source time in seconds; a frame that came later than one interval after
        the previous (a live source dropped some) is shown for longer, so the clip keeps the source's timing."""
        import av
        import cv2

        if self.gray:
            img = to_gray(image)
        else:
            img = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[..., :3]
        if self._size is None:
            h, w = img.shape[:2]
            self._open(w, h) if self.gray else self._open(w + w % 2, h + h % 2)  # yuv420p wants even sizes
        assert self._size is not None and self._stream is not None and self._out is not None
        if (img.shape[1], img.shape[0]) != self._size:
            img = cv2.resize(img, self._size, interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="gray" if self.gray else "bgr24")
        if time is not None and self._t0 is None:
            self._t0 = time
        pts = self._pts + 1 if time is None or self._t0 is None else round((time - self._t0) * self.fps)
        self._pts = frame.pts = max(pts, self._pts + 1)
        with writing(self.tmp):
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Flush the encoder and move the file into place; None when no frame was written."""
        if self._out is None:
            return None
        assert self._stream is not None
        with writing(self.tmp):
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            self._out.close()
        self._out = None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # noqa: BLE001 - the file is dropped either way
                pass
            self._out = None
        self.tmp.unlink(missing_ok=True)


def read_gray(path: Path) -> Iterator[tuple[np.ndarray, float | None]]:
    """The frames of a ``gray`` clip as written (each picture's luma plane, untouched: a decoder's conversion to
    RGB would stretch it as video-range luma) with their times in seconds."""
    import av

    with av.open(str(path)) as container:
        for f in container.decode(video=0):
            plane = f.planes[0]
            y = np.frombuffer(plane, np.uint8).reshape(f.height, plane.line_size)[:, : f.width]
            yield y.copy(), f.time


def write_h264(path: Path, frames: list[np.ndarray], fps: float = 10.0, crf: int = 23) -> Path:
    """``frames`` as one H.264 MP4 at ``path`` (atomic)."""
    w = H264Writer(path, fps, crf)
    try:
        for f in frames:
            w.write(f)
    except BaseException:
        w.abort()
        raise
    out = w.close()
    assert out is not None, "write_h264 needs at least one frame"
    return out
