"""The Python API: load a model, stream any source through it, or score frames you already have.

    from ognet_video import load
    model = load("runs/train/lobby-1")          # or an exported model: load("lobby-1.onnx")
    for r in model.stream("rtsp://cam/s"):      # batched for you; one FrameResult per frame
        if r.anomalous:
            ...

``stream`` is the run loop of ``watch`` and ``score`` with no outputs attached, so it gives the same
results they write.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ognet_video.decide import Event
from ognet_video.models.detector import Calibration, Detector
from ognet_video.runs import load_model
from ognet_video.sources import open_source, source_name
from ognet_video.stream.engine import Engine, Stream
from ognet_video.stream.scoring import FrameResult, StreamScorer


class Model:
    """A trained, calibrated model: what ``load`` returns."""

    def __init__(self, detector: Detector, path: str) -> None:
        self.detector, self.path = detector, path
        self.events: list[Event] = []  # of the last ``stream`` or ``score`` call, once it has ended

    @property
    def calibration(self) -> Calibration:
        assert self.detector.calibration is not None
        return self.detector.calibration

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def stream(self, source: str | Path, *, stride: int = 1, fps: float = 10.0, batch: int | None = None,
               connect_timeout: float = 15.0, reconnect_timeout: float = 60.0) -> Iterator[FrameResult]:  # fmt: skip
        """Results of a video file, frame folder, glob, webcam index or stream URL, as they are scored.
        Stop iterating whenever you like: the source is released."""
        src = open_source(source, stride=stride, fps=fps, connect_timeout=connect_timeout,
                          reconnect_timeout=reconnect_timeout)  # fmt: skip
        stream = Stream(source_name(str(source)), src, [])
        try:
            for b in Engine(self.detector, batch).batches([stream]):
                yield from b.results
        finally:
            self.events = list(stream.scorer.events) if stream.scorer is not None else []

    def score(self, frames: Iterable[np.ndarray], times: Iterable[float | None] | None = None) -> list[FrameResult]:
        """Consecutive frames (uint8, gray or BGR, any size) of one clip, scored in batches."""
        scorer = StreamScorer(self.detector)
        n = self.detector.cfg.score.batch_frames
        frames = list(frames)
        stamps = list(times) if times is not None else [None] * len(frames)
        out: list[FrameResult] = []
        for i in range(0, len(frames), n):
            out += scorer.push(frames[i : i + n], stamps[i : i + n])[0]
        scorer.finish()
        self.events = list(scorer.events)
        return out


def load(model: str | Path | None = None, device: str = "auto") -> Model:
    """A run folder, a ``.safetensors`` checkpoint, an exported ``.onnx`` model (``ognet-video export``; scored
    by OpenVINO or onnxruntime, same decisions), or None for the newest finished run in ``runs/train``."""
    det, label = load_model(model, device)
    return Model(det, label)
