"""The collector at a run's pace (issue #31): thresholds raised while a run builds its records, restored after,
cycles still collected."""

from __future__ import annotations

import gc

from harness.gc_policy import RUN_THRESHOLDS, fewer_collections
from harness.records import SampleRecord


def test_thresholds_are_raised_for_the_block_and_restored():
    before = gc.get_threshold()
    with fewer_collections():
        during = gc.get_threshold()
        garbage = []
        garbage.append(garbage)  # a reference cycle
        del garbage
        assert gc.collect() >= 1, "cycles are still collected"
    assert all(d >= r for d, r in zip(during, RUN_THRESHOLDS, strict=True))
    assert gc.get_threshold() == before
    gc.set_threshold(100_000, 50, 500)
    try:
        with fewer_collections():
            assert gc.get_threshold() == (100_000, 50, 500), "a higher setting of the process is kept"
    finally:
        gc.set_threshold(*before)


def test_a_run_builds_its_records_under_the_policy(tmp_path, aigi_mini, monkeypatch):
    from harness.plugin_manager import HarnessPlugins
    from harness.runner import Evaluator, RunConfig
    from harness.testkit.components import NoopModel

    seen = []
    original = NoopModel.score_batch

    def score_batch(self, inputs):
        seen.append(gc.get_threshold())
        return original(self, inputs)

    monkeypatch.setattr(NoopModel, "score_batch", score_batch)
    config = RunConfig(model="noop", tasks="aigi-mini", output_dir=tmp_path, progress=False, bootstrap=0,
                       audit=False, limit=8)  # fmt: skip
    before = gc.get_threshold()
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False)).run()
    assert outcome.status == "done" and seen and all(t[0] >= RUN_THRESHOLDS[0] for t in seen)
    assert gc.get_threshold() == before


def test_a_record_is_encoded_from_its_fields_alone():
    record = SampleRecord(sample_id="a", subset="s", split="test", label=1, mode="score", score=0.5)
    assert record.fields_view() == record.to_json() and list(record.fields_view()) == list(record.to_json())
    record.scratch = "not a field"  # type: ignore[attr-defined]
    assert "scratch" not in record.fields_view() and record.fields_view() == record.to_json()
