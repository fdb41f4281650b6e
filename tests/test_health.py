"""Camera health: a covered, moved, blurred, dark, bright, frozen or silent camera raises its own alert.

The tiny trained run stores the walkway's normal picture; clips of the same walkway are then tampered with
from ``AT`` on and fed through the checks, through ``watch`` (recorded, then live with a fake camera that
freezes and goes silent). Untouched footage must raise nothing, and scores never change: only decisions are
suspended while a camera event is open.
"""

from __future__ import annotations

import copy
import io
import json
import time

import cv2
import numpy as np
import pytest
from conftest import quiet_console
from fake_camera import FakeCapture
from prometheus_client import generate_latest
from rich.console import Console
from test_watch import read_jsonl, reference, watch
from videos import decode, write_mp4

from ognet_video.config import HealthConfig, apply_runtime_overrides
from ognet_video.data import read_gray
from ognet_video.data.synthetic import write_walkway
from ognet_video.errors import UserError
from ognet_video.health import CameraHealth, HealthReference
from ognet_video.models.detector import Detector
from ognet_video.sinks.metrics import MetricsServer
from ognet_video.stream.scoring import StreamScorer

AT, N = 12, 40  # tampering from frame 12 of 40 (10 fps): alerts within 1 s of persistence + a frame or two


def tamper(frame: np.ndarray, kind: str, first: np.ndarray) -> np.ndarray:
    """What the benchmark does to a camera: cover 60% with a flat patch, shift the view 20 px, blur, dim, glare,
    or freeze on ``first``."""
    f = frame.copy()
    h, w = f.shape[:2]
    if kind == "covered":
        f[:, : int(0.6 * w)] = 70
    elif kind == "moved":
        f = cv2.warpAffine(f, np.float32([[1, 0, 20], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REFLECT)
    elif kind == "blurred":
        f = cv2.GaussianBlur(f, (0, 0), 3)
    elif kind == "dark":
        f = (f * 0.2).astype(np.uint8)
    elif kind == "bright":
        f = np.clip(f.astype(np.float32) * 1.9 + 20, 0, 255).astype(np.uint8)
    elif kind == "frozen":
        f = first.copy()
    return f


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[list[np.ndarray]]:
    """Normal walkway clips of the scene the tiny run was trained on (same seed: same background)."""
    root = write_walkway(tmp_path_factory.mktemp("health"), train_clips=0, test_clips=3, frames=N, seed=0)
    return [[read_gray(p) for p in sorted(d.glob("*.jpg"))] for d in sorted((root / "testing" / "frames").iterdir())]


def normal(clips: list[list[np.ndarray]]) -> list[np.ndarray]:
    """A clip without the planted anomaly's frames: the walkers only (the checks ignore what moves anyway)."""
    return clips[0]


def run_checks(ref: HealthReference, frames: list[np.ndarray], cfg: HealthConfig | None = None,
               live: bool = False) -> CameraHealth:  # fmt: skip
    h = CameraHealth(ref, cfg or HealthConfig(), live)
    for i, f in enumerate(frames):
        h.update(h.measure(f), i, i / 10, f)
    h.finish()
    return h


def tampered(frames: list[np.ndarray], kind: str) -> list[np.ndarray]:
    return frames[:AT] + [tamper(f, kind, frames[AT]) for f in frames[AT:]]


def test_the_trained_model_stores_its_normal_picture(trained_run, detector):
    ref = detector.health
    assert ref is not None and ref.frames > 0 and ref.background.shape[1] == 160
    again = HealthReference.from_dict(json.loads(json.dumps(ref.to_dict())), "m")
    assert np.array_equal(np.round(ref.background), again.background) and again.brightness == pytest.approx(
        ref.brightness
    )
    damaged = ref.to_dict() | {"sharpness": [float("nan"), 1.0]}
    with pytest.raises(UserError, match="camera-health reference is damaged"):
        HealthReference.from_dict(damaged, "m.safetensors")


@pytest.mark.parametrize("kind", ["covered", "moved", "blurred", "dark", "bright", "frozen"])
def test_each_camera_problem_is_reported_with_its_reason(detector, clips, kind):
    h = run_checks(detector.health, tampered(normal(clips), kind))
    starts = [m for m in h.outbox if m.type == "start"]
    assert [m.event.reason for m in starts] == [kind], [(m.type, m.event.reason, m.frame) for m in h.outbox]
    assert AT <= starts[0].frame <= AT + 12  # persistence (1 s at 10 fps) plus a frame or two
    assert h.closed[0].start >= AT - 1 and h.suspended == N - starts[0].frame


def test_normal_footage_raises_nothing(detector, clips, tmp_path):
    for frames in clips:  # the planted anomalies included: an anomaly is not a camera problem
        assert run_checks(detector.health, frames).outbox == []
        assert run_checks(detector.health, decode(write_mp4(tmp_path / "c.mp4", frames))).outbox == []


def test_each_check_can_be_switched_off(detector, clips):
    frames = tampered(normal(clips), "covered")
    assert "covered" not in {
        m.event.reason for m in run_checks(detector.health, frames, HealthConfig(covered=False)).outbox
    }
    det = copy.deepcopy(detector)
    apply_runtime_overrides(det.cfg, ["health.enabled=false", "health.persist_seconds=2"])  # no retraining needed
    assert det.cfg.health.enabled is False and det.cfg.health.persist_seconds == 2.0
    assert StreamScorer(det, health=True).health is None and StreamScorer(detector, health=True).health is not None
    with pytest.raises(UserError, match=r"health\.persist_seconds=-1: must be greater than or equal to 0"):
        apply_runtime_overrides(det.cfg, ["health.persist_seconds=-1"])


def test_watch_suspends_decisions_and_reports_a_covered_camera(detector, clips, tmp_path):
    frames = decode(write_mp4(tmp_path / "cam.mp4", tampered(normal(clips), "covered")))
    out, alerts = io.StringIO(), tmp_path / "alerts.jsonl"
    metrics = MetricsServer(0).start()
    try:
        res = watch(str(tmp_path / "cam.mp4"), detector, project=tmp_path / "w", console=Console(file=out, width=200),
                    sinks=[f"file={alerts}"], metrics=metrics)  # fmt: skip
        text = generate_latest(metrics.registry).decode()
    finally:
        metrics.stop()
    assert 'ognet_camera_alerts_total{camera="cam",reason="covered"} 1.0' in text
    assert 'ognet_camera_ok{camera="cam"} 1.0' in text  # the event closed at the end of the source
    rows = read_jsonl(res.run_dir / "scores.jsonl")
    held = [r["frame"] for r in rows if r.get("camera") == "covered"]
    assert held and held[-1] == N - 1 and all(not r["anomalous"] for r in rows if "camera" in r)
    want, _ = reference(detector, frames)  # no checks: the scores are the same, only decisions were held
    assert [r["raw"] for r in rows] == [None if np.isnan(r.raw) else r.raw for r in want]
    camera = [e for e in read_jsonl(res.run_dir / "events.jsonl") if e.get("kind") == "camera"]
    assert [(e["reason"], e["end"]) for e in camera] == [("covered", N - 1)]
    msgs = [m for m in read_jsonl(alerts) if m["kind"] == "camera"]
    assert [m["type"] for m in msgs] == ["start", "end"] and msgs[0]["reason"] == "covered"
    assert msgs[0]["snapshot"] and msgs[0]["start"] == camera[0]["start"] and "suspended" in msgs[0]["detail"]
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert summary["camera_health"] == {
        "checks": "on",
        "events": 1,
        "by_reason": {"covered": 1},
        "suspended_frames": len(held),
    }
    text = out.getvalue()
    assert "camera covered at frame" in text and "camera checks: 1 alert(s) (covered 1)" in text


class FreezingCamera(FakeCapture):
    """A fake live camera: ``live`` normal frames, then the last one again and again (frozen), then nothing for
    ``silent`` seconds before the link drops."""

    def __init__(self, frames: list[np.ndarray], live: int, frozen: int, silent: float) -> None:
        self.frames, self.live, self.frozen, self.silent, self.i = frames, live, frozen, silent, 0

    def read(self):
        self.i += 1
        if self.i > self.live + self.frozen:
            time.sleep(self.silent)
            return False, None
        time.sleep(0.02)
        return True, self.frames[min(self.i, self.live) - 1]


def test_a_live_camera_that_freezes_then_goes_silent(trained_run, clips, tmp_path):
    det = Detector.load(trained_run.model_path)
    apply_runtime_overrides(det.cfg, ["health.frozen_seconds=0.4", "health.persist_seconds=0.2",
                                      "health.silent_seconds=0.5"])  # fmt: skip
    cams = iter([FreezingCamera(normal(clips), 20, 40, silent=1.5)])

    def opener(spec: str):
        cam = next(cams, None)
        if cam is None:
            raise UserError("cannot open stream source (fake camera is gone)")
        return cam

    alerts = tmp_path / "alerts.jsonl"
    res = watch("rtsp://cam.local/live", det, project=tmp_path, opener=opener, reconnect_timeout=0.3,
                console=quiet_console(), sinks=[f"file={alerts}"])  # fmt: skip
    assert res.stopped == "lost"
    msgs = [(m["type"], m["reason"]) for m in read_jsonl(alerts) if m["kind"] == "camera"]
    assert msgs[0] == ("start", "frozen") and ("start", "silent") in msgs and msgs[-1] == ("end", "silent"), msgs
    assert msgs.index(("end", "frozen")) < msgs.index(("start", "silent"))
    rows = read_jsonl(res.run_dir / "scores.jsonl")
    assert any(r.get("camera") == "frozen" for r in rows) and not any(r.get("camera") for r in rows[:20])
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert summary["camera_health"]["by_reason"] == {"frozen": 1, "silent": 1}


def test_a_model_without_a_reference_has_the_checks_off_said_once(trained_run, clips, tmp_path):
    det = Detector.load(trained_run.model_path)
    det.health = None
    old = det.save(tmp_path / "old.safetensors")  # as a checkpoint from before the checks
    assert Detector.load(old).health is None
    out = io.StringIO()
    path = write_mp4(tmp_path / "cam.mp4", tampered(normal(clips), "covered"))
    res = watch([str(path), str(path)], str(old), project=tmp_path / "w", console=Console(file=out, width=200))
    assert out.getvalue().count("camera checks off") == 1
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert all(c["camera_health"]["checks"] == "off" for c in summary["per_camera"].values())


def test_calibrate_refits_the_camera_reference(trained_run, walkway, tmp_path):
    from ognet_video.calibrate.recalibrate import recalibrate

    model = tmp_path / "tiny-1" / "model.safetensors"
    model.parent.mkdir()
    model.write_bytes(trained_run.model_path.read_bytes())
    res = recalibrate(model, [str(walkway / "training" / "frames" / n) for n in ("01", "02")], device="cpu")
    before, after = Detector.load(trained_run.model_path).health, Detector.load(model).health
    assert (
        after is not None and after.frames == 40 != before.frames and res.camera.startswith("camera reference from 40")
    )
