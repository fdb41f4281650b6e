"""Sources: naming, the threaded reader's queue policies, reconnects and bounded connect waits.

Live behaviour is tested with fake captures injected through ``open_source(opener=...)``: a camera
that fails mid-stream, one that never opens, one whose open call hangs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ognet_video.data import read_gray
from ognet_video.errors import UserError
from ognet_video.sources import Reader, display_source, open_source, source_kind, source_name


class FakeCapture:
    """Frames numbered ``start..start+n-1`` (pixel value = number % 256), then read() fails like a dropped link."""

    def __init__(self, start: int, n: int, delay: float = 0.0) -> None:
        self.next, self.stop, self.delay = start, start + n, delay
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.next >= self.stop:
            return False, None
        if self.delay:
            time.sleep(self.delay)
        img = np.full((24, 32, 3), self.next % 256, dtype=np.uint8)
        self.next += 1
        return True, img

    def grab(self) -> bool:
        return self.read()[0]

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


class ScriptedOpener:
    """Opens captures from a script: a list of (start, n) segments or None for 'cannot open'."""

    def __init__(self, script: list[tuple[int, int] | None], delay: float = 0.0) -> None:
        self.script, self.delay, self.calls = list(script), delay, 0
        self.opened: list[FakeCapture] = []

    def __call__(self, spec: str) -> FakeCapture:
        self.calls += 1
        step = self.script.pop(0) if self.script else None
        if step is None:
            raise UserError(f"cannot open stream source {spec!r}")
        cap = FakeCapture(*step, delay=self.delay)
        self.opened.append(cap)
        return cap


def FrameReader(spec: str, queue_size: int | None = None, **kw) -> Reader:  # noqa: N802 - reads like a class
    """A source by its spec in a reader thread: how ``watch`` and ``score`` read it."""
    return Reader(open_source(spec, **kw), queue_size)


def pixel(frame) -> int:
    return int(frame.image[0, 0, 0])


def test_source_kinds_names_and_masked_passwords(tmp_path):
    folder = tmp_path / "cam 7"
    folder.mkdir()
    video = tmp_path / "lobby.mp4"
    video.write_bytes(b"")
    assert source_kind("0") == "webcam" and source_name("0") == "webcam0"
    assert source_kind(str(folder)) == "folder" and source_name(str(folder)) == "cam_7"
    assert source_kind(str(video)) == "video" and source_name(str(video)) == "lobby"
    assert source_kind(f"{folder}/*.jpg") == "glob" and source_name(f"{folder}/*.jpg") == "cam_7"
    url = "rtsp://admin:hunter2@10.0.0.5:554/live/ch1"
    assert source_kind(url) == "stream" and source_name(url) == "10.0.0.5"
    assert "hunter2" not in display_source(url) and display_source(url).startswith("rtsp://admin:***@10.0.0.5:554")
    with pytest.raises(UserError, match="does not exist"):
        FrameReader(str(tmp_path / "missing.mp4"))


def test_folder_reader_matches_eval_frames_and_strides(walkway_ds):
    clip = walkway_ds.test[0]
    folder = str(clip.frames[0].parent)
    with FrameReader(folder, queue_size=3) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == list(range(len(clip)))
    assert all(np.array_equal(f.image, read_gray(p)) for f, p in zip(frames, clip.frames, strict=True))
    assert frames[5].time == pytest.approx(0.5) and reader.dropped == 0
    with FrameReader(folder, stride=3, fps=5.0) as reader:
        strided = list(reader)
    assert [f.index for f in strided] == list(range(0, len(clip), 3)) and reader.source.total == len(strided)
    assert strided[1].time == pytest.approx(3 / 5.0)


def test_video_file_reader_with_small_queue_loses_nothing(tmp_path, walkway_ds):
    """A recorded file is read completely even when the consumer is slower than the decoder."""
    path = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (360, 240))
    for f in walkway_ds.test[0].frames:
        w.write(cv2.cvtColor(read_gray(f), cv2.COLOR_GRAY2BGR))
    w.release()
    reader = FrameReader(str(path), queue_size=2).start()
    got = []
    while (batch := reader.get_batch(4, timeout=1.0)) is not None:
        got += batch
        time.sleep(0.005)
    reader.stop()
    n = len(walkway_ds.test[0])
    assert [f.index for f in got] == list(range(n)) and reader.dropped == 0 and reader.source.total == n
    assert got[0].image.shape == (240, 360, 3) and got[3].time == pytest.approx(0.3)
    reader = FrameReader(str(path), stride=4).start()
    assert [f.index for f in reader] == list(range(0, n, 4))
    reader.stop()


def test_live_source_keeps_the_newest_frames_and_counts_drops():
    opener = ScriptedOpener([(0, 120)])
    reader = FrameReader("rtsp://cam.local/stream", opener=opener, queue_size=3, reconnect_timeout=0.0).start()
    got = []
    while (batch := reader.get_batch(2, timeout=1.0)) is not None:
        got += batch
        time.sleep(0.01)  # a scorer slower than the camera
    reader.stop()
    idx = [f.index for f in got]
    assert reader.dropped > 0 and len(got) + reader.dropped == 120
    assert idx == sorted(idx) and idx[-1] == 119  # never reordered; the newest frame survives
    assert all(pixel(f) == f.index for f in got)
    assert reader.source.lost and "lost" in reader.source.lost


def test_dropped_connection_reconnects_with_backoff_and_keeps_numbering():
    logs: list[str] = []
    opener = ScriptedOpener([(0, 10), None, (10, 10)], delay=0.002)
    reader = FrameReader("rtsp://cam.local/stream", opener=opener, queue_size=64, reconnect_timeout=0.3,
                         backoff=(0.02, 0.05), log=logs.append).start()  # fmt: skip
    frames = list(reader)
    reader.stop()
    assert [f.index for f in frames] == list(range(20)) and reader.dropped == 0
    assert [pixel(f) for f in frames] == list(range(20))  # the second link's frames follow the first's
    assert reader.source.reconnects == 1 and opener.opened[0].released
    assert any("reconnecting in 0.0" in m for m in logs) and any("reconnected after 2 attempts" in m for m in logs)
    assert sum("reconnecting" in m for m in logs) >= 3  # lost twice: 1 failed try, then the final give-up tries
    assert reader.source.lost is not None and reader.error is None
    times = [f.time for f in frames]
    assert times == sorted(times)


def test_stream_that_never_connects_fails_within_the_bound():
    opener = ScriptedOpener([])
    reader = FrameReader("rtsp://nowhere/stream", opener=opener, connect_timeout=0.4, backoff=(0.05, 0.1)).start()
    t = time.monotonic()
    with pytest.raises(UserError, match="did not connect within 0.4 s"):
        list(reader)
    assert time.monotonic() - t < 2.0 and opener.calls >= 3  # it kept retrying until the bound
    reader.stop()


def test_hung_open_call_still_fails_within_the_bound():
    """FFmpeg may block inside open(); the consumer's own deadline holds regardless."""
    release = threading.Event()

    def hang(spec: str):
        release.wait(10)
        raise UserError("unreachable")

    reader = FrameReader("rtsp://blackhole/stream", opener=hang, connect_timeout=0.3).start()
    t = time.monotonic()
    with pytest.raises(UserError, match="did not connect"):
        list(reader)
    assert time.monotonic() - t < 3.0  # connect_timeout + 1 s grace + polling
    release.set()
    reader.stop()


def test_webcam_that_cannot_open_fails_at_once():
    opener = ScriptedOpener([])
    reader = FrameReader("3", opener=opener, connect_timeout=30).start()
    t = time.monotonic()
    with pytest.raises(UserError, match="cannot open"):
        list(reader)
    assert time.monotonic() - t < 1.5 and opener.calls == 1
    reader.stop()


def test_not_a_video_and_empty_folder_are_user_errors(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(UserError, match="cannot open video source"):
        FrameReader(str(bad)).start()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no images"):
        FrameReader(str(empty)).start()


def test_unreadable_frame_mid_folder_is_skipped_with_a_warning(tmp_path, walkway_ds):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(walkway_ds.test[0].frames[:6]):
        (folder / f"{i:03d}.jpg").write_bytes(Path(f).read_bytes())
    (folder / "004.jpg").write_bytes(b"broken")
    heard: list[str] = []
    with FrameReader(str(folder), log=heard.append) as reader:
        got = [f.index for f in reader]
    assert got == [0, 1, 2, 3, 5]
    assert len(heard) == 1 and "cannot read frame" in heard[0] and "004.jpg" in heard[0]
