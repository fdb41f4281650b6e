from __future__ import annotations

from ognet_video.decide import EventTracker


def run(flags, scores=None, k=3):
    tr = EventTracker(k)
    scores = scores or [float(f) for f in flags]
    for i, (f, s) in enumerate(zip(flags, scores, strict=True)):
        tr.update(i, s, bool(f), [i, 0, i + 1, 1])
    tr.finish()
    return tr.closed


def test_needs_k_frames_above_to_open():
    assert run([1, 1, 0, 1, 1, 0, 0, 0]) == []


def test_event_span_and_peak():
    scores = [0, 2, 3, 5, 4, 0, 0, 0, 0]
    (ev,) = run([s > 1 for s in scores], scores)
    assert (ev.start, ev.end, ev.peak_frame, ev.peak_score) == (1, 4, 3, 5)
    assert ev.peak_box == [3, 0, 4, 1]


def test_short_dip_does_not_split_an_event():
    flags = [1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1]
    (ev,) = run(flags)
    assert (ev.start, ev.end) == (0, 6)


def test_two_events_and_open_event_closed_at_end():
    flags = [1, 1, 1, 0, 0, 0, 1, 1, 1, 1]
    evs = run(flags)
    assert [(e.start, e.end) for e in evs] == [(0, 2), (6, 9)]


def test_k_one_opens_immediately():
    evs = run([0, 1, 0, 1], k=1)
    assert [(e.start, e.end) for e in evs] == [(1, 1), (3, 3)]
