"""The prefetcher overlaps preparing the next batch with scoring this one, and changes no result."""

from __future__ import annotations

import threading

import pytest

from ognet_video.sources import Reader, open_source
from ognet_video.stream.engine import Engine, Stream
from ognet_video.stream.prefetch import END, Prefetcher, Taken
from ognet_video.stream.scoring import StreamScorer


def _rows(detector, clip, max_frames=None, batch=None) -> tuple[list[tuple], Stream]:
    stream = Stream("c", open_source(clip), [], max_frames=max_frames)
    rows = [
        (r.index, r.raw, r.score, r.smoothed, r.anomalous, r.worst_box)
        for b in Engine(detector, batch).batches([stream])
        for r in b.results
    ]
    return rows, stream


@pytest.mark.parametrize("batch", [None, 3])
def test_overlapped_equals_one_after_the_other_bit_for_bit(detector, walkway, monkeypatch, batch):
    clip = walkway / "testing" / "frames" / "02"
    overlapped, s1 = _rows(detector, clip, batch=batch)
    monkeypatch.setattr(Engine, "overlap", False)
    serial, s2 = _rows(detector, clip, batch=batch)
    assert len(overlapped) == 20 and s1.stats.stopped == s2.stats.stopped == "end"
    assert repr(overlapped) == repr(serial)  # NaNs included: the same numbers, not close ones
    assert any(r[4] for r in overlapped)  # the planted anomaly is still flagged


def test_max_frames_stops_at_the_frame(detector, walkway):
    rows, stream = _rows(detector, walkway / "testing" / "frames" / "02", max_frames=7, batch=3)
    assert [r[0] for r in rows] == list(range(7)) and stream.stats.stopped == "max-frames"


def test_the_prefetcher_runs_ahead_while_the_batch_is_scored(detector, walkway):
    """While the run loop holds a batch, the next ones are prepared (up to its queue's depth)."""
    src = open_source(walkway / "testing" / "frames" / "02")
    reader = Reader(src).start()
    pf = Prefetcher(reader, StreamScorer(detector), batch=4, depth=2).start()
    try:
        first = pf.take(timeout=5.0).batches
        assert [f.index for f in first[0].frames] == [0, 1, 2, 3]
        deadline = threading.Event()
        for _ in range(50):  # the thread fills its queue on its own, without being asked
            if pf.queue.full():
                break
            deadline.wait(0.1)
        # two batches queued and a third prepared, waiting for room; 20 when the second batch was already queued as
        # ``take`` returned the first: ``take`` then holds it (to see whether it would fit), which frees a slot
        assert pf.queue.full() and pf.taken in (16, 20)
        got = [f.index for _ in range(4) for p in pf.take(timeout=5.0).batches for f in p.frames]
        assert got == list(range(4, 20))
        assert pf.take(timeout=5.0) == Taken([], END) and pf.take(timeout=0.1) == Taken([], END)
    finally:
        pf.stop()
        reader.stop()


def test_an_error_while_preparing_reaches_the_run_loop_after_the_batches_before_it(detector, walkway):
    src = open_source(walkway / "testing" / "frames" / "02")
    reader = Reader(src).start()
    scorer = StreamScorer(detector)
    real, calls = scorer.prepare, []

    def prepare(frames, times, indices, steps=None):
        calls.append(indices[0])
        if len(calls) == 2:
            raise ValueError("broken frame")
        return real(frames, times, indices, steps)

    scorer.prepare = prepare  # type: ignore[method-assign]
    pf = Prefetcher(reader, scorer, batch=5, max_frames=None).start()
    try:
        assert [f.index for f in pf.take(timeout=5.0).batches[0].frames] == [0, 1, 2, 3, 4]
        with pytest.raises(ValueError, match="broken frame"):
            pf.take(timeout=5.0)
    finally:
        pf.stop()
        reader.stop()
    assert calls == [0, 5]  # nothing was prepared after the failure
