from __future__ import annotations

import numpy as np
import pytest

from ognet_video.evaluation.metrics import auc, eer, paired_clip_bootstrap, summarize


def pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney: P(score of a positive > score of a negative), ties count one half."""
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_perfect_separation():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert auc(y, s) == 1.0
    assert eer(y, s) == 0.0
    # reversed scores: everything wrong
    assert auc(y, -s) == 0.0
    assert eer(y, -s) == 1.0


def test_hand_computed_case():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 6.0])
    # positives 3, 5, 6 vs negatives 1, 2, 4: only (3, 4) is mis-ordered -> 8/9
    assert auc(y, s) == pytest.approx(8 / 9)
    # threshold 4: TPR 2/3 (FNR 1/3), FPR 1/3 -> equal error rate 1/3
    assert eer(y, s) == pytest.approx(1 / 3)


def test_ties_count_half():
    y = np.array([0, 1])
    assert auc(y, np.array([0.5, 0.5])) == 0.5


def test_auc_matches_pairwise_definition_on_random_data():
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(int)
    s = np.round(rng.normal(size=300) + y, 1)  # rounding makes ties
    assert auc(y, s) == pytest.approx(pairwise_auc(y, s), abs=1e-12)


def brute_force_eer(y: np.ndarray, s: np.ndarray) -> float:
    """FPR at the threshold where |FNR - FPR| is smallest, trying every threshold."""
    cands = [(abs((s[y == 1] < t).mean() - (s[y == 0] >= t).mean()), (s[y == 0] >= t).mean()) for t in np.unique(s)]
    return float(min(cands)[1])


def test_eer_hand_case_on_a_flat_roc_segment():
    # one positive above all 8 negatives, one below: TPR stays 1/2 while FPR sweeps 0..1, so FNR = 1/2
    # everywhere on that segment and FNR == FPR exactly at threshold 4.5 (FPR 4/8): EER = 0.5
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    s = np.array([100.0, -100.0, 1, 2, 3, 4, 5, 6, 7, 8])
    assert brute_force_eer(y, s) == 0.5
    assert eer(y, s) == pytest.approx(0.5)


def test_eer_matches_brute_force_on_random_data():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 200)
    s = rng.normal(size=400) + 1.5 * y
    assert eer(y, s) == pytest.approx(brute_force_eer(y, s), abs=1e-12)


@pytest.mark.parametrize("y", [np.zeros(5, int), np.ones(5, int)])
def test_single_class_is_none(y):
    s = np.arange(5.0)
    assert auc(y, s) is None
    assert eer(y, s) is None


def test_micro_and_macro_differ():
    labels = {"a": np.array([0, 1]), "b": np.array([0, 1]), "c": np.array([1, 1, 1])}
    scores = {"a": np.array([0.0, 1.0]), "b": np.array([10.0, 11.0]), "c": np.array([5.0, 5.0, 5.0])}
    m = summarize(labels, scores)
    assert m["per_clip_auc"] == {"a": 1.0, "b": 1.0, "c": None}
    assert m["macro_auc"] == 1.0 and m["macro_clips"] == 2  # clip c has one class: left out
    # pooled: positives 1, 11, 5, 5, 5 vs negatives 0, 10
    y = np.array([0, 1, 0, 1, 1, 1, 1])
    s = np.array([0.0, 1.0, 10.0, 11.0, 5.0, 5.0, 5.0])
    assert m["micro_auc"] == pytest.approx(pairwise_auc(y, s))
    assert m["micro_auc"] == pytest.approx(6 / 10)
    assert m["frames"] == 7 and m["anomalous"] == 5


def test_summarize_without_any_two_class_clip():
    m = summarize({"a": np.array([1, 1]), "b": np.array([0, 0])}, {"a": np.array([2.0, 3.0]), "b": np.zeros(2)})
    assert m["macro_auc"] is None and m["macro_clips"] == 0
    assert m["micro_auc"] == 1.0


def test_paired_clip_bootstrap_tells_a_clear_gain_from_none():
    rng = np.random.default_rng(1)
    labels = {f"{i:02d}": np.r_[np.zeros(20), np.ones(20)].astype(int) for i in range(12)}
    noisy = [{n: y + rng.normal(0, 1.0, y.size) for n, y in labels.items()} for _ in range(3)]
    sharp = [{n: y + rng.normal(0, 0.3, y.size) for n, y in labels.items()} for _ in range(3)]
    assert paired_clip_bootstrap(labels, noisy, noisy, draws=200) == (0.0, 0.0)  # the same scores: no difference
    lo, hi = paired_clip_bootstrap(labels, sharp, noisy, draws=200)
    assert 0 < lo < hi  # better on every clip: the interval excludes 0
    lo, hi = paired_clip_bootstrap(labels, noisy[:1], noisy[1:2], draws=200)
    assert lo < 0 < hi  # two draws of the same recipe: the clips cannot tell them apart
