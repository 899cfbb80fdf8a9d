"""Which models on a board are not significantly different from a column's best? (issue #30 item 3).

A board ranks models by a number; two models scored on the same images are compared here with a paired test
(:mod:`harness.significance`), never by overlapping intervals. For every column of AUC, AP or accuracy:

1. the column's best model (the bold cell) is compared with every other measured model of the column, on the
   samples both scored: DeLong's test for AUC, the paired label-stratified bootstrap for AP and accuracy;
2. the column's p-values are adjusted together by Holm's step-down method (Holm 1979, "A simple sequentially
   rejective multiple test procedure", Scand. J. Statist. 6(2)), which controls the family-wise error rate at α
   across the column;
3. a model whose adjusted p-value is at least α is marked "not significantly different from the best".

A test is run only on exactly the number shown: the metric is recomputed from the run's ``samples.jsonl`` (on
all its scored samples, or on one subset's for a per-generator column) and must equal the cell; a column whose
values are computed some other way (a validation-set threshold, a verdict-based accuracy, a printed row) gets
no marks, and the board's footnote says how many columns were tested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.results_model import Results
from harness.significance import accuracy, average_precision, delong, paired_bootstrap


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


#: metric -> the function that recomputes it from (labels, scores); only these columns are tested
TESTED_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auc": _auc,
    "ap": average_precision,
    "acc": accuracy,
}
#: the metrics whose per-generator value pairs a subset of fakes with all the run's reals
PAIRED_WITH_REALS = frozenset({"auc", "ap"})


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order: sorted ascending, the k-th (from 0) is multiplied
    by ``m - k``, made non-decreasing by a running maximum and capped at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass
class ColumnInput:
    """What a column's test needs: its metric, the subset its values are of (``None``: all samples), and per
    model row the shown value and the run behind it (``None`` for a printed row or an empty cell)."""

    metric: str
    subset: str | None
    values: dict[str, float | None]
    runs: dict[str, Results | None]
    best: list[str]


@dataclass
class ColumnVerdict:
    """A tested column: per compared model, its raw and Holm-adjusted p-value against the best."""

    best: str
    p: dict[str, float] = field(default_factory=dict)
    adjusted: dict[str, float] = field(default_factory=dict)

    def not_different(self, alpha: float) -> list[str]:
        """The models whose adjusted p-value is at least ``alpha``."""
        return [model for model, p in self.adjusted.items() if p >= alpha]


class SampleScores:
    """Per results file: scored samples as ``{sample_id: (label, score, subset)}``, read once per board."""

    def __init__(self) -> None:
        self._read: dict[Path, dict[str, tuple[int, float, str]] | None] = {}

    def of(self, run: Results) -> dict[str, tuple[int, float, str]] | None:
        """The run's scored samples, or ``None`` when it has no readable samples file."""
        from harness.results import read_samples

        if run.path is None:
            return None
        if run.path not in self._read:
            try:
                records = read_samples(run.path)
            except (OSError, ValueError):
                self._read[run.path] = None
            else:
                self._read[run.path] = {
                    r.sample_id: (int(r.label), float(r.score), r.subset)
                    for r in records
                    if r.error is None and r.score is not None and r.label is not None
                }
        return self._read[run.path]


def _members(scored: dict[str, tuple[int, float, str]], subset: str | None, pair_reals: bool) -> set[str]:
    """The samples a column's value is of: all, or one subset's, with every real image of the run added to a
    subset of fakes only for the metrics the harness pairs with the real pool (AUC, AP; see
    :func:`harness.metrics_runner.compute_metrics`)."""
    if subset is None:
        return set(scored)
    ids = {i for i, v in scored.items() if v[2] == subset}
    if pair_reals and ids and all(scored[i][0] == 1 for i in ids):
        ids |= {i for i, v in scored.items() if v[0] == 0}
    return ids


def _aligned(
    scores: SampleScores, a: Results, b: Results, subset: str | None, pair_reals: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Labels and both runs' scores on the column's samples that both scored; ``None`` if they differ."""
    sa, sb = scores.of(a), scores.of(b)
    if not sa or not sb:
        return None
    ids_a, ids_b = _members(sa, subset, pair_reals), _members(sb, subset, pair_reals)
    if ids_a != ids_b or not ids_a:
        return None  # not the same samples: no paired test
    ids = sorted(ids_a)
    labels = np.array([sa[i][0] for i in ids])
    if any(sa[i][0] != sb[i][0] for i in ids) or len(set(labels.tolist())) < 2:
        return None
    return labels, np.array([sa[i][1] for i in ids]), np.array([sb[i][1] for i in ids])


def _shows(metric: str, labels: np.ndarray, scores: np.ndarray, value: float | None) -> bool:
    """Whether recomputing ``metric`` from these samples gives the cell's value (the test is of what is shown)."""
    return value is not None and abs(TESTED_METRICS[metric](labels, scores) - value) <= 1e-9


def column_verdict(
    column: ColumnInput, scores: SampleScores, resamples: int = 2000, seed: int = 0
) -> ColumnVerdict | None:
    """The column's paired tests against its best, Holm-adjusted; ``None`` when the column cannot be tested (not
    AUC/AP/Acc, no single measured best, or the best's value is not what its samples give)."""
    if column.metric not in TESTED_METRICS or not column.best:
        return None
    best = column.best[0]
    best_run = column.runs.get(best)
    if best_run is None:
        return None
    verdict = ColumnVerdict(best)
    for model, run in column.runs.items():
        if model in column.best or run is None:
            continue
        aligned = _aligned(scores, best_run, run, column.subset, column.metric in PAIRED_WITH_REALS)
        if aligned is None:
            continue
        labels, best_scores, other = aligned
        if not (_shows(column.metric, labels, best_scores, column.values[best])
                and _shows(column.metric, labels, other, column.values[model])):  # fmt: skip
            continue
        if column.metric == "auc":
            verdict.p[model] = delong(labels, best_scores, other).p
        else:
            fn = TESTED_METRICS[column.metric]
            verdict.p[model] = paired_bootstrap(column.metric, fn, labels, best_scores, other, resamples, seed).p
    if not verdict.p:
        return None
    models = list(verdict.p)
    verdict.adjusted = dict(zip(models, holm([verdict.p[m] for m in models]), strict=True))
    return verdict
