"""Four real live cameras at once: MJPEG over HTTP on 127.0.0.1 (``mjpeg_server``), read by OpenCV's FFmpeg
backend through ``watch``. One camera is cut mid-run (its connection closed, then refused for a moment): it
must reconnect while the other three go on being scored without a gap, and every camera's scores must equal
scoring the frames it delivered alone (``Recorder`` keeps them; motion restarts at a reconnect)."""

from __future__ import annotations

import io
import threading
import time

import cv2
import numpy as np
import pytest
from mjpeg_server import MjpegServer, Recorder, compare, rescore
from rich.console import Console
from test_watch import read_jsonl, watch

from ognet_video.cameras import Camera
from ognet_video.data import read_gray
from ognet_video.data.synthetic import write_walkway
from ognet_video.sources import open_capture

FPS = 15.0  # served; every frame is analysed (MJPEG over HTTP states no rate)
FRAMES = 45  # scored per camera (--max-frames): 3 s each
CUT_AT = 10  # camera "b" is cut once it has delivered this many frames
REFUSE_S = 0.8  # ... and refuses connections this long: the first reconnect (after 0.5 s) fails, the next works


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[list[np.ndarray]]:
    root = write_walkway(tmp_path_factory.mktemp("live"), train_clips=0, test_clips=4, frames=30, seed=3)
    folders = sorted((root / "testing" / "frames").iterdir())
    return [[read_gray(p) for p in sorted(f.glob("*.jpg"))] for f in folders]


def test_mjpeg_server_is_read_by_opencv_and_cut(clips):
    with MjpegServer(clips[0], fps=50) as cam:
        cap = open_capture(cam.url, timeout_s=3)
        assert cap.get(cv2.CAP_PROP_FOURCC) == cv2.VideoWriter_fourcc(*"MJPG")
        got = [cap.read() for _ in range(5)]
        assert all(ok for ok, _ in got) and got[0][1].shape[:2] == clips[0][0].shape[:2]
        err = [np.abs(img[..., 0].astype(int) - clips[0][i]).mean() for i, (_, img) in enumerate(got)]
        assert max(err) < 3.0  # the served frames, in order, up to JPEG loss
        assert cam.cut(refuse_s=0.5) == 1
        t, buffered = time.monotonic(), 0
        while cap.read()[0]:  # frames already in the socket buffers come first, then the stream ends
            buffered += 1
            assert buffered < 50 and time.monotonic() - t < 3.0, "the client never saw the stream end"
        cap.release()
        with pytest.raises(Exception, match="cannot open stream"):
            open_capture(cam.url, timeout_s=2)
        assert cam.refused == 1
        time.sleep(0.6)
        again = open_capture(cam.url, timeout_s=3)
        assert again.read()[0] and cam.connections == 2
        again.release()


def test_four_live_cameras_one_cut_reconnects_the_others_go_on(clips, detector, tmp_path):
    servers = [MjpegServer(c, fps=FPS, path=f"/cam{i}.mjpg").start() for i, c in enumerate(clips)]
    rec = Recorder(timeout_s=5.0)
    names = ["a", "b", "c", "d"]
    cams = [Camera(n, s.url) for n, s in zip(names, servers, strict=True)]
    cut_at: list[float] = []

    def cut_b() -> None:  # once b has delivered CUT_AT frames
        deadline = time.monotonic() + 20
        while rec.count(servers[1].url) < CUT_AT and time.monotonic() < deadline:
            time.sleep(0.01)
        cut_at.append(time.monotonic())
        servers[1].cut(refuse_s=REFUSE_S)

    out, box = io.StringIO(), {}

    def run() -> None:
        try:
            box["res"] = watch(cams, detector, project=tmp_path, opener=rec, max_frames=FRAMES, connect_timeout=5.0,
                               reconnect_timeout=5.0, console=Console(file=out, width=200))  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    cutter = threading.Thread(target=cut_b, daemon=True)
    runner = threading.Thread(target=run, daemon=True)
    t0 = time.monotonic()
    try:
        cutter.start()
        runner.start()
        runner.join(timeout=60)
        assert not runner.is_alive(), "watch did not finish within 60 s"
    finally:
        for s in servers:
            s.stop()
    if "error" in box:
        raise box["error"]
    res, text = box["res"], out.getvalue()
    assert time.monotonic() - t0 < 40
    by = {s.name: s.stats for s in res.streams}
    assert res.exit_code == 0 and all(st.stopped == "max-frames" and st.frames == FRAMES for st in by.values()), text
    assert all(s.source.fps is None for s in res.streams)  # no rate stated: every frame analysed, none skipped

    # b was cut, refused once, reconnected and went on; the others never reconnected
    assert by["b"].reconnects >= 1 and servers[1].refused >= 1 and servers[1].connections >= 2
    assert "reconnected after" in text and "b " in text
    assert [by[n].reconnects for n in "acd"] == [0, 0, 0]
    b_links = {d.link for d in rec.frames[servers[1].url]}
    assert b_links == set(range(by["b"].reconnects + 1))
    b_delivered = rec.frames[servers[1].url]
    down = (max(d.at for d in b_delivered if d.link == 0), min(d.at for d in b_delivered if d.link == 1))
    assert down[0] <= cut_at[0] + 0.5 and down[1] - down[0] > REFUSE_S  # b was really gone that long

    for n, srv in zip(names, servers, strict=True):
        rows = read_jsonl(res.run_dir / n / "scores.jsonl")
        got = rec.by_index(srv.url)
        frames = [r["frame"] for r in rows]
        assert len(rows) == FRAMES and frames == sorted(set(frames)) and set(frames) <= set(got)
        assert len(rows) + by[n].dropped <= len(got)  # every frame read was scored, dropped, or read after the end
        if by[n].dropped == 0:  # then every frame read was scored, in order
            assert frames == list(range(FRAMES))
        # every scored frame scores as from the file (all delivered frames, one after the other), dropped
        # neighbours or not, and the decisions are the file's at the scored frames' times
        cmp = compare(rows, rescore(detector, rows, got))
        assert cmp["equal"], (n, cmp)
        if n == "b":  # the first frame of each connection has no predecessor: unscored
            firsts = [r["frame"] for r in rows if r["frame"] == 0 or got[r["frame"]].link != got[r["frame"] - 1].link]
            assert len(firsts) == 2 and all(r["score"] is None for r in rows if r["frame"] in firsts)
            continue
        # a, c, d: scored all along while b was down, with no gap (frames arrive every 1/FPS s)
        times = [got[f].at for f in frames]
        assert max(np.diff(times)) < 0.5, (n, max(np.diff(times)))
        during = [t for t in times if down[0] < t < down[1]]
        assert len(during) >= 0.5 * FPS * (min(down[1], times[-1]) - down[0]), (n, len(during))
        assert times[-1] > down[0] + REFUSE_S  # they were still going well after the cut
