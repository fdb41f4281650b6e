"""A sink gets everything it needs as plain values: ``StreamInfo`` at ``open`` and on every batch, each frame's
cell boxes and the stream's counters on the batch; it never has to reach into the scorer, reader or source."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ognet_video.sources import open_source
from ognet_video.stream.engine import Batch, Engine, Sink, Stream, StreamStats
from ognet_video.stream.scoring import StreamScorer
from ognet_video.stream.values import Counters, StreamInfo


class _Recording(Sink):
    """Written against the plain interface only: what ``open``, ``write`` and ``close`` are handed."""

    def __init__(self) -> None:
        self.info: StreamInfo | None = None
        self.batches: list[tuple[StreamInfo | None, list[np.ndarray], list[tuple[int, ...]], Counters, int]] = []
        self.final: StreamStats | None = None

    def open(self, info: StreamInfo) -> None:
        self.info = info

    def write(self, batch: Batch) -> None:
        shapes = [f.image.shape for f in batch.frames]
        self.batches.append((batch.info, batch.boxes, shapes, batch.stats, len(batch.events)))

    def close(self, stream: Stream) -> None:
        self.final = stream.stats


def test_a_sink_gets_everything_from_open_and_the_batch(detector, walkway):
    clip = walkway / "testing" / "frames" / "02"
    sink = _Recording()
    (stream,) = Engine(detector, 4).run([Stream("lobby", open_source(clip), [sink])])
    info, cal = sink.info, detector.calibration
    assert info is not None and info is stream.opened
    assert (info.name, info.kind, info.live, info.stride, info.runtime) == ("lobby", "folder", False, 1, "torch")
    assert info.display == stream.source.display and info.total == stream.stats.frames == info.length
    assert info.threshold == cal.threshold and info.cal is cal
    assert info.camera_checks == (detector.health is not None and detector.cfg.health.enabled)
    assert (info.camera_checks_why is None) == info.camera_checks
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.threshold = 0.0  # type: ignore[misc]

    reference = StreamScorer(detector)  # the boxes the scorer would give for each frame's shape
    frames = events = 0
    assert len(sink.batches) > 1
    for got, boxes, shapes, counters, closed in sink.batches:
        assert got is info  # the same value on every batch
        assert len(boxes) == len(shapes)  # one per frame; a frameless batch (the end) has none
        for b, shape in zip(boxes, shapes, strict=True):
            assert np.array_equal(b, reference.boxes_for(shape))
        frames, events = frames + len(shapes), events + closed
        assert (counters.frames, counters.events, counters.dropped, counters.drop_rate) == (frames, events, 0, 0.0)
        assert counters.source_fps == stream.source.delivered_fps
    assert sink.final is stream.stats and sink.final.frames == frames and sink.final.events == events
    first = sink.batches[0][3]
    assert first.frames == len(sink.batches[0][2])  # a snapshot: later batches did not change it
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.frames = 0  # type: ignore[misc]
