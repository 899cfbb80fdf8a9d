"""The runner: records, caching, bad input isolation, strict mode, results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import toy_components
from toy_components import write_toy_data

from harness.plugin_manager import HarnessPlugins
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig

BAD_FILES = {
    "truncated.jpg": "corrupt or truncated",
    "zero.png": "empty file (0 bytes)",
    "corrupt.png": "not a readable image",
    "notes.jpg": "not a readable image",
    "folder.png": "cannot read file",
    "missing.png": "cannot read file",
}


@pytest.fixture()
def toy_plugins() -> HarnessPlugins:
    return HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components,))


def evaluate(toy_plugins, data: Path, out: Path, **kwargs):
    config = RunConfig(
        model="mean-model",
        tasks="toy-task",
        data_root=str(data),
        output_dir=out,
        batch_size=kwargs.pop("batch_size", 5),
        progress=False,
        **kwargs,
    )
    evaluator = Evaluator(config, toy_plugins, command=["pytest"])
    [outcome] = evaluator.run()
    return outcome


def test_bad_files_fail_per_sample_with_file_and_reason(toy_plugins, tmp_path):
    data = write_toy_data(tmp_path / "data")
    outcome = evaluate(toy_plugins, data, tmp_path / "out")
    assert outcome.status == "done" and outcome.n_samples == 30 and outcome.n_failed == 6
    records = {r.sample_id: r for r in read_samples(outcome.results_path)}
    for name, reason in BAD_FILES.items():
        error = records[name].error
        assert error and name in error and reason in error, (name, error)
    good = [r for r in records.values() if r.error is None]
    assert len(good) == 24 and all(0.0 <= r.score <= 1.0 for r in good)
    results = json.loads(outcome.results_path.read_text())
    assert results["counts"]["n_failed"] == 6 and len(results["failures"]) == 6
    assert results["metrics"]["all"]["acc"]["n"] == 24  # metrics only over scored samples


def test_rerun_is_served_from_cache_with_identical_records(toy_plugins, tmp_path):
    data = write_toy_data(tmp_path / "data", bad=False)
    log = tmp_path / "computed.log"
    first = evaluate(toy_plugins, data, tmp_path / "out", model_args={"log": str(log)})
    first_records = [r.to_json() for r in read_samples(first.results_path)]
    assert len(log.read_text().split()) == 24
    second = evaluate(toy_plugins, data, tmp_path / "out", model_args={"log": str(log)})
    assert second.n_cached == 24 and len(log.read_text().split()) == 24  # nothing recomputed
    second_records = [r.to_json() for r in read_samples(second.results_path)]
    for a, b in zip(first_records, second_records, strict=False):
        a.pop("cached"), b.pop("cached")
        assert a == b
    assert first.metrics == second.metrics


def test_changed_image_is_recomputed(toy_plugins, tmp_path):
    data = write_toy_data(tmp_path / "data", n_good=4, bad=False)
    log = tmp_path / "computed.log"
    evaluate(toy_plugins, data, tmp_path / "out", model_args={"log": str(log)})
    (data / "img001.png").write_bytes((data / "img000.png").read_bytes())
    evaluate(toy_plugins, data, tmp_path / "out", model_args={"log": str(log)})
    assert log.read_text().split() == ["img000.png", "img001.png", "img002.png", "img003.png", "img001.png"]


def test_a_same_size_same_time_rewrite_needs_rehash(toy_plugins, tmp_path):
    """The trade-off of the hash memo, pinned: a rewrite that keeps size and mtime reuses old answers, unless
    --rehash reads the files again."""
    import os

    from PIL import Image

    data = write_toy_data(tmp_path / "data", n_good=4, bad=False)
    target = data / "flat.bmp"  # uncompressed: another colour has exactly the same size
    Image.new("RGB", (16, 16), (20, 20, 20)).save(target)
    with open(data / "labels.txt", "a") as handle:
        handle.write("flat.bmp 1 gen\n")
    log = tmp_path / "computed.log"
    evaluate(toy_plugins, data, tmp_path / "out", model_args={"log": str(log)})
    stat = target.stat()
    Image.new("RGB", (16, 16), (230, 230, 230)).save(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size
    evaluate(toy_plugins, data, tmp_path / "out", model_args={"log": str(log)})
    assert len(log.read_text().split()) == 5  # trusted the memo: nothing recomputed
    outcome = evaluate(toy_plugins, data, tmp_path / "out", model_args={"log": str(log)}, rehash=True)
    assert log.read_text().split()[5:] == ["flat.bmp"]  # read again: the changed file is answered anew
    flat = next(r for r in read_samples(outcome.results_path) if r.sample_id == "flat.bmp")
    assert flat.score == pytest.approx(230 / 255)


def test_no_cache_recomputes(toy_plugins, tmp_path):
    data = write_toy_data(tmp_path / "data", n_good=4, bad=False)
    log = tmp_path / "computed.log"
    for _ in range(2):
        evaluate(toy_plugins, data, tmp_path / "out", model_args={"log": str(log)}, use_cache=False)
    assert len(log.read_text().split()) == 8


def test_batch_failure_is_isolated_to_the_guilty_sample(toy_plugins, tmp_path):
    data = write_toy_data(tmp_path / "data", n_good=10, bad=False)
    outcome = evaluate(toy_plugins, data, tmp_path / "out", model_args={"explode_on": "img004.png"})
    records = {r.sample_id: r for r in read_samples(outcome.results_path)}
    assert outcome.n_failed == 1
    assert "model cannot handle img004.png" in records["img004.png"].error
    assert all(r.score is not None for k, r in records.items() if k != "img004.png")


def test_limit_and_results_provenance(toy_plugins, tmp_path):
    data = write_toy_data(tmp_path / "data", bad=False)
    outcome = evaluate(toy_plugins, data, tmp_path / "out", limit=7, seed=3)
    results = json.loads(outcome.results_path.read_text())
    assert results["counts"] == {
        "n_samples": 7,
        "n_scored": 7,
        "n_failed": 0,
        "n_cached": 0,
        "n_available": 24,
        "limit": 7,
        "n_calibration": None,
    }
    prov = results["provenance"]
    assert prov["seed"] == 3 and prov["command"] == ["pytest"] and prov["config"]["limit"] == 7
    assert "numpy" in prov["packages"] and "harness.plugins.builtin_models" in prov["plugins"]
    assert results["task"]["version"] == "1" and results["task"]["fingerprint_hash"]
    assert outcome.results_path.parent.parent.name.startswith("mean-model-")


def test_missing_data_skips_with_reason(toy_plugins, tmp_path):
    outcome = evaluate(toy_plugins, tmp_path / "nowhere", tmp_path / "out")
    assert outcome.status == "skipped" and "no labels.txt" in outcome.reason


def test_next_batch_is_prepared_while_the_model_runs(toy_plugins, tmp_path):
    """Decoding overlaps the model (issue #9): the probe's first call blocks until batch 2 is preparing."""
    data = write_toy_data(tmp_path / "data", n_good=12, bad=False)
    config = RunConfig(
        model="overlap-probe",
        tasks="toy-task",
        data_root=str(data),
        output_dir=tmp_path / "out",
        batch_size=4,
        num_workers=2,
        progress=False,
        bootstrap=0,
        audit=False,
    )
    toy_components.OverlapProbe.ran_serially = False
    [outcome] = Evaluator(config, toy_plugins).run()
    assert outcome.status == "done" and outcome.n_samples == 12
    assert not toy_components.OverlapProbe.ran_serially and outcome.n_failed == 0


def test_costliest_requests_run_first_and_records_keep_task_order(toy_plugins, tmp_path):
    data = write_toy_data(tmp_path / "data", n_good=9, bad=False)
    log = tmp_path / "calls.log"
    config = RunConfig(
        model="costly-mean-model",
        model_args={"log": str(log)},
        tasks="toy-task",
        data_root=str(data),
        output_dir=tmp_path / "out",
        batch_size=4,
        progress=False,
        bootstrap=0,
        audit=False,
    )
    [outcome] = Evaluator(config, toy_plugins).run()
    assert log.read_text().split() == [f"img{i:03d}.png" for i in range(8, -1, -1)]
    assert [r.sample_id for r in read_samples(outcome.results_path)] == [f"img{i:03d}.png" for i in range(9)]


def test_limit_takes_a_seeded_label_stratified_subset_in_task_order():
    from harness.records import Sample
    from harness.runner import limited

    samples = [Sample(id=f"r{i}", image="x", label=0) for i in range(90)] + [
        Sample(id=f"f{i}", image="x", label=1) for i in range(30)
    ]
    picked = limited(samples, 8, seed=0)
    assert len(picked) == 8 and sum(s.label for s in picked) == 2  # the task's 3:1 share, not 8 reals
    assert [s.id for s in picked] == [s.id for s in samples if s in picked]  # task order kept
    assert picked == limited(samples, 8, seed=0) and picked != limited(samples, 8, seed=1)
    assert {s.label for s in limited(samples, 2, seed=3)} == {0, 1}  # every class present while N allows
    assert limited(samples, None) == samples and limited(samples, 500) == samples


def test_limit_bounds_the_calibration_split_too(tmp_path, capsys):
    """With a validation split scored for acc_val_threshold, --limit N sends at most N + N samples to the model."""
    from benchmark_replicas import folder_tree

    root = folder_tree(
        tmp_path / "WildRF", {"val/0_real": 15, "val/1_fake": 15, "test/reddit/0_real": 20, "test/reddit/1_fake": 6}
    )
    log = tmp_path / "computed.txt"
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyPlugin,))
    config = RunConfig(
        model="mean-model",
        model_args={"log": str(log)},
        tasks="wildrf",
        data_root=str(root),
        output_dir=tmp_path / "out",
        limit=6,
        bootstrap=0,
        audit=False,
        progress=True,
    )
    [outcome] = Evaluator(config, plugins).run()
    assert outcome.status == "done" and outcome.n_samples == 6
    assert len(log.read_text().split()) == 12  # 6 test + 6 validation, not 6 + 30
    results = json.loads(outcome.results_path.read_text())
    assert results["counts"]["n_calibration"] == 6
    plan = capsys.readouterr().err
    assert "wildrf: 6 of 26 test samples (--limit 6: label-stratified, seed 0)" in plan
    assert "6 of 30 val samples (--limit 6: label-stratified, seed 0) to choose the threshold" in plan


def test_reporting_calls_neither_the_model_nor_a_judge(aigi_mini, tmp_path, monkeypatch):
    """Plan, execute, report (issue #27): once a task is reported, every call has been made; a model or judge
    called from the report stage fails the run here."""
    import harness.runner as runner
    from harness.interfaces import Judge

    real_report = runner.report_task

    def forbidden(*args, **kwargs):
        raise AssertionError("called during reporting")

    def guarded_report(answered, model, *args, **kwargs):
        for name in ("prepare", "score_batch", "generate_batch", "answer_one", "setup"):
            monkeypatch.setattr(model.adapter, name, forbidden)
        monkeypatch.setattr(Judge, "complete", forbidden)
        return real_report(answered, model, *args, **kwargs)

    monkeypatch.setattr(runner, "report_task", guarded_report)
    config = RunConfig(model="noop", tasks="aigi-mini", limit=40, output_dir=tmp_path, progress=False, bootstrap=50)
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False)).run()
    assert outcome.status == "done" and outcome.metrics["auc"]["ci"] is not None


def test_the_base_answer_method_checks_what_an_adapter_returns():
    """Issue #27 item 3: the harness asks every batched model through ModelAdapter.answer, which checks the
    adapter's outputs: one per input, each a Prediction, a text or a P(fake) in [0, 1]; anything else is that
    sample's error, a kind the model does not serve is refused."""
    from harness.interfaces import ModelAdapter
    from harness.records import Prediction

    class Loose(ModelAdapter):
        request_kinds = frozenset({"score"})

        def score_batch(self, inputs):
            return [0.25, 1.5, float("nan"), None, Prediction(score=0.5, extra={"k": 1}), "text"]

    [ok, high, nan, none, kept, text] = Loose().answer(list(range(6)), "score")
    assert ok.score == 0.25 and kept.extra == {"k": 1} and text.text == "text"
    assert "invalid P(fake) 1.5" in high.error and "invalid P(fake) nan" in nan.error
    assert "NoneType None, not a P(fake)" in none.error
    with pytest.raises(RuntimeError, match="6 outputs for 2 inputs"):
        Loose().answer([1, 2], "score")
    with pytest.raises(ValueError, match="serves \\['score'\\], not 'generate'"):
        Loose().answer([1], "generate")
