"""``ognet-video review``: the index of watch and score runs, the JSON API (filters, order, files, ranges, labels,
traversal, the token rule), the live board, and the command line. The run builders here also feed
test_review_browser."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import cv2
import httpx
import numpy as np
import pytest

from ognet_video.clips.encode import write_h264
from ognet_video.decide import Event, EventMessage
from ognet_video.review.app import create_app, start_server
from ognet_video.review.feedback import FEEDBACK, append_label, read_labels
from ognet_video.review.live import LiveBoard
from ognet_video.review.timeline import STEP, ScoreFile, event_window
from ognet_video.sources import Frame
from ognet_video.stream.engine import Batch, StreamStats
from ognet_video.stream.values import Counters

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its test client; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

FPS = 10.0


def frames(n: int = 12, w: int = 96, h: int = 64) -> list[np.ndarray]:
    """A red square crossing a gray field: small, and a real picture for the browser to decode."""
    out = []
    for i in range(n):
        img = np.full((h, w, 3), 60, np.uint8)
        x = (4 + 6 * i) % (w - 16)
        img[24:40, x : x + 16] = (0, 0, 255)
        out.append(img)
    return out


def anomaly(camera: str, n: int, start: int, end: int, peak: float, opened_at: str | None,
            threshold: float = 4.8) -> dict:  # fmt: skip
    """An events.jsonl line of the current format, with its clip and snapshot."""
    return {"kind": "anomaly", "id": f"{camera}-{n}", "camera": camera, "start": start, "end": end,
            "peak_frame": (start + end) // 2, "peak_score": peak, "peak_box": [10, 10, 30, 30],
            "start_time": start / FPS, "end_time": end / FPS, "threshold": threshold, "opened_at": opened_at,
            "clip": f"events/{camera}-{n}.mp4", "snapshot": f"events/{camera}-{n}.jpg", "source_clip": None,
            "clip_first_frame": max(0, start - 30), "clip_fps": FPS}  # fmt: skip


def write_camera(folder: Path, events: list[dict], frames_n: int = 200, csv: bool = False,
                 mtime: datetime | None = None) -> Path:  # fmt: skip
    """A camera folder: ``events`` as events.jsonl (real H.264 clips and JPEG snapshots for the files they
    name), and per-frame scores (scores.jsonl as watch writes, scores.csv as score does) that rise over each
    event."""
    folder.mkdir(parents=True, exist_ok=True)
    for ev in events:
        for key in ("clip", "source_clip"):
            if isinstance(ev.get(key), str):
                write_h264(folder / ev[key], frames(), FPS)
        if isinstance(ev.get("snapshot"), str):
            (folder / ev["snapshot"]).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / ev["snapshot"]), frames()[5])
    spans = [(e["start"], e["end"]) for e in events if e.get("kind", "anomaly") == "anomaly"]
    rows = []
    for i in range(frames_n):
        hot = any(s <= i <= e for s, e in spans)
        v = 6.0 if hot else 1.0 + 0.01 * (i % 7)
        rows.append({"frame": i, "time": round(i / FPS, 4), "raw": v, "score": v, "smoothed": v, "anomalous": hot})
    if csv:
        lines = ["frame,time,raw,score,smoothed,anomalous"]
        lines += [
            f"{r['frame']},{r['time']},{r['raw']},{r['score']},{r['smoothed']},{int(r['anomalous'])}" for r in rows
        ]
        (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    else:
        (folder / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = folder / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return folder


def write_watch_run(root: Path) -> Path:
    """runs/watch/cameras-1: two cameras (lobby: two events on two days; gate: one event and a camera alert)."""
    run = root / "watch" / "cameras-1"
    write_camera(run / "lobby", [anomaly("lobby", 1, 40, 60, 6.1, "2026-12-08T01:50:14.123+00:00"),
                                 anomaly("lobby", 2, 120, 150, 5.0, "2026-12-09T08:00:00.000+00:00")])  # fmt: skip
    gate = [
        anomaly("gate", 1, 80, 95, 9.0, "2026-12-09T10:00:00.000+00:00"),
        {"kind": "camera", "reason": "dark", "start": 150, "start_time": 15.0, "end": 170, "end_time": 17.0},
    ]
    write_camera(run / "gate", gate, mtime=datetime(2026, 12, 6, 12, 0))
    for folder in (run, run / "lobby", run / "gate"):
        (folder / "summary.json").write_text(json.dumps({"frames": 200}))
    return root / "watch"


def write_score_run(root: Path) -> Path:
    """runs/score/night-1: one clip whose events.jsonl is of an older release (no kind, id, camera, threshold
    or clip), and an unfinished clip folder that must not be listed."""
    run = root / "score" / "night-1"
    old = {"start": 30, "end": 40, "peak_frame": 35, "peak_score": 3.2, "peak_box": None, "start_time": 3.0,
           "end_time": 4.0}  # fmt: skip
    write_camera(run / "clips" / "clipA", [old], frames_n=100, csv=True, mtime=datetime(2026, 12, 7, 12, 0))
    write_camera(run / "clips" / ".tmp-clipB", [anomaly("clipB", 1, 10, 20, 7.0, None)], frames_n=40, csv=True)
    (run / "run.json").write_text(json.dumps({"model": "x"}))
    (run / "manifest.jsonl").write_text(json.dumps({"input": "clipA.mp4"}) + "\n")
    return root / "score"


def write_review_run(root: Path) -> Path:
    """A one-camera watch run (files at the run's root) with two events with real clips and a camera alert
    (no id, no opening time: listed last, by the file's time): the browser test's."""
    run = root / "watch" / "lobby-1"
    write_camera(run, [anomaly("lobby", 1, 40, 60, 6.1, "2026-12-08T01:50:14.123+00:00"),
                       anomaly("lobby", 2, 120, 150, 5.4, "2026-12-08T02:10:00.000+00:00"),
                       {"kind": "camera", "reason": "covered", "start": 170, "start_time": 17.0, "end": 190,
                        "end_time": 19.0}], mtime=datetime(2026, 12, 1, 12, 0))  # fmt: skip
    (run / "summary.json").write_text(json.dumps({"frames": 200}))
    return run


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return [write_watch_run(tmp_path), write_score_run(tmp_path)]


@pytest.fixture
def client(runs) -> TestClient:
    return TestClient(create_app(runs), base_url="http://127.0.0.1")


def listed(client: TestClient, **params: object) -> list[dict]:
    r = client.get("/api/events", params=params)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def by_id(client: TestClient, event_id: str) -> dict:
    return next(e for e in listed(client) if e["id"] == event_id)


def test_lists_both_runs_newest_first_with_old_lines(client, runs):
    data = client.get("/api/events").json()
    ids = [e["id"] for e in data["events"]]
    assert ids == ["gate-1", "lobby-2", "lobby-1", "clipA-1", "gate-2"]  # unfinished .tmp-clipB left out
    assert data["cameras"] == ["clipA", "gate", "lobby"] and data["runs"] == ["cameras-1", "night-1"]
    first = data["events"][0]
    assert first["camera"] == "gate" and first["run"] == "cameras-1" and first["run_kind"] == "watch"
    assert first["peak_score"] == 9.0 and first["threshold"] == 4.8 and first["duration"] == pytest.approx(1.5)
    assert first["clip"] == f"/api/events/{first['eid']}/clip" and first["snapshot"] and first["source"] is None
    old = by_id(client, "clipA-1")  # an older release's line: defaults, "no clip"
    assert old["kind"] == "anomaly" and old["camera"] == "clipA" and old["run"] == "night-1"
    assert old["run_kind"] == "score" and old["clip"] is None and old["snapshot"] is None
    assert old["threshold"] is None and old["when_exact"] is False and old["day"] == "2026-12-07"
    alert = by_id(client, "gate-2")
    assert alert["kind"] == "camera" and alert["reason"] == "dark" and alert["peak_score"] is None


def test_filters(client):
    assert {e["id"] for e in listed(client, camera="lobby")} == {"lobby-1", "lobby-2"}
    assert {e["id"] for e in listed(client, day="2026-12-09")} == {"gate-1", "lobby-2"}
    assert {e["id"] for e in listed(client, min_score=5.5, kind="anomaly")} == {"gate-1", "lobby-1"}
    assert {e["id"] for e in listed(client, min_score=5.5)} == {"gate-1", "lobby-1", "gate-2"}  # an alert has no score
    assert [e["id"] for e in listed(client, run="night-1")] == ["clipA-1"]
    assert client.get("/api/events", params={"min_score": "high"}).status_code == 400


def test_feedback_appends_and_the_last_label_wins(client, runs):
    ev = by_id(client, "lobby-1")
    for label in ("normal", "real"):
        r = client.post(f"/api/events/{ev['eid']}/feedback", json={"label": label})
        assert r.status_code == 200 and r.json()["label"] == label
    folder = runs[0] / "cameras-1" / "lobby"
    lines = [json.loads(x) for x in (folder / FEEDBACK).read_text().splitlines()]
    assert [(x["event"], x["label"], x["by"]) for x in lines] == [
        ("lobby-1", "normal", "review"),
        ("lobby-1", "real", "review"),
    ]
    assert datetime.fromisoformat(lines[0]["time"]).tzinfo is not None
    assert read_labels(folder)["lobby-1"].label == "real"
    assert by_id(client, "lobby-1")["label"] == "real" and by_id(client, "lobby-2")["label"] is None
    assert [e["id"] for e in listed(client, label="real")] == ["lobby-1"]
    append_label(folder, "lobby-1", "normal")  # another writer (calibrate, a second page): seen at once
    assert by_id(client, "lobby-1")["label"] == "normal"
    url = f"/api/events/{ev['eid']}/feedback"
    assert client.post(url, json={"label": "maybe"}).status_code == 400
    assert client.post(url, content='{"label": "real"}', headers={"Content-Type": "text/plain"}).status_code == 415
    assert (
        client.post(f"/api/events/{by_id(client, 'gate-2')['eid']}/feedback", json={"label": "real"}).status_code == 400
    )
    assert client.post("/api/events/0123456789abcdef/feedback", json={"label": "real"}).status_code == 404
    assert len((folder / FEEDBACK).read_text().splitlines()) == 3


def test_files_ranges_and_traversal(client, runs, tmp_path):
    ev = by_id(client, "lobby-1")
    snap = client.get(ev["snapshot"])
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR).shape == (64, 96, 3)
    clip = client.get(ev["clip"])
    size = len(clip.content)
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4" and size > 1000
    part = client.get(ev["clip"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100 and part.content == clip.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{size}"
    (tmp_path / "secret.mp4").write_bytes(b"secret")
    folder = runs[0] / "cameras-1" / "lobby"
    (folder / "events" / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    bad = [
        anomaly("lobby", 7, 1, 2, 9.9, None) | {"clip": "../../../../secret.mp4", "snapshot": "/etc/passwd"},
        anomaly("lobby", 8, 1, 2, 9.9, None) | {"clip": "events/link.mp4", "snapshot": "events/none.jpg"},
    ]
    with open(folder / "events.jsonl", "a") as f:
        f.write("".join(json.dumps(e) + "\n" for e in bad))
    for eid in ("lobby-7", "lobby-8"):
        e = by_id(client, eid)
        assert e["clip"] is None and e["snapshot"] is None
        for name in ("clip", "snapshot"):
            assert client.get(f"/api/events/{e['eid']}/{name}").status_code == 404
    for path in ("/api/events/..%2F..%2F..%2Fsecret.mp4/clip", "/api/events/%2e%2e/clip", "/api/events/../../etc/passwd",
                 "/api/events/%2e%2e%2f%2e%2e%2fetc%2fpasswd/snapshot", "/static/..%2F..%2Fapp.py", "/static/%2e%2e/app.py",
                 "/api/events/ffffffffffffffff/clip", "/api/live/..%2F..%2Fsecret/frame.jpg"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert b"secret" not in r.content and b"import" not in r.content
    assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200


def test_timeline_spans_the_clip_and_seconds_after(client):
    t = client.get(f"/api/events/{by_id(client, 'lobby-1')['eid']}/timeline").json()
    assert t["frames"][0] == 10 and t["frames"][-1] == 90  # clip_first_frame .. end_time + 3 s
    assert t["threshold"] == 4.8 and max(t["smoothed"]) == 6.0 and (t["start"], t["end"]) == (40, 60)
    old = client.get(f"/api/events/{by_id(client, 'clipA-1')['eid']}/timeline").json()  # scores.csv, no clip
    assert old["frames"][0] == 0 and old["frames"][-1] == 70 and old["threshold"] is None
    assert client.get("/api/events/ffffffffffffffff/timeline").status_code == 404


def test_score_file_reads_ranges_of_a_growing_file(tmp_path):
    path = tmp_path / "scores.jsonl"
    row = lambda i: json.dumps({"frame": 2 * i, "time": None, "smoothed": float(i), "anomalous": False}) + "\n"  # noqa: E731
    path.write_text("".join(row(i) for i in range(3000)))
    sf = ScoreFile(path)
    got = sf.rows(4001, lambda r: r["frame"] > 4100)
    assert [r["frame"] for r in got] == list(range(4002, 4101, 2)) and len(sf.marks) == -(-3000 // STEP)
    with open(path, "a") as f:  # appended, the last line still being written
        f.write(row(3000) + row(3001)[:10])
    assert [r["frame"] for r in sf.rows(5990, lambda r: False)] == [5990, 5992, 5994, 5996, 5998, 6000]
    lo, stop = event_window({"start": 100, "end": 120}, fps=10.0)  # no clip, no times: 3 s of frames either side
    assert lo == 70 and not stop({"frame": 150, "time": None}) and stop({"frame": 151, "time": None})
    path.write_text(row(1))  # replaced by a shorter file: scanned afresh
    assert [r["frame"] for r in sf.rows(0, lambda r: False)] == [2]


def test_a_live_run_is_seen_as_it_writes(client, runs):
    folder = runs[0] / "cameras-1" / "lobby"
    n = len(listed(client))
    with open(folder / "events.jsonl", "a") as f:
        f.write(json.dumps(anomaly("lobby", 3, 170, 180, 7.0, "2026-12-10T00:00:00+00:00")))  # no newline yet
        f.flush()
        f.write('\n{"kind": "anom')  # a torn line: skipped
    assert len(listed(client)) == n + 1 and listed(client)[0]["id"] == "lobby-3"


def test_token_rule(runs):
    exposed = TestClient(create_app(runs, token="s3cret", local=False), base_url="http://192.0.2.7")
    eid = exposed.get("/api/events").json()["events"][1]["eid"]
    url = f"/api/events/{eid}/feedback"
    assert exposed.post(url, json={"label": "normal"}).status_code == 403
    assert exposed.post(url, json={"label": "normal"}, headers={"X-Review-Token": "wrong"}).status_code == 403
    assert exposed.post(url, json={"label": "normal"}, headers={"X-Review-Token": "s3cret"}).status_code == 200
    local = TestClient(create_app(runs), base_url="http://localhost:8765")
    assert local.post(url, json={"label": "real"}).status_code == 200  # on this machine: no token
    assert TestClient(create_app(runs), base_url="http://evil.example").get("/api/events").status_code == 403


def test_server_beyond_localhost_prints_a_token(runs):
    server = start_server(runs, "0.0.0.0", 0)
    try:
        assert server.port > 0 and server.token and server.url.endswith(f":{server.port}/?token={server.token}")
        base = f"http://127.0.0.1:{server.port}"
        eid = httpx.get(f"{base}/api/events").json()["events"][0]["eid"]
        url = f"{base}/api/events/{eid}/feedback"
        assert httpx.post(url, json={"label": "real"}).status_code == 403
        assert httpx.post(url, json={"label": "real"}, headers={"X-Review-Token": server.token}).status_code == 200
    finally:
        server.stop()
    assert not server.running


def fake_batch(stream: SimpleNamespace, frame: int, messages: list[EventMessage], value: int = 80) -> Batch:
    """A batch as the engine hands it out: the stream's name and counters as values (the board reads no more)."""
    image = np.full((48, 64, 3), value, np.uint8)
    st = stream.stats
    return Batch(stream, [Frame(frame, frame / FPS, image)], [], [], messages,  # type: ignore[arg-type]
                 info=SimpleNamespace(name=stream.name), stats=Counters(st.frames, st.dropped, st.drop_rate))  # type: ignore[arg-type]  # fmt: skip


def test_live_board_state_frames_and_messages(runs):
    board = LiveBoard()
    cam = SimpleNamespace(name="lobby", stats=StreamStats())
    board.open(cam)  # type: ignore[arg-type]
    cam.stats.frames, cam.stats.dropped = 8, 2
    ev = Event(40, 44, 42, 6.5, None, 4.0, 4.4)
    board.write(fake_batch(cam, 44, [EventMessage("start", 1, ev, 44, 4.4)], value=80))
    board.write(fake_batch(cam, 45, [], value=200))  # within half a second: not encoded again
    client = TestClient(create_app(runs, board), base_url="http://127.0.0.1")
    state = client.get("/api/live").json()
    (card,) = state["cameras"]
    assert card["name"] == "lobby" and card["status"] == "open" and card["drop_rate"] == 0.2 and card["events"] == 1
    assert card["has_frame"] and card["open_event"]["event"]["peak_score"] == 6.5
    assert [(m["type"], m["camera"], m["number"]) for m in state["recent"]] == [("start", "lobby", 1)]
    jpeg = client.get("/api/live/lobby/frame.jpg")
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert abs(int(cv2.imdecode(np.frombuffer(jpeg.content, np.uint8), cv2.IMREAD_GRAYSCALE).mean()) - 80) < 3
    assert client.get("/api/live/gate/frame.jpg").status_code == 404
    board.write(fake_batch(cam, 50, [EventMessage("end", 1, ev, 50, 5.0)]))
    cam.stats.stopped = "interrupted"
    board.close(cam)  # type: ignore[arg-type]
    (card,) = client.get("/api/live").json()["cameras"]
    assert card["status"] == "ended" and card["stopped"] == "interrupted" and card["open_event"] is None
    assert "live" in client.get("/api/events").json() and client.get("/api/events").json()["live"] is True
    assert TestClient(create_app(runs), base_url="http://127.0.0.1").get("/api/live").status_code == 404


def test_live_stream_pushes_messages_and_stops(runs):
    board = LiveBoard()
    cam = SimpleNamespace(name="gate", stats=StreamStats())
    server = start_server(runs, "127.0.0.1", 0, board=board)
    try:
        with httpx.stream("GET", f"http://127.0.0.1:{server.port}/api/live/stream", timeout=10) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            assert next(lines).startswith("retry:")  # subscribed
            board.write(fake_batch(cam, 12, [EventMessage("start", 1, Event(10, 12, 11, 8.0, None), 12, 1.2)]))
            data = next(line for line in lines if line.startswith("data:"))
            msg = json.loads(data[5:])
            assert (msg["type"], msg["kind"], msg["camera"], msg["event"]["peak_score"]) == (
                "start",
                "anomaly",
                "gate",
                8.0,
            )
            t = time.monotonic()
            server.stop()  # an open stream does not hold the server up
            assert not server.running and time.monotonic() - t < 4
    finally:
        server.stop()


def test_cli_errors_are_one_line(main_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = main_cli("review")
    assert res.returncode == 2 and "runs/watch" in res.stderr and "Traceback" not in res.out
    res = main_cli("review", "nowhere")
    assert res.returncode == 2 and "nowhere is not a folder" in res.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        res = main_cli("review", write_review_run(tmp_path), "--port", busy.getsockname()[1])
    assert res.returncode == 2 and "cannot listen there" in res.stderr and "Traceback" not in res.out


def test_cli_serves_until_ctrl_c(tmp_path):
    write_review_run(tmp_path / "runs")
    env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "ognet_video.cli", "review", "--port", "0"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("review page: http://127.0.0.1:"), line + proc.stderr.read()  # type: ignore[union-attr]
        url = line.split()[2]
        assert [e["id"] for e in httpx.get(f"{url}api/events").json()["events"]] == ["lobby-2", "lobby-1", "lobby-1-3"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "stopped (Ctrl-C)" in err and "Traceback" not in err
