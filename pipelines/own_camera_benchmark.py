"""A video-only round trip, as a user with their own camera would do it, measured on UCSD Ped2.

Ped2's clips are written as MP4 files at 30 fps and 16:9: Ped2 is recorded at 10 fps, so each frame is
written three times (the 30 fps file holds the same motion, three source frames per Ped2 frame), and the
360x240 frames are padded with black bars to 426x240 (``--fit crop``: cut to 360x202 instead, a 16:9
picture with no bars). Then, through the command line and with no flag about fps or geometry:

    ognet-video train WORK/videos/training/*.mp4 --name ped2-mp4 train.seed=S
    ognet-video score WORK/videos/testing/*.mp4 --model RUN

and the causal micro AUC of score's per-clip ``scores.csv`` (the ``smoothed`` column, frame ``3k`` is
Ped2's frame ``k``) against Ped2's labels, next to the frames-layout run of the same seed (its
``metrics.json``, given with ``--reference``). Writes ``pipelines/results/own_camera.json``.

    python pipelines/own_camera_benchmark.py --work runs/own-camera --reference runs/train/ped2-1

Videos are H.264 (crf 18) written with ffmpeg where it is installed, else OpenCV's MPEG-4 part 2.
``--clips N`` / ``--epochs N`` make a smaller, faster version (recorded as such in the results).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ognet_video.data import load_dataset  # noqa: E402
from ognet_video.evaluation.metrics import summarize  # noqa: E402
from ognet_video.sources import read_gray  # noqa: E402
from pipelines.settings import PED2, REPO  # noqa: E402

FPS, REPEAT = 30, 3  # 30 fps files of 10 fps content
WIDTH = 426  # 240 x 426: 16:9


def _padded(frames: list[Path], width: int = WIDTH) -> list[np.ndarray]:
    out = []
    for f in frames:
        img = read_gray(f)
        pad = width - img.shape[1]
        out.append(cv2.copyMakeBorder(img, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_CONSTANT, value=0))
    return out


def _cropped(frames: list[Path]) -> list[np.ndarray]:
    """16:9 by cutting rows off the top and bottom (360x240 -> 360x202): a 16:9 picture with no bars."""
    out = []
    for f in frames:
        img = read_gray(f)
        h = round(img.shape[1] * 9 / 16)
        top = (img.shape[0] - h) // 2
        out.append(np.ascontiguousarray(img[top : top + h]))
    return out


def write_video(frames: list[Path], path: Path, width: int = WIDTH, fit: str = "pad") -> str:
    """A Ped2 clip as a 30 fps 16:9 MP4 (each frame three times; black bars left and right, or with ``fit``
    "crop" the top and bottom cut off): H.264 (crf 18) with ffmpeg where it is installed, else OpenCV's MPEG-4
    part 2. Returns the codec."""
    codec = "h264" if shutil.which("ffmpeg") else "mp4v"
    if path.is_file():
        return codec
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    imgs = _cropped(frames) if fit == "crop" else _padded(frames, width)
    h, w = imgs[0].shape
    if codec == "h264":
        cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}", "-r",
               str(FPS), "-i", "-", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(tmp)]  # fmt: skip
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        assert proc.stdin is not None
        for img in imgs:
            proc.stdin.write(img.tobytes() * REPEAT)
        proc.stdin.close()
        if proc.wait():
            raise SystemExit(f"ffmpeg failed on {path}")
    else:
        vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
        for img in imgs:
            for _ in range(REPEAT):
                vw.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
        vw.release()
    tmp.rename(path)
    return codec


def cli(*args: str) -> None:
    exe = Path(sys.executable).parent / "ognet-video"
    cmd = [str(exe), *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "NO_COLOR": "1"})


def read_scores(score_dir: Path, clip: str) -> np.ndarray:
    """Score's causal (smoothed) score per Ped2 frame: row frame 3k is Ped2's frame k."""
    rows = list(csv.DictReader((score_dir / "clips" / f"{clip}.mp4" / "scores.csv").open()))
    out = {int(r["frame"]) // REPEAT: float(r["smoothed"]) for r in rows if r["smoothed"] != ""}
    return np.array([out.get(k, np.nan) for k in range(max(out) + 1)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=PED2)
    ap.add_argument("--work", type=Path, required=True, help="Folder for the videos and runs.")
    ap.add_argument("--reference", type=Path, help="The frames-layout run of the same seed (its metrics.json).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clips", type=int, default=0, help="Train on the first N training clips only (0: all).")
    ap.add_argument("--epochs", type=int, default=0, help="train.epochs (0: the default recipe's).")
    ap.add_argument("--width", type=int, default=WIDTH, help="Frame width of the videos (360: Ped2's 3:2, no bars).")
    ap.add_argument(
        "--fit",
        choices=("pad", "crop"),
        default="pad",
        help="16:9 by black bars left and right (pad) or by cutting the top and bottom (crop).",
    )
    args = ap.parse_args()
    if args.fit == "crop":
        args.width = 360
    ds = load_dataset("ped2", args.data)
    train_clips = ds.train[: args.clips] if args.clips else ds.train
    vid = args.work / "videos"
    codec = ""
    for split, clips in (("training", train_clips), ("testing", ds.test)):
        for c in clips:
            codec = write_video(c.frames, vid / split / f"{c.name}.mp4", args.width, args.fit)
    run = args.work / "runs" / "train" / f"ped2-mp4-s{args.seed}"
    t0 = time.perf_counter()
    minutes = {}
    if not (run / "model.safetensors").is_file():
        extra = [f"train.epochs={args.epochs}"] if args.epochs else []
        names = [str(vid / "training" / f"{c.name}.mp4") for c in train_clips]
        cli("train", *names, "--project", str(run.parent), "--name", run.name, f"train.seed={args.seed}", *extra)
        made = sorted(run.parent.glob(f"{run.name}-*"), key=lambda p: p.stat().st_mtime)[-1]
        made.rename(run)
        minutes["train"] = round((time.perf_counter() - t0) / 60, 1)
    t0 = time.perf_counter()
    score = args.work / "runs" / "score" / f"ped2-mp4-s{args.seed}"
    if not (score / "summary.csv").is_file():
        cli("score", str(vid / "testing"), "--model", str(run), "--project", str(score.parent), "--name", score.name)
        made = sorted(score.parent.glob(f"{score.name}-*"), key=lambda p: p.stat().st_mtime)[-1]
        made.rename(score)
        minutes["score"] = round((time.perf_counter() - t0) / 60, 1)
    labels = {c.name: c.labels for c in ds.test}
    scores = {c: read_scores(score, c) for c in labels}
    for c in labels:
        if len(scores[c]) != len(labels[c]) or not np.isfinite(scores[c]).all():
            raise SystemExit(f"clip {c}: {len(scores[c])} scored frames for {len(labels[c])} labels")
    m = summarize(labels, scores)
    meta = json.loads((run / "config.json").read_text())
    ref = json.loads((args.reference / "metrics.json").read_text()) if args.reference else None
    ref_auc = ref["causal"]["micro_auc"] if ref else None
    result = {
        "what": "Ped2 as 30 fps MP4 (frames repeated 3x; "
        + {
            "pad": "black bars to 16:9" if args.width == WIDTH else f"{args.width} px wide",
            "crop": "16:9 by cutting 19 rows off the top and bottom",
        }[args.fit]  # fmt: skip
        + "), train + score through the CLI, no flag about fps or geometry",
        "seed": args.seed,
        "codec": codec,
        "video_size": [202, 360] if args.fit == "crop" else [240, args.width],
        "crop": meta["patches"].get("crop"),
        "smaller": {"clips": args.clips or len(ds.train), "epochs": args.epochs or meta["train"]["epochs"]},
        "geometry": [meta["patches"]["height"], meta["patches"]["width"]],
        "analysis_fps": meta["patches"]["analysis_fps"],
        "causal": {k: m[k] for k in ("micro_auc", "macro_auc", "eer")},
        "per_clip_auc": m["per_clip_auc"],
        "frames_layout_causal_micro_auc": ref_auc,
        "difference": None if ref_auc is None else m["micro_auc"] - ref_auc,
        "minutes": minutes,  # of this invocation (steps already done are not repeated)
    }
    out = (
        REPO
        / "pipelines"
        / "results"
        / (
            "own_camera-crop.json"
            if args.fit == "crop"
            else "own_camera.json"
            if args.width == WIDTH
            else f"own_camera-w{args.width}.json"
        )  # fmt: skip
    )
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("causal", "frames_layout_causal_micro_auc", "difference")}, indent=2))


if __name__ == "__main__":
    main()
