"""Pictures a person would rather look at than read: ROC curves and score timelines."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from ognet_video.errors import writing  # noqa: E402


def _contiguous(mask: np.ndarray) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, m in enumerate(np.append(mask, False)):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i))
            start = None
    return spans


def plot_roc(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, float | None]]) -> Path:
    """curves: name -> (labels, scores, auc)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (y, s, a) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {a:.3f})" if a is not None else name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="frame-level ROC (all test frames)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with writing(path):
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_timeline(path: Path, title: str, series: dict[str, np.ndarray], threshold: float | None,
                  labels: np.ndarray | None = None) -> Path:  # fmt: skip
    """Scores over frames, the threshold line, ground-truth anomalous frames shaded."""
    fig, ax = plt.subplots(figsize=(8, 2.6))
    if labels is not None:
        for a, b in _contiguous(np.asarray(labels) > 0):
            ax.axvspan(a - 0.5, b - 0.5, color="tab:red", alpha=0.15, lw=0)
    for name, s in series.items():
        ax.plot(s, lw=1.2, label=name)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label="threshold")
    ax.set(xlabel="frame", ylabel="normalised score", title=title)
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    with writing(path):
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
