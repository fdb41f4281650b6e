"""Synthetic walkway clips: a fixed camera over a paved path, for the demo and the tests.

Normal: a few small, slow, dark walkers (size and speed grow toward the bottom, like Ped2's
perspective). Anomalous: a larger, bright object crossing fast (a "cart" or "biker"). Test clips
carry frame labels (1 while the anomaly is in view). Written in the frames layout, so it goes through
exactly the same reader as Ped2.

``road=True`` adds what a real street camera sees: a two-lane road across the far end of the scene
with cars passing fast in training and test clips alike. Fast motion is then normal too, so "the
biggest motion in the frame" no longer finds the anomaly; ``anomaly="cyclist"`` is a walker-sized
rider going along the walkway three to five times walking speed, which only a model that learned what
each kind of motion looks like can tell from a car. The defaults reproduce the plain scene exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

H, W = 240, 360
ROAD = (14, 70)  # rows of the road band (road=True): two lanes at the far end of the walkway
CAR_SPEED = (3.0, 4.0)  # px per frame: the road is far away, yet cars still outpace every walker
WALKERS = (5, 9)
LANES = 2
CAR_SPACING = (5, 40)  # px of free road between two cars of a lane: dense traffic, no pile-ups
ANOMALIES = ("cart", "cyclist")


@dataclass
class _Mover:
    x: float
    y: float
    vx: float
    vy: float
    w: int
    h: int
    shade: int


@dataclass
class _Lane:
    """One lane of traffic: every car in it drives at the lane's speed, so cars never run into each other."""

    y: float
    vx: float
    wait: int = 0  # frames until the next car enters
    cars: list[_Mover] = field(default_factory=list)

    def step(self, rng: np.random.Generator) -> None:
        for c in self.cars:
            c.x += c.vx
        self.cars = [c for c in self.cars if -60 < c.x < W + 60]
        self.wait -= 1
        if self.wait <= 0:
            bright = rng.random() < 0.5
            shade = int(rng.uniform(190, 235) if bright else rng.uniform(10, 30))
            x = -40.0 if self.vx > 0 else W + 40.0
            car = _Mover(x, self.y, self.vx, 0.0, int(rng.uniform(40, 56)), int(rng.uniform(14, 19)), shade)
            self.cars.append(car)
            self.wait = int((car.w + rng.uniform(*CAR_SPACING)) / abs(self.vx)) + 1


def _background(rng: np.random.Generator, road: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    bg = 110 + 40 * yy / H + 10 * np.sin(xx / 23.0)
    bg += cv2.GaussianBlur(rng.normal(0, 12, (H, W)), (0, 0), 3)
    bg[:, 60:64] -= 25  # path edges
    bg[:, 296:300] -= 25
    if road:
        top, bottom = ROAD
        bg[top:bottom] -= 25  # asphalt, keeping the texture
        bg[top - 2 : top] += 35  # kerbs
        bg[bottom : bottom + 2] += 35
        mid = (top + bottom) // 2
        bg[mid - 1 : mid + 1, (np.arange(W) // 18) % 2 == 0] += 70  # dashed centre line
    return bg


def _walker(rng: np.random.Generator, top: float = 10) -> _Mover:
    y = rng.uniform(top, H - 10)
    scale = 0.6 + 0.8 * y / H  # perspective: bigger and faster near the camera
    down = rng.random() < 0.5
    return _Mover(rng.uniform(70, 290), y, rng.normal(0, 0.3), (1 if down else -1) * rng.uniform(0.8, 1.6) * scale,
                  int(6 * scale) + 2, int(14 * scale) + 3, int(rng.uniform(30, 70)))  # fmt: skip


def _anomaly(rng: np.random.Generator) -> _Mover:
    y = rng.uniform(40, H - 40)
    left = rng.random() < 0.5
    return _Mover(-30.0 if left else W + 30.0, y, (1 if left else -1) * rng.uniform(6, 9), rng.normal(0, 0.5),
                  int(rng.uniform(22, 30)), int(rng.uniform(18, 26)), int(rng.uniform(200, 235)))  # fmt: skip


def _cyclist(rng: np.random.Generator, top: float) -> _Mover:
    """Walker-sized and walker-coloured, but riding along the walkway at 4.5-6.5 px per frame (walkers: 0.5-2.2)."""
    down = rng.random() < 0.5
    return _Mover(rng.uniform(90, 270), top + 6 if down else H + 12.0, rng.normal(0, 0.3),
                  (1 if down else -1) * rng.uniform(4.5, 6.5), int(rng.uniform(8, 12)), int(rng.uniform(20, 27)),
                  int(rng.uniform(30, 70)))  # fmt: skip


def _draw(frame: np.ndarray, m: _Mover) -> None:
    cv2.ellipse(frame, (int(m.x), int(m.y)), (m.w // 2, m.h // 2), 0, 0, 360, m.shade, -1)


def _draw_car(frame: np.ndarray, c: _Mover) -> None:
    p0, p1 = (int(c.x - c.w / 2), int(c.y - c.h / 2)), (int(c.x + c.w / 2), int(c.y + c.h / 2))
    cv2.rectangle(frame, p0, p1, c.shade, -1)
    cv2.rectangle(frame, (p0[0] + c.w // 4, p0[1] + 3), (p1[0] - c.w // 4, p1[1] - 3), c.shade * 0.7 + 20, -1)  # roof


def make_clip(
    rng: np.random.Generator, bg: np.ndarray, n: int, anomaly_at: int | None, road: bool = False,
    anomaly: str = "cart",
) -> tuple[list[np.ndarray], np.ndarray]:  # fmt: skip
    """``n`` frames; an anomaly enters at frame ``anomaly_at`` (None: a normal clip)."""
    if anomaly not in ANOMALIES:
        raise ValueError(f"anomaly must be one of {ANOMALIES}, got {anomaly!r}")
    top = ROAD[1] + 4 if road else 10  # walkers stay off the road
    if road:  # a busier walkway: as many walker patches as car patches to learn from
        walkers = [_walker(rng, top) for _ in range(rng.integers(*WALKERS))]
    else:
        walkers = [_walker(rng) for _ in range(rng.integers(3, 6))]
    lanes: list[_Lane] = []
    if road:
        lanes = [_Lane(ROAD[0] + 14, rng.uniform(*CAR_SPEED)), _Lane(ROAD[1] - 14, -rng.uniform(*CAR_SPEED))][:LANES]
        for lane in lanes:
            lane.wait = int(rng.integers(0, 30))
            for _ in range(150):  # traffic already flowing when the clip starts
                lane.step(rng)
    odd: _Mover | None = None
    frames, labels = [], np.zeros(n, dtype=np.int64)
    for t in range(n):
        if anomaly_at is not None and t == anomaly_at:
            odd = _anomaly(rng) if anomaly == "cart" else _cyclist(rng, ROAD[1] if road else 0)
        f = bg + rng.normal(0, 2.0, bg.shape)
        for lane in lanes:
            lane.step(rng)
            for c in lane.cars:
                _draw_car(f, c)
        for w in walkers:
            w.x, w.y = w.x + w.vx, w.y + w.vy
            if not (top - 10 < w.y < H if road else 0 < w.y < H):
                w.__dict__.update((_walker(rng, top) if road else _walker(rng)).__dict__)
            _draw(f, w)
        if odd is not None:
            odd.x, odd.y = odd.x + odd.vx, odd.y + odd.vy
            if -odd.w < odd.x < W + odd.w and (anomaly == "cart" or top - 10 < odd.y < H + odd.h / 2):
                _draw(f, odd)
                labels[t] = 1
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames, labels


def write_walkway(root: str | Path, train_clips: int = 6, test_clips: int = 4, frames: int = 60, seed: int = 0,
                  road: bool = False, anomaly: str = "cart") -> Path:  # fmt: skip
    """Write a small dataset in the frames layout (training/frames, testing/frames, testing/labels.json).

    ``road``: cars pass on a road across the far end in every clip; ``anomaly``: "cart" (bright, large,
    crossing fast) or "cyclist" (walker-like, riding along the walkway fast).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    bg = _background(rng, road)
    labels = {}
    for split, count in (("training", train_clips), ("testing", test_clips)):
        for i in range(count):
            name = f"{i + 1:02d}"
            at = int(rng.integers(frames // 4, frames // 2)) if split == "testing" else None
            imgs, lab = make_clip(rng, bg, frames, at, road, anomaly)
            d = root / split / "frames" / name
            d.mkdir(parents=True, exist_ok=True)
            for k, img in enumerate(imgs):
                cv2.imwrite(str(d / f"{k:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if split == "testing":
                labels[name] = lab.tolist()
    (root / "testing" / "labels.json").write_text(json.dumps(labels))
    return root
