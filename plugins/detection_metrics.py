"""Detection metrics computed with scikit-learn.

Convention (CNNDetection / UnivFD / AIGCDetectBenchmark ``validate.py``): fake
is the positive class, the decision is ``P(fake) > 0.5``. A metric that is
undefined on the given records (no samples; AP/AUC on a single class) returns
``None`` with a note, never NaN.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.interfaces import Metric, MetricValue
from harness.records import FAKE, REAL, SampleRecord

THRESHOLD = 0.5


def _arrays(records: Sequence[SampleRecord]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.fromiter((r.label for r in records), dtype=np.int64, count=len(records))
    scores = np.fromiter((r.score for r in records), dtype=np.float64, count=len(records))
    return labels, scores


def _empty(records: Sequence[SampleRecord]) -> MetricValue | None:
    return MetricValue(None, 0, "no scored samples") if not records else None


class Accuracy(Metric):
    """Accuracy of ``score > 0.5`` against the labels."""

    name = "acc"

    def per_sample(self, record: SampleRecord) -> float:
        """1.0 when the thresholded score matches the label."""
        return float(int(record.score > THRESHOLD) == record.label)

    def aggregate(self, records: Sequence[SampleRecord]) -> MetricValue:
        """Mean correctness."""
        from sklearn.metrics import accuracy_score

        if (empty := _empty(records)) is not None:
            return empty
        labels, scores = _arrays(records)
        return MetricValue(float(accuracy_score(labels, scores > THRESHOLD)), len(records))


class _ClassAccuracy(Metric):
    target: int = REAL

    def aggregate(self, records: Sequence[SampleRecord]) -> MetricValue:
        """Accuracy on the records of one class."""
        chosen = [r for r in records if r.label == self.target]
        if not chosen:
            kind = "real" if self.target == REAL else "fake"
            return MetricValue(None, 0, f"no {kind} samples")
        labels, scores = _arrays(chosen)
        return MetricValue(float(np.mean((scores > THRESHOLD).astype(int) == labels)), len(chosen))


class RealAccuracy(_ClassAccuracy):
    """Accuracy on real images (upstream ``r_acc``)."""

    name = "real_acc"
    target = REAL


class FakeAccuracy(_ClassAccuracy):
    """Accuracy on fake images (upstream ``f_acc``)."""

    name = "fake_acc"
    target = FAKE


class BalancedAccuracy(Metric):
    """Mean of real and fake accuracy (sklearn ``balanced_accuracy_score``)."""

    name = "balanced_acc"

    def aggregate(self, records: Sequence[SampleRecord]) -> MetricValue:
        """Balanced accuracy; undefined with a single class."""
        from sklearn.metrics import balanced_accuracy_score

        if (empty := _empty(records)) is not None:
            return empty
        labels, scores = _arrays(records)
        if len(set(labels.tolist())) < 2:
            return MetricValue(None, len(records), "undefined: only one class present")
        return MetricValue(float(balanced_accuracy_score(labels, scores > THRESHOLD)), len(records))


class _RankingMetric(Metric):
    def _score(self, labels: np.ndarray, scores: np.ndarray) -> float:
        raise NotImplementedError

    def aggregate(self, records: Sequence[SampleRecord]) -> MetricValue:
        """The ranking metric; undefined (with a note) when only one class is present."""
        if (empty := _empty(records)) is not None:
            return empty
        labels, scores = _arrays(records)
        if len(set(labels.tolist())) < 2:
            only = "real" if labels[0] == REAL else "fake"
            return MetricValue(None, len(records), f"undefined: only {only} samples (pair with the other class)")
        return MetricValue(float(self._score(labels, scores)), len(records))


class AveragePrecision(_RankingMetric):
    """Average precision with fake as the positive class (sklearn ``average_precision_score``)."""

    name = "ap"

    def _score(self, labels: np.ndarray, scores: np.ndarray) -> float:
        from sklearn.metrics import average_precision_score

        return average_precision_score(labels, scores)


class RocAuc(_RankingMetric):
    """Area under the ROC curve (sklearn ``roc_auc_score``)."""

    name = "auc"

    def _score(self, labels: np.ndarray, scores: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        return roc_auc_score(labels, scores)


class VerdictAccuracy(Metric):
    """Accuracy of verdicts parsed from generated text; an unknown verdict counts as wrong."""

    name = "qual_acc"
    requires = "text"

    def per_sample(self, record: SampleRecord) -> float:
        """1.0 when the parsed verdict equals the label."""
        return float(record.verdict is not None and record.verdict == record.label)

    def aggregate(self, records: Sequence[SampleRecord]) -> MetricValue:
        """Mean correctness over answered samples."""
        if not records:
            return MetricValue(None, 0, "no generated answers")
        return MetricValue(float(np.mean([self.per_sample(r) for r in records])), len(records))


class UnknownRate(Metric):
    """Share of generated answers whose verdict could not be parsed."""

    name = "unknown_rate"
    requires = "text"
    higher_is_better = False

    def aggregate(self, records: Sequence[SampleRecord]) -> MetricValue:
        """Fraction of answers with verdict ``None``."""
        if not records:
            return MetricValue(None, 0, "no generated answers")
        return MetricValue(float(np.mean([r.verdict is None for r in records])), len(records))
