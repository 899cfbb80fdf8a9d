"""Metric values kept with the labels and scores they came from (issue #31, :mod:`harness.metric_memo`): a cached
rerun reads them instead of calling scikit-learn again, gives the same numbers, and anything that changes a value
(a score, the threshold taken from the validation split, the metric's code) computes it afresh."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from harness.cache import MemoTable, ResponseCache
from harness.interfaces import MetricContext
from harness.metric_memo import code_identity, memo_key
from harness.plugins.detection_metrics import AveragePrecision, RocAuc, ValidationThresholdAccuracy
from harness.records import SampleRecord


def records_of(labels, scores):
    return [SampleRecord(str(i), "s", "test", int(y), "score", score=float(s)) for i, (y, s) in
            enumerate(zip(labels, scores, strict=True))]  # fmt: skip


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1)
    return labels, scores


def test_a_value_is_kept_and_read_back_equal_to_sklearn(tmp_path, data, monkeypatch):
    labels, scores = data
    cache = ResponseCache(tmp_path / "responses.sqlite")
    context = MetricContext(values=cache.metric_values)
    records = records_of(labels, scores)
    first_auc, first_ap = RocAuc().aggregate(records, context), AveragePrecision().aggregate(records, context)
    assert first_auc.value == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert first_ap.value == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    cache.close()

    reopened = ResponseCache(tmp_path / "responses.sqlite")  # a later run: the memo was committed at close
    context = MetricContext(values=reopened.metric_values)
    for metric in (RocAuc, AveragePrecision):
        monkeypatch.setattr(metric, "from_arrays", lambda *a, **k: pytest.fail("computed again"))
    assert RocAuc().aggregate(records, context) == first_auc
    assert AveragePrecision().aggregate(records, context) == first_ap
    monkeypatch.undo()

    records[0].score = 1.0 - records[0].score  # another score: computed afresh, and right
    changed = RocAuc().aggregate(records, context)
    assert changed.value == pytest.approx(roc_auc_score(labels, [r.score for r in records]), abs=1e-12)
    assert changed.value != first_auc.value
    reopened.close()


def test_the_key_holds_the_threshold_and_the_code(tmp_path, data):
    labels, scores = data
    metric = ValidationThresholdAccuracy()
    calibration_a = records_of([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])
    calibration_b = records_of([0, 1, 0, 1], [0.3, 0.95, 0.6, 0.7])
    key_a = memo_key("value", metric, labels, scores, MetricContext(calibration=calibration_a))
    key_b = memo_key("value", metric, labels, scores, MetricContext(calibration=calibration_b))
    assert metric.threshold(MetricContext(calibration=calibration_a)) != metric.threshold(
        MetricContext(calibration=calibration_b)
    )
    assert key_a != key_b, "a threshold chosen on other validation records is another value"
    auc = RocAuc()
    assert memo_key("value", auc, labels, scores, None) != memo_key("interval", auc, labels, scores, None)

    # an edited metric module (another size or modification time) is other code: nothing older is read
    module = tmp_path / "my_metric.py"
    module.write_text("from harness.plugins.detection_metrics import RocAuc\nclass Mine(RocAuc):\n    pass\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("my_metric", module)
    loaded = importlib.util.module_from_spec(spec)
    import sys

    sys.modules["my_metric"] = loaded
    try:
        spec.loader.exec_module(loaded)
        before = code_identity(loaded.Mine)
        stat = module.stat()
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        code_identity.cache_clear()
        assert code_identity(loaded.Mine) != before
    finally:
        del sys.modules["my_metric"]
        code_identity.cache_clear()


def test_memo_tables_are_named(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with pytest.raises(ValueError, match="no memo table"):
        MemoTable(cache, "responses")
    cache.close()


def test_a_read_only_cache_reads_the_memo_and_keeps_nothing(tmp_path, monkeypatch):
    """A copy the user cannot write (opened read-only and immutable) serves the memo and keeps nothing new; one
    written before the memo tables existed reads as an empty memo. (Read-only by the cache's own test of the file,
    made to answer yes here: under root every file is writable.)"""
    import sqlite3

    import harness.cache as cache_module

    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path)
    cache.metric_values.put("k", [0.5, 10])
    cache.close()
    older = tmp_path / "older.sqlite"  # a cache from before the memo tables
    ResponseCache(older).close()
    db = sqlite3.connect(older)
    db.execute("DROP TABLE metric_values")
    db.commit()
    db.close()
    monkeypatch.setattr(cache_module, "_read_only", lambda _path: True)
    reader = ResponseCache(path)
    assert reader.read_only and reader.metric_values.get("k") == [0.5, 10]
    reader.metric_values.put("other", [1.0, 1])  # nothing, and no error
    assert reader.metric_values.get("other") is None
    reader.close()
    reader = ResponseCache(older)
    assert reader.read_only and reader.metric_values.get("k") is None
    reader.close()


def test_a_cached_rerun_computes_no_metric_again_and_reports_the_same(tmp_path, aigi_mini, monkeypatch):
    from harness.plugin_manager import HarnessPlugins
    from harness.runner import Evaluator, RunConfig

    def run():
        config = RunConfig(model="noop", tasks="aigi-mini", output_dir=tmp_path, progress=False, bootstrap=0,
                           audit=False)  # fmt: skip
        [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False)).run()
        assert outcome.status == "done", outcome.reason
        return outcome

    first = run()
    assert first.n_cached == 0
    for metric in (RocAuc, AveragePrecision):
        monkeypatch.setattr(metric, "from_arrays", lambda *a, **k: pytest.fail("a metric computed again"))
    second = run()
    assert second.n_cached == second.n_samples > 0
    assert second.metrics == first.metrics and first.metrics["auc"]["value"] is not None
