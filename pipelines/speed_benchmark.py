"""Where the time goes: each stage alone, their serial sum, and end to end, on the same frames in one run.

The Ped2 test clips are written as MP4 (mp4v, 10 fps) once; then, with the torch threads fixed, for the checkpoint
(torch) and for its ONNX export (OpenVINO when installed, and onnxruntime):

* **stages alone**: decode (the video source's reader, nothing else), extract (resize, frame difference and
  optical flow of the decoded frames, batch by batch as the scorer feeds it), model (the forward passes on exactly
  the patches the scorer selects);
* **end to end**: ``watch`` on each MP4 (without and with ``--save-video``), ``score`` on all of them (one decode
  worker), and the Python API's ``Model.stream``.

The baseline ("before") is the loop as it was before the stages overlapped: torch, decode, extract and model one
after the other (``Engine.overlap = False``), one DIS instance for the flow. The overlapped torch path must give
the API exactly the baseline's scores; an export's scores and decisions are compared with torch's.

Ratios written next to the numbers: end to end over the baseline, over the slowest single stage (1.0 = the
pipeline hides every other stage), and the API's fps over ``watch``'s. Speeds on a shared machine move with its
load: compare the ratios of one run, not numbers from different runs.

    python pipelines/speed_benchmark.py --model runs/train/ped2-1 --threads 2 [--clips 4]
    -> pipelines/results/speed.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ognet_video import patches  # noqa: E402
from ognet_video.api import Model  # noqa: E402
from ognet_video.data import load_dataset  # noqa: E402
from ognet_video.host import host_info  # noqa: E402
from ognet_video.models.checkpoint import atomic_write_text  # noqa: E402
from ognet_video.models.detector import Detector, resolve_model_path  # noqa: E402
from ognet_video.models.export import export  # noqa: E402
from ognet_video.models.onnx_backend import RUNTIME_ENV, installed_runtimes  # noqa: E402
from ognet_video.score import ScoreOptions, score  # noqa: E402
from ognet_video.sources import open_source  # noqa: E402
from ognet_video.stream.engine import Engine  # noqa: E402
from ognet_video.stream.scoring import FrameScorer  # noqa: E402
from ognet_video.watch import WatchOptions, watch  # noqa: E402
from pipelines.settings import PED2  # noqa: E402
from pipelines.watch_benchmark import quiet, write_mp4  # noqa: E402 - the same MP4s as the watch benchmark


@contextlib.contextmanager
def before() -> Iterator[None]:
    """The loop before the stages overlapped: one after the other, one DIS instance."""
    workers = patches.flow_workers
    Engine.overlap, patches.flow_workers = False, lambda: 1
    try:
        yield
    finally:
        Engine.overlap, patches.flow_workers = True, workers


@contextlib.contextmanager
def one_core_per_stage() -> Iterator[None]:
    """One thread for the model and one for the flow (one DIS instance, OpenCV single-threaded): on two cores
    each stage has its own, which is what lets the pipeline hide the faster one."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


@contextlib.contextmanager
def runtime_env(runtime: str | None) -> Iterator[None]:
    """``score`` loads the model itself: the exported model's runtime through the environment."""
    old = os.environ.get(RUNTIME_ENV)
    if runtime:
        os.environ[RUNTIME_ENV] = runtime
    try:
        yield
    finally:
        os.environ.pop(RUNTIME_ENV, None)
        if old is not None:
            os.environ[RUNTIME_ENV] = old


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
    """fps of ``Model.stream`` over the videos, and every frame's (raw, score, smoothed, anomalous) in order."""
    model, rows, t = Model(det, "bench"), [], time.perf_counter()
    for v in videos:
        rows += [(r.raw, r.score, r.smoothed, float(r.anomalous)) for r in model.stream(v)]
    return len(rows) / (time.perf_counter() - t), np.array(rows, dtype=np.float64)


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float | bool]:
    """Largest |difference| of raw, calibrated and smoothed scores, and whether every frame's decision agrees."""
    same = bool(np.array_equal(np.isnan(a[:, :3]), np.isnan(b[:, :3])))
    diff = float(np.nanmax(np.abs(a[:, :3] - b[:, :3]))) if same else float("inf")
    return {
        "max_abs_diff_scores": diff,
        "same_unscored_frames": same,
        "same_decisions": bool(np.array_equal(a[:, 3], b[:, 3])),
    }


def watch_fps(videos: list[str], det: Detector, project: Path, save: bool = False) -> dict[str, float]:
    frames, seconds = 0, 0.0
    for v in videos:
        res = watch(v, det, WatchOptions(save_video=save, live_panel=False), project=project, console=quiet())
        frames, seconds = frames + res.frames, seconds + res.seconds
    return {"fps": frames / seconds, "frames": frames}


def once_each(videos: list[str], model: Detector, path: Path, tmp: Path, runtime: str | None) -> dict:
    """``watch --save-video`` and ``score`` (which loads the model itself), measured once."""
    out: dict = {"watch_save_video": watch_fps(videos, model, tmp / "video", True)}
    t = time.perf_counter()  # model loading included
    with runtime_env(runtime):
        res = score(videos, path, opts=ScoreOptions(workers=1), project=tmp / "score", device="cpu", console=quiet())
    out["score"] = {"fps": res.frames / (time.perf_counter() - t), "frames": res.frames}
    return out


def best(values: list[dict[str, float]], key: str, low: bool = False) -> float:
    """The least disturbed of the rounds: the highest fps (or lowest ms) a shared machine allowed."""
    return (min if low else max)(v[key] for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="runs/train/ped2-1")
    ap.add_argument("--data", default=str(PED2), help="Ped2 root (default: the OGNET_PED2 setting)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", type=int, default=12, help="the first N test clips")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repeats; the best of each is kept")
    ap.add_argument("--out", type=Path, default=Path("pipelines/results/speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    path = resolve_model_path(args.model)
    det = Detector.load(path, device="cpu")
    clips = load_dataset("ped2", args.data).test[: args.clips]
    result: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = [str(write_mp4(c.frames, tmp / f"ped2_{c.name}.mp4")) for c in clips]
        onnx = export(path, "onnx", tmp / "model.onnx").path
        runtimes = installed_runtimes()  # OpenVINO first when installed; onnxruntime (``export`` requires it)
        with one_core_per_stage():
            one_core = Detector.load(onnx, runtime=runtimes[0])  # its threads are fixed when it is compiled
        configs = {"before": (det, before), "torch": (det, contextlib.nullcontext)}
        configs |= {r: (Detector.load(onnx, runtime=r), contextlib.nullcontext) for r in runtimes}
        configs[f"{runtimes[0]}_one_core_per_stage"] = (one_core, one_core_per_stage)
        stages, watches, apis = ({name: [] for name in configs} for _ in range(3))
        rows: dict[str, np.ndarray] = {}
        for r in range(args.rounds):  # interleaved, so a burst of load on the shared machine hits every config
            for name, (model, ctx) in configs.items():
                with ctx():
                    stages[name].append(stages_alone(videos, model))
                    watches[name].append(watch_fps(videos, model, tmp / f"{name}-{r}"))
                    fps, got = api_results(videos, model)
                apis[name].append({"fps": fps})
                rows.setdefault(name, got)
        baseline = best(watches["before"], "fps")
        for name, (model, ctx) in configs.items():
            alone = {k: best(stages[name], k, low=True) for k in ("decode", "extract", "model")}
            slowest = max(alone.values())
            alone["serial_sum"] = sum(alone.values())
            e2e = {"watch": {"fps": best(watches[name], "fps"), "rounds": [w["fps"] for w in watches[name]]},
                   "api_stream": {"fps": best(apis[name], "fps"), "rounds": [a["fps"] for a in apis[name]]}}  # fmt: skip
            if name in ("before", "torch", *runtimes):
                with ctx():
                    runtime = None if name in ("before", "torch") else name
                    e2e |= once_each(videos, model, onnx if runtime else path, tmp / f"{name}-once", runtime)
            result[name] = {
                "stages_ms_per_frame": alone,
                "end_to_end": e2e,
                "ratios": {
                    "watch_over_before_fps": e2e["watch"]["fps"] / baseline,
                    "watch_ms_over_slowest_stage": (1000 / e2e["watch"]["fps"]) / slowest,
                    "api_over_watch_fps": e2e["api_stream"]["fps"] / e2e["watch"]["fps"],
                },
                "vs_before": compare(rows[name], rows["before"]),
            }
    summary = {
        "model": str(path), "preset": det.cfg.model.preset, "clips": len(clips), "frames": len(rows["before"]),
        "rounds": args.rounds, "torch_threads": args.threads,
        "machine": {**host_info(), "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "runtimes": result,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(summary, indent=2) + "\n")
    for name, r in result.items():
        e = r["end_to_end"]
        print(
            f"{name:12s} stages {' '.join(f'{k} {v:.2f}' for k, v in r['stages_ms_per_frame'].items())} | "
            + " ".join(f"{k} {v['fps']:.1f}" for k, v in e.items())
            + f" | {r.get('ratios', '')} {r.get('vs_before', '')}"
        )


if __name__ == "__main__":
    main()
