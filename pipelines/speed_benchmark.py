"""Where the time goes: each stage alone, their serial sum, and end to end, on the same frames in one run.

The Ped2 test clips are written as MP4 (mp4v, 10 fps) once; then, with the torch threads fixed:

* **stages alone**: decode (the video source's reader, nothing else), extract (resize, frame difference and
  optical flow of the decoded frames, batch by batch as the scorer feeds it), model (the G + D forward
  passes on exactly the patches the scorer selects);
* **end to end**: ``watch`` on each MP4 (without and with ``--save-video``), with the stages overlapped (the
  default) and one after the other (``Engine.overlap = False``, the loop before the prefetcher), ``score`` on
  all of them (one decode worker), and the Python API's ``Model.stream`` both ways, whose scores must agree
  exactly (``overlap_vs_serial``).

Ratios written next to the numbers: end to end over the slowest single stage (1.0 = the pipeline hides every
other stage) and the API's fps over ``watch``'s. Speeds on a shared machine move with its load: compare the
ratios of one run, not numbers from different runs.

    python pipelines/speed_benchmark.py --model runs/train/ped2-1 --threads 2 [--clips 4]
    -> pipelines/results/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ognet_video.api import Model  # noqa: E402
from ognet_video.checkpoint import atomic_write_text  # noqa: E402
from ognet_video.data import load_dataset  # noqa: E402
from ognet_video.detector import Detector, resolve_model_path  # noqa: E402
from ognet_video.engine import Engine  # noqa: E402
from ognet_video.host import host_info  # noqa: E402
from ognet_video.score import ScoreOptions, score  # noqa: E402
from ognet_video.scoring import FrameScorer  # noqa: E402
from ognet_video.sources import open_source  # noqa: E402
from ognet_video.watch import WatchOptions, watch  # noqa: E402
from pipelines.settings import PED2  # noqa: E402
from pipelines.watch_benchmark import quiet, write_mp4  # noqa: E402 - the same MP4s as the watch benchmark


def decoded(path: str) -> list[np.ndarray]:
    return [f.image for f in open_source(path)]


def stages_alone(videos: list[str], det: Detector) -> dict[str, float]:
    """ms per frame of decode, extract and model, each timed on its own over every frame."""
    n, t_dec, t_ext, t_model = 0, 0.0, 0.0, 0.0
    batch = det.cfg.score.batch_frames
    for v in videos:
        t = time.perf_counter()
        frames = decoded(v)
        t_dec += time.perf_counter() - t
        n += len(frames)
        scorer = FrameScorer(det)  # a new clip: no previous frame
        for i in range(0, len(frames), batch):
            t = time.perf_counter()
            p = scorer.prepare(frames[i : i + batch])  # everything before the forward pass, as the engine does
            t_ext += time.perf_counter() - t
            t = time.perf_counter()
            det.patch_scores(p.x)
            t_model += time.perf_counter() - t
    ms = {k: 1000 * v / n for k, v in (("decode", t_dec), ("extract", t_ext), ("model", t_model))}
    return ms | {"serial_sum": sum(ms.values()), "frames": n}


def api_results(videos: list[str], det: Detector) -> tuple[float, np.ndarray]:
    """fps of ``Model.stream`` over the videos, and every frame's (raw, score, smoothed) in order."""
    model, rows, t = Model(det, "bench"), [], time.perf_counter()
    for v in videos:
        rows += [(r.raw, r.score, r.smoothed) for r in model.stream(v)]
    return len(rows) / (time.perf_counter() - t), np.array(rows, dtype=np.float64)


def end_to_end(videos: list[str], det: Detector, path: Path, tmp: Path) -> dict[str, dict[str, float]]:
    """watch (stages overlapped, then one after the other as before the prefetcher), score and the API."""
    out: dict[str, dict[str, float]] = {}
    for label, save, overlap in (("watch", False, True), ("watch_save_video", True, True),
                                 ("watch_serial", False, False), ("watch_serial_save_video", True, False)):  # fmt: skip
        Engine.overlap, frames, seconds = overlap, 0, 0.0
        for v in videos:
            res = watch(v, det, WatchOptions(save_video=save, live_panel=False), project=tmp / label, console=quiet())
            frames, seconds = frames + res.frames, seconds + res.seconds
        out[label] = {"fps": frames / seconds, "frames": frames}
    Engine.overlap = True
    t = time.perf_counter()  # model loading included: score loads the checkpoint itself
    res = score(videos, path, opts=ScoreOptions(workers=1), project=tmp / "score", device="cpu", console=quiet())
    out["score"] = {"fps": res.frames / (time.perf_counter() - t), "frames": res.frames}
    fps, overlapped = api_results(videos, det)
    Engine.overlap = False
    serial_fps, serial = api_results(videos, det)
    Engine.overlap = True
    same = np.array_equal(np.isnan(overlapped), np.isnan(serial))
    diff = float(np.nanmax(np.abs(overlapped - serial))) if same else float("inf")
    out["api_stream"] = {"fps": fps, "frames": len(overlapped)}
    out["api_stream_serial"] = {"fps": serial_fps, "frames": len(serial)}
    out["overlap_vs_serial"] = {"max_abs_diff_raw_score_smoothed": diff, "same_unscored_frames": same}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="runs/train/ped2-1")
    ap.add_argument("--data", default=str(PED2), help="Ped2 root (default: the OGNET_PED2 setting)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", type=int, default=12, help="the first N test clips")
    ap.add_argument("--out", type=Path, default=Path("pipelines/results/speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    path = resolve_model_path(args.model)
    det = Detector.load(path, device="cpu")
    clips = load_dataset("ped2", args.data).test[: args.clips]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = [str(write_mp4(c.frames, tmp / f"ped2_{c.name}.mp4")) for c in clips]
        alone = stages_alone(videos, det)
        e2e = end_to_end(videos, det, path, tmp)
    slowest = max(alone["decode"], alone["extract"], alone["model"])
    result = {
        "model": str(path), "preset": det.cfg.model.preset, "clips": len(clips), "frames": alone["frames"],
        "machine": {**host_info(), "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "stages_ms_per_frame": alone,
        "serial_fps": 1000 / alone["serial_sum"],
        "end_to_end": e2e,
        "ratios": {
            "watch_ms_over_slowest_stage": (1000 / e2e["watch"]["fps"]) / slowest,
            "api_over_watch_fps": e2e["api_stream"]["fps"] / e2e["watch"]["fps"],
            "watch_over_serial_sum_fps": e2e["watch"]["fps"] / (1000 / alone["serial_sum"]),
            "watch_over_watch_serial_fps": e2e["watch"]["fps"] / e2e["watch_serial"]["fps"],
            "watch_save_video_over_serial_fps": e2e["watch_save_video"]["fps"] / e2e["watch_serial_save_video"]["fps"],
        },
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("stages_ms_per_frame", "serial_fps", "end_to_end", "ratios")}, indent=2))


if __name__ == "__main__":
    main()
