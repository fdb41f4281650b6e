"""Where the anomaly is: the box ``watch`` draws (the worst moving cell) against pixel-level ground truth.

* pixel-level AUC: every pixel scored by the cell that covers it (the map ``watch`` tints; static cells
  lowest), pooled over all test frames against the masks;
* RBDC and TBDC (B. Ramachandra, M. Jones, "Street Scene: a new dataset and evaluation protocol for video
  anomaly detection", WACV 2020). Ground-truth regions are the connected components of a frame's mask;
  a detection is a true positive when its IoU with a region is at least ``beta`` (0.1) and a false
  positive when it reaches ``beta`` with none. RBDR = regions detected / regions; a track (one object's
  regions over consecutive frames) is detected when at least ``alpha`` (0.1) of its regions are; TBDR =
  tracks detected / tracks. Sweeping the detection threshold traces RBDR and TBDR against false positives
  per frame; RBDC and TBDC are the areas under those curves for 0 to 1 false positives per frame (the last
  rate is held flat up to 1 when the detections run out first). Here each frame has one detection, the
  worst cell's box, scored by the frame's causally smoothed score.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from ognet_video.sources.images import image_files

Box = tuple[int, int, int, int]  # x0, y0, x1, y1; x1 and y1 exclusive


def find_masks(frames: list[Path]) -> list[Path] | None:
    """A test clip's pixel masks, one per frame: ``testing/masks/NN/`` beside ``testing/frames/NN/`` (frames
    layout) or ``TestNNN_gt/`` beside ``TestNNN/`` (UCSD layout); None when there are none or too few."""
    if not frames:
        return None
    clip_dir = frames[0].parent
    for d in (clip_dir.parent.parent / "masks" / clip_dir.name, clip_dir.with_name(clip_dir.name + "_gt")):
        if d.is_dir():
            files = image_files(d)
            if len(files) == len(frames):
                return files
    return None


def read_mask(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"cannot read mask {path}")
    return img > 0


def regions(mask: np.ndarray) -> list[Box]:
    """Bounding boxes of the mask's connected components (8-connected)."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, _ in stats[1:n]]


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def tracks(frames: list[list[Box]]) -> list[list[tuple[int, int]]]:
    """Regions linked over consecutive frames into tracks of (frame, region index): a region continues the
    track whose last region (in the previous frame) it overlaps most; otherwise it starts a new one."""
    out: list[list[tuple[int, int]]] = []
    prev: dict[int, int] = {}  # region index in the previous frame -> track
    for t, boxes in enumerate(frames):
        here: dict[int, int] = {}
        taken: set[int] = set()
        pairs = sorted(((iou(b, frames[t - 1][j]), i, j) for i, b in enumerate(boxes) for j in prev), reverse=True)
        for score, i, j in pairs:
            if score > 0 and i not in here and prev[j] not in taken:
                here[i] = prev[j]
                taken.add(prev[j])
        for i in range(len(boxes)):
            if i not in here:
                out.append([])
                here[i] = len(out) - 1
            out[here[i]].append((t, i))
        prev = here
    return out


def _area_under(fp_rate: np.ndarray, rate: np.ndarray) -> float:
    """Area under (fp_rate, rate) for fp_rate in [0, 1], the curve starting at (0, 0) and held flat after its
    last point."""
    x = np.concatenate([[0.0], fp_rate])
    y = np.concatenate([[0.0], rate])
    keep = x <= 1.0
    x, y = x[keep], y[keep]
    x, y = np.append(x, 1.0), np.append(y, y[-1])
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def rbdc_tbdc(gt: list[list[Box]], dets: list[list[tuple[Box, float]]], alpha: float = 0.1,
              beta: float = 0.1) -> dict:  # fmt: skip
    """RBDC and TBDC of detections ``dets`` (per frame: (box, score)) against regions ``gt`` (per frame),
    all frames of a test set in one sequence per clip concatenated (tracks never cross a clip: pass each
    clip's regions separately through ``tracks`` and offset them; see ``localisation_metrics``)."""
    return _curves(gt, dets, tracks(gt), alpha, beta)


def _curves(gt: list[list[Box]], dets: list[list[tuple[Box, float]]], trk: list[list[tuple[int, int]]],
            alpha: float, beta: float) -> dict:  # fmt: skip
    scores, fps = [], []  # one entry per detection: its score, whether it is a false positive
    hit_at: dict[tuple[int, int], float] = {}  # region -> best score of a detection that detects it
    for t, frame in enumerate(dets):
        for box, s in frame:
            matched = [i for i, g in enumerate(gt[t]) if iou(box, g) >= beta]
            scores.append(s)
            fps.append(not matched)
            for i in matched:
                hit_at[(t, i)] = max(hit_at.get((t, i), -math.inf), s)
    n_frames, n_regions = len(gt), sum(len(g) for g in gt)
    track_at = []
    for tr in trk:  # a track counts from the threshold at which ceil(alpha * len) of its regions are detected
        need = max(1, math.ceil(alpha * len(tr) - 1e-9))
        got = sorted((hit_at.get(r, -math.inf) for r in tr), reverse=True)
        track_at.append(got[need - 1])
    region_s = np.array(list(hit_at.values()))
    track_s = np.array(track_at)
    thr = np.unique(np.concatenate([scores, region_s]))[::-1] if scores else np.zeros(0)
    s, f = np.asarray(scores), np.asarray(fps, dtype=bool)
    fp_rate = np.array([(f & (s >= x)).sum() / max(1, n_frames) for x in thr])
    rbdr = np.array([(region_s >= x).sum() / max(1, n_regions) for x in thr])
    tbdr = np.array([(track_s >= x).sum() / max(1, len(trk)) for x in thr])
    return {
        "rbdc": _area_under(fp_rate, rbdr) if len(thr) else 0.0,
        "tbdc": _area_under(fp_rate, tbdr) if len(thr) else 0.0,
        "regions": n_regions,
        "tracks": len(trk),
        "alpha": alpha,
        "beta": beta,
    }


def pixel_counts(score_map: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique scores, anomalous pixels, normal pixels) of one frame: what a pooled pixel AUC needs."""
    vals, inv = np.unique(score_map, return_inverse=True)
    inv = inv.ravel()
    pos = np.bincount(inv, weights=mask.ravel().astype(np.float64), minlength=len(vals))
    return vals, pos, np.bincount(inv, minlength=len(vals)) - pos


def weighted_auc(vals: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float | None:
    """ROC AUC of weighted score groups (ties count one half), exact for pooled pixel counts."""
    order = np.argsort(vals, kind="stable")
    vals, pos, neg = vals[order], pos[order], neg[order]
    uniq, start = np.unique(vals, return_index=True)
    p, n = np.add.reduceat(pos, start), np.add.reduceat(neg, start)
    if p.sum() == 0 or n.sum() == 0:
        return None
    below = np.concatenate([[0.0], np.cumsum(n)[:-1]])
    return float((p * below + 0.5 * p * n).sum() / (p.sum() * n.sum()))


def disjoint(boxes: np.ndarray) -> bool:
    """Whether no two cell boxes share a pixel (a non-overlapping grid, the default)."""
    return all(iou(tuple(a), tuple(b)) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def cell_counts(patch: np.ndarray, boxes: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pixel_counts`` of ``cell_map`` for disjoint boxes, from the mask's integral image: each cell's score with
    its anomalous and normal pixels, and the pixels no cell covers at -inf."""
    ii = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    x0, y0, x1, y1 = (np.clip(boxes[:, i], 0, mask.shape[1 - i % 2]) for i in range(4))
    pos = (ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]).astype(np.float64)
    area = ((x1 - x0) * (y1 - y0)).astype(np.float64)
    rest_pos, rest = float(mask.sum()) - pos.sum(), float(mask.size) - area.sum()
    vals = np.append(np.where(np.isfinite(patch), patch, -np.inf), -np.inf)
    return vals, np.append(pos, rest_pos), np.append(area - pos, rest - rest_pos)


def cell_map(patch: np.ndarray, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A frame's pixel score map: each pixel the highest score of the cells covering it (-inf elsewhere and
    on static cells)."""
    out = np.full(shape, -np.inf)
    for v, (x0, y0, x1, y1) in zip(patch, boxes, strict=True):
        if np.isfinite(v):
            region = out[y0:y1, x0:x1]
            np.maximum(region, v, out=region)
    return out


def localisation_metrics(clips: dict[str, tuple[list[Path], np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """Pixel AUC, RBDC and TBDC over test clips: name -> (mask files, patch scores (T, N), cell boxes (N, 4) in
    the masks' pixels, causally smoothed frame scores (T,))."""
    vals, pos, neg = [], [], []
    gt_all: list[list[Box]] = []
    dets_all: list[list[tuple[Box, float]]] = []
    trk_all: list[list[tuple[int, int]]] = []
    for name in sorted(clips):
        masks, patch, boxes, smoothed = clips[name]
        gt, fast = [], disjoint(boxes)
        for t, path in enumerate(masks):
            m = read_mask(path)
            v, p, n = cell_counts(patch[t], boxes, m) if fast else pixel_counts(cell_map(patch[t], boxes, m.shape), m)
            vals.append(v), pos.append(p), neg.append(n)
            gt.append(regions(m))
            row = patch[t]
            has = np.isfinite(row).any() and np.isfinite(smoothed[t])
            box = tuple(int(c) for c in boxes[int(np.nanargmax(row))]) if has else None
            dets_all.append([(box, float(smoothed[t]))] if box is not None else [])  # type: ignore[list-item]
        offset = len(gt_all)
        trk_all += [[(t + offset, i) for t, i in tr] for tr in tracks(gt)]
        gt_all += gt
    out = _curves(gt_all, dets_all, trk_all, 0.1, 0.1)
    out["pixel_auc"] = weighted_auc(np.concatenate(vals), np.concatenate(pos), np.concatenate(neg)) if vals else None
    out["detection"] = "the worst moving cell's box per frame, scored by the causally smoothed frame score"
    return out
