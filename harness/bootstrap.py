"""Stratified percentile bootstrap for metric confidence intervals.

``scipy.stats.bootstrap`` resamples without regard to class, so a resample of
a small or unbalanced set can hold a single class, where AP and AUC are
undefined. Detection metrics are resampled here *within each label* (the
class counts stay fixed), then the 2.5th and 97.5th percentiles of the
resampled metric values give the 95% interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

#: resamples turned into one count matrix at a time (rows x samples float64: 64 x 30,000 = 15 MB)
CHUNK = 64


def stratified_resamples(labels: np.ndarray, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The index arrays of the label-stratified resamples, drawn from ``seed`` (each label's indices resampled
    with replacement, the class counts kept)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == value) for value in np.unique(labels)]
    for _ in range(n_resamples):
        yield np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])


def resample_weights(labels: np.ndarray, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The same resamples as :func:`stratified_resamples`, as count matrices of up to :data:`CHUNK` rows: row r,
    column i holds how often sample i was drawn in resample r. A metric that takes sample weights computes
    every row at once (``Metric.from_weights``), instead of one resample at a time."""
    rows: list[np.ndarray] = []
    for picked in stratified_resamples(labels, n_resamples, seed):
        rows.append(np.bincount(picked, minlength=labels.size))
        if len(rows) == CHUNK:
            yield np.asarray(rows, dtype=np.float64)
            rows = []
    if rows:
        yield np.asarray(rows, dtype=np.float64)


def percentile_interval(values: Sequence[float], n_resamples: int, level: float = 0.95) -> list[float] | None:
    """The percentile interval of the defined resample values; ``None`` when fewer than half are defined."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    if len(finite) < n_resamples // 2 or not finite:
        return None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return [float(low), float(high)]


def stratified_bootstrap_ci(
    labels: Sequence[int] | np.ndarray,
    statistic: Callable[[np.ndarray], float | None],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    weighted: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[float] | None:
    """Percentile interval of ``statistic(indices)`` over label-stratified resamples of the indices.

    ``statistic`` receives an index array into the caller's data and returns the
    metric (or ``None`` when undefined on that resample). ``weighted``, when given,
    computes the same statistic for many resamples at once from their count matrix
    (:func:`resample_weights`; NaN where undefined) and is used instead: the same
    resamples, so the same interval, at a fraction of the cost. ``None`` is returned
    when fewer than half of the resamples give a value.
    """
    labels = np.asarray(labels)
    if n_resamples <= 0 or labels.size < 2:
        return None
    values: list[float] = []
    if weighted is not None:
        for weights in resample_weights(labels, n_resamples, seed):
            values.extend(float(v) for v in weighted(weights))
    else:
        for picked in stratified_resamples(labels, n_resamples, seed):
            value = statistic(picked)
            if value is not None:
                values.append(value)
    return percentile_interval(values, n_resamples, level)


def tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, starts)``: the samples by decreasing score (stable), and where each run of equal scores starts
    in that order (the distinct thresholds of a ROC or precision-recall curve)."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def class_weights_by_threshold(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, positive: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``weights`` and per distinct score (decreasing): the summed weight of positives and of
    negatives holding that score; the building block of weighted AUC, AP and ROC curves."""
    order, starts = tie_groups(scores)
    ordered = weights[:, order]
    is_positive = (labels[order] == positive).astype(np.float64)
    return (
        np.add.reduceat(ordered * is_positive, starts, axis=1),
        np.add.reduceat(ordered * (1.0 - is_positive), starts, axis=1),
    )
