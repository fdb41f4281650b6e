"""Frame-level metrics: AUC (anomaly = positive class) and EER, micro (pooled) and macro (per clip)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from ognet_video.decide import clip_events


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


# ------------------------------------------------------------------------------------------ operator metrics


def intervals(labels: np.ndarray) -> list[tuple[int, int]]:
    """Runs of anomalous frames as (first, last), inclusive: the anomalies an operator must be alerted to."""
    y = np.concatenate([[0], np.asarray(labels, dtype=np.int64) != 0, [0]]).astype(np.int8)
    d = np.diff(y)
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist(), strict=True))


def operator_metrics(labels: dict[str, np.ndarray], smoothed: dict[str, np.ndarray], threshold: float, k: int,
                     fps: float) -> dict:  # fmt: skip
    """What an operator sees at ``threshold``: anomalous intervals hit, false alarms, detection delay.

    An event is a false alarm when none of its frames is anomalous. An interval is hit when an event
    overlaps it; its delay runs from the interval's first frame to the frame its first overlapping event
    opened (the event's k-th frame: an event is raised only then), 0 if that was earlier.
    """
    hit, false_alarms, flagged_normal, normal, delays = 0, 0, 0, 0, []
    per_interval = []
    for c in sorted(labels):
        y, s = np.asarray(labels[c]), np.asarray(smoothed[c])
        events = [(e.start, e.end) for e in clip_events(s, threshold, k)]
        false_alarms += sum(1 for a, b in events if not y[a : b + 1].any())
        flagged_normal += int(((s > threshold) & (y == 0)).sum())
        normal += int((y == 0).sum())
        for a, b in intervals(y):
            over = [e for e in events if e[0] <= b and e[1] >= a]
            delay = max(0, over[0][0] + k - 1 - a) if over else None
            hit += delay is not None
            if delay is not None:
                delays.append(delay)
            per_interval.append({"clip": c, "start": a, "end": b, "delay_frames": delay})
    hours = normal / fps / 3600 if fps > 0 else 0.0
    med = float(np.median(delays)) if delays else None
    return {
        "threshold": float(threshold), "event_frames": int(k), "fps": float(fps),
        "intervals": len(per_interval), "intervals_hit": hit,
        "false_alarm_events": false_alarms, "normal_frames": normal,
        "false_alarms_per_1000_normal_frames": 1000 * false_alarms / normal if normal else None,
        "false_alarms_per_hour": false_alarms / hours if hours else None,
        "frame_false_positive_rate": flagged_normal / normal if normal else None,
        "delay_frames_median": med, "delay_seconds_median": None if med is None else med / fps,
        "per_interval": per_interval,
    }  # fmt: skip


def paired_clip_bootstrap(labels: dict[str, np.ndarray], a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]],
                          draws: int = 1000, seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """95% interval of mean micro AUC over the score sets ``a`` minus that over ``b`` (say, seeds of two recipes),
    with the clips resampled with replacement, the same draw for both: whether a set of test clips can tell the two
    apart at all. Each score set maps every clip of ``labels`` to its frame scores."""
    rng = np.random.default_rng(seed)
    names = sorted(labels)
    diffs = []
    for _ in range(draws):
        pick = rng.choice(names, size=len(names))
        y = np.concatenate([labels[n] for n in pick])
        if y.min() == y.max():  # one class only: no AUC
            continue
        mean = [np.mean([roc_auc_score(y, np.concatenate([s[n] for n in pick])) for s in sets]) for sets in (a, b)]
        diffs.append(mean[0] - mean[1])
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))
