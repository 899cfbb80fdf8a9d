"""The vectorised bootstrap (issue #31): every detection metric computed for all resamples at once from their
count matrices gives, resample by resample, what scikit-learn gives on the resampled multiset itself, so the
intervals equal the one-resample-at-a-time path; and an interval is cached with the records it came from."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from harness.bootstrap import resample_weights, stratified_bootstrap_ci, stratified_resamples
from harness.interfaces import MetricContext
from harness.metrics_runner import bootstrap_interval
from harness.plugins.detection_metrics import (
    Accuracy,
    AveragePrecision,
    BalancedAccuracy,
    EqualErrorRate,
    FakeAccuracy,
    RealAccuracy,
    RocAuc,
    equal_error_rate,
)
from harness.records import SampleRecord


def data(tied: bool, n: int = 300, seed: int = 1):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(np.int64)
    scores = np.clip(rng.normal(0.4 + 0.25 * labels, 0.2), 0, 1)
    if tied:
        scores = np.round(scores * 8) / 8  # many ties, and scores exactly at 0.5
    return labels, scores


REFERENCES = {
    "auc": lambda y, s: roc_auc_score(y, s),
    "ap": lambda y, s: average_precision_score(y, s),
    "eer": equal_error_rate,
    "acc": lambda y, s: float(np.mean((s > 0.5) == y)),
    "real_acc": lambda y, s: float(np.mean((s[y == 0] > 0.5) == 0)),
    "fake_acc": lambda y, s: float(np.mean((s[y == 1] > 0.5) == 1)),
    "balanced_acc": lambda y, s: (np.mean((s[y == 0] > 0.5) == 0) + np.mean((s[y == 1] > 0.5) == 1)) / 2,
}
METRICS = [RocAuc(), AveragePrecision(), EqualErrorRate(), Accuracy(), RealAccuracy(), FakeAccuracy(),
           BalancedAccuracy()]  # fmt: skip


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
def test_weighted_values_equal_sklearn_on_each_resampled_multiset(metric, tied):
    labels, scores = data(tied)
    weights = next(resample_weights(labels, 40, seed=3))
    vectorised = metric.from_weights(labels, scores, weights)
    for row, picked in zip(vectorised, stratified_resamples(labels, 40, seed=3), strict=False):
        expected = REFERENCES[metric.name](labels[picked], scores[picked])
        assert row == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
def test_the_interval_equals_the_one_resample_at_a_time_path(metric, tied):
    labels, scores = data(tied, n=500)
    slow = stratified_bootstrap_ci(labels, lambda idx: metric.from_arrays(labels[idx], scores[idx]), 200, seed=7)
    fast = stratified_bootstrap_ci(
        labels, lambda idx: None, 200, seed=7, weighted=lambda w: metric.from_weights(labels, scores, w)
    )
    assert slow is not None and fast == pytest.approx(slow, abs=1e-12)


class Store:
    def __init__(self):
        self.kept, self.reads = {}, 0

    def get(self, key):
        self.reads += 1
        return self.kept.get(key)

    def put(self, key, value):
        self.kept[key] = value


def test_an_interval_is_reused_for_the_same_records_and_recomputed_for_others(monkeypatch):
    labels, scores = data(False)
    records = [SampleRecord(str(i), "s", "test", int(y), "score", score=float(s)) for i, (y, s) in
               enumerate(zip(labels, scores, strict=False))]  # fmt: skip
    store = Store()
    context = MetricContext(intervals=store)
    first = bootstrap_interval(RocAuc(), records, context, 300)
    import harness.metrics_runner as runner

    monkeypatch.setattr(runner, "stratified_bootstrap_ci", lambda *a, **k: pytest.fail("resampled again"))
    assert bootstrap_interval(RocAuc(), records, context, 300) == first
    records[0].score = 1.0 - records[0].score
    monkeypatch.undo()
    assert bootstrap_interval(RocAuc(), records, context, 300) != first
    assert len(store.kept) == 2
