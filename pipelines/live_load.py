"""Live load: N cameras on one machine, per recipe. Do they keep up, and is every scored frame scored as from the file?

For each ``CONFIG=MODEL`` pair and each N in ``--cameras``, serves Ped2 test clips 01..N as live MJPEG-over-HTTP
cameras on 127.0.0.1 (``tests/mjpeg_server.py``, looping, ``--fps`` each) for ``--seconds``, runs one ``watch``
over the N URLs with the model (a checkpoint, torch), then cuts every camera (so the run ends as a lost source).

Measured per run: frames scored per second in all, each camera's share of frames dropped (the worst is
``drop_rate_max``), latency from a frame's arrival off the socket to its outputs (p50, p95 over every scored
frame), and ``max_raw_diff``: the largest difference between a scored frame's raw score and its score from the
file. "The file" is every frame the camera delivered (recorded as read off the socket, dropped ones included),
scored one after the other by a fresh ``StreamScorer`` (motion restarted at a reconnect), as ``score`` scores a
recording. Per recipe: ``watch_fps``, ``watch`` on the frame folders of test clips 01-04 with the same model in
the same run, and the causal micro AUC of its three seeds from ``--auc`` results files (Ped2 test clips, never
used to choose).

    python pipelines/live_load.py --threads 2 \\
        --run configs/ped2-cpu.yaml=runs/train/ped2-1 --run configs/ped2-large.yaml=runs/train/ped2-large-1 \\
        --auc configs/ped2-cpu.yaml=pipelines/results/default-seeds.json \\
        --auc configs/ped2-large.yaml=pipelines/results/default-seeds-members2.json
    -> pipelines/results/live-load.json
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
from typing import Any

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
from ognet_video.watch import WatchOptions, watch  # noqa: E402
from pipelines.live_benchmark import latency_sink  # noqa: E402
from pipelines.settings import PED2  # noqa: E402
from tests.mjpeg_server import MjpegServer, Recorder, score_from_file  # noqa: E402

DEFAULT_CONFIG = "configs/ped2-cpu.yaml"


def max_diff(rows: list[dict], file: dict[int, Any]) -> float:
    """The largest |raw - file raw| over the scored frames; inf where one is scored and the other is not."""
    worst = 0.0
    for r in rows:
        a, b = (np.nan if r["raw"] is None else r["raw"]), file[r["frame"]].raw
        if np.isnan(a) != np.isnan(b):
            return float("inf")
        if not np.isnan(a):
            worst = max(worst, abs(a - b))
    return worst


def live_run(det: Detector, frames: dict[str, list[np.ndarray]], n: int, fps: float, seconds: float,
             clips: bool = True) -> dict:  # fmt: skip
    names = sorted(frames)[:n]
    servers = {f"cam{c}": MjpegServer(frames[c], fps=fps, path=f"/ped2_{c}.mjpg") for c in names}
    urls = {cam: s.url for cam, s in servers.items()}
    rec, lat = Recorder(timeout_s=5.0), defaultdict(list)
    watch_mod.Health = latency_sink(rec, urls, lat)  # type: ignore[misc]  # one per camera, timing each frame
    box: dict = {}
    out = io.StringIO()

    def run(tmp: Path) -> None:
        try:
            opts = WatchOptions(connect_timeout=10.0, reconnect_timeout=1.0, live_panel=False, metrics_port=0,
                                metrics_host="127.0.0.1", clips=clips)  # fmt: skip
            cams = [Camera(cam, urls[cam]) for cam in servers]
            box["res"] = watch(cams, det, opts, project=tmp / "runs", opener=rec, console=Console(file=out, width=200))
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    with tempfile.TemporaryDirectory() as tmp_name:
        for s in servers.values():
            s.start()
        runner = threading.Thread(target=run, args=(Path(tmp_name),), daemon=True)
        runner.start()
        t0 = time.monotonic()
        while runner.is_alive() and time.monotonic() - t0 < seconds:
            runner.join(timeout=0.1)
        for s in servers.values():
            s.cut(refuse_s=120.0)  # every camera goes away: the run ends as the sources are lost
        runner.join(timeout=120.0)
        for s in servers.values():
            s.stop()
        if "error" in box:
            raise box["error"]
        res = box["res"]
        per = {}
        for s in res.streams:
            folder = res.run_dir / s.name if len(res.streams) > 1 else res.run_dir
            rows = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
            got = rec.frames.get(urls[s.name], [])
            per[s.name] = {"frames": s.stats.frames, "dropped": s.stats.dropped, "drop_rate": round(s.stats.drop_rate, 4),
                           "read_from_socket": len(got), "max_raw_diff": max_diff(rows, score_from_file(det, got))}  # fmt: skip
    all_lat = np.asarray([x for v in lat.values() for x in v]) * 1000
    scored = sum(s.stats.frames for s in res.streams)
    return {  # the cameras served for ``seconds``: the frames scored in that time, per second
        "cameras": n, "clips": clips, "events": sum(s.stats.events for s in res.streams), "source_fps": fps, "seconds": seconds, "scored_fps": round(scored / seconds, 2),
        "drop_rate_max": max(p["drop_rate"] for p in per.values()),
        "latency_p50_ms": round(float(np.percentile(all_lat, 50)), 1) if all_lat.size else None,
        "latency_p95_ms": round(float(np.percentile(all_lat, 95)), 1) if all_lat.size else None,
        "max_raw_diff": max(p["max_raw_diff"] for p in per.values()), "per_camera": per,
    }  # fmt: skip


def watch_fps(det: Detector, clip_dirs: list[Path], rounds: int = 3, clips: bool = True) -> float:
    """``watch`` on recorded frame folders, as fast as it goes: frames scored per second end to end, the median
    of ``rounds`` passes over the clips after one untimed clip (the first forward passes and thread pools)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        run = lambda d: watch(str(d), det, WatchOptions(live_panel=False, clips=clips), project=Path(tmp),  # noqa: E731
                              console=Console(file=io.StringIO())).stream.stats  # fmt: skip
        run(clip_dirs[0])
        for _ in range(rounds):
            stats = [run(d) for d in clip_dirs]
            out.append(sum(s.frames for s in stats) / sum(s.seconds for s in stats))
    return round(float(np.median(out)), 2)


def pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"{what} {item!r}: give CONFIG=PATH")
        out[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, help="CONFIG=MODEL: a recipe and a checkpoint of it")
    ap.add_argument("--auc", action="append", default=[], help="CONFIG=RESULTS: a seeds results file of the recipe")
    ap.add_argument("--data", default=str(PED2), help="Ped2 root (default: the OGNET_PED2 setting)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--cameras-for", action="append", default=[],
                    help="CONFIG=1,4: other camera counts for one recipe (a slow one need not run 8)")
    ap.add_argument("--fps", type=float, default=10.0, help="each camera's frame rate")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long each run's cameras serve")
    ap.add_argument("--out", type=Path, default=Path("pipelines/results/live-load.json"))
    ap.add_argument("--clips", nargs="+", choices=["on", "off"], default=["on"],
                    help="event clips on (the default), off, or both in one run (their cost as a ratio)")
    ap.add_argument("--watch-only", action="store_true", help="measure each recipe's watch fps into --out's recipes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("ped2", args.data)
    test = sorted(ds.test, key=lambda c: c.name)[: max(args.cameras)]
    frames = {c.name: [read_gray(p) for p in c.frames] for c in test}
    aucs = pairs(args.auc, "--auc")
    counts = {k: [int(n) for n in v.split(",")] for k, v in pairs(args.cameras_for, "--cameras-for").items()}
    result: dict = {"host": {**host_info(), "torch_threads": torch.get_num_threads()}, "recipes": {}, "runs": []}
    if args.watch_only:
        result = json.loads(args.out.read_text())
    for config, model in pairs(args.run, "--run").items():
        det = Detector.load(resolve_model_path(model), device="cpu")
        seeds = None
        if config in aucs:
            rows = json.loads(Path(aucs[config]).read_text())["rows"]
            seeds = [round(r["causal_micro_auc"], 4) for r in sorted(rows, key=lambda r: r["seed"])]
        by_clips = {c: watch_fps(det, [c.frames[0].parent for c in test[:4]], clips=c == "on") for c in args.clips}
        fps = by_clips[args.clips[0]]
        result["recipes"][config] = {"default": config == DEFAULT_CONFIG, "model": model, "watch_fps": fps,
                                     "watch_fps_by_clips": by_clips, "causal_micro_auc_seeds": seeds}  # fmt: skip
        print(f"{config}: watch {fps:.1f} fps on recorded clips; causal micro AUC over seeds {seeds}", flush=True)
        if args.watch_only:
            atomic_write_text(args.out, json.dumps(result, indent=2))
            continue
        for n, clips in [(n, c) for n in counts.get(config, args.cameras) for c in args.clips]:
            load = os.getloadavg()[0]  # other jobs on the machine change what it keeps up with: recorded
            run = {"config": config, **live_run(det, frames, n, args.fps, args.seconds, clips == "on"),
                   "load_avg_before": round(load, 2)}  # fmt: skip
            result["runs"].append(run)
            print(f"  {n} cameras at {args.fps:g} fps, clips {clips}: {run['scored_fps']:.1f} fps scored, worst drop rate "
                  f"{run['drop_rate_max']:.3f}, latency p50 {run['latency_p50_ms']} / p95 {run['latency_p95_ms']} ms, "
                  f"max raw diff {run['max_raw_diff']}", flush=True)  # fmt: skip
            args.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.out, json.dumps(result, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
