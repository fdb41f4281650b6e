"""What a stream's sinks are given, as plain values: so a sink needs no scorer, reader or source of its own.

``StreamInfo`` is built once by the engine when the stream opens (``Sink.open`` gets it, every ``Batch`` carries
it); ``Counters`` is a snapshot of the stream's counters taken as each batch is handed out, so a sink that keeps
the latest one (a panel drawn from another thread, a metrics scrape) reads a consistent copy, not live objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ognet_video.models.detector import Calibration
    from ognet_video.sources import Source
    from ognet_video.stream.scoring import StreamScorer


@dataclass(frozen=True)
class StreamInfo:
    """A stream as it opened: its source, the model's runtime, the decision threshold and calibration, and
    whether the camera checks run (and why not)."""

    name: str
    display: str  # the source as shown to people (credentials hidden)
    kind: str  # video, images, stream, webcam ...
    live: bool
    stride: int
    length: int | None  # frames in the source, when its container says (recorded sources)
    total: int | None  # frames it will deliver (every ``stride``-th, at the analysis rate), when known
    runtime: str  # torch, onnx, ...
    threshold: float
    cal: Calibration
    camera_checks: bool
    camera_checks_why: str | None = None  # why they are off

    @classmethod
    def of(cls, name: str, source: Source, scorer: StreamScorer) -> StreamInfo:
        """Read once from the opened source and the stream's scorer."""
        det = scorer.detector
        why = None
        if scorer.health is None:
            why = "the model has no camera reference (trained before the checks; calibrate adds one)" \
                if det.health is None else "switched off (health.enabled=false)"  # fmt: skip
        return cls(name, source.display, source.kind, source.live, source.stride, source.length,
                   source.total,
                   det.meta.get("runtime", "torch"), scorer.threshold, scorer.cal, scorer.health is not None,
                   why)  # fmt: skip


@dataclass(frozen=True)
class Counters:
    """A stream's counters when a batch was handed to its sinks."""

    frames: int = 0  # scored so far
    dropped: int = 0  # live frames dropped because scoring was behind
    drop_rate: float = 0.0  # their share of the frames the source delivered for analysis
    lag_s: float = 0.0  # last batch: seconds from its newest frame's arrival to its scores
    reconnects: int = 0
    events: int = 0  # closed so far
    source_fps: float | None = None  # the rate of the frames the source delivers, once known (live: once connected)
