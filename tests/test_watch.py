"""``watch``: a synthetic clip written as MP4 goes through the real loop; live failures use fake captures.

The planted-anomaly clip is chosen, not assumed: candidate walkway clips are scored offline with the
shared ``StreamScorer`` on the very frames the MP4 decodes to, and the first whose events fall on the
labelled anomaly is used. ``watch`` must then reproduce those scores and events exactly.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import cli_command, quiet_console
from fake_camera import ImageCapture
from rich.console import Console
from videos import decode, write_mp4

from ognet_video.annotate import AnnotatedVideoWriter
from ognet_video.data import read_gray
from ognet_video.data.synthetic import write_walkway
from ognet_video.errors import UserError
from ognet_video.models.detector import Detector
from ognet_video.runs import load_model
from ognet_video.sources import Reader
from ognet_video.stream.scoring import StreamScorer
from ognet_video.watch import WatchOptions
from ognet_video.watch import watch as _watch

OPTION_NAMES = set(WatchOptions.__dataclass_fields__)


def watch(source, model, **kw):
    """``watch`` with its options as keywords."""
    opts = WatchOptions(**{k: v for k, v in kw.items() if k in OPTION_NAMES})
    return _watch(source, model, opts, **{k: v for k, v in kw.items() if k not in OPTION_NAMES})


def reference(detector: Detector, frames: list[np.ndarray]) -> tuple[list, list[dict]]:
    ss = StreamScorer(detector)
    results, _ = ss.push(frames, [i / 10 for i in range(len(frames))])
    ss.finish()
    return results, [e.to_dict() for e in ss.events]


def same_events(got: list[dict], want: list[dict], step: int = 1) -> bool:
    """Equal events (frame numbers scaled by ``step``); scores up to float noise of the batching."""
    keys = ("start", "end", "peak_frame")
    return len(got) == len(want) and all(
        all(g[k] == step * w[k] for k in keys) and g["peak_box"] == w["peak_box"]
        and g["peak_score"] == pytest.approx(w["peak_score"], abs=1e-4)
        for g, w in zip(got, want, strict=True)
    )  # fmt: skip


def raws(rows: list[dict]) -> list[float]:
    """Raw scores from scores.jsonl, where an unscored frame (a stream's first) is null."""
    return [np.nan if r["raw"] is None else r["raw"] for r in rows]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def anomaly_clip(tmp_path_factory, detector) -> SimpleNamespace:
    """The first candidate MP4 on which the tiny model flags the planted anomaly (and nothing normal)."""
    root = write_walkway(tmp_path_factory.mktemp("candidates"), train_clips=0, test_clips=6, frames=40, seed=0)
    labels = json.loads((root / "testing" / "labels.json").read_text())
    for name, lab in labels.items():
        gray = [read_gray(p) for p in sorted((root / "testing" / "frames" / name).glob("*.jpg"))]
        path = write_mp4(root / f"walkway{name}.mp4", gray)
        frames = decode(path)
        results, events = reference(detector, frames)
        on_anomaly = [e for e in events if any(lab[e["start"] : e["end"] + 1])]
        if on_anomaly and len(on_anomaly) == len(events):
            return SimpleNamespace(path=path, frames=frames, labels=lab, results=results, events=events)
    pytest.fail("setup: the tiny model flags the planted anomaly in none of the candidate clips")


def test_mp4_end_to_end_reproduces_the_shared_scorer(anomaly_clip, detector, tmp_path):
    out = io.StringIO()
    res = watch(str(anomaly_clip.path), detector, project=tmp_path / "w", save_video=True,
                console=Console(file=out, width=150), live_panel=False)  # fmt: skip
    n = len(anomaly_clip.frames)
    assert res.run_dir == tmp_path / "w" / f"{anomaly_clip.path.stem}-1"
    assert res.stopped == "end" and res.exit_code == 0 and res.frames == n and res.dropped == 0
    rows = read_jsonl(res.run_dir / "scores.jsonl")
    assert [r["frame"] for r in rows] == list(range(n))
    assert set(rows[0]) == {"frame", "time", "raw", "score", "smoothed", "anomalous", "box"}
    ref = anomaly_clip.results
    assert np.allclose(raws(rows), [r.raw for r in ref], atol=1e-5, equal_nan=True)
    assert [r["anomalous"] for r in rows] == [r.anomalous for r in ref]
    assert rows[3]["time"] == pytest.approx(0.3)
    events = read_jsonl(res.run_dir / "events.jsonl")
    assert same_events(events, anomaly_clip.events) and events
    assert all(any(anomaly_clip.labels[e["start"] : e["end"] + 1]) for e in events)
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert summary["frames"] == n and summary["events"] == len(events) and summary["stopped"] == "end"
    assert set(summary["ms_per_frame"]) == {"decode", "extract", "model", "outputs", "total"}
    video = decode(res.run_dir / "annotated.mp4")
    assert len(video) == n and video[0].shape == (240 + 60, 360, 3)
    assert sorted(p.name for p in res.run_dir.iterdir()) == ["annotated.mp4", "events", "events.jsonl",
                                                             "scores.jsonl", "summary.json"]  # fmt: skip
    text = out.getvalue()
    assert "end of source" in text and "speed: decode" in text and "fps end to end" in text
    again = watch(str(anomaly_clip.path), detector, project=tmp_path / "w", console=quiet_console(), max_frames=5)
    assert again.run_dir.name.endswith("-2") and again.frames == 5 and again.stopped == "max-frames"


def test_stride_keeps_source_frame_numbers(anomaly_clip, detector, tmp_path):
    res = watch(str(anomaly_clip.path), detector, project=tmp_path, stride=2, console=quiet_console())
    rows = read_jsonl(res.run_dir / "scores.jsonl")
    kept = anomaly_clip.frames[::2]
    assert [r["frame"] for r in rows] == list(range(0, len(anomaly_clip.frames), 2))
    ref, ref_events = reference(detector, kept)
    assert np.allclose(raws(rows), [r.raw for r in ref], atol=1e-5, equal_nan=True)
    events = read_jsonl(res.run_dir / "events.jsonl")
    assert same_events(events, ref_events, step=2)  # events are numbered in source frames too


def test_stream_that_drops_mid_run_reconnects_and_keeps_valid_scores(anomaly_clip, detector, tmp_path):
    script = [(0, 20), (20, 20)]
    calls = []

    def opener(spec: str) -> ImageCapture:
        calls.append(spec)
        if not script:
            raise UserError("cannot open stream source (fake camera is gone)")
        return ImageCapture(anomaly_clip.frames, *script.pop(0))

    out = io.StringIO()
    res = watch("rtsp://user:pw@cam.local/live", detector, project=tmp_path, opener=opener, reconnect_timeout=0.4,
                console=Console(file=out, width=200))  # fmt: skip
    text = out.getvalue()
    assert res.reconnects == 1 and res.stopped == "lost" and res.exit_code == 1 and "lost" in res.message
    assert "no frame, connection lost; reconnecting" in text and "reconnected after 1 attempt" in text
    assert "pw" not in text and res.run_dir.name == "cam.local-1"
    rows = read_jsonl(res.run_dir / "scores.jsonl")
    frames = [r["frame"] for r in rows]
    assert len(rows) == res.frames and frames == sorted(set(frames)) and frames[-1] == 39
    assert res.frames + res.dropped == 40  # every frame of both links was scored or counted as dropped
    assert all(isinstance(r["anomalous"], bool) and isinstance(r["smoothed"], float) for r in rows)
    # a frame with no known predecessor is unscored (null): the first, and the first after the reconnect,
    # whose predecessor is from before the gap; every other frame has a calibrated score
    unscored = [r["frame"] for r in rows if r["score"] is None]  # raw is also null where nothing moved
    assert unscored[0] == 0 and len(unscored) == 2 and unscored[1] >= 20
    assert all(isinstance(r["score"], float) for r in rows if r["frame"] not in unscored)
    summary = json.loads((res.run_dir / "summary.json").read_text())
    assert summary["stopped"] == "lost" and summary["reconnects"] == 1
    read_jsonl(res.run_dir / "events.jsonl")  # valid, whatever it holds


def test_stream_that_never_connects_is_a_user_error_and_leaves_no_run(detector, tmp_path):
    def opener(spec: str):
        raise UserError("cannot open stream source")

    t = time.monotonic()
    with pytest.raises(UserError, match="did not connect within 0.3 s"):
        watch("rtsp://nowhere/cam", detector, project=tmp_path / "w", opener=opener, connect_timeout=0.3,
              console=quiet_console())  # fmt: skip
    assert time.monotonic() - t < 2.0
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_ctrl_c_leaves_valid_files_and_prints_the_summary(anomaly_clip, detector, tmp_path, monkeypatch):
    original = Reader.get_batch

    def interrupted(self, max_frames, timeout=0.1):  # Ctrl-C arrives once 8 frames have been handed over
        if self.delivered >= 8:
            raise KeyboardInterrupt
        return original(self, max_frames, timeout)

    monkeypatch.setattr(Reader, "get_batch", interrupted)
    out = io.StringIO()
    res = watch(str(anomaly_clip.path), detector, project=tmp_path, save_video=True, batch=4,
                console=Console(file=out, width=150))  # fmt: skip
    assert res.stopped == "interrupted" and res.exit_code == 130 and 8 <= res.frames < len(anomaly_clip.frames)
    rows = read_jsonl(res.run_dir / "scores.jsonl")
    assert [r["frame"] for r in rows] == list(range(res.frames))
    read_jsonl(res.run_dir / "events.jsonl")
    assert json.loads((res.run_dir / "summary.json").read_text())["stopped"] == "interrupted"
    assert len(decode(res.run_dir / "annotated.mp4")) == res.frames
    assert not [p for p in res.run_dir.iterdir() if "partial" in p.name]
    assert "stopped with Ctrl-C" in out.getvalue() and "speed:" in out.getvalue()
    deadline = time.monotonic() + 3
    while any(t.name.startswith("reader:") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("reader:") for t in threading.enumerate())


def test_live_panel_only_in_a_terminal(anomaly_clip, detector, tmp_path):
    term = io.StringIO()
    watch(str(anomaly_clip.path), detector, project=tmp_path, max_frames=12,
          console=Console(file=term, force_terminal=True, width=120))  # fmt: skip
    assert "dropped" in term.getvalue() and "threshold" in term.getvalue()
    plain = io.StringIO()
    watch(str(anomaly_clip.path), detector, project=tmp_path, max_frames=12, console=Console(file=plain, width=120))
    assert "threshold" not in plain.getvalue() and "speed:" in plain.getvalue()


def test_show_without_a_display_says_so_once_and_carries_on(anomaly_clip, detector, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = io.StringIO()
    res = watch(str(anomaly_clip.path), detector, project=tmp_path, show=True, max_frames=6,
                console=Console(file=out, width=150))  # fmt: skip
    assert res.frames == 6 and out.getvalue().count("--show:") == 1 and "no display" in out.getvalue()


def test_default_model_is_the_newest_finished_run(trained_run, tmp_path):
    det, label = load_model(None, "cpu", trained_run.model_path.parent.parent)
    assert Path(label) == trained_run.model_path and det.calibration is not None
    (tmp_path / "runs" / "train" / "x-1").mkdir(parents=True)  # unfinished: no model.safetensors
    with pytest.raises(UserError, match="no trained model in"):
        load_model(None, "cpu", tmp_path / "runs" / "train")
    with pytest.raises(UserError, match="holds no model.safetensors"):
        load_model(tmp_path / "runs" / "train" / "x-1")


def test_annotated_writer_is_atomic_and_draws_static_frames(detector, anomaly_clip, tmp_path):
    results, _ = reference(detector, anomaly_clip.frames[:6])
    boxes = StreamScorer(detector).frames.extractor.boxes_for(anomaly_clip.frames[0].shape)
    path = tmp_path / "clip.mp4"
    writer = AnnotatedVideoWriter(path, 10, detector.calibration.threshold, detector.calibration)
    for img, r in zip(anomaly_clip.frames[:6], results, strict=True):
        out = writer.write(img, r, boxes)
        assert not path.exists()  # only the temporary file while writing
    assert results[0].worst_box is None and out.shape == (300, 360, 3)
    assert writer.close() == path and len(decode(path)) == 6 and list(tmp_path.iterdir()) == [path]
    odd = AnnotatedVideoWriter(tmp_path / "odd.mp4", 10, 0.0)
    odd.write(cv2.resize(anomaly_clip.frames[1], (101, 77)), results[1], np.zeros((len(boxes), 4), dtype=int))
    odd.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def one_line_error(code: int, text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), text
    assert "Traceback" not in text
    return lines[0]


def test_cli_bad_input_is_one_line_each(main_cli, trained_run, tmp_path):
    run = trained_run.model_path.parent
    r = main_cli("watch", tmp_path / "missing.mp4", "--model", run)
    assert "does not exist" in one_line_error(r.returncode, r.out)
    r = main_cli("watch", str(tmp_path), "--model", tmp_path)  # a folder without a checkpoint
    assert "holds no model.safetensors" in one_line_error(r.returncode, r.out)
    r = main_cli("watch", str(tmp_path / "*.png"), "--model", run)
    assert "no images" in one_line_error(r.returncode, r.out)


def test_cli_watch_as_a_new_user_runs_it(cli, anomaly_clip, trained_run, tmp_path):
    """Real subprocess: also proves FFmpeg's own complaints about a broken file stay off the terminal."""
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    proc = cli("watch", bad, "--model", trained_run.model_path.parent)
    assert "cannot open video source" in one_line_error(proc.returncode, proc.stdout + proc.stderr)
    proc = cli("watch", anomaly_clip.path, "--model", trained_run.model_path.parent, "--save-video", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "speed:" in proc.stdout
    run_dir = tmp_path / "runs" / "watch" / f"{anomaly_clip.path.stem}-1"
    assert len(read_jsonl(run_dir / "scores.jsonl")) == len(anomaly_clip.frames)
    assert (run_dir / "annotated.mp4").is_file() and read_jsonl(run_dir / "events.jsonl")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_keep_the_video_summary_and_open_event(anomaly_clip, trained_run, tmp_path, sig):
    """What kill, docker stop and systemd send is handled like Ctrl-C: every output is complete."""
    long = write_mp4(tmp_path / "long.mp4", anomaly_clip.frames * 20)
    args = [*cli_command(), "watch", str(long), "--model", str(trained_run.run_dir), "--save-video"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scores = tmp_path / "runs" / "watch" / "long-1" / "scores.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not scores.is_file() or len(scores.read_text().splitlines()) < 40):
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), out + err
    assert "Traceback" not in err
    run = scores.parent
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped"] == ("terminated" if sig == signal.SIGTERM else "interrupted")
    n = len(read_jsonl(scores))
    assert summary["frames"] == n and 40 <= n < 20 * len(anomaly_clip.frames)
    assert len(decode(run / "annotated.mp4")) == n
    read_jsonl(run / "events.jsonl")
