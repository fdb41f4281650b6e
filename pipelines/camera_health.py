"""Camera health on UCSD Ped2 written as video: is every tampering reported, with its reason, within 2 s?

The camera's normal picture is measured (``health.fit_reference``, as ``train`` does) on Ped2's training clips
01-14 written as MP4 at 10 fps; clips 15-16 are held out. Each of the 12 test clips is then written as MP4
untouched and once per tampering from ``--start`` seconds on (6 s: frame 60):

* ``cover``: 60% of the frame (its left part) painted one flat gray;
* ``shift``: the view moved 20 px to the right (the picture shifted, its edge reflected);
* ``blur``: a Gaussian blur of sigma 3; ``dark``: brightness x 0.2; ``freeze``: the frame at the start repeated.

Each video is read back through the same source ``watch`` uses and fed to the camera checks with the default
``health`` settings (the checks need no network: they never read a score). A tampering is detected when the
first camera event starting at or after its start has its reason (frozen, covered, moved, blurred, dark);
its delay is that event's start message's source time minus the start. Every camera event on the untouched
test clips and the held-out training clips is a false alert. Writes ``pipelines/results/camera-health.json``.

    python pipelines/camera_health.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ognet_video.config import HealthConfig  # noqa: E402
from ognet_video.data import load_dataset  # noqa: E402
from ognet_video.health import CameraHealth, fit_reference  # noqa: E402
from ognet_video.host import host_info  # noqa: E402
from ognet_video.models.checkpoint import atomic_write_text  # noqa: E402
from ognet_video.sources import open_source  # noqa: E402
from pipelines.settings import PED2, REPO  # noqa: E402
from tests.videos import write_mp4  # noqa: E402

FPS = 10.0
KINDS = ("cover", "shift", "blur", "dark", "freeze")
REASON = {"cover": "covered", "shift": "moved", "blur": "blurred", "dark": "dark", "freeze": "frozen"}
BAR_S = 2.0  # every tampering reported within this many seconds of its start


def tamper(img: np.ndarray, kind: str, first: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if kind == "cover":
        out = img.copy()
        out[:, : int(round(0.6 * w))] = 100
        return out
    if kind == "shift":
        return cv2.warpAffine(img, np.float32([[1, 0, 20], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REFLECT)
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), 3)
    if kind == "dark":
        return np.round(img.astype(np.float32) * 0.2).astype(np.uint8)
    return first.copy()


def read_video(path: Path):
    """(image, time, index) of a video as ``watch`` reads it, at the analysis rate (10 fps)."""
    for f in open_source(str(path)).analyse_at(FPS):
        yield f.image, f.time, f.index


def camera_events(ref, path: Path, cfg: HealthConfig) -> list[tuple[str, float]]:
    """(reason, source time of its start message) of every camera event on a video."""
    h = CameraHealth(ref, cfg)
    for image, t, i in read_video(path):
        h.update(h.measure(image), i, t, None)
    h.finish()
    return [(m.event.reason, float(m.time if m.time is not None else m.frame / FPS)) for m in h.outbox
            if m.type == "start"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=PED2)
    ap.add_argument("--start", type=float, default=6.0, help="seconds into each test clip the tampering starts")
    ap.add_argument("--out", type=Path, default=REPO / "pipelines" / "results" / "camera-health.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = load_dataset("ped2", args.data)
    cfg = HealthConfig()
    gray = lambda clip: [f.image for f in clip.source(FPS)]  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fit, held = ds.train[:-2], ds.train[-2:]
        videos = [write_mp4(work / f"train{c.name}.mp4", gray(c), FPS) for c in fit]
        ref = fit_reference([((img, t) for img, t, _ in read_video(v)) for v in videos], 1.0 / FPS)
        print(f"reference from {len(fit)} training clips, {ref.frames} frames", flush=True)
        false = {"untouched_test": 0, "held_out_training": 0}
        false_detail = []
        for c in held:
            got = camera_events(ref, write_mp4(work / f"held{c.name}.mp4", gray(c), FPS), cfg)
            false["held_out_training"] += len(got)
            false_detail += [{"clip": f"train{c.name}", "reason": r, "at_s": round(t, 2)} for r, t in got]
        rows = []
        for c in ds.test:
            frames = gray(c)
            at = int(round(args.start * FPS))
            got = camera_events(ref, write_mp4(work / f"test{c.name}.mp4", frames, FPS), cfg)
            false["untouched_test"] += len(got)
            false_detail += [{"clip": c.name, "reason": r, "at_s": round(t, 2)} for r, t in got]
            for kind in KINDS:
                bad = frames[:at] + [tamper(f, kind, frames[at]) for f in frames[at:]]
                events = camera_events(ref, write_mp4(work / f"test{c.name}-{kind}.mp4", bad, FPS), cfg)
                after = [(r, t) for r, t in events if t >= args.start - 1e-6]
                reason, when = after[0] if after else (None, None)
                word = {v: k for k, v in REASON.items()}.get(reason, reason) if reason else None
                rows.append({"clip": c.name, "kind": kind, "start_s": args.start, "detected_reason": word,
                             "delay_s": None if when is None else round(when - args.start, 2),
                             "before_start": [r for r, t in events if t < args.start - 1e-6]})  # fmt: skip
                print(c.name, kind, word, rows[-1]["delay_s"], flush=True)
    ok = [r for r in rows if r["detected_reason"] == r["kind"] and r["delay_s"] is not None and r["delay_s"] <= BAR_S]
    delays = [r["delay_s"] for r in ok]
    result = {
        "tamperings": rows, "false_alerts": false, "false_alert_detail": false_detail,
        "summary": {"tamperings": len(rows), "reported_right_within_2s": len(ok),
                    "delay_s_median": float(np.median(delays)) if delays else None,
                    "delay_s_max": max(delays) if delays else None,
                    "by_kind": {k: sum(r["kind"] == k for r in ok) for k in KINDS}},
        "settings": cfg.model_dump(), "reference": {"clips": [c.name for c in fit], "frames": ref.frames},
        "video": "MPEG-4 part 2 (OpenCV mp4v), 10 fps, 360x240", "seconds": round(time.perf_counter() - t0, 1),
        "host": host_info(), "command": "python pipelines/camera_health.py",
    }  # fmt: skip
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"]), json.dumps(false), f"-> {args.out}")


if __name__ == "__main__":
    main()
