"""Frame-level metrics: AUC (anomaly = positive class) and EER, micro (pooled) and macro (per clip)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present (undefined)."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, scores))


def eer(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Equal error rate: the FPR where |FNR - FPR| is smallest."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return None
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    i = int(np.argmin(np.abs((1 - tpr) - fpr)))
    return float(fpr[i])


def summarize(labels: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> dict:
    """Micro AUC/EER over all frames pooled, macro AUC over clips that hold both classes, per-clip AUC."""
    clips = sorted(labels)
    y = np.concatenate([labels[c] for c in clips])
    s = np.concatenate([scores[c] for c in clips])
    per_clip = {c: auc(labels[c], scores[c]) for c in clips}
    defined = [v for v in per_clip.values() if v is not None]
    return {
        "micro_auc": auc(y, s),
        "macro_auc": float(np.mean(defined)) if defined else None,
        "macro_clips": len(defined),
        "eer": eer(y, s),
        "frames": int(len(y)),
        "anomalous": int(y.sum()),
        "per_clip_auc": per_clip,
    }
