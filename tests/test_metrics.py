"""Detection metrics: parity with scikit-learn, undefined cases, real-pool pairing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, balanced_accuracy_score, roc_auc_score

from harness.metrics_runner import compute_metrics
from harness.plugins.detection_metrics import (Accuracy, AveragePrecision, BalancedAccuracy, FakeAccuracy,
                                               RealAccuracy, RocAuc, UnknownRate, VerdictAccuracy)
from harness.records import SampleRecord


def records(labels, scores, subsets=None, errors=None):
    subsets = subsets or ["all"] * len(labels)
    errors = errors or [None] * len(labels)
    return [SampleRecord(sample_id=str(i), subset=s, split="test", label=l, mode="score", score=sc, error=e)
            for i, (l, sc, s, e) in enumerate(zip(labels, scores, subsets, errors))]


def test_parity_with_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    recs = records(labels.tolist(), scores.tolist())
    assert Accuracy().aggregate(recs).value == pytest.approx(accuracy_score(labels, scores > 0.5))
    assert AveragePrecision().aggregate(recs).value == pytest.approx(average_precision_score(labels, scores))
    assert RocAuc().aggregate(recs).value == pytest.approx(roc_auc_score(labels, scores))
    assert BalancedAccuracy().aggregate(recs).value == pytest.approx(balanced_accuracy_score(labels, scores > 0.5))
    real = RealAccuracy().aggregate(recs).value
    fake = FakeAccuracy().aggregate(recs).value
    assert (real + fake) / 2 == pytest.approx(BalancedAccuracy().aggregate(recs).value)


def test_threshold_is_strictly_greater_than_half():
    recs = records([0, 1], [0.5, 0.5])
    assert Accuracy().aggregate(recs).value == 0.5  # 0.5 is "real", as upstream's `> 0.5`


def test_single_class_is_none_with_a_note_not_nan():
    recs = records([1, 1, 1], [0.2, 0.7, 0.9])
    for metric in (AveragePrecision(), RocAuc(), BalancedAccuracy()):
        value = metric.aggregate(recs)
        assert value.value is None and "only" in value.note
    assert RealAccuracy().aggregate(recs).note == "no real samples"
    assert Accuracy().aggregate([]).note == "no scored samples"


def test_compute_metrics_pairs_fake_subsets_with_the_real_pool_and_skips_errors():
    recs = records([0, 0, 1, 1, 1, 1], [0.1, 0.6, 0.9, 0.4, 0.8, 0.2],
                   subsets=["real", "real", "g1", "g1", "g2", "g2"],
                   errors=[None, None, None, None, None, "broken"])
    result = compute_metrics([Accuracy(), RocAuc()], recs)
    assert result["all"]["acc"]["n"] == 5
    assert result["subsets"]["g1"]["auc"]["value"] == pytest.approx(roc_auc_score([0, 0, 1, 1], [0.1, 0.6, 0.9, 0.4]))
    assert result["subsets"]["g2"]["auc"]["n"] == 3
    assert "2 reals from real" in result["pairing"]["g1"]
    assert result["subsets"]["real"]["auc"]["value"] is None
    assert recs[0].metrics == {"acc": 1.0} and recs[1].metrics == {"acc": 0.0}
    unpaired = compute_metrics([RocAuc()], recs, pair_real_pool=False)
    assert unpaired["subsets"]["g1"]["auc"]["value"] is None and not unpaired["pairing"]


def test_verdict_metrics_count_unknowns_as_wrong():
    recs = [SampleRecord(sample_id=str(i), subset="s", split="t", label=l, mode="generate", text="x", verdict=v)
            for i, (l, v) in enumerate([(1, 1), (0, 1), (1, None), (0, 0)])]
    assert VerdictAccuracy().aggregate(recs).value == 0.5
    assert UnknownRate().aggregate(recs).value == 0.25
