"""The Python API as a user calls it: ``load``, ``stream``, ``score``; the same results as ``watch``."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from conftest import quiet_console

from ognet_video.errors import UserError
from ognet_video.sources import open_source


def test_stream_equals_watch_and_score_equals_stream(trained_run, walkway, tmp_path):
    from ognet_video import load
    from ognet_video.watch import WatchOptions, watch

    clip = walkway / "testing" / "frames" / "02"
    model = load(trained_run.run_dir, device="cpu")
    results = list(model.stream(clip))
    assert [r.index for r in results] == list(range(20)) and model.threshold == model.calibration.threshold
    res = watch(str(clip), model.detector, WatchOptions(live_panel=False), project=tmp_path, console=quiet_console())
    rows = [json.loads(line) for line in (res.run_dir / "scores.jsonl").read_text().splitlines()]
    assert [r.to_dict() for r in results] == rows  # the same loop, so the same numbers, bit for bit
    events = [json.loads(line) for line in (res.run_dir / "events.jsonl").read_text().splitlines()]
    assert [e.to_dict() for e in model.events] == events
    frames = [f.image for f in open_source(clip)]
    again = model.score(frames)
    assert [r.anomalous for r in again] == [r.anomalous for r in results]
    assert np.allclose([r.smoothed for r in again], [r.smoothed for r in results], atol=1e-9)
    assert any(r.anomalous for r in results)  # the planted anomaly is flagged


def test_stopping_early_releases_the_source(trained_run, walkway):
    from ognet_video import load

    model = load(trained_run.model_path, device="cpu")
    for i, _ in enumerate(model.stream(walkway / "testing" / "frames" / "01")):
        if i == 3:
            break
    deadline = time.monotonic() + 3
    while any(t.name.startswith("reader:") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("reader:") for t in threading.enumerate())


def test_bad_input_is_a_user_error(trained_run, tmp_path):
    from ognet_video import load

    with pytest.raises(UserError, match="holds no model.safetensors"):
        load(tmp_path)
    model = load(trained_run.run_dir, device="cpu")
    with pytest.raises(UserError, match="does not exist"):
        next(model.stream(tmp_path / "missing.mp4"))
