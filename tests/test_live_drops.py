"""A live source that delivers frames faster than the model scores them: the reader drops frames, and every
frame that is scored gets exactly the scores it gets from the file; its events are those of the file's scores
at the scored frames' times."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fake_camera import ImageCapture, one_connection

from ognet_video.data.synthetic import write_walkway
from ognet_video.decide import CausalSmoother, EventTracker
from ognet_video.errors import UserError
from ognet_video.sources.images import read_gray
from ognet_video.sources.live import NetworkStream
from ognet_video.stream.engine import Engine, Stream
from ognet_video.stream.scoring import StreamScorer


class SlowDetector:
    """The detector with a forward pass slow enough that a live camera outruns it."""

    def __init__(self, det, seconds: float) -> None:
        self._det, self.seconds = det, seconds

    def __getattr__(self, name: str):
        return getattr(self._det, name)

    def patch_scores(self, x):
        time.sleep(self.seconds)
        return self._det.patch_scores(x)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, detector) -> tuple[list[np.ndarray], list[int]]:
    """60 frames of a walkway whose planted anomaly the tiny model flags from the file."""
    root = write_walkway(tmp_path_factory.mktemp("drops"), train_clips=0, test_clips=4, frames=60, seed=1)
    import json

    labels = json.loads((root / "testing" / "labels.json").read_text())
    for name, lab in labels.items():
        frames = [read_gray(p) for p in sorted((root / "testing" / "frames" / name).glob("*.jpg"))]
        _, events = StreamScorer(detector).push(frames)
        if events and all(any(lab[e.start : e.end + 1]) for e in events):
            return frames, lab
    pytest.fail("setup: the tiny model flags the planted anomaly in none of the candidate clips")


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


def test_dropped_frames_never_change_a_score(detector, clip):
    frames, labels = clip
    ref, ref_events = StreamScorer(detector).push(frames)  # the file: every frame, one after the other
    assert any(labels[e.start : e.end + 1].count(1) for e in ref_events)  # the detector detects, from the file

    opener = one_connection(lambda: ImageCapture(frames, delay=0.01))  # ~100 fps, then gone
    source = NetworkStream("rtsp://cam.local/live", opener=opener, reconnect_timeout=0.2)
    stream = Stream("cam", source, [])
    results, events = [], []
    for batch in Engine(SlowDetector(detector, 0.08)).batches([stream]):
        results += batch.results
        events += batch.events
    dropped = stream.stats.dropped
    assert dropped > 5 and len(results) >= 10, (dropped, len(results))  # the camera outran the model
    assert len(results) + dropped == len(frames)
    for r in results:  # raw and calibrated scores: exactly the file's, dropped neighbours or not
        f = ref[r.index]
        assert _same(r.raw, f.raw) and _same(r.score, f.score), (r.index, r.raw, f.raw, r.score, f.score)

    # the decision over source time: the file's calibrated scores at the scored frames give the same
    # smoothed scores and the same events
    sc, cal = detector.cfg.score, detector.calibration
    idx = [r.index for r in results]
    sm = CausalSmoother(sc.causal_window, cal.empty)(np.array([ref[i].score for i in idx]), idx)
    assert all(_same(a, r.smoothed) for a, r in zip(sm, results, strict=True))
    tracker = EventTracker(sc.event_frames)
    for i, s in zip(idx, sm, strict=True):
        tracker.update(i, float(s), bool(s > cal.threshold), step=i)
    tracker.finish()
    expect = [(e.start, e.end, e.peak_frame) for e in tracker.closed]
    assert [(e.start, e.end, e.peak_frame) for e in events] == expect


def test_smoothing_spans_source_time_not_frames_seen():
    """A window of 3 steps: with frames 1 and 2 missing, frame 3's mean is over frame 3 alone."""
    full = CausalSmoother(3)(np.array([1.0, 2.0, 3.0, 4.0]))
    assert list(full) == [1.0, 1.5, 2.0, 3.0]
    gappy = CausalSmoother(3)(np.array([1.0, 4.0]), [0, 3])
    assert list(gappy) == [1.0, 4.0]
    chunked = CausalSmoother(3)
    assert list(chunked(np.array([1.0]), [0])) + list(chunked(np.array([3.0, 4.0]), [2, 3])) == [1.0, 2.0, 3.5]
    long_gap = CausalSmoother(3)
    long_gap(np.array([5.0]), [0])
    assert list(long_gap(np.array([1.0]), [10_000_000])) == [1.0] and long_gap.tail.size == 2


def test_events_count_steps_across_dropped_frames():
    """k = 3: frames above at steps 0 and 2 (1 dropped) open an event; a frame below 3 steps after the last one
    above closes it, however few frames were seen in between."""
    t = EventTracker(3)
    assert t.update(0, 2.0, True, step=0) is None and t.open is None
    assert t.update(2, 3.0, True, step=2) is None and t.open is not None and t.open.start == 0
    assert t.update(4, 0.0, False, step=4) is None and t.open is not None  # 2 steps below: still open
    ev = t.update(5, 0.0, False, step=5)
    assert ev is not None and (ev.start, ev.end, ev.peak_frame) == (0, 2, 2)


def test_falling_behind_is_visible(detector, clip, tmp_path, monkeypatch):
    """One warning when the camera first drops frames; the drop rate, the scored share of its time and the lag
    in the summary."""
    import io
    import json

    from rich.console import Console

    from ognet_video.watch import WatchOptions, watch

    frames, _ = clip
    real = detector.patch_scores
    monkeypatch.setattr(detector, "patch_scores", lambda x: (time.sleep(0.08), real(x))[1])
    opener = one_connection(lambda: ImageCapture(frames, delay=0.01))
    out = io.StringIO()
    opts = WatchOptions(reconnect_timeout=0.2, live_panel=False)
    res = watch("rtsp://cam.local/live", detector, opts, project=tmp_path, opener=opener,
                console=Console(file=out, width=300))  # fmt: skip
    text = out.getvalue()
    assert res.dropped > 0 and text.count("warning: cam.local") + text.count("warning: rtsp") == 1, text
    summary = json.loads((res.run_dir / "summary.json").read_text())
    rate = res.dropped / (res.dropped + res.frames)
    assert summary["drop_rate"] == pytest.approx(rate, abs=1e-4)
    assert summary["scored_share"] == pytest.approx(1 - rate, abs=1e-4)
    assert summary["lag"]["p95_ms"] >= summary["lag"]["p50_ms"] > 0
    assert f"{100 * rate:.1f}% " in text or f"= {100 * rate:.1f}%" in text


def test_the_reader_gives_each_frame_its_step_and_predecessor():
    """Steps count the source's frames on the analysis grid; after a reconnect they skip the time away and the
    first frame has no predecessor (motion is not measured across the gap)."""
    from ognet_video.sources.base import Frame, Source
    from ognet_video.sources.reader import Reader

    class Scripted(Source):
        kind = "stream"

        def frames(self, stop=None):
            for i in range(4):  # 10 fps, then 1 s away, then 10 fps again
                yield Frame(i, 0.1 * i, np.full((4, 4), i, np.uint8), 0)
            for i in range(4, 6):
                yield Frame(i, 1.3 + 0.1 * (i - 4), np.full((4, 4), i, np.uint8), 1)

    got = list(Reader(Scripted("x")).start())
    assert [f.step for f in got] == [0, 1, 2, 3, 13, 14]
    assert got[0].prev is None and got[4].prev is None
    assert [int(f.prev[0, 0]) for f in got if f.prev is not None] == [0, 1, 2, 4]


def test_a_recorded_source_that_stalls_fails_in_one_line_and_never_blocks():
    """A recorded source whose read hangs (a stuck disk, share or decoder) fails after its bound, with a line."""
    from ognet_video.sources.base import Frame, Source
    from ognet_video.sources.reader import Reader

    class Hangs(Source):
        kind = "video"

        def frames(self, stop=None):
            yield Frame(0, 0.0, np.zeros((4, 4), np.uint8))
            stop.wait(30)  # a read that never returns (until the reader gives up)

    reader = Reader(Hangs("stuck.mp4"), stall_seconds=0.5).start()
    t = time.monotonic()
    got = []
    with pytest.raises(UserError, match=r"'stuck.mp4' gave no frame for 0.5 s"):
        while (batch := reader.get_batch(4, timeout=0.1)) is not None:
            got += batch
    reader.stop()
    assert len(got) == 1 and time.monotonic() - t < 5
