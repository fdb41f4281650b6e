"""Four live cameras at once, one cut mid-run: do they keep up on 2 cores, and is each scored as if alone?

Serves 4 Ped2 test clips as live MJPEG-over-HTTP cameras on 127.0.0.1 (``tests/mjpeg_server.py``: what IP
cameras serve, read by OpenCV's FFmpeg backend) at their 10 fps, looping like a camera that never stops, and
runs ``watch`` on the 4 URLs with one model; each camera stops after as many frames as the shortest clip has
(``--max-frames``: the shortest clip's length). After ``--cut-after`` seconds the second camera's connection is closed and new ones are
refused for ``--refuse`` seconds: it must reconnect while the other three go on.

Measured: total and per-camera fps (frames scored / seconds from the start of the stream), latency from a
frame's arrival off the socket to its outputs (per frame: mean, p50, p95, max), frames dropped because
scoring was behind, reconnects, CPU time per frame. Equality: every camera's ``scores.jsonl`` is compared
with scoring from the file: every frame it delivered (recorded by the opener, dropped ones included) scored one
after the other, motion restarted at each reconnect (``tests/mjpeg_server.rescore``).

    python pipelines/live_benchmark.py --model runs/train/ped2-1 --data PED2_ROOT --threads 2
    -> pipelines/results/live.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ognet_video.watch as watch_mod  # noqa: E402
from ognet_video.cameras import Camera  # noqa: E402
from ognet_video.data import load_dataset, read_gray  # noqa: E402
from ognet_video.host import host_info  # noqa: E402
from ognet_video.models.checkpoint import atomic_write_text  # noqa: E402
from ognet_video.models.detector import Detector, resolve_model_path  # noqa: E402
from ognet_video.sinks.metrics import Health  # noqa: E402
from ognet_video.watch import WatchOptions, watch  # noqa: E402
from pipelines.settings import PED2  # noqa: E402
from tests.mjpeg_server import MjpegServer, Recorder, compare, rescore  # noqa: E402


def latency_sink(rec: Recorder, urls: dict[str, str], out: dict[str, list[float]]) -> type[Health]:
    """``watch``'s per-camera Health sink, also timing each frame from its arrival to its outputs."""

    class TimedHealth(Health):
        def write(self, batch) -> None:  # noqa: ANN001
            super().write(batch)
            now, got = time.monotonic(), rec.by_index(urls[self.camera])
            out[self.camera] += [now - got[f.index].at for f in batch.frames if f.index in got]

    return TimedHealth


def stats_of(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs, dtype=float) * 1000
    if not len(a):
        return {}
    return {"mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)),
            "p95_ms": float(np.percentile(a, 95)), "max_ms": float(a.max())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="runs/train/ped2-1")
    ap.add_argument("--data", default=str(PED2), help="Ped2 root (default: the OGNET_PED2 setting)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", default="01,02,03,04", help="the Ped2 test clips to serve, one camera each")
    ap.add_argument("--fps", type=float, default=10.0, help="served frame rate (Ped2's own: 10)")
    ap.add_argument("--cut-after", type=float, default=5.0, help="seconds after the start to cut camera 2")
    ap.add_argument("--refuse", type=float, default=2.0, help="seconds camera 2 refuses connections after the cut")
    ap.add_argument("--timeout", type=float, default=300.0, help="give up on the run after this many seconds")
    ap.add_argument("--out", type=Path, default=Path("pipelines/results/live.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    path = resolve_model_path(args.model)
    det = Detector.load(path, device="cpu")
    ds = load_dataset("ped2", args.data)
    want = args.clips.split(",")
    clips = {c.name: c for c in ds.test if c.name in want}
    if len(clips) != len(want):
        sys.exit(f"clips {sorted(set(want) - set(clips))} not in {args.data}'s test split")
    frames = {n: [read_gray(p) for p in clips[n].frames] for n in want}
    names = [f"cam{n}" for n in want]
    servers = {
        cam: MjpegServer(frames[n], fps=args.fps, path=f"/ped2_{n}.mjpg") for cam, n in zip(names, want, strict=True)
    }
    urls = {cam: s.url for cam, s in servers.items()}
    cut_cam = names[1]
    rec, lat = Recorder(timeout_s=5.0), defaultdict(list)
    watch_mod.Health = latency_sink(rec, urls, lat)  # type: ignore[misc]  # watch makes one per camera
    box: dict = {}
    out = io.StringIO()

    def run() -> None:
        try:
            opts = WatchOptions(max_frames=min(len(f) for f in frames.values()), connect_timeout=10.0, reconnect_timeout=20.0, live_panel=False,
                                metrics_port=0, metrics_host="127.0.0.1")  # fmt: skip
            cams = [Camera(cam, urls[cam]) for cam in names]
            box["res"] = watch(cams, det, opts, project=tmp / "runs", opener=rec, console=Console(file=out, width=200))
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for s in servers.values():
            s.start()
        cpu0, t0 = time.process_time(), time.monotonic()
        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        cut_time = None
        while runner.is_alive() and time.monotonic() - t0 < args.timeout:
            if cut_time is None and rec.count(urls[cut_cam]) and time.monotonic() - t0 >= args.cut_after:
                cut_time = time.monotonic() - t0
                servers[cut_cam].cut(refuse_s=args.refuse)
            runner.join(timeout=0.05)
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        for s in servers.values():
            s.stop()
        if runner.is_alive():
            sys.exit(f"watch did not finish within {args.timeout:g} s:\n{out.getvalue()}")
        if "error" in box:
            raise box["error"]
        res = box["res"]
        per = {}
        for s in res.streams:
            st, url = s.stats, urls[s.name]
            rows = [json.loads(line) for line in (res.run_dir / s.name / "scores.jsonl").read_text().splitlines()]
            got = rec.by_index(url)
            cmp = compare(rows, rescore(det, rows, got))
            per[s.name] = {
                "clip": want[names.index(s.name)], "frames": st.frames, "seconds": round(st.seconds, 3),
                "fps": round(st.fps, 2), "dropped": st.dropped, "reconnects": st.reconnects, "stopped": st.stopped,
                "read_from_socket": len(got), "latency": stats_of(lat[s.name]),
                "ms_per_frame": {k: round(v, 2) for k, v in st.ms_per_frame().items()},
                "equals_scoring_alone": cmp["equal"], "max_raw_diff_vs_alone": cmp["max_raw_diff"],
                "events": st.events,
            }  # fmt: skip
        log_lines = [line for line in out.getvalue().splitlines() if "reconnect" in line]

    seconds = max(s.stats.seconds for s in res.streams)
    total = sum(s.stats.frames for s in res.streams)
    result = {
        "model": str(path),
        "preset": det.cfg.model.preset,
        "threads": torch.get_num_threads(),
        "cameras": len(names),
        "transport": "MJPEG over HTTP (multipart/x-mixed-replace) on 127.0.0.1, read by OpenCV's FFmpeg backend",
        "served_fps": args.fps,
        "cut": {
            "camera": cut_cam,
            "after_s": cut_time,
            "refused_s": args.refuse,
            "refused_connections": servers[cut_cam].refused,
            "log": log_lines,
        },  # fmt: skip
        "total": {
            "frames": total,
            "seconds": round(seconds, 3),
            "fps": round(total / seconds, 2),
            "wall_s": round(wall, 3),
            "cpu_ms_per_frame": round(1000 * cpu / max(1, total), 2),
            "dropped": sum(p["dropped"] for p in per.values()),
            "all_equal_scoring_alone": all(p["equals_scoring_alone"] for p in per.values()),
        },  # fmt: skip
        "per_camera": per,
        "exit_code": res.exit_code,
        "machine": {
            **host_info(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },  # fmt: skip
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2))
    t = result["total"]
    print(f"{len(names)} cameras at {args.fps:g} fps, {det.cfg.model.preset} preset, {torch.get_num_threads()} threads: "
          f"{t['frames']} frames in {t['seconds']:.1f} s = {t['fps']:.1f} fps in all, {t['dropped']} dropped, "
          f"{t['cpu_ms_per_frame']:.1f} ms CPU per frame")  # fmt: skip
    for cam, p in per.items():
        la = p["latency"]
        print(f"  {cam} (clip {p['clip']}): {p['frames']} frames, {p['fps']:.1f} fps, latency p50 {la.get('p50_ms', 0):.0f} "
              f"/ p95 {la.get('p95_ms', 0):.0f} ms, {p['dropped']} dropped, {p['reconnects']} reconnects, "
              f"{p['stopped']}, equals scoring alone: {p['equals_scoring_alone']}")  # fmt: skip
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
