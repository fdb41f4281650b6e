"""Frame -> grid patches + per-patch motion, vectorised with numpy strides (no loop over patches).

Grid: frames are cut to ``crop`` (the picture inside black bars, when training found any), converted to gray
and resized to ``height x width`` (Ped2 on the CPU recipe: 240x360 -> 248x364), then cut into ``size x size``
patches every ``stride`` pixels (45, stride 29: an 8 x 12 grid of 96 cells, each seen with 8 px of its
neighbours; the paper's 45 on 225x360, stride 45: 5 x 8). Motion of a cell = mean |frame - previous frame|
over its patch, in gray levels (0-255); a cell is "moving" when that exceeds ``motion_threshold``. Only moving
cells are trained on and scored, and of those only cells outside the ignore regions (``ignore_cells``,
``ignore_polygons``: a parking lot's trees, a clock, a screen in view).

The model sees each cell as ``channels`` says: "gray" (the cell itself, the paper) or "flow" (dense optical
flow from the previous frame, x and y, by OpenCV DIS: ``flow_preset`` "medium" or "fast", about 11 or 2 ms per
248x364 frame on 2 cores). Unlike a frame difference, whose size grows with texture and contrast as much as
with speed, flow measures speed in pixels per frame, which is what tells a cyclist from a walker.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ognet_video.config import WHOLE_FRAME, PatchConfig


@dataclass
class ClipPatches:
    """Patches of T frames on the grid: gray cells, signed frame differences, motion per cell, flow cells."""

    gray: np.ndarray  # (T, N, s, s) uint8
    diff: np.ndarray  # (T, N, s, s) int16, frame minus previous frame (0 for a first frame)
    motion: np.ndarray  # (T, N) float32, mean |diff| per cell
    flow: np.ndarray | None = None  # (T, N, 2, s, s) float16 optical flow x, y (with channels "flow")
    frame_flow: np.ndarray | None = None  # (T, H, W, 2) the whole frames' flow the cells were cut from


_DIS_PRESETS = {"fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


_FLOW_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (the pid that made it, the pool): a fork makes anew


def flow_workers() -> int:
    """Frame pairs whose flow is computed at once: OpenCV's thread count (1 where a task keeps to one core)."""
    return max(1, min(8, cv2.getNumThreads()))


def _flow_pool() -> ThreadPoolExecutor:
    global _FLOW_POOL
    if _FLOW_POOL is None or _FLOW_POOL[0] != os.getpid():
        _FLOW_POOL = (os.getpid(), ThreadPoolExecutor(8, thread_name_prefix="ognet-flow"))  # threads start as needed
    return _FLOW_POOL[1]


def _flow_span(before: np.ndarray, after: np.ndarray, out: np.ndarray, pairs: np.ndarray, preset: str) -> None:
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    for i in pairs:
        out[i] = dis.calc(np.ascontiguousarray(before[i]), np.ascontiguousarray(after[i]), None)


def optical_flow(
    before: np.ndarray,
    after: np.ndarray,
    preset: str = "medium",
    workers: int | None = None,
    needed: np.ndarray | None = None,
) -> np.ndarray:
    """Dense flow (T, H, W, 2) float16 from each ``before`` frame to the matching ``after`` frame.

    ``needed`` (T,) bool: only those pairs (the frames with a moving cell: no other flow is ever read); the rest
    stay zero. The pairs are independent, so ``workers`` (default ``flow_workers()``, at most 8) DIS instances
    take a contiguous share each, in threads (OpenCV releases the GIL): the same flow as one instance, bit for
    bit, and on two cores about 1.6x as fast as one (DIS's own threading gains less)."""
    out = np.zeros((*after.shape, 2), dtype=np.float16)
    pairs = np.arange(len(after)) if needed is None else np.flatnonzero(needed)
    n = min(len(pairs), workers or flow_workers(), 8)
    if n <= 1:
        _flow_span(before, after, out, pairs, preset)
        return out
    pool = _flow_pool()
    jobs = [pool.submit(_flow_span, before, after, out, share, preset) for share in np.array_split(pairs, n)]
    for job in jobs:
        job.result()
    return out


class PatchExtractor:
    def __init__(self, cfg: PatchConfig) -> None:
        self.cfg = cfg
        s, st = cfg.size, cfg.stride
        self.rows = (cfg.height - s) // st + 1
        self.cols = (cfg.width - s) // st + 1
        ys, xs = np.meshgrid(np.arange(self.rows) * st, np.arange(self.cols) * st, indexing="ij")
        # (N, 4) boxes x0, y0, x1, y1 in the resized frame, row-major like the patch order
        self.boxes = np.stack([xs.ravel(), ys.ravel(), xs.ravel() + s, ys.ravel() + s], axis=1)
        self.ignored = ignored_cells(cfg, self)  # (N,) bool: cells never trained on nor scored
        self.cropped = tuple(cfg.crop) != WHOLE_FRAME

    @property
    def num_cells(self) -> int:
        return self.rows * self.cols

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """Any frame (gray or BGR, any size, uint8) -> its ``crop``, gray uint8 at the model's resolution."""
        if self.cropped:
            x0, y0, x1, y1 = crop_pixels(self.cfg.crop, frame.shape)
            frame = frame[y0:y1, x0:x1]
        frame = to_gray(frame)
        if frame.shape != (self.cfg.height, self.cfg.width):
            frame = cv2.resize(frame, (self.cfg.width, self.cfg.height), interpolation=cv2.INTER_AREA)
        return frame

    def boxes_for(self, frame_shape: tuple[int, ...]) -> np.ndarray:
        """Cell boxes scaled to an original frame of ``frame_shape`` (for drawing)."""
        return self.to_source(self.boxes, frame_shape)

    def to_source(self, boxes: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
        """Boxes (x0, y0, x1, y1) on the grid's frame -> pixels of an original frame of ``frame_shape``."""
        x0, y0, x1, y1 = crop_pixels(self.cfg.crop, frame_shape)
        scale = np.array([(x1 - x0) / self.cfg.width, (y1 - y0) / self.cfg.height] * 2)
        return np.round(np.asarray(boxes) * scale).astype(int) + np.array([x0, y0, x0, y0])

    def cells(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W) -> (T, N, s, s) view of the grid cells."""
        s, st = self.cfg.size, self.cfg.stride
        win = sliding_window_view(frames, (s, s), axis=(1, 2))[:, ::st, ::st][:, : self.rows, : self.cols]
        return win.reshape(frames.shape[0], self.num_cells, s, s)

    def extract(
        self, frames: np.ndarray, prev: np.ndarray | None = None, flow: np.ndarray | None = None
    ) -> ClipPatches:
        """Prepared frames (T, H, W) uint8 and the frame before them.

        ``prev``: the frame before the first one, (H, W) or a (k, H, W) stack whose last frame it is; None: a
        clip's start, no motion for frame 0. ``flow``: the frames' full-frame flow from ``frame_flow``, when
        already computed.
        """
        before_first = _previous(prev)
        f16 = frames.astype(np.int16)
        before = np.concatenate([f16[:1] if before_first is None else before_first[None].astype(np.int16), f16[:-1]])
        diff = f16 - before
        diff_cells = self.cells(diff)
        motion = np.abs(diff_cells).mean(axis=(2, 3), dtype=np.float32)
        flow_cells = None
        if self.uses_flow:
            if flow is None:  # only frames with a moving cell: the others' flow is never read
                flow = self.frame_flow(frames, before_first, needed=self.moving(motion).any(axis=1))
            flow_cells = self.flow_cells(flow)
        return ClipPatches(self.cells(frames), diff_cells, motion, flow_cells, flow)

    @property
    def history_frames(self) -> int:
        """How many past frames ``extract`` needs to see for the next call's first frame: the previous one."""
        return 1

    def frame_flow(
        self, frames: np.ndarray, prev: np.ndarray | None = None, needed: np.ndarray | None = None
    ) -> np.ndarray:
        """(T, H, W, 2) flow of each frame from the frame before it, in pixels per frame; zero for a clip's first
        frame (no ``prev``) and for frames not ``needed`` ((T,) bool, default all)."""
        before_first = _previous(prev)
        flow = np.zeros((*frames.shape, 2), dtype=np.float16)
        preset = self.cfg.flow_preset
        if before_first is not None:
            flow[:] = optical_flow(np.concatenate([before_first[None], frames[:-1]]), frames, preset, needed=needed)
        elif len(frames) > 1:
            flow[1:] = optical_flow(frames[:-1], frames[1:], preset, needed=None if needed is None else needed[1:])
        return flow

    @property
    def uses_flow(self) -> bool:
        return self.cfg.channels == "flow"

    def flow_cells(self, flow: np.ndarray) -> np.ndarray:
        """(T, H, W, 2) -> (T, N, 2, s, s)."""
        return np.stack([self.cells(flow[..., 0]), self.cells(flow[..., 1])], axis=2)

    def select(self, cp: ClipPatches, mask: np.ndarray) -> torch.Tensor:
        """The model input (M, C, s, s) of the cells picked by a boolean (T, N) mask."""
        return to_tensor(self.cfg, cp.gray[mask], None if cp.flow is None else cp.flow[mask])

    def moving(self, motion: np.ndarray) -> np.ndarray:
        """(T, N) cells that move and are not ignored: the only ones trained on and scored."""
        moving = motion > self.cfg.motion_threshold
        return moving & ~self.ignored if self.ignored.any() else moving


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A gray, BGR or BGRA frame as gray uint8."""
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame


def fit_width(cfg: PatchConfig, frame_shape: tuple[int, ...]) -> int:
    """The width that keeps a ``frame_shape`` frame's aspect ratio at ``cfg.height``, rounded to whole cells
    (240x360 -> 364 at height 248: Ped2's geometry; 1080x1920 -> 451)."""
    h, w = frame_shape[:2]
    cols = max(1, round((cfg.height * w / h - cfg.size) / cfg.stride) + 1)
    return (cols - 1) * cfg.stride + cfg.size


def crop_pixels(crop: list[float], frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``crop`` fractions -> x0, y0, x1, y1 pixels of a frame of ``frame_shape`` (at least one pixel each way)."""
    h, w = frame_shape[:2]
    x0, y0 = round(crop[0] * w), round(crop[1] * h)
    return x0, y0, max(x0 + 1, round(crop[2] * w)), max(y0 + 1, round(crop[3] * h))


BAR_LEVEL = 24  # gray level at or under which a border column or row is black (ffmpeg cropdetect's default limit)
MIN_BAR = 0.01  # bars thinner than this share of the side are left alone
MIN_PICTURE = 0.25  # a "picture" narrower than this share of the side is a dark scene, not bars


def brightness_profile(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A frame's brightest gray value per column and per row: what ``black_bars`` reads (``np.maximum`` of several
    frames' profiles is the profile of all of them)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 and frame.shape[2] == 3 else frame
    gray = gray if gray.ndim == 2 else gray[..., 0]
    return gray.max(axis=0), gray.max(axis=1)


def black_bars(cols: np.ndarray, rows: np.ndarray, level: int = BAR_LEVEL) -> list[float] | None:
    """The picture inside letterbox/pillarbox bars as ``crop`` fractions [x0, y0, x1, y1], from the brightest value
    per column and row over sampled frames (``brightness_profile``); None when there are no bars. Bars waste grid
    cells that never move and shift the grid against the scene: the picture alone is analysed, as without them."""
    w, h = len(cols), len(rows)

    def edges(profile: np.ndarray) -> tuple[int, int]:
        lit = np.flatnonzero(profile > level)
        return (0, 0) if not lit.size else (int(lit[0]), len(profile) - 1 - int(lit[-1]))

    left, right = edges(cols)
    top, bottom = edges(rows)
    if left + right < MIN_BAR * w:
        left = right = 0
    if top + bottom < MIN_BAR * h:
        top = bottom = 0
    if not (left or right or top or bottom):
        return None
    if w - left - right < MIN_PICTURE * w or h - top - bottom < MIN_PICTURE * h:
        return None
    return [left / w, top / h, (w - right) / w, (h - bottom) / h]


def _covered(ex: PatchExtractor, ignore: np.ndarray) -> np.ndarray:
    """(N,) cells at least half covered by a (height, width) boolean image."""
    return ex.cells(ignore[None].astype(np.float32))[0].mean(axis=(1, 2)) >= 0.5


def ignored_cells(cfg: PatchConfig, ex: PatchExtractor) -> np.ndarray:
    """The cells ``ignore_cells`` names and those half covered by an ``ignore_polygons`` polygon."""
    out = np.zeros(ex.num_cells, dtype=bool)
    out[list(cfg.ignore_cells)] = True
    if cfg.ignore_polygons:
        img = np.zeros((cfg.height, cfg.width), dtype=np.uint8)
        x0, y0, x1, y1 = cfg.crop  # polygons are drawn on the source frame: map them into the crop
        origin, span = np.array([x0, y0]), np.array([x1 - x0, y1 - y0])
        scale = np.array([cfg.width, cfg.height], dtype=np.float64)
        polys = [np.round((np.asarray(p, dtype=np.float64) - origin) / span * scale).astype(np.int32)
                 for p in cfg.ignore_polygons]  # fmt: skip
        cv2.fillPoly(img, polys, 1)
        out |= _covered(ex, img > 0)
    return out


def mask_cells(cfg: PatchConfig, mask: np.ndarray) -> list[int]:
    """Cells an ignore mask covers (white = ignore; any size, resized to the grid): a cell is ignored when at
    least half of it is white."""
    ex = PatchExtractor(cfg)
    gray = ex.prepare(mask)
    return [int(i) for i in np.flatnonzero(_covered(ex, gray >= 128))]


def _previous(prev: np.ndarray | None) -> np.ndarray | None:
    """The frame before a chunk, (H, W): ``prev`` itself, or the last of a (k, H, W) stack of past frames."""
    if prev is None:
        return None
    return prev if prev.ndim == 2 else prev[-1]


def input_planes(channels: str) -> int:
    """Planes of the model input: 1 for "gray", 2 (x and y) for "flow"."""
    return 2 if channels == "flow" else 1


def to_tensor(cfg: PatchConfig, gray: np.ndarray | None = None, flow: np.ndarray | None = None) -> torch.Tensor:
    """Cells -> float (M, C, s, s) in [-1, 1], the model's input, as ``cfg.channels`` says.

    "gray": the cells (M, s, s) uint8, one plane; "flow": flow cells (M, 2, s, s) x and y in pixels per frame,
    divided by ``flow_scale`` and clamped.
    """
    if cfg.channels == "gray":
        if gray is None:
            raise ValueError("channels 'gray' need gray cells")
        return torch.from_numpy(np.ascontiguousarray(gray)).float().div_(127.5).sub_(1.0).unsqueeze(1)
    if flow is None:
        raise ValueError("channels 'flow' need flow cells (PatchExtractor.extract computes them)")
    return torch.from_numpy(np.ascontiguousarray(flow)).float().div_(cfg.flow_scale).clamp_(-1.0, 1.0)
