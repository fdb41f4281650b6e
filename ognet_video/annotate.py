"""Annotated frames for people: a heat overlay of the patch scores, the worst patch boxed, and a
scrolling score strip with the threshold line under the frame.

Colours are in the calibrated (normalised) units the threshold is set in: a patch's raw D(G(x))
score is normalised with the checkpoint's calibration, so a cell turns orange-red where its own
score reaches the frame threshold. Only moving (scored) cells are tinted; static ones are left as is.

``AnnotatedVideoWriter`` writes MP4 (mp4v) to a temporary name in the same folder and renames it
on ``close``, so a video at the final path is always complete.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from ognet_video.errors import UserError
from ognet_video.models.detector import Calibration
from ognet_video.stream.scoring import FrameResult

RED, WHITE, GRAY, YELLOW = (40, 40, 230), (235, 235, 235), (120, 120, 120), (0, 215, 255)


class Annotator:
    """Draws one annotated frame per ``FrameResult``; keeps the strip's score history between calls."""

    def __init__(self, threshold: float, calibration: Calibration | None = None, strip_height: int = 60,
                 px_per_frame: int = 2, alpha: float = 0.45) -> None:  # fmt: skip
        self.threshold = float(threshold)
        self.calibration = calibration
        self.strip_height = strip_height
        self.px_per_frame = max(1, px_per_frame)
        self.alpha = alpha
        self.history: deque[tuple[float, float, bool]] = deque(maxlen=4096)  # score, smoothed, anomalous

    def heat(self, patch: np.ndarray) -> np.ndarray:
        """(N,) raw patch scores -> (N, 3) BGR colours: blue two units below the threshold, red one above."""
        z = patch if self.calibration is None else self.calibration.normalize(patch)
        u = np.clip((np.nan_to_num(z, nan=-1e9) - (self.threshold - 2.0)) / 3.0, 0.0, 1.0)
        return cv2.applyColorMap((u * 255).astype(np.uint8).reshape(-1, 1), cv2.COLORMAP_JET).reshape(-1, 3)

    def render(self, image: np.ndarray, result: FrameResult, boxes: np.ndarray) -> np.ndarray:
        """BGR uint8 of the frame (gray or BGR, as decoded) with overlay, box and text, strip below it.

        ``boxes``: (N, 4) x0 y0 x1 y1 of the grid cells in this frame's pixels (``PatchExtractor.boxes_for``).
        """
        img = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[..., :3].copy()
        h, w = img.shape[:2]
        moving = np.flatnonzero(np.isfinite(result.patch))
        if moving.size:
            colours = self.heat(result.patch)
            overlay, mask = img.copy(), np.zeros((h, w), dtype=bool)
            for i in moving:
                x0, y0, x1, y1 = (int(v) for v in boxes[i])
                overlay[y0:y1, x0:x1] = colours[i]
                mask[y0:y1, x0:x1] = True
            blended = cv2.addWeighted(img, 1.0 - self.alpha, overlay, self.alpha, 0.0)
            img[mask] = blended[mask]
        if result.worst_box is not None:
            x0, y0, x1, y1 = result.worst_box
            cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), RED if result.anomalous else YELLOW, 2)
        scale = max(0.35, w / 900)
        if result.worst_box is not None and result.cue == "objects":  # the object cue fired: say so at its box
            _text(img, "object", (result.worst_box[0], max(10, result.worst_box[1] - 4)), scale * 0.8,
                  RED if result.anomalous else YELLOW)  # fmt: skip
        base = int(18 * scale / 0.4)
        t = "" if result.time is None else f"  {result.time:.1f}s"
        _text(img, f"#{result.index}{t}", (6, base), scale, WHITE)
        if result.anomalous:
            (tw, _), _ = cv2.getTextSize("ANOMALY", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            _text(img, "ANOMALY", (w - tw - 6, base), scale, RED)
        self.history.append((result.score, result.smoothed, result.anomalous))
        out = np.vstack([img, self.strip(w)])
        pad_h, pad_w = out.shape[0] % 2, out.shape[1] % 2  # mp4v wants even sizes
        if pad_h or pad_w:
            out = cv2.copyMakeBorder(out, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        return out

    def strip(self, width: int) -> np.ndarray:
        """The last ``width / px_per_frame`` frames: raw score (gray), smoothed (white; red when flagged), threshold."""
        hgt = self.strip_height
        s = np.full((hgt, width, 3), 28, dtype=np.uint8)
        n = max(2, width // self.px_per_frame)
        hist = list(self.history)[-n:]
        scores = np.array([h[0] for h in hist])
        smooth = np.array([h[1] for h in hist])
        scores = np.where(np.isfinite(scores), scores, smooth)  # an unscored frame (a stream's first) has no raw score
        lo = min(float(np.min(smooth, initial=self.threshold)), self.threshold - 2.0)
        hi = max(float(np.max(smooth, initial=self.threshold)), self.threshold + 1.0)
        y = lambda v: np.clip(np.round((hgt - 4) - (v - lo) / (hi - lo) * (hgt - 8)), 0, hgt - 1).astype(np.int32)
        x = width - 1 - (len(hist) - 1 - np.arange(len(hist))) * self.px_per_frame
        for i, (_, _, flag) in enumerate(hist):
            if flag:
                s[:, max(0, x[i] - self.px_per_frame + 1) : x[i] + 1] = (40, 30, 90)
        ty = int(y(np.array([self.threshold]))[0])
        for x0 in range(0, width, 8):  # dashed threshold line
            cv2.line(s, (x0, ty), (min(width - 1, x0 + 4), ty), RED, 1)
        if len(hist) > 1:
            cv2.polylines(s, [np.stack([x, y(scores)], 1)], False, GRAY, 1)
            cv2.polylines(s, [np.stack([x, y(smooth)], 1)], False, WHITE, 1)
        if hist:
            label = f"score {smooth[-1]:+.2f}  thr {self.threshold:+.2f}"
            _text(s, label, (4, 12), 0.35, RED if hist[-1][2] else WHITE)
        return s


class AnnotatedVideoWriter:
    """MP4 of annotated frames, written to a temporary name and renamed on ``close`` (atomic)."""

    def __init__(self, path: str | Path, fps: float, threshold: float, calibration: Calibration | None = None,
                 **annotator_kw: object) -> None:  # fmt: skip
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 10.0
        self.annotator = Annotator(threshold, calibration, **annotator_kw)  # type: ignore[arg-type]
        self.tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial{self.path.suffix or '.mp4'}")
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, image: np.ndarray, result: FrameResult, boxes: np.ndarray) -> np.ndarray:
        """Annotate one frame and append it; returns the annotated image (for a window)."""
        out = self.annotator.render(image, result, boxes)
        size = (out.shape[1], out.shape[0])
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
            if not self._writer.isOpened():
                self._writer = None
                raise UserError(f"cannot write video {self.path}: this OpenCV build has no mp4v encoder")
            self._size = size
        elif size != self._size:  # a camera that changed resolution: keep the first size
            out = cv2.resize(out, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(out)
        self.frames += 1
        return out

    def close(self) -> Path | None:
        """Finish the file and move it into place; None when no frame was written."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AnnotatedVideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour: tuple[int, int, int]) -> None:
    """Text on a dark box, readable on any background (an outline stroke would be laid out wider)."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = org
    cv2.rectangle(img, (x - 2, y - h - 2), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
