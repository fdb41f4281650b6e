"""Per-frame picture measures for the camera checks: plain numbers, cheap at a fixed small size.

Every frame is looked at as gray at ``WIDTH`` pixels wide (keeping its aspect ratio) and, for alignment and
stillness, at ``SMALL`` pixels wide: the checks ask whether the camera still sees its scene, which needs no
detail, and a fixed size keeps the numbers comparable between cameras of any resolution and cheap (about a
millisecond a frame). Each measure is chosen to move with one failure and not with ordinary lighting:
sharpness and texture are taken relative to the picture's own contrast, so dimming alone changes only the
brightness.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WIDTH = 320  # analysis width for brightness, sharpness and texture
SMALL = 160  # analysis width for the background's alignment and for stillness
GRID = 8  # cells per side for texture (covered)
TEXTURED = 1.5  # gray levels of local std below which a reference cell counts as plain (never "covered")
FLAT = 0.3  # a cell has lost its texture below this share of its usual local std (scaled by brightness)
FLAT_FLOOR = 0.5  # ... or below this std in gray levels, whatever its usual
MOVING = 8.0  # gray levels of change that count a pixel as moving (``Measurement.moving``)


@dataclass
class Measurement:
    """One frame's measures (see ``Meter.measure``)."""

    brightness: float  # mean gray level, 0-255
    sharpness: float  # std of the Laplacian over the picture's own std: fine detail relative to contrast
    lost: float  # share of the normally textured cells that have lost their texture (0 without a reference)
    shift: float  # the background's offset against the reference, as a share of the width (0 without one)
    match: float  # correlation of edges with the reference background, -1..1 (1 without one)
    still: float  # mean |difference| from the previous frame at SMALL, in % of the mean brightness (inf for the first)
    moving: float  # share of the picture that changed by more than MOVING gray levels since the previous frame


def gray_at(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` (gray or BGR, any size) as float32 gray ``width`` pixels wide, aspect ratio kept."""
    g = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = g.shape[:2]
    height = max(8, int(round(h * width / w)))
    interp = cv2.INTER_AREA if w > width else cv2.INTER_LINEAR
    return cv2.resize(g, (width, height), interpolation=interp).astype(np.float32)


def cell_std(g: np.ndarray) -> np.ndarray:
    """Local std of each of the GRID x GRID cells (edge pixels that do not fill a cell are left out)."""
    h, w = g.shape
    ch, cw = h // GRID, w // GRID
    cells = g[: ch * GRID, : cw * GRID].reshape(GRID, ch, GRID, cw)
    return cells.std(axis=(1, 3)).ravel()


def edges(g: np.ndarray) -> np.ndarray:
    """Gradient magnitude, the part of a picture that says where the scene is (not how it is lit)."""
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


class Meter:
    """Measures frames one after the other (it keeps the previous one for ``still``).

    ``background`` (SMALL wide, float32) and ``cells`` (each cell's usual local std) come from a stored
    reference; without them ``lost``, ``shift`` and ``match`` are neutral (fitting a reference measures
    them in a second pass)."""

    def __init__(self, background: np.ndarray | None = None, cells: np.ndarray | None = None,
                 level: float = 128.0) -> None:  # fmt: skip
        self.background = background
        self.cells = cells
        self.level = level  # the reference's usual brightness: texture is expected to scale with it
        self.prev: np.ndarray | None = None
        self._window: np.ndarray | None = None
        self._bg_edges = edges(background) if background is not None else None

    def measure(self, image: np.ndarray) -> Measurement:
        g = gray_at(image, WIDTH)
        small = cv2.resize(g, (SMALL, max(8, int(round(g.shape[0] * SMALL / WIDTH)))), interpolation=cv2.INTER_AREA)
        brightness, spread = (float(v[0][0]) for v in cv2.meanStdDev(g))
        lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
        sharpness = float(lap.std()) / (spread + 1.0)
        still, moving = float("inf"), 0.0
        if self.prev is not None and self.prev.shape == small.shape:
            diff = np.abs(small - self.prev)
            # relative to brightness: a dimmed picture's noise shrinks with it, a repeated one's does not exist
            still, moving = 100.0 * float(diff.mean()) / max(brightness, 1.0), float((diff > MOVING).mean())
        self.prev = small
        lost, shift, match = self.against_reference(g, small, brightness)
        return Measurement(brightness, sharpness, lost, shift, match, still, moving)

    def against_reference(self, g: np.ndarray, small: np.ndarray, brightness: float) -> tuple[float, float, float]:
        """(lost, shift, match) of a frame against the reference; neutral values without one."""
        lost, shift, match = 0.0, 0.0, 1.0
        if self.cells is not None:
            usual = self.cells
            textured = usual >= TEXTURED
            if textured.any():
                gain = max(brightness, 1.0) / max(self.level, 1.0)
                now = cell_std(g)
                flat = (now < FLAT * usual * gain) | (now < FLAT_FLOOR)
                lost = float((flat & textured).sum() / textured.sum())
        if self.background is not None and self.background.shape == small.shape:
            if self._window is None:
                self._window = cv2.createHanningWindow(small.shape[::-1], cv2.CV_32F)
            (dx, dy), _ = cv2.phaseCorrelate(self.background, small, self._window)
            shift = float(np.hypot(dx, dy)) / small.shape[1]
            assert self._bg_edges is not None
            match = correlation(edges(small), self._bg_edges)
        return lost, shift, match
