"""Event clips: ``watch`` and ``score`` keep an H.264 clip per event, from a pre-roll before it to a post-roll
after it; ``ffprobe`` (Debian's ffmpeg, installed by ``.ci/run``) reads the codec and the duration."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PED2, quiet_console, service_missing
from test_watch import anomaly_clip, read_jsonl, watch  # noqa: F401 - the planted-anomaly clip fixture

from ognet_video.clips.encode import read_gray, write_h264
from ognet_video.clips.retention import Retention
from ognet_video.errors import UserError
from ognet_video.patches import to_gray

FPS = 10.0


def probe(path: Path) -> dict:
    if shutil.which("ffprobe") is None:
        service_missing("ffprobe is not installed (apt-get install ffmpeg)")
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,pix_fmt,nb_frames:format=duration",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout  # fmt: skip
    doc = json.loads(out)
    return {**doc["streams"][0], "duration": float(doc["format"]["duration"])}


def test_watch_keeps_a_playable_clip_per_event_with_pre_and_post_roll(anomaly_clip, detector, tmp_path):  # noqa: F811
    pre, post = 0.5, 0.7
    res = watch(str(anomaly_clip.path), detector, project=tmp_path / "w", console=quiet_console(), live_panel=False,
                pre_roll=pre, post_roll=post)  # fmt: skip
    events = read_jsonl(res.run_dir / "events.jsonl")
    n = len(anomaly_clip.frames)
    assert events and len(events) == len(anomaly_clip.events)
    for i, e in enumerate(events, 1):
        assert e["kind"] == "anomaly" and e["id"] == f"{res.stream.name}-{i}" and e["camera"] == res.stream.name
        assert e["threshold"] == pytest.approx(detector.calibration.threshold, abs=1e-4) and e["opened_at"]
        clip, source, snap = (res.run_dir / e[k] for k in ("clip", "source_clip", "snapshot"))
        info = probe(clip)
        assert info["codec_name"] == "h264" and info["pix_fmt"] == "yuv420p"
        first = max(0, e["start"] - round(pre * FPS))  # the pre-roll is cut at the start of the source
        last = min(n - 1, e["end"] + round(post * FPS))  # and the post-roll at its end
        assert info["duration"] == pytest.approx((last - first + 1) / FPS, abs=1 / FPS)
        # the source clip holds the frames' gray pictures bit for bit (what feedback scores again)
        got = list(read_gray(source))
        assert len(got) == last - first + 1 == int(info["nb_frames"])
        want = anomaly_clip.frames[first : last + 1]
        assert all(np.array_equal(g, to_gray(w)) for (g, _), w in zip(got, want, strict=True))
        assert [t for _, t in got] == pytest.approx([(first + i) / FPS - first / FPS for i in range(len(got))])
        assert snap.stat().st_size > 1000
    assert not list((res.run_dir / "events").glob(".*"))  # no partial file left


def test_a_clip_open_at_the_end_of_the_source_is_cut_short_and_whole(anomaly_clip, detector, tmp_path):  # noqa: F811
    end = anomaly_clip.events[0]["start"] + 5  # stop inside the first event
    res = watch(str(anomaly_clip.path), detector, project=tmp_path / "w", console=quiet_console(), live_panel=False,
                max_frames=end + 1, pre_roll=1.0, post_roll=3.0)  # fmt: skip
    (e,) = read_jsonl(res.run_dir / "events.jsonl")
    frames = list(read_gray(res.run_dir / e["source_clip"]))
    assert len(frames) == end + 1 - max(0, e["start"] - 10)


def test_no_clips_and_bad_roll_options(anomaly_clip, detector, tmp_path):  # noqa: F811
    res = watch(str(anomaly_clip.path), detector, project=tmp_path / "w", console=quiet_console(), live_panel=False,
                clips=False)  # fmt: skip
    events = read_jsonl(res.run_dir / "events.jsonl")
    assert events and "clip" not in events[0] and not (res.run_dir / "events").exists()
    with pytest.raises(UserError, match="--pre-roll must be 0 to 60"):
        watch(str(anomaly_clip.path), detector, project=tmp_path / "w", pre_roll=-1)
    with pytest.raises(UserError, match="--clip-gb must be a positive number"):
        watch(str(anomaly_clip.path), detector, project=tmp_path / "w", clip_gb=0)


def test_score_cuts_the_same_clips_from_the_file(anomaly_clip, trained_run, cli, tmp_path):  # noqa: F811
    out = tmp_path / "out-1"
    r = cli("score", anomaly_clip.path, "--model", trained_run.run_dir, "--project", tmp_path, "--name", "out", "--pre-roll", "0.5")
    assert r.returncode == 0, r.stderr
    folder = next((out / "clips").iterdir())
    events = read_jsonl(folder / "events.jsonl")
    assert events and all((folder / e["clip"]).is_file() and (folder / e["snapshot"]).is_file() for e in events)
    e = events[0]
    assert len(list(read_gray(folder / e["source_clip"]))) == min(len(anomaly_clip.frames) - 1, e["end"] + 30) - max(0, e["start"] - 5) + 1


def _event_files(folder: Path, eid: str, age_days: float, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{eid}.mp4", folder / f"{eid}-source.mp4", folder / f"{eid}.jpg"]
    then = time.time() - age_days * 86400
    for f in files:
        f.write_bytes(b"x" * size)
        os.utime(f, (then, then))
    return files


def test_retention_deletes_whole_events_oldest_first_and_nothing_else(tmp_path):
    root = tmp_path / "watch"
    old = _event_files(root / "cam-1" / "events", "cam-3", age_days=20, size=10)
    mid = _event_files(root / "cam-2" / "a" / "events", "a-1", age_days=5, size=400)
    new = _event_files(root / "cam-2" / "a" / "events", "a-2", age_days=1, size=400)
    keep = [root / "cam-1" / "scores.jsonl", root / "cam-1" / "events" / "notes.txt", tmp_path / "elsewhere.mp4"]
    for f in keep:
        f.write_text("keep")
    (root / "cam-1" / "events" / "link.mp4").symlink_to(tmp_path / "elsewhere.mp4")
    assert Retention(root, days=14, gb=None).prune() == 1
    assert not any(f.exists() for f in old) and all(f.exists() for f in mid + new)
    assert Retention(root, days=None, gb=2000 / 1e9).prune() == 1  # 2,400 bytes in all: the older event goes
    assert not any(f.exists() for f in mid) and all(f.exists() for f in new)
    assert all(f.exists() for f in keep) and (root / "cam-1" / "events" / "link.mp4").is_symlink()


def test_h264_writer_keeps_the_source_timing_across_dropped_frames(tmp_path):
    frames = [np.full((48, 64), 10 * i, np.uint8) for i in range(6)]
    from ognet_video.clips.encode import H264Writer

    w = H264Writer(tmp_path / "gap.mp4", FPS)
    for i, f in enumerate(frames):
        w.write(f, time=(i if i < 3 else i + 4) / FPS)  # four frames dropped after the third
    w.close()
    assert probe(tmp_path / "gap.mp4")["duration"] == pytest.approx(10 / FPS, abs=1 / FPS)
    assert probe(write_h264(tmp_path / "plain.mp4", frames, FPS))["duration"] == pytest.approx(0.6, abs=1 / FPS)


def test_review_page_plays_the_clips_of_a_real_watch_run(anomaly_clip, detector, tmp_path):  # noqa: F811
    from test_review_browser import review_in_browser

    res = watch(str(anomaly_clip.path), detector, project=tmp_path / "w", console=quiet_console(), live_panel=False)
    got = review_in_browser(res.run_dir)
    events = read_jsonl(res.run_dir / "events.jsonl")
    assert {e["id"] for e in got["events"]} == {e["id"] for e in events}
    labels = read_jsonl(res.run_dir / "feedback.jsonl")
    assert labels[-1]["event"] == got["labelled"] and labels[-1]["label"] == "normal"


def test_watch_serves_the_live_board(anomaly_clip, detector, tmp_path, monkeypatch):  # noqa: F811
    import ognet_video.watch as watch_mod

    started = {}
    real = watch_mod.start_server

    def spy(runs, host, port, board=None, token=None):
        started["server"] = real(runs, host, port, board=board, token=token)
        started["board"], started["runs"] = board, runs
        return started["server"]

    monkeypatch.setattr(watch_mod, "start_server", spy)
    res = watch(str(anomaly_clip.path), detector, project=tmp_path / "w", console=quiet_console(), live_panel=False,
                review_port=0)  # fmt: skip
    assert started["runs"] == [tmp_path / "w"] and not started["server"].running  # stopped with the run
    state = started["board"].state()
    cams = {c["name"]: c for c in state["cameras"]}
    assert cams[res.stream.name]["status"] != "open" and cams[res.stream.name]["frames"] == len(anomaly_clip.frames)
    assert started["board"].frame(res.stream.name)[:3] == b"\xff\xd8\xff"
    assert [m for m in state["recent"] if m["type"] == "start" and m["kind"] == "anomaly"]


@pytest.mark.skipif(not (PED2 / "testing" / "frames" / "02").is_dir(), reason=f"no Ped2 at {PED2} (set OGNET_PED2)")
def test_clips_of_a_ped2_test_clip_play_in_ffprobe_and_the_browser(detector, tmp_path):
    """Real Ped2 footage through watch (the tiny model, its threshold lowered so that it raises events): each clip
    is H.264 and as long as pre-roll + event + post-roll, and plays on the review page."""
    from test_review_browser import review_in_browser

    from ognet_video.calibrate.calibration import with_threshold

    frames = tmp_path / "02"
    frames.mkdir()
    for p in sorted((PED2 / "testing" / "frames" / "02").glob("*.jpg"))[80:140]:  # the cyclist rides in here
        shutil.copy(p, frames / p.name)
    rows = read_jsonl(watch(str(frames), detector, project=tmp_path / "probe", clips=False, console=quiet_console(),
                            live_panel=False).run_dir / "scores.jsonl")  # fmt: skip
    sm = sorted(r["smoothed"] for r in rows if r["smoothed"] is not None)
    lowered = copy.copy(detector)
    lowered.calibration = with_threshold(detector.calibration, sm[len(sm) // 2])  # half the frames above
    res = watch(str(frames), lowered, project=tmp_path / "w", console=quiet_console(), live_panel=False,
                pre_roll=1.0, post_roll=1.0)  # fmt: skip
    events = [e for e in read_jsonl(res.run_dir / "events.jsonl") if e.get("kind") == "anomaly"]
    assert events  # (the tiny model's camera reference is the synthetic walkway's: camera alerts come too)
    for e in events:
        info = probe(res.run_dir / e["clip"])
        first, last = max(0, e["start"] - 10), min(len(rows) - 1, e["end"] + 10)
        assert info["codec_name"] == "h264" and info["duration"] == pytest.approx((last - first + 1) / FPS, abs=1 / FPS)
    got = review_in_browser(res.run_dir)
    assert {e["id"] for e in got["events"] if e["kind"] == "anomaly"} == {e["id"] for e in events}
