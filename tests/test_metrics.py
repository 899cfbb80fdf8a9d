"""Detection metrics: parity with scikit-learn, undefined cases, real-pool pairing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, balanced_accuracy_score, roc_auc_score

from harness.metrics_runner import compute_metrics
from harness.plugins.detection_metrics import (
    Accuracy,
    AveragePrecision,
    BalancedAccuracy,
    FakeAccuracy,
    RealAccuracy,
    RocAuc,
    UnknownRate,
    VerdictAccuracy,
)
from harness.records import SampleRecord


def records(labels, scores, subsets=None, errors=None):
    subsets = subsets or ["all"] * len(labels)
    errors = errors or [None] * len(labels)
    return [
        SampleRecord(sample_id=str(i), subset=s, split="test", label=lab, mode="score", score=sc, error=e)
        for i, (lab, sc, s, e) in enumerate(zip(labels, scores, subsets, errors, strict=False))
    ]


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
    recs = records(
        [0, 0, 1, 1, 1, 1],
        [0.1, 0.6, 0.9, 0.4, 0.8, 0.2],
        subsets=["real", "real", "g1", "g1", "g2", "g2"],
        errors=[None, None, None, None, None, "broken"],
    )
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
    recs = [
        SampleRecord(sample_id=str(i), subset="s", split="t", label=lab, mode="generate", text="x", verdict=v)
        for i, (lab, v) in enumerate([(1, 1), (0, 1), (1, None), (0, 0)])
    ]
    assert VerdictAccuracy().aggregate(recs).value == 0.5
    assert UnknownRate().aggregate(recs).value == 0.25


# -- issue 6: EER, validation threshold, curve, bootstrap, groups -------------------------------------

from harness.bootstrap import stratified_bootstrap_ci  # noqa: E402
from harness.interfaces import MetricContext  # noqa: E402
from harness.metrics_runner import bootstrap_interval  # noqa: E402
from harness.plugins.detection_metrics import (  # noqa: E402
    AccuracyCurve,
    EqualErrorRate,
    ValidationThresholdAccuracy,
    best_accuracy_threshold,
    fast_average_precision,
    fast_roc_auc,
)


def test_eer_hand_checked():
    # ROC points (fpr, fnr): (0,1) (0,.5) (.5,.5) (.5,0) (1,0): the curve meets fpr = fnr at 0.5
    assert EqualErrorRate().aggregate(records([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])).value == pytest.approx(0.5)
    # perfectly separated: EER 0; perfectly inverted: EER 1
    assert EqualErrorRate().aggregate(records([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])).value == 0.0
    assert EqualErrorRate().aggregate(records([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1])).value == 1.0
    # 3 reals, 3 fakes with one overlap each way: fpr = fnr = 1/3 at the crossing
    value = EqualErrorRate().aggregate(records([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.3, 0.8, 0.9])).value
    assert value == pytest.approx(1 / 3)


def test_balanced_accuracy_hand_checked():
    # reals: 2 of 4 right; fakes: 1 of 1 right -> (0.5 + 1) / 2 = 0.75 while plain accuracy is 0.6
    recs = records([0, 0, 0, 0, 1], [0.1, 0.2, 0.7, 0.8, 0.9])
    assert BalancedAccuracy().aggregate(recs).value == 0.75
    assert Accuracy().aggregate(recs).value == pytest.approx(0.6)


def test_threshold_is_chosen_on_validation_never_on_test():
    val = records([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])  # best threshold ~0.25 on validation
    test = records([0, 0, 1, 1], [0.5, 0.6, 0.7, 0.8])  # the test-optimal threshold would be 0.65
    value = ValidationThresholdAccuracy().aggregate(test, MetricContext(calibration=val))
    assert value.data["threshold"] == pytest.approx(0.25) and value.data["n_validation"] == 4
    assert value.value == 0.5  # not the oracle 1.0
    assert ValidationThresholdAccuracy().aggregate(test).value is None


def test_best_threshold_matches_exhaustive_search():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.6 + labels * 0.4, 2)
    threshold = best_accuracy_threshold(labels, scores)
    exhaustive = max(np.mean((scores > t).astype(int) == labels) for t in np.r_[-1, scores])
    assert np.mean((scores > threshold).astype(int) == labels) == pytest.approx(exhaustive)


def test_accuracy_curve_data():
    value = AccuracyCurve().aggregate(records([0, 1], [0.25, 0.75]))
    curve = value.data
    assert len(curve["threshold"]) == 101 and curve["threshold"][50] == 0.5
    assert curve["acc"][50] == 1.0 and curve["acc"][0] == 0.5 and curve["acc"][100] == 0.5
    assert curve["real_acc"][0] == 0.0 and curve["fake_acc"][100] == 0.0


def test_fast_bootstrap_paths_equal_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(4, 200))
        labels = np.r_[0, 1, rng.integers(0, 2, n)]
        scores = np.round(rng.random(labels.size), int(rng.integers(1, 4)))  # ties included
        assert fast_roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert fast_average_precision(labels, scores) == pytest.approx(
            average_precision_score(labels, scores), abs=1e-12
        )


def test_bootstrap_ci_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(1)

    def interval(n):
        labels = rng.integers(0, 2, n)
        scores = np.clip(labels * 0.25 + rng.random(n) * 0.75, 0, 1)
        recs = records(labels.tolist(), scores.tolist())
        point = RocAuc().aggregate(recs).value
        ci = bootstrap_interval(RocAuc(), recs, MetricContext(seed=0), 500)
        assert ci[0] <= point <= ci[1]
        return ci[1] - ci[0]

    assert interval(2000) < interval(100) / 2


def test_bootstrap_keeps_class_counts_fixed():
    labels = np.array([0] * 3 + [1] * 97)
    seen_counts = set()

    def statistic(indices):
        seen_counts.add(int((labels[indices] == 0).sum()))
        return 0.0

    stratified_bootstrap_ci(labels, statistic, n_resamples=50)
    assert seen_counts == {3}


def test_groups_average_generators_and_split_seen_unseen():
    recs = records([0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.9, 0.8, 0.1, 0.3], subsets=["real", "real", "g1", "g1", "g2", "g2"])
    result = compute_metrics([Accuracy(), RocAuc()], recs, seen=["g1"])
    groups = result["groups"]
    # a fake-only generator's accuracy is its fake recall (g2: 0 of 2), not a pooled accuracy with the reals
    assert groups["mean_over_generators"]["acc"]["value"] == pytest.approx((1.0 + 0.0) / 2)
    assert groups["mean_over_generators"]["acc"]["data"]["generators"] == ["g1", "g2"]
    assert groups["seen"]["acc"]["value"] == 1.0 and groups["unseen"]["acc"]["value"] == 0.0
    # AUC needs both classes: g2's fakes ranked against the shared real pool (0.1 ties a real, 0.3 beats both)
    assert result["subsets"]["g2"]["auc"]["value"] == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert groups["average"] == {"group": "mean_over_generators", "over": ["g1", "g2"]}
    assert "mean_over_subsets" not in groups  # the real subset is no generator: averages never mix it in
    assert groups["seen_generators"] == ["g1"]
    assert "seen" not in compute_metrics([Accuracy()], recs)["groups"]


def test_val_threshold_says_why_it_is_undefined():
    from harness.interfaces import MetricContext
    from harness.plugins.detection_metrics import ValidationThresholdAccuracy

    recs = records([0, 1], [0.2, 0.8])
    none = ValidationThresholdAccuracy().aggregate(recs, MetricContext(calibration=None))
    assert "has no validation split" in none.note
    failed = ValidationThresholdAccuracy().aggregate(recs, MetricContext(calibration=[]))
    assert "none of its samples has a usable score" in failed.note and "no validation split" not in failed.note
