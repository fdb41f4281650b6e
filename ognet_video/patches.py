"""Frame -> grid patches + per-patch motion, vectorised with numpy strides (no loop over patches).

Grid: frames are converted to gray and resized to ``height x width`` (Ped2: 240x360 -> 225x360, a 5%
vertical squeeze), then cut into ``size x size`` cells every ``stride`` pixels. With the defaults
(45, stride 45) that is a 5 x 8 grid of 40 non-overlapping patches covering every row of the frame.
Motion of a cell = mean |frame - previous frame| over the cell, in gray levels (0-255); a cell is
"moving" when that exceeds ``motion_threshold``. Only moving cells are trained on and scored.

Optional "flow" channels: dense optical flow from the previous frame (OpenCV DIS, ``flow_preset``
ultrafast, fast, medium or full: 1, 2, 11 or 36 ms per 232x348 frame on 2 cores). Unlike a frame
difference, whose size grows with texture and contrast as much as with speed, flow measures speed in
pixels per frame, which is what tells a cyclist from a walker.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ognet_video.config import PatchConfig


@dataclass
class ClipPatches:
    """Patches of T frames on the grid: gray cells, signed frame differences and motion per cell."""

    gray: np.ndarray  # (T, N, s, s) uint8
    diff: np.ndarray  # (T, N, s, s) int16, frame minus previous frame (0 for a first frame)
    motion: np.ndarray  # (T, N) float32, mean |diff| per cell
    fg: np.ndarray | None = None  # (T, N, s, s) int16, frame minus background (when a background is set)
    flow: np.ndarray | None = None  # (T, N, 2, s, s) float16 optical flow x, y (when channels include "flow")


# name -> (OpenCV DIS preset, finest pyramid level solved: 0 = full resolution; None = the preset's own)
_DIS_PRESETS = {
    "ultrafast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, None),
    "fast": (cv2.DISOPTICAL_FLOW_PRESET_FAST, None),
    "medium": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, None),
    "full": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 0),
}


def optical_flow(before: np.ndarray, after: np.ndarray, preset: str = "ultrafast") -> np.ndarray:
    """Dense flow (T, H, W, 2) float16 from each ``before`` frame to the matching ``after`` frame."""
    base, finest = _DIS_PRESETS[preset]
    dis = cv2.DISOpticalFlow_create(base)
    if finest is not None:
        dis.setFinestScale(finest)
    out = np.empty((*after.shape, 2), dtype=np.float16)
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        out[i] = dis.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None)
    return out


class PatchExtractor:
    def __init__(
        self, cfg: PatchConfig, background: np.ndarray | None = None, offset: tuple[int, int] = (0, 0)
    ) -> None:
        self.cfg = cfg
        # fixed-camera background (H, W) uint8, estimated from training frames; needed by the "fg" channels
        self.background = background
        # (dy, dx): the grid starts this far into the frame. Scoring always uses (0, 0); training may add
        # shifted grids (train.grid_offsets) so that the networks see people at every position in a cell
        self.offset = (int(offset[0]), int(offset[1]))
        s, st = cfg.size, cfg.stride
        dy, dx = self.offset
        self.rows = (cfg.height - dy - s) // st + 1
        self.cols = (cfg.width - dx - s) // st + 1
        ys, xs = np.meshgrid(np.arange(self.rows) * st + dy, np.arange(self.cols) * st + dx, indexing="ij")
        # (N, 4) boxes x0, y0, x1, y1 in the resized frame, row-major like the patch order
        self.boxes = np.stack([xs.ravel(), ys.ravel(), xs.ravel() + s, ys.ravel() + s], axis=1)

    @property
    def num_cells(self) -> int:
        return self.rows * self.cols

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """Any frame (gray or BGR, any size, uint8) -> gray uint8 at the model's resolution."""
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        if frame.shape != (self.cfg.height, self.cfg.width):
            frame = cv2.resize(frame, (self.cfg.width, self.cfg.height), interpolation=cv2.INTER_AREA)
        return frame

    def boxes_for(self, frame_shape: tuple[int, ...]) -> np.ndarray:
        """Cell boxes scaled to an original frame of ``frame_shape`` (for drawing)."""
        h, w = frame_shape[:2]
        scale = np.array([w / self.cfg.width, h / self.cfg.height] * 2)
        return np.round(self.boxes * scale).astype(int)

    def cells(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W) -> (T, N, s, s) view of the grid cells."""
        s, st = self.cfg.size, self.cfg.stride
        dy, dx = self.offset
        win = sliding_window_view(frames[:, dy:, dx:], (s, s), axis=(1, 2))[:, ::st, ::st][:, : self.rows, : self.cols]
        return win.reshape(frames.shape[0], self.num_cells, s, s)

    def extract(
        self, frames: np.ndarray, prev: np.ndarray | None = None, flow: np.ndarray | None = None
    ) -> ClipPatches:
        """Prepared frames (T, H, W) uint8 and the frames before them.

        ``prev``: the frame before the first one (H, W), or the last few (k, H, W), oldest first; the flow
        needs ``flow_step`` of them (``history_frames``). None: a clip's start, no motion for frame 0.
        ``flow``: the frames' full-frame flow from ``frame_flow``, when already computed (several grids).
        """
        history = _history(prev)
        f16 = frames.astype(np.int16)
        before = np.concatenate([f16[:1] if history is None else history[-1:].astype(np.int16), f16[:-1]])
        diff = f16 - before
        diff_cells = self.cells(diff)
        motion = np.abs(diff_cells).mean(axis=(2, 3), dtype=np.float32)
        fg = None
        if self.background is not None:
            fg = self.cells(f16 - self.background.astype(np.int16)[None])
        flow_cells = None
        if self.uses_flow:
            flow_cells = self.flow_cells(self.frame_flow(frames, history) if flow is None else flow)
        return ClipPatches(self.cells(frames), diff_cells, motion, fg, flow_cells)

    @property
    def history_frames(self) -> int:
        """How many past frames ``extract`` needs to see for the next call's first frame."""
        return self.cfg.flow_step if self.uses_flow else 1

    def frame_flow(self, frames: np.ndarray, prev: np.ndarray | None = None) -> np.ndarray:
        """(T, H, W, 2) flow of each frame, in pixels per frame; zero for a clip's first frame.

        Frame t's flow is measured from frame t - ``flow_step`` (or from the oldest frame there is, at a
        clip's start) and divided by the gap.
        """
        history = _history(prev)
        past = 0 if history is None else len(history)
        seq = frames if history is None else np.concatenate([history, frames])
        flow = np.zeros((*frames.shape, 2), dtype=np.float16)
        t = np.arange(len(frames)) + past  # index of each frame in seq
        gap = np.minimum(t, self.cfg.flow_step)
        for g in np.unique(gap[gap > 0]):
            idx = t[gap == g]
            f = optical_flow(seq[idx - g], seq[idx], self.cfg.flow_preset)
            flow[idx - past] = f if g == 1 else (f.astype(np.float32) / g).astype(np.float16)
        return flow

    @property
    def uses_flow(self) -> bool:
        return "flow" in self.cfg.channels.split("+")

    def flow_cells(self, flow: np.ndarray) -> np.ndarray:
        """(T, H, W, 2) -> (T, N, 2, s, s)."""
        return np.stack([self.cells(flow[..., 0]), self.cells(flow[..., 1])], axis=2)

    def select(self, cp: ClipPatches, mask: np.ndarray) -> torch.Tensor:
        """The model input (M, C, s, s) of the cells picked by a boolean (T, N) mask."""
        pick = lambda a: None if a is None else a[mask]  # noqa: E731
        return to_tensor(cp.gray[mask], cp.diff[mask], self.cfg, pick(cp.fg), pick(cp.flow))

    def moving(self, motion: np.ndarray) -> np.ndarray:
        return motion > self.cfg.motion_threshold


def _history(prev: np.ndarray | None) -> np.ndarray | None:
    """Past frames as (k, H, W), oldest first; a single (H, W) frame is k = 1."""
    if prev is None:
        return None
    return prev[None] if prev.ndim == 2 else prev


def channel_planes(channels: str) -> dict[str, slice]:
    """Where each named channel sits in the model input (``to_tensor``'s order): "flow" takes two planes, x and y."""
    out, i = {}, 0
    for name in channels.split("+"):
        width = 2 if name == "flow" else 1
        out[name] = slice(i, i + width)
        i += width
    return out


def _signed(x: np.ndarray, gain: float) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).float().mul_(gain / 127.5).clamp_(-1.0, 1.0).unsqueeze(1)


def to_tensor(gray: np.ndarray, diff: np.ndarray, cfg: PatchConfig, fg: np.ndarray | None = None,
              flow: np.ndarray | None = None) -> torch.Tensor:  # fmt: skip
    """Cells (M, s, s) -> float (M, C, s, s) in [-1, 1], the model's input, channels as ``cfg.channels`` says.

    gray: the cell itself; diff: frame minus previous frame; fg: frame minus the fixed background;
    flow: optical flow x and y in pixels per frame, divided by ``flow_scale``.
    Difference channels are scaled by ``diff_gain`` so that small motions are not lost next to gray.
    """
    parts = []
    for name in cfg.channels.split("+"):
        if name == "gray":
            parts.append(torch.from_numpy(np.ascontiguousarray(gray)).float().div_(127.5).sub_(1.0).unsqueeze(1))
        elif name == "diff":
            parts.append(_signed(diff, cfg.diff_gain))
        elif name == "fg":
            if fg is None:
                raise ValueError("channels with 'fg' need a background (PatchExtractor(cfg, background))")
            parts.append(_signed(fg, cfg.diff_gain))
        elif name == "flow":
            if flow is None:
                raise ValueError("channels with 'flow' need flow cells (PatchExtractor.extract computes them)")
            t = torch.from_numpy(np.ascontiguousarray(flow)).float().div_(cfg.flow_scale).clamp_(-1.0, 1.0)
            parts.append(t)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
