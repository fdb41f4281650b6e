"""Many cameras in one process: the same scores per camera as one-camera runs, frames of all cameras in
shared forward passes, a cameras file, and a camera that drops or is lost while the others go on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import quiet_console
from test_watch import ImageCapture, anomaly_clip, raws, read_jsonl, watch  # noqa: F401
from videos import write_mp4

from ognet_video.cameras import read_cameras
from ognet_video.errors import UserError


def test_two_cameras_score_as_two_one_camera_runs(anomaly_clip, detector, tmp_path, monkeypatch):  # noqa: F811
    a = anomaly_clip.path
    b = write_mp4(tmp_path / "reversed.mp4", [f[..., 0] for f in anomaly_clip.frames[::-1]])
    calls = []
    original = detector.patch_scores
    monkeypatch.setattr(detector, "patch_scores", lambda x: calls.append(len(x)) or original(x))
    alone = {p.stem: watch(str(p), detector, project=tmp_path / "one", console=quiet_console()) for p in (a, b)}
    passes_alone = len(calls)
    calls.clear()
    alerts = tmp_path / "alerts.jsonl"
    res = watch([str(a), str(b)], detector, project=tmp_path / "many", sinks=[f"file={alerts}"],
                console=quiet_console())  # fmt: skip
    assert res.run_dir.name == "cameras-1" and res.exit_code == 0 and len(res.streams) == 2
    assert len(calls) < passes_alone  # both cameras' patches went through shared forward passes
    for name, one in alone.items():
        rows, ref = read_jsonl(res.run_dir / name / "scores.jsonl"), read_jsonl(one.run_dir / "scores.jsonl")
        assert [r["frame"] for r in rows] == [r["frame"] for r in ref] and len(rows) == len(anomaly_clip.frames)
        assert np.allclose(raws(rows), raws(ref), atol=1e-5, equal_nan=True)
        assert [r["anomalous"] for r in rows] == [r["anomalous"] for r in ref]
        ev, ev_ref = read_jsonl(res.run_dir / name / "events.jsonl"), read_jsonl(one.run_dir / "events.jsonl")
        assert [(e["start"], e["end"], e["peak_frame"]) for e in ev] == [(e["start"], e["end"], e["peak_frame"])
                                                                          for e in ev_ref]  # fmt: skip
    msgs = read_jsonl(alerts)
    assert {m["camera"] for m in msgs} == {n for n, one in alone.items() if one.events}
    assert all(f"/{m['camera']}/snapshots/" in m["snapshot"] for m in msgs)
    top = json.loads((res.run_dir / "summary.json").read_text())
    assert top["cameras"] == 2 and top["frames"] == 2 * len(anomaly_clip.frames)
    assert set(top["per_camera"]) == set(alone) and top["per_camera"][a.stem]["camera"] == a.stem


def test_cameras_file(anomaly_clip, detector, tmp_path):  # noqa: F811
    cams = tmp_path / "cams.yaml"
    cams.write_text(f"cameras:\n  - name: lobby\n    url: {anomaly_clip.path}\n    stride: 2\n    mask: m.png\n"
                    f"  - {{name: door, url: '{anomaly_clip.path}', fps: 5}}\n")  # fmt: skip
    warned = []
    got = read_cameras(cams, warned.append)
    assert [(c.name, c.stride, c.fps) for c in got] == [("lobby", 2, None), ("door", None, 5.0)]
    assert len(warned) == 1 and "mask" in warned[0]
    res = watch([str(cams)], detector, project=tmp_path, console=quiet_console())
    assert {s.name for s in res.streams} == {"lobby", "door"}
    lobby = read_jsonl(res.run_dir / "lobby" / "scores.jsonl")
    assert [r["frame"] for r in lobby] == list(range(0, len(anomaly_clip.frames), 2))
    for text, match in [("- {url: x.mp4, zoom: 2}", "unknown key"), ("[", "not valid YAML"), ("{}", "a list"),
                        ("- {name: a, url: x.mp4, stride: 0}", "stride"), ("- {name: 'a b', url: x}", "name")]:  # fmt: skip
        cams.write_text(text)
        with pytest.raises(UserError, match=match):
            read_cameras(cams)


def test_a_camera_that_drops_reconnects_and_a_lost_one_leaves_the_others(anomaly_clip, detector, tmp_path):  # noqa: F811
    frames = anomaly_clip.frames
    scripts = {
        "rtsp://a/s": [(0, 10), (10, 10)],
        "rtsp://b/s": [(0, 40)] * 3,
        "rtsp://c/s": [],
    }  # a: drops, comes back, then is lost

    def opener(spec: str) -> ImageCapture:
        if not scripts[spec]:
            raise UserError("cannot open stream source (fake camera is gone)")
        start, n = scripts[spec].pop(0)
        return ImageCapture(frames, start, n)

    res = watch(["rtsp://a/s", "rtsp://b/s", "rtsp://c/s"], detector, project=tmp_path, opener=opener,
                reconnect_timeout=0.3, connect_timeout=0.5, console=quiet_console())  # fmt: skip
    by = {s.name: s.stats for s in res.streams}
    assert by["a"].reconnects == 1 and by["a"].stopped == "lost" and by["a"].frames + by["a"].dropped == 20
    assert by["b"].reconnects == 2 and by["b"].frames + by["b"].dropped == 120  # went on after a was lost
    assert by["c"].stopped == "failed" and "did not connect" in by["c"].message and by["c"].frames == 0
    assert res.exit_code == 1
    assert len(read_jsonl(res.run_dir / "b" / "scores.jsonl")) == by["b"].frames
    assert not (res.run_dir / "c").exists()


def test_cli_several_sources(main_cli, anomaly_clip, trained_run, tmp_path):  # noqa: F811
    r = main_cli("watch", anomaly_clip.path, anomaly_clip.path, "--model", trained_run.run_dir, "--project",
                 tmp_path, "--max-frames", "6")  # fmt: skip
    assert r.returncode == 0, r.out
    run = tmp_path / "cameras-1"
    stem = anomaly_clip.path.stem
    assert sorted(p.name for p in run.iterdir()) == sorted([stem, f"{stem}-2", "summary.json"])
    assert f"{stem}-2 " in r.out and "2 cameras: 12 frames" in r.out and "Traceback" not in r.out
