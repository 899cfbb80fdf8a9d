"""Detection metrics computed with scikit-learn.

Convention (CNNDetection / UnivFD / AIGCDetectBenchmark ``validate.py``): fake
is the positive class, the decision is ``P(fake) > 0.5``. A metric that is
undefined on the given records (no samples; AP/AUC on a single class) returns
``None`` with a note, never NaN.

Thresholds: ``acc`` uses the fixed 0.5 (paper Fig. 6: "threshold is set to 0.5
for balanced indication"). ``acc_val_threshold`` chooses the threshold on the
task's *validation* split and applies it to the evaluated split; a threshold
chosen on test labels (UnivFD's "oracle" accuracy) is never offered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.interfaces import Metric, MetricContext, MetricValue
from harness.metric_memo import memo_key
from harness.records import FAKE, REAL, SampleRecord

THRESHOLD = 0.5
CURVE_STEPS = 101


def arrays(records: Sequence[SampleRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of the records as NumPy arrays."""
    labels = np.fromiter((r.label for r in records), dtype=np.int64, count=len(records))
    scores = np.fromiter((r.score for r in records), dtype=np.float64, count=len(records))
    return labels, scores


def _empty(records: Sequence[SampleRecord]) -> MetricValue | None:
    return MetricValue(None, 0, "no scored samples") if not records else None


def _single_class(labels: np.ndarray) -> str | None:
    if len(set(labels.tolist())) < 2:
        only = "real" if labels[0] == REAL else "fake"
        return f"undefined: only {only} samples (pair with the other class)"
    return None


class ScoreMetric(Metric):
    """A metric of (labels, P(fake) scores); subclasses implement :meth:`from_arrays`.

    ``from_arrays`` is also what the bootstrap resamples, so it must be cheap.
    """

    #: "both" when the metric needs real and fake samples, or the one class it needs.
    needs_classes: str = "any"

    def from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float | None:
        """The metric on arrays, ``None`` when undefined."""
        raise NotImplementedError

    def _undefined(self, labels: np.ndarray) -> str | None:
        if self.needs_classes == "both":
            return _single_class(labels)
        if self.needs_classes in ("real", "fake"):
            target = REAL if self.needs_classes == "real" else FAKE
            if not (labels == target).any():
                return f"no {self.needs_classes} samples"
        return None

    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """The metric over the records, or ``None`` with the reason it is undefined. With a value store in the
        context (``MetricContext.values``, the run's response cache) a value is kept with the labels and scores it
        came from, and a rerun over the same ones reads it instead of computing it (:mod:`harness.metric_memo`)."""
        if (empty := _empty(records)) is not None:
            return empty
        labels, scores = arrays(records)
        if (note := self._undefined(labels)) is not None:
            n = (
                int((labels == (REAL if self.needs_classes == "real" else FAKE)).sum())
                if self.needs_classes in ("real", "fake")
                else len(records)
            )
            return MetricValue(None, n, note)
        store = context.values if context is not None else None
        key = ""
        if store is not None:
            key = memo_key("value", self, labels, scores, context)
            kept = store.get(key)
            if kept is not None:  # the same labels and scores as an earlier run: its value (harness.metric_memo)
                return MetricValue(kept[0], kept[1])
        value = self.from_arrays(labels, scores, context)
        n = len(records)
        if self.needs_classes in ("real", "fake"):
            n = int((labels == (REAL if self.needs_classes == "real" else FAKE)).sum())
        if store is not None:
            store.put(key, [None if value is None else float(value), n])
        return MetricValue(None if value is None else float(value), n)


class Accuracy(ScoreMetric):
    """Accuracy of ``score > 0.5`` against the labels (as sklearn ``accuracy_score``)."""

    name = "acc"

    def per_sample(self, record: SampleRecord, context: MetricContext | None = None) -> float | None:
        """1.0 when the thresholded score matches the label (``None`` without a score)."""
        if record.score is None:
            return None
        return float(int(record.score > THRESHOLD) == record.label)

    def from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float:
        """Mean correctness."""
        return float(np.mean((scores > THRESHOLD).astype(np.int64) == labels))

    def from_weights(
        self, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, context: MetricContext | None = None
    ) -> np.ndarray:
        """The accuracy of every resample at once (rows of ``weights``: how often each sample was drawn)."""
        return weighted_mean(weights, (scores > THRESHOLD).astype(np.int64) == labels)


class _ClassAccuracy(ScoreMetric):
    target: int = REAL

    def from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float:
        """Accuracy on the samples of one class."""
        mask = labels == self.target
        return float(np.mean((scores[mask] > THRESHOLD).astype(np.int64) == self.target))

    def from_weights(
        self, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, context: MetricContext | None = None
    ) -> np.ndarray:
        """The class accuracy of every resample at once."""
        mask = labels == self.target
        return weighted_mean(weights[:, mask], (scores[mask] > THRESHOLD).astype(np.int64) == self.target)


class RealAccuracy(_ClassAccuracy):
    """Accuracy on real images (upstream ``r_acc``)."""

    name = "real_acc"
    target = REAL
    needs_classes = "real"


class FakeAccuracy(_ClassAccuracy):
    """Accuracy on fake images (upstream ``f_acc``)."""

    name = "fake_acc"
    target = FAKE
    needs_classes = "fake"


class BalancedAccuracy(ScoreMetric):
    """Mean of real and fake accuracy (as sklearn ``balanced_accuracy_score``)."""

    name = "balanced_acc"
    pairs_with_real_pool = True
    needs_classes = "both"

    def from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float:
        """(real accuracy + fake accuracy) / 2."""
        predicted = (scores > THRESHOLD).astype(np.int64)
        return float(np.mean([np.mean(predicted[labels == c] == c) for c in (REAL, FAKE)]))

    def from_weights(
        self, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, context: MetricContext | None = None
    ) -> np.ndarray:
        """The balanced accuracy of every resample at once."""
        predicted = (scores > THRESHOLD).astype(np.int64)
        per_class = [weighted_mean(weights[:, labels == c], predicted[labels == c] == c) for c in (REAL, FAKE)]
        return (per_class[0] + per_class[1]) / 2.0


def fast_roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC through the Mann-Whitney U statistic with average ranks for ties.

    Equal to sklearn's ``roc_auc_score`` (tested); used inside bootstrap loops only,
    where sklearn's per-call input validation dominates the cost.
    """
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    positives = labels == FAKE
    n_pos = int(positives.sum())
    n_neg = labels.size - n_pos
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def fast_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision as sklearn computes it (step-wise sum over distinct thresholds, tested equal);
    used inside bootstrap loops only."""
    order = np.argsort(-scores, kind="stable")
    s, positive = scores[order], labels[order] == FAKE
    last_of_group = np.r_[s[1:] != s[:-1], True]
    true_pos = np.cumsum(positive)[last_of_group]
    predicted = (np.arange(1, s.size + 1))[last_of_group]
    precision = true_pos / predicted
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def weighted_mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row of ``weights``: the weighted mean of ``values`` (NaN where a row weighs nothing)."""
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ values.astype(np.float64)) / total


def weighted_roc_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of each row's weighted sample (row r: sample i counted ``weights[r, i]`` times), all rows at once:
    the Mann-Whitney U over the distinct scores (a tie counts a half), as :func:`fast_roc_auc` and sklearn give
    for the resampled multiset itself (tested). NaN where a row lacks a class."""
    from harness.bootstrap import class_weights_by_threshold

    positive, negative = class_weights_by_threshold(labels, scores, weights, FAKE)
    n_pos, n_neg = positive.sum(axis=1), negative.sum(axis=1)
    below = n_neg[:, None] - np.cumsum(negative, axis=1)  # negatives scored lower than each distinct score
    u = (positive * (below + 0.5 * negative)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return u / (n_pos * n_neg)


def weighted_average_precision(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision of each row's weighted sample, all rows at once: the step-wise sum over distinct
    thresholds (decreasing) of recall gained times precision, as sklearn computes it (tested)."""
    from harness.bootstrap import class_weights_by_threshold

    positive, negative = class_weights_by_threshold(labels, scores, weights, FAKE)
    true_pos = np.cumsum(positive, axis=1)
    predicted = true_pos + np.cumsum(negative, axis=1)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (positive * precision).sum(axis=1) / positive.sum(axis=1)


def weighted_equal_error_rate(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """EER of each row's weighted sample, all rows at once: the ROC curve from cumulative class weights over the
    distinct thresholds, then :func:`equal_error_rate`'s crossing and interpolation (collinear points that
    sklearn's curve drops do not move the interpolated point)."""
    from harness.bootstrap import class_weights_by_threshold

    positive, negative = class_weights_by_threshold(labels, scores, weights, FAKE)
    zeros = np.zeros((weights.shape[0], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.hstack([zeros, np.cumsum(positive, axis=1) / positive.sum(axis=1, keepdims=True)])
        fpr = np.hstack([zeros, np.cumsum(negative, axis=1) / negative.sum(axis=1, keepdims=True)])
    diff = (1.0 - tpr) - fpr
    crossing = np.argmax(diff <= 0, axis=1)
    rows = np.arange(weights.shape[0])
    before = np.maximum(crossing - 1, 0)
    d0, d1 = diff[rows, before], diff[rows, crossing]
    f0, f1 = fpr[rows, before], fpr[rows, crossing]
    with np.errstate(invalid="ignore", divide="ignore"):
        interpolated = f0 + d0 / (d0 - d1) * (f1 - f0)
    return np.where((d1 == 0) | (crossing == 0), f1, interpolated)


class AveragePrecision(ScoreMetric):
    """Average precision with fake as the positive class (sklearn ``average_precision_score``)."""

    name = "ap"
    pairs_with_real_pool = True
    needs_classes = "both"

    def from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float:
        """sklearn's AP."""
        from sklearn.metrics import average_precision_score

        return float(average_precision_score(labels, scores))

    def fast_from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float:
        """The same value without sklearn's per-call overhead (bootstrap)."""
        return fast_average_precision(labels, scores)

    def from_weights(
        self, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, context: MetricContext | None = None
    ) -> np.ndarray:
        """The AP of every resample at once (:func:`weighted_average_precision`)."""
        return weighted_average_precision(labels, scores, weights)


class RocAuc(ScoreMetric):
    """Area under the ROC curve (sklearn ``roc_auc_score``)."""

    name = "auc"
    pairs_with_real_pool = True
    needs_classes = "both"

    def from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float:
        """sklearn's ROC AUC."""
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(labels, scores))

    def fast_from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float:
        """The same value without sklearn's per-call overhead (bootstrap)."""
        return fast_roc_auc(labels, scores)

    def from_weights(
        self, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, context: MetricContext | None = None
    ) -> np.ndarray:
        """The ROC AUC of every resample at once (:func:`weighted_roc_auc`)."""
        return weighted_roc_auc(labels, scores, weights)


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """EER: the point of the ROC curve (sklearn ``roc_curve``) where the false positive rate equals
    the false negative rate, linearly interpolated between the two ROC points that bracket it."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # decreasing from 1 to -1 along the curve
    crossing = int(np.argmax(diff <= 0))
    if diff[crossing] == 0 or crossing == 0:
        return float(fpr[crossing])
    # interpolate between point crossing-1 (diff > 0) and crossing (diff <= 0)
    d0, d1 = diff[crossing - 1], diff[crossing]
    t = d0 / (d0 - d1)
    return float(fpr[crossing - 1] + t * (fpr[crossing] - fpr[crossing - 1]))


class EqualErrorRate(ScoreMetric):
    """Equal error rate (lower is better), from sklearn's ROC curve."""

    name = "eer"
    pairs_with_real_pool = True
    higher_is_better = False
    needs_classes = "both"

    def from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float:
        """See :func:`equal_error_rate`."""
        return equal_error_rate(labels, scores)

    def from_weights(
        self, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, context: MetricContext | None = None
    ) -> np.ndarray:
        """The EER of every resample at once (:func:`weighted_equal_error_rate`)."""
        return weighted_equal_error_rate(labels, scores, weights)


def best_accuracy_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold t maximising accuracy of ``score > t`` on (labels, scores).

    Candidates are midpoints between consecutive distinct scores, plus one below the
    minimum (all fake) and the maximum (all real); ties go to the candidate closest
    to 0.5. O(n log n) through cumulative class counts over the sorted scores.
    """
    order = np.argsort(scores, kind="stable")
    s, lab = scores[order], labels[order]
    n = s.size
    reals_below = np.concatenate([[0], np.cumsum(lab == REAL)])
    fakes_below = np.concatenate([[0], np.cumsum(lab == FAKE)])
    correct = reals_below + (fakes_below[-1] - fakes_below)  # predict fake for positions >= k
    k = np.arange(n + 1)
    boundary = np.ones(n + 1, dtype=bool)
    boundary[1:n] = s[:-1] < s[1:]
    candidates = np.empty(n + 1)
    candidates[0], candidates[n] = s[0] - 1e-9, s[-1]
    candidates[1:n] = (s[:-1] + s[1:]) / 2
    k, candidates, correct = k[boundary], candidates[boundary], correct[boundary]
    best = np.flatnonzero(correct == correct.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - THRESHOLD))]])


class ValidationThresholdAccuracy(ScoreMetric):
    """Accuracy at the threshold that maximises accuracy on the task's validation split.

    Needs ``MetricContext.calibration`` (the runner scores the validation split for
    it); never uses the evaluated split's labels to choose the threshold.
    """

    name = "acc_val_threshold"
    needs_calibration = True

    def threshold(self, context: MetricContext | None) -> tuple[float | None, int]:
        """The validation-chosen threshold and the number of validation samples (memoised per context)."""
        calibration = list(context.calibration or []) if context else []
        if not calibration or context is None:
            return None, 0
        key = id(context.calibration)
        cached = getattr(self, "_threshold_cache", None)
        if cached is None or cached[0] != key:
            val_labels, val_scores = arrays(calibration)
            self._threshold_cache = (key, best_accuracy_threshold(val_labels, val_scores), len(calibration))
        return self._threshold_cache[1], self._threshold_cache[2]

    def from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float | None:
        """Accuracy at the validation threshold (``None`` without a validation split)."""
        threshold, _ = self.threshold(context)
        if threshold is None:
            return None
        return float(np.mean((scores > threshold).astype(np.int64) == labels))

    def from_weights(
        self, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, context: MetricContext | None = None
    ) -> np.ndarray:
        """Accuracy at the validation threshold for every resample at once (NaN without a threshold)."""
        threshold, _ = self.threshold(context)
        if threshold is None:
            return np.full(weights.shape[0], np.nan)
        return weighted_mean(weights, (scores > threshold).astype(np.int64) == labels)

    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """As :class:`ScoreMetric`, with the threshold in ``data``."""
        threshold, n_val = self.threshold(context)
        if threshold is None:
            if context is not None and context.calibration is not None:
                return MetricValue(
                    None,
                    len(records),
                    "undefined: the validation split was scored, but none of its "
                    "samples has a usable score (all failed)",
                )
            return MetricValue(
                None, len(records), "undefined: the task has no validation split to choose a threshold on"
            )
        value = super().aggregate(records, context)
        value.data = {"threshold": threshold, "n_validation": n_val}
        return value


def univfd_best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """UnivFD's ``find_best_threshold`` (``validate.py``), re-implemented from its description: if every real
    score is <= every fake score, the midpoint of the two; else every score in turn is tried as a threshold
    with ``score >= t`` meaning fake, and the *last* one reaching the best accuracy wins (scores in upstream's
    order: reals first, then fakes). Upstream finds the classes by assuming the first half of the scores is
    real; here the labels say it (the same where upstream's assumption holds, right where it does not)."""
    order = np.concatenate([np.flatnonzero(labels == REAL), np.flatnonzero(labels == FAKE)])
    labels, scores = labels[order], scores[order]
    reals, fakes = scores[labels == REAL], scores[labels == FAKE]
    if reals.max() <= fakes.min():
        return float((reals.max() + fakes.min()) / 2)
    best_acc, best = 0.0, 0.0
    for threshold in scores:
        acc = float(np.mean((scores >= threshold).astype(np.int64) == labels))
        if acc >= best_acc:
            best_acc, best = acc, float(threshold)
    return best


class UnivFDOracleAccuracy(ScoreMetric):
    """UnivFD's *oracle* accuracy (Ojha et al., ``validate.py``): accuracy at a threshold searched on the
    evaluated split's own labels (:func:`univfd_best_threshold`), then counted with ``score > t`` (the
    search counts ``>=``; the final count ``>``, as upstream). It uses the test labels, so it is optimistic:
    off by default (``--extra-metrics acc_oracle_univfd``), for putting a run next to a published UnivFD
    table. The honest figure is ``acc_val_threshold``."""

    name = "acc_oracle_univfd"
    needs_classes = "both"
    pairs_with_real_pool = True
    bootstrap = False  # a threshold search per resample: quadratic, and an oracle has no sampling story

    def from_arrays(self, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None = None) -> float:
        """Accuracy at the oracle threshold."""
        threshold = univfd_best_threshold(labels, scores)
        return float(np.mean((scores > threshold).astype(np.int64) == labels))

    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """As :class:`ScoreMetric`, with the threshold and upstream's r_acc / f_acc at it in ``data``."""
        value = super().aggregate(records, context)
        if value.value is not None:
            labels, scores = arrays(records)
            threshold = univfd_best_threshold(labels, scores)
            predicted = (scores > threshold).astype(np.int64)
            value.data = {
                "threshold": threshold,
                "real_acc": float(np.mean(predicted[labels == REAL] == REAL)),
                "fake_acc": float(np.mean(predicted[labels == FAKE] == FAKE)),
                "note": "threshold chosen on the evaluated labels (optimistic)",
            }
        return value


class AccuracyCurve(Metric):
    """Accuracy, real and fake accuracy as functions of the threshold (paper Fig. 7), as data."""

    name = "acc_curve"
    bootstrap = False

    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """``data = {"threshold": [...], "acc": [...], "real_acc": [...], "fake_acc": [...]}`` on 0..1."""
        if (empty := _empty(records)) is not None:
            return empty
        labels, scores = arrays(records)
        thresholds = np.linspace(0.0, 1.0, CURVE_STEPS)
        predicted = scores[None, :] > thresholds[:, None]
        correct = predicted.astype(int) == labels[None, :]
        data = {"threshold": thresholds.round(4).tolist(), "acc": correct.mean(axis=1).round(6).tolist()}
        for name, cls in (("real_acc", REAL), ("fake_acc", FAKE)):
            mask = labels == cls
            data[name] = correct[:, mask].mean(axis=1).round(6).tolist() if mask.any() else None
        return MetricValue(None, len(records), "curve in data", data=data)


def asks_verdict(record: SampleRecord) -> bool:
    """Whether the sample's question asks for a fake / real verdict (``metadata["asks_verdict"]``, default
    true). FakeClue's fault-finding prompts presuppose the answer ("This is a fake image ..., explain the
    reasons"): their answers are explanations, not verdicts, and count in neither accuracy nor unknown rate."""
    return record.metadata.get("asks_verdict", True) is not False


class VerdictAccuracy(Metric):
    """Accuracy of verdicts parsed from generated text (paper: Acc = N_c / N_t) over the questions that ask
    for a verdict; an unknown verdict counts as wrong."""

    name = "qual_acc"
    requires = "text"

    def per_sample(self, record: SampleRecord, context: MetricContext | None = None) -> float | None:
        """1.0 when the parsed verdict equals the label; ``None`` when the question asks for no verdict."""
        if not asks_verdict(record):
            return None
        return float(record.verdict is not None and record.verdict == record.label)

    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """Mean correctness over the answers to verdict questions."""
        asked = [r for r in records if asks_verdict(r)]
        if not asked:
            return MetricValue(None, 0, "no generated answers to a question that asks for a verdict")
        return MetricValue(float(np.mean([self.per_sample(r) for r in asked])), len(asked))


class UnknownRate(Metric):
    """Share of answers to verdict questions whose verdict could not be parsed."""

    name = "unknown_rate"
    requires = "text"
    higher_is_better = False

    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """Fraction of those answers with verdict ``None``."""
        asked = [r for r in records if asks_verdict(r)]
        if not asked:
            return MetricValue(None, 0, "no generated answers to a question that asks for a verdict")
        return MetricValue(float(np.mean([r.verdict is None for r in asked])), len(asked))
