"""Synthetic walkway clips: a fixed camera over a paved path, for the demo and the tests.

Normal: a few small, slow, dark walkers (size and speed grow toward the bottom, like Ped2's
perspective). Anomalous: a larger, bright object crossing fast (a "cart" or "biker"). Test clips
carry frame labels (1 while the anomaly is in view). Written in the frames layout, so it goes through
exactly the same reader as Ped2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

H, W = 240, 360


@dataclass
class _Mover:
    x: float
    y: float
    vx: float
    vy: float
    w: int
    h: int
    shade: int


def _background(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    bg = 110 + 40 * yy / H + 10 * np.sin(xx / 23.0)
    bg += cv2.GaussianBlur(rng.normal(0, 12, (H, W)), (0, 0), 3)
    bg[:, 60:64] -= 25  # path edges
    bg[:, 296:300] -= 25
    return bg


def _walker(rng: np.random.Generator) -> _Mover:
    y = rng.uniform(10, H - 10)
    scale = 0.6 + 0.8 * y / H  # perspective: bigger and faster near the camera
    down = rng.random() < 0.5
    return _Mover(rng.uniform(70, 290), y, rng.normal(0, 0.3), (1 if down else -1) * rng.uniform(0.8, 1.6) * scale,
                  int(6 * scale) + 2, int(14 * scale) + 3, int(rng.uniform(30, 70)))  # fmt: skip


def _anomaly(rng: np.random.Generator) -> _Mover:
    y = rng.uniform(40, H - 40)
    left = rng.random() < 0.5
    return _Mover(-30.0 if left else W + 30.0, y, (1 if left else -1) * rng.uniform(6, 9), rng.normal(0, 0.5),
                  int(rng.uniform(22, 30)), int(rng.uniform(18, 26)), int(rng.uniform(200, 235)))  # fmt: skip


def _draw(frame: np.ndarray, m: _Mover) -> None:
    cv2.ellipse(frame, (int(m.x), int(m.y)), (m.w // 2, m.h // 2), 0, 0, 360, m.shade, -1)


def make_clip(
    rng: np.random.Generator, bg: np.ndarray, n: int, anomaly_at: int | None
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` frames; an anomaly enters at frame ``anomaly_at`` (None: a normal clip)."""
    walkers = [_walker(rng) for _ in range(rng.integers(3, 6))]
    odd: _Mover | None = None
    frames, labels = [], np.zeros(n, dtype=np.int64)
    for t in range(n):
        if anomaly_at is not None and t == anomaly_at:
            odd = _anomaly(rng)
        f = bg + rng.normal(0, 2.0, bg.shape)
        for w in walkers:
            w.x, w.y = w.x + w.vx, w.y + w.vy
            if not (0 < w.y < H):
                w.__dict__.update(_walker(rng).__dict__)
            _draw(f, w)
        if odd is not None:
            odd.x, odd.y = odd.x + odd.vx, odd.y + odd.vy
            if -odd.w < odd.x < W + odd.w:
                _draw(f, odd)
                labels[t] = 1
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames, labels


def write_walkway(root: str | Path, train_clips: int = 6, test_clips: int = 4, frames: int = 60, seed: int = 0) -> Path:
    """Write a small dataset in the frames layout (training/frames, testing/frames, testing/labels.json)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    bg = _background(rng)
    labels = {}
    for split, count in (("training", train_clips), ("testing", test_clips)):
        for i in range(count):
            name = f"{i + 1:02d}"
            at = int(rng.integers(frames // 4, frames // 2)) if split == "testing" else None
            imgs, lab = make_clip(rng, bg, frames, at)
            d = root / split / "frames" / name
            d.mkdir(parents=True, exist_ok=True)
            for k, img in enumerate(imgs):
                cv2.imwrite(str(d / f"{k:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if split == "testing":
                labels[name] = lab.tolist()
    (root / "testing" / "labels.json").write_text(json.dumps(labels))
    return root
