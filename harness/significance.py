"""Is the difference between two models real? Paired tests on the same samples (issue #30).

Two models scored on the same images are correlated: comparing their separate bootstrap intervals is the wrong
test. Here:

- **ΔAUC: DeLong's test** for two correlated ROC AUCs (DeLong, DeLong & Clarke-Pearson 1988), computed the fast
  way of Sun & Xu (2014, "Fast implementation of DeLong's algorithm for comparing the areas under correlated
  receiver operating characteristic curves", IEEE SPL 21(11)): the structural components from mid-ranks
  (ties count one half, as in the Mann-Whitney AUC), their covariance over positives and negatives, and
  ``z = ΔAUC / sqrt(Var Δ)`` with a two-sided normal p-value.
- **ΔAP and Δaccuracy: a paired, label-stratified bootstrap**: the same resampled indices for both models (each
  label's samples resampled apart, as the harness's intervals are), the percentile 95 % interval of the
  difference and a two-sided p-value ``min(1, 2 (min(#Δ ≤ 0, #Δ ≥ 0) + 1) / (B + 1))`` (the +1 keeps a finite
  number of resamples from claiming p = 0).

Labels are 1 = fake (the positive class) and 0 = real; scores are P(fake).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.bootstrap import percentile_interval, stratified_resamples


@dataclass
class PairedDifference:
    """A paired comparison of model A with model B on one metric: the two values, A − B, its 95 % interval, the
    p-value of "no difference" and how it was tested."""

    metric: str
    a: float
    b: float
    delta: float
    ci: list[float] | None
    p: float
    test: str
    n: int


def _check(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> None:
    if not (labels.shape == scores_a.shape == scores_b.shape) or labels.ndim != 1:
        raise ValueError("labels and both models' scores must be 1-D arrays of one length (the same samples)")
    if set(np.unique(labels).tolist()) != {0, 1}:
        raise ValueError("a paired test needs both real (0) and fake (1) samples")


def delong(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> PairedDifference:
    """DeLong's test of AUC(A) = AUC(B) on the same samples (fast algorithm of Sun & Xu 2014)."""
    from scipy.stats import norm, rankdata

    labels = np.asarray(labels).astype(int)
    scores = np.vstack([np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)])
    _check(labels, scores[0], scores[1])
    positive, negative = scores[:, labels == 1], scores[:, labels == 0]
    m, n = positive.shape[1], negative.shape[1]
    aucs, v10, v01 = np.empty(2), np.empty((2, m)), np.empty((2, n))
    for k in range(2):
        tx = rankdata(positive[k])  # mid-ranks among the positives
        ty = rankdata(negative[k])  # among the negatives
        tz = rankdata(np.concatenate([positive[k], negative[k]]))  # among all
        aucs[k] = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
        v10[k] = (tz[:m] - tx) / n  # per positive: the share of negatives it outranks (ties 1/2)
        v01[k] = 1.0 - (tz[m:] - ty) / m  # per negative: the share of positives that outrank it
    covariance = np.cov(v10) / m + np.cov(v01) / n
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    delta = float(aucs[0] - aucs[1])
    if variance <= 0:  # identical rankings: no difference, and none detectable
        p, half = (1.0, 0.0) if delta == 0 else (0.0, 0.0)
    else:
        se = float(np.sqrt(variance))
        p, half = float(2 * norm.sf(abs(delta) / se)), float(norm.ppf(0.975) * se)
    return PairedDifference("auc", float(aucs[0]), float(aucs[1]), delta, [delta - half, delta + half], p,
                            "DeLong (fast, Sun & Xu 2014)", int(labels.size))  # fmt: skip


def paired_bootstrap(
    metric: str,
    fn: Callable[[np.ndarray, np.ndarray], float],
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PairedDifference:
    """``fn(labels, scores)`` of A minus that of B, resampled together (label-stratified, seeded)."""
    labels = np.asarray(labels).astype(int)
    scores_a, scores_b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    _check(labels, scores_a, scores_b)
    a, b = float(fn(labels, scores_a)), float(fn(labels, scores_b))
    deltas = np.array(
        [
            fn(labels[i], scores_a[i]) - fn(labels[i], scores_b[i])
            for i in stratified_resamples(labels, n_resamples, seed)
        ]
    )
    extreme = min(int((deltas <= 0).sum()), int((deltas >= 0).sum()))
    p = min(1.0, 2 * (extreme + 1) / (n_resamples + 1))
    test = f"paired label-stratified bootstrap, {n_resamples} resamples"
    interval = percentile_interval(deltas.tolist(), n_resamples)
    return PairedDifference(metric, a, b, a - b, interval, p, test, int(labels.size))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP as scikit-learn computes it (the harness's ``ap``)."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores))


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Accuracy at P(fake) > 0.5 (the harness's ``acc``)."""
    return float(np.mean((scores > 0.5) == (labels == 1)))


def compare_scores(
    labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, n_resamples: int = 2000, seed: int = 0
) -> list[PairedDifference]:
    """AUC by DeLong, AP and accuracy by the paired bootstrap."""
    return [
        delong(labels, scores_a, scores_b),
        paired_bootstrap("ap", average_precision, labels, scores_a, scores_b, n_resamples, seed),
        paired_bootstrap("acc", accuracy, labels, scores_a, scores_b, n_resamples, seed),
    ]
