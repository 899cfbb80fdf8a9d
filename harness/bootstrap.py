"""Stratified percentile bootstrap for metric confidence intervals.

``scipy.stats.bootstrap`` resamples without regard to class, so a resample of
a small or unbalanced set can hold a single class, where AP and AUC are
undefined. Detection metrics are resampled here *within each label* (the
class counts stay fixed), then the 2.5th and 97.5th percentiles of the
resampled metric values give the 95% interval.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def stratified_bootstrap_ci(
    labels: Sequence[int] | np.ndarray,
    statistic: Callable[[np.ndarray], float | None],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[float] | None:
    """Percentile interval of ``statistic(indices)`` over label-stratified resamples of the indices.

    ``statistic`` receives an index array into the caller's data and returns the
    metric (or ``None`` when undefined on that resample). ``None`` is returned when
    fewer than half of the resamples give a value.
    """
    labels = np.asarray(labels)
    if n_resamples <= 0 or labels.size < 2:
        return None
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == value) for value in np.unique(labels)]
    values = []
    for _ in range(n_resamples):
        picked = np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])
        value = statistic(picked)
        if value is not None:
            values.append(value)
    if len(values) < n_resamples // 2:
        return None
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return [float(low), float(high)]
