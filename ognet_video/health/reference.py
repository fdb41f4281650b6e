"""What a camera's normal picture looks like, measured on the footage a model is trained (or calibrated) on.

``fit_reference`` reads normal clips once and keeps: a median background (SMALL wide, where the static scene
is), each texture cell's usual local std, and robust ranges (``LOW``/``HIGH`` percentiles) of every per-frame
measure (``measure.Measurement``) over the footage, plus how long the picture ever stays still. The checks
(``checks.Thresholds``) turn these ranges into thresholds with the margins of the ``health`` settings, so the
margins can be changed at scoring time without refitting. Stored as JSON in the checkpoint next to the
calibration; a model without it simply has the checks off.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ognet_video.errors import UserError
from ognet_video.health.measure import SMALL, WIDTH, Meter, cell_std, gray_at

LOW, HIGH = 0.5, 99.5  # percentiles taken as the footage's range: robust to a few odd frames
KEEP = 600  # frames kept (evenly spread) for the background and the second pass
# frame-to-frame change (in % of brightness) below STILL_LEVEL and STILL_SHARE of the footage's least is "still"
STILL_LEVEL = 1.0
STILL_SHARE = 0.25  # a repeat changes under a quarter of the least a live picture does (sensor noise changes more;
# a re-encoded repeat changes a tenth of it at its encoder's key frames)
Frames = Iterable[tuple[np.ndarray, float | None]]  # one clip: (image, seconds from its start or None)


@dataclass
class HealthReference:
    """The normal picture of one camera, in plain numbers (see the module doc)."""

    background: np.ndarray  # (h, SMALL) float32 median picture
    cells: np.ndarray  # (GRID * GRID,) usual local std of each texture cell at WIDTH
    level: float  # median brightness
    brightness: tuple[float, float]  # LOW, HIGH percentiles
    sharpness: tuple[float, float]
    lost: float  # HIGH percentile of the share of textured cells without texture
    shift: float  # HIGH percentile of the background's offset (share of the width)
    match: float  # LOW percentile of the edge correlation with the background
    still: float  # LOW percentile of frame-to-frame change (% of brightness)
    still_seconds: float  # the longest the picture stayed still (below ``still_level``) in the footage
    moving: float  # median share of the picture that changes between frames (a description; not a check)
    frames: int
    seconds: float

    @property
    def still_level(self) -> float:
        """Frame-to-frame change at or below which a frame is a repeat of the one before."""
        return min(STILL_LEVEL, STILL_SHARE * self.still)

    def to_dict(self) -> dict[str, Any]:
        bg = np.clip(np.round(self.background), 0, 255).astype(np.uint8)
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["background"] = {"shape": list(bg.shape), "uint8": base64.b64encode(bg.tobytes()).decode()}
        d["cells"] = [round(float(v), 3) for v in self.cells]
        for k in ("brightness", "sharpness"):
            d[k] = [round(float(v), 5) for v in d[k]]
        for k in ("level", "lost", "shift", "match", "still", "still_seconds", "moving", "seconds"):
            d[k] = round(float(d[k]), 6)
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str) -> HealthReference:
        """A stored reference, checked: a damaged one is a one-line error, as a damaged calibration is."""
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            if not isinstance(data, dict) or set(data) != names:
                raise ValueError
            shape = tuple(int(v) for v in data["background"]["shape"])
            raw = np.frombuffer(base64.b64decode(data["background"]["uint8"]), dtype=np.uint8)
            bg = raw.reshape(shape).astype(np.float32)
            ref = cls(**{**data, "background": bg, "cells": np.asarray(data["cells"], dtype=np.float64),
                         "brightness": tuple(map(float, data["brightness"])),
                         "sharpness": tuple(map(float, data["sharpness"]))})  # fmt: skip
            nums = [ref.level, *ref.brightness, *ref.sharpness, ref.lost, ref.shift, ref.match, ref.still,
                    ref.still_seconds, ref.moving, ref.seconds]  # fmt: skip
            ok = all(math.isfinite(float(v)) for v in nums) and len(shape) == 2 and shape[1] == SMALL
            ok = ok and len(ref.brightness) == 2 and len(ref.sharpness) == 2 and int(ref.frames) > 0
        except (TypeError, ValueError, KeyError, AttributeError):
            ok = False
        if not ok:
            raise UserError(f"{source}: its camera-health reference is damaged or was edited; recalibrate the "
                            "model (ognet-video calibrate) or use an intact copy")  # fmt: skip
        return ref


def fit_reference(clips: Iterable[Frames], seconds_per_frame: float = 0.1) -> HealthReference:
    """The reference of normal footage: ``clips`` of consecutive frames (each ``(image, time)``).

    One pass measures brightness, sharpness and stillness of every frame and keeps up to ``KEEP`` frames
    (evenly spread) at WIDTH; the background and the measures against it come from those. ``seconds_per_frame``
    times frames without timestamps."""
    meter = Meter()
    bright, sharp, moving, kept = [], [], [], []
    stills: list[list[float]] = []  # per clip: frame-to-frame change
    total, every, n = 0.0, 1, 0
    for clip in clips:
        meter.prev, first, last = None, None, None
        stills.append([])
        for i, (image, t) in enumerate(clip):
            t = i * seconds_per_frame if t is None else float(t)
            first, last = (t if first is None else first), t
            m = meter.measure(image)
            bright.append(m.brightness)
            sharp.append(m.sharpness)
            if math.isfinite(m.still):
                stills[-1].append(m.still)
                moving.append(m.moving)
            n += 1
            if n % every == 0:
                kept.append(gray_at(image, WIDTH).astype(np.uint8))
                if len(kept) >= 2 * KEEP:
                    kept, every = kept[::2], every * 2
        if first is not None and last is not None:
            total += last - first + seconds_per_frame
    if n == 0:
        raise UserError("no frames to describe the camera's normal picture")
    still = [v for c in stills for v in c]
    pct = lambda v, q: float(np.percentile(v, q))  # noqa: E731
    low_still = pct(still, LOW) if still else 2 * STILL_LEVEL
    level = min(STILL_LEVEL, STILL_SHARE * low_still)
    longest = max((_longest_run(c, level) for c in stills), default=0) * seconds_per_frame
    pics = np.stack(kept).astype(np.float32)
    smalls = np.stack([gray_at(p, SMALL) for p in pics])
    background = np.median(smalls, axis=0).astype(np.float32)
    cells = np.median(np.stack([cell_std(p) for p in pics]), axis=0)
    ref_meter = Meter(background, cells, float(np.median(bright)))
    against = np.array([ref_meter.against_reference(p, s, float(p.mean())) for p, s in zip(pics, smalls, strict=True)])
    return HealthReference(
        background=background, cells=cells, level=float(np.median(bright)),
        brightness=(pct(bright, LOW), pct(bright, HIGH)), sharpness=(pct(sharp, LOW), pct(sharp, HIGH)),
        lost=pct(against[:, 0], HIGH), shift=pct(against[:, 1], HIGH), match=pct(against[:, 2], LOW),
        still=low_still, still_seconds=longest, moving=float(np.median(moving)) if moving else 0.0,
        frames=n, seconds=total,
    )  # fmt: skip


def _longest_run(values: list[float], level: float) -> int:
    """The longest run of consecutive values at or below ``level``."""
    best = cur = 0
    for v in values:
        cur = cur + 1 if v <= level else 0
        best = max(best, cur)
    return best


def describe_footage(clips: list[Any], analysis_fps: float, log: Callable[[str], None]) -> HealthReference | None:
    """``fit_reference`` of normal clips (anything whose ``source()`` yields frames: dataset clips, recordings,
    ``calibrate``'s footage); a failure costs the camera checks (one line to ``log``), never the model."""
    spf = 1.0 / analysis_fps if analysis_fps > 0 else 0.1
    try:
        ref = fit_reference((((f.image, f.time) for f in c.source()) for c in clips), spf)
    except Exception as exc:  # noqa: BLE001 - the model matters more than its camera checks
        log(f"camera checks off: could not describe the normal picture ({type(exc).__name__}: {exc})")
        return None
    lo, hi = ref.brightness
    log(
        f"camera reference from {ref.frames} frames ({ref.seconds:.0f} s): brightness {lo:.0f}-{hi:.0f}, "
        f"sharpness {ref.sharpness[0]:.2f}-{ref.sharpness[1]:.2f}, {100 * ref.moving:.1f}% of the picture moving"
    )
    return ref
