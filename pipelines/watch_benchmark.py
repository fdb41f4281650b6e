"""Is ``watch`` the same detector as ``eval``, and is it fast enough for a camera?

Writes each Ped2 test clip as an MP4 (mp4v, 10 fps, what OpenCV can write without extra codecs), runs
``ognet_video.watch.watch`` on it, and compares the per-frame raw scores in ``scores.jsonl`` with the
offline ``evaluate`` scores of the same checkpoint on the original JPEG frames: the difference is the
codec's noise. The same is done on the frame folders themselves, where both read identical pixels and
the scores must agree to float precision. Frame AUC over the 12 clips uses the causally smoothed
scores in both cases (``watch``'s ``smoothed`` column vs ``eval``'s causal mode).

Speed: end-to-end fps of the watch loop (decode thread + scoring + outputs, model loading excluded),
model-only fps (the G + D forward passes alone), once without and once with ``--save-video``; and CPU
time per frame (all threads), which other jobs on a shared machine inflate far less than wall time.

    python pipelines/watch_benchmark.py --model runs/train/ped2-1 --data PED2_ROOT --threads 2
    -> pipelines/results/watch.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console

from ognet_video.data import load_dataset, read_gray
from ognet_video.evaluation.evaluate import evaluate
from ognet_video.evaluation.metrics import summarize
from ognet_video.host import host_info
from ognet_video.models.checkpoint import atomic_write_text
from ognet_video.models.detector import Detector, resolve_model_path
from ognet_video.watch import WatchOptions, watch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines.settings import PED2  # noqa: E402


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def write_mp4(frames: list[Path], path: Path, fps: float = 10.0) -> Path:
    first = read_gray(frames[0])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (first.shape[1], first.shape[0]))
    for f in frames:
        writer.write(cv2.cvtColor(read_gray(f), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def watch_all(sources: dict[str, str], det: Detector, project: Path, save_video: bool = False) -> dict:
    """Run watch on every clip; per-clip raw/smoothed series and the pooled timings."""
    raw, smoothed, frames, seconds, model_ms, stages = {}, {}, 0, 0.0, 0.0, {}
    cpu0 = time.process_time()
    for clip, src in sources.items():
        res = watch(src, det, WatchOptions(save_video=save_video, live_panel=False), project=project,
                    name=f"{clip}-{'video' if save_video else 'plain'}", console=quiet())  # fmt: skip
        rows = [json.loads(line) for line in (res.run_dir / "scores.jsonl").read_text().splitlines()]
        raw[clip] = np.array([np.nan if r["raw"] is None else r["raw"] for r in rows])  # null: unscored first frame
        smoothed[clip] = np.array([r["smoothed"] for r in rows])
        frames += res.frames
        seconds += res.seconds
        for k, v in res.stream.stats.ms_per_frame().items():
            stages[k] = stages.get(k, 0.0) + v * res.frames
    cpu = time.process_time() - cpu0
    model_ms = stages["model"] / frames
    return {
        "raw": raw, "smoothed": smoothed, "frames": frames, "seconds": seconds,
        "fps_end_to_end": frames / seconds, "fps_model_only": 1000.0 / model_ms,
        "cpu_ms_per_frame": 1000 * cpu / frames,
        "ms_per_frame": {k: v / frames for k, v in stages.items()},
    }  # fmt: skip


def consistency(watch_raw: dict[str, np.ndarray], eval_raw: dict[str, np.ndarray]) -> dict:
    """Differences over the scored frames; both sides must leave the same frames unscored (NaN)."""
    a = np.concatenate([watch_raw[c] for c in sorted(eval_raw)])
    b = np.concatenate([eval_raw[c] for c in sorted(eval_raw)])
    ok = np.isfinite(a) & np.isfinite(b)
    d = np.abs(a - b)[ok]
    return {
        "frames": int(len(a)),
        "unscored_frames_match": bool(np.array_equal(np.isnan(a), np.isnan(b))),
        "max_abs_diff": float(d.max()),
        "mean_abs_diff": float(d.mean()),
        "share_within_0.01": float((d <= 0.01).mean()),
        "correlation": float(np.corrcoef(a[ok], b[ok])[0, 1]),
        "per_clip_max_abs_diff": {c: float(np.nanmax(np.abs(watch_raw[c] - eval_raw[c]))) for c in sorted(eval_raw)},
    }


def auc_block(labels: dict[str, np.ndarray], scores: dict[str, np.ndarray], eval_metrics: dict) -> dict:
    m = summarize(labels, scores)
    ref = eval_metrics["causal"]
    return {
        "causal_micro_auc": m["micro_auc"], "eval_causal_micro_auc": ref["micro_auc"],
        "diff_points": 100 * (m["micro_auc"] - ref["micro_auc"]),
        "causal_macro_auc": m["macro_auc"], "eval_causal_macro_auc": ref["macro_auc"],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="runs/train/ped2-1")
    ap.add_argument("--data", default=str(PED2), help="Ped2 root (default: the OGNET_PED2 setting)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("pipelines/results/watch.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    path = resolve_model_path(args.model)
    det = Detector.load(path, device="cpu")
    ds = load_dataset("ped2", args.data)
    clips = [c for c in ds.test if c.labels is not None]
    labels = {c.name: c.labels for c in clips}

    cpu0 = time.process_time()
    ev = evaluate(det, clips, out_dir=None, console=quiet(), plots=False)
    eval_cpu_ms = 1000 * (time.process_time() - cpu0) / ev.metrics["frames"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mp4 = {c.name: str(write_mp4(c.frames, tmp / f"ped2_{c.name}.mp4")) for c in clips}
        folders = {c.name: str(c.frames[0].parent) for c in clips}
        on_mp4 = watch_all(mp4, det, tmp / "runs")
        on_folder = watch_all(folders, det, tmp / "runs")
        with_video = watch_all(mp4, det, tmp / "runs", save_video=True)
        mp4_bytes = sum(Path(p).stat().st_size for p in mp4.values())

    for name, run in (("mp4", on_mp4), ("folder", on_folder)):
        n = run["frames"]
        assert n == ev.metrics["frames"], f"{name}: watch scored {n} frames, eval {ev.metrics['frames']}"
    result = {
        "model": str(path),
        "preset": det.cfg.model.preset,
        "clips": len(clips),
        "frames": ev.metrics["frames"],
        "machine": {
            **host_info(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },  # fmt: skip
        "mp4": {"codec": "mp4v (OpenCV default bitrate)", "fps": 10, "bytes": mp4_bytes},
        "consistency": {
            "mp4_vs_eval": consistency(on_mp4["raw"], ev.raw),
            "folder_vs_eval": consistency(on_folder["raw"], ev.raw),
        },
        "auc": {
            "mp4": auc_block(labels, on_mp4["smoothed"], ev.metrics),
            "folder": auc_block(labels, on_folder["smoothed"], ev.metrics),
        },
        "speed": {
            "eval_ms_per_frame": ev.metrics["ms_per_frame"],
            "eval_fps": 1000.0 / ev.metrics["ms_per_frame"],
            "eval_cpu_ms_per_frame": eval_cpu_ms,
            **{
                name: {
                    k: run[k]
                    for k in ("fps_end_to_end", "fps_model_only", "cpu_ms_per_frame", "ms_per_frame", "seconds")
                }
                for name, run in (
                    ("watch_mp4", on_mp4),
                    ("watch_folder", on_folder),
                    ("watch_mp4_save_video", with_video),
                )
            },
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2))
    c, a, s = result["consistency"], result["auc"], result["speed"]
    print(
        f"{len(clips)} clips, {result['frames']} frames, {det.cfg.model.preset} preset, {torch.get_num_threads()} threads"
    )
    for name in ("mp4", "folder"):
        cc, aa = c[f"{name}_vs_eval"], a[name]
        print(f"  {name:6s} raw vs eval: max |diff| {cc['max_abs_diff']:.2e}, mean {cc['mean_abs_diff']:.2e}, "
              f"corr {cc['correlation']:.5f} | causal micro AUC {aa['causal_micro_auc']:.4f} vs eval "
              f"{aa['eval_causal_micro_auc']:.4f} ({aa['diff_points']:+.2f} points)")  # fmt: skip
    for name in ("watch_mp4", "watch_folder", "watch_mp4_save_video"):
        sp = s[name]
        ms = " ".join(f"{k} {v:.1f}" for k, v in sp["ms_per_frame"].items())
        print(f"  {name:21s} {sp['fps_end_to_end']:6.1f} fps end to end, {sp['fps_model_only']:6.1f} fps model only "
              f"({ms} ms wall; {sp['cpu_ms_per_frame']:.1f} ms CPU, all threads)")  # fmt: skip
    print(f"  eval: {s['eval_fps']:.1f} fps (decode + extract + model; {s['eval_cpu_ms_per_frame']:.1f} ms CPU) "
          f"-> {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
