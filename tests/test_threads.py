"""CPU thread counts (harness/threads.py): preparation workers and torch's intra-op threads share the cores."""

from __future__ import annotations

import json

import pytest
from toy_components import ToyPlugin, write_toy_data

from harness.plugin_manager import HarnessPlugins
from harness.runner import Evaluator, RunConfig
from harness.threads import apply_threads, plan_threads


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch):
    monkeypatch.delenv("HARNESS_TORCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


@pytest.mark.parametrize(
    ("device", "workers", "elsewhere", "expected"),
    [
        ("cuda:3", 8, False, 1),  # the GPU computes; the cores prepare, one thread per worker
        ("cpu", 1, False, 16),  # inline preparation: every core to the model
        ("cpu", 4, False, 16),  # the forward pass dominates (measured: 10.5 vs 6.5 img/s with one thread)
        ("auto", 4, False, 1),  # a worker-process model resolves its own device: this process only prepares
        ("cpu", 4, True, 1),  # a worker-process or API model: torch here only prepares
    ],
)
def test_the_policy(device, workers, elsewhere, expected):
    assert plan_threads(device, workers, elsewhere, cores=16).torch_threads == expected


def test_overrides(monkeypatch):
    monkeypatch.setenv("HARNESS_TORCH_THREADS", "3")
    assert plan_threads("cpu", 4, cores=16).torch_threads == 3
    assert plan_threads("cuda", 4, cores=16).torch_threads == 3
    monkeypatch.setenv("HARNESS_TORCH_THREADS", "keep")
    assert plan_threads("cpu", 4, cores=16).torch_threads is None
    monkeypatch.delenv("HARNESS_TORCH_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert plan_threads("cuda", 4, cores=16).torch_threads is None, "the user's OpenMP setting is kept"


def test_a_run_sets_and_records_the_thread_counts(tmp_path, monkeypatch):
    import torch

    before = torch.get_num_threads()
    data = write_toy_data(tmp_path / "data", n_good=8, bad=False)
    monkeypatch.setattr("harness.threads.available_cores", lambda: 6)
    config = RunConfig(
        model="mean-model", tasks="toy-task", data_root=str(data), output_dir=tmp_path / "out", progress=False,
        bootstrap=0, audit=False, num_workers=2, device="cpu",
    )  # fmt: skip
    try:
        [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False, extra_plugins=(ToyPlugin,))).run()
        assert torch.get_num_threads() == 6
    finally:
        apply_threads(plan_threads("cpu", 1, cores=before))
    recorded = json.loads(outcome.results_path.read_text())["provenance"]["threads"]
    assert recorded["torch_threads"] == 6 and recorded["workers"] == 2 and recorded["cores"] == 6


def test_models_say_where_they_compute():
    from harness.plugins.lmm import Owl2Adapter
    from harness.plugins.openai_api import OpenAIApiModel
    from harness.testkit.components import NoopModel

    assert NoopModel().computes_here()
    assert not OpenAIApiModel(model="m", base_url="http://127.0.0.1:9/v1").computes_here()
    assert not Owl2Adapter(path="/nowhere", python="/usr/bin/python3").computes_here()
