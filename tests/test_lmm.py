"""LMM adapters: Eq. 2 soft-scoring, anchor resolution, the LLaVA adapter in-process and as a worker."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import toy_components
from tiny_models import tiny_llava, word_tokenizer
from toy_components import write_toy_data

from harness.plugin_manager import HarnessPlugins
from harness.plugins.lmm.backends.soft_scoring import resolve_anchor, resolve_anchors, soft_scores
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig

TESTS = Path(__file__).resolve().parent


# -- Eq. 2 on hand-set logits -------------------------------------------------------------------
def test_eq2_sums_logits_within_a_class_then_softmaxes():
    logits = np.zeros((2, 10))
    logits[0, [1, 2]] = [2.0, 1.0]  # fake variants
    logits[0, [5, 6]] = [0.5, -1.0]  # real variants
    logits[1, [1, 2, 5, 6]] = [0.0, 0.0, 3.0, 3.0]
    p = soft_scores(logits, [1, 2], [5, 6], "eq2")
    expected0 = np.exp(3.0) / (np.exp(3.0) + np.exp(-0.5))
    expected1 = 1.0 / (1.0 + np.exp(6.0))
    assert p == pytest.approx([expected0, expected1])


def test_logsumexp_variant_sums_probabilities():
    logits = np.zeros((1, 10))
    logits[0, [1, 2, 5]] = [2.0, 1.0, 2.5]
    p = soft_scores(logits, [1, 2], [5], "logsumexp")[0]
    fake = np.log(np.exp(2.0) + np.exp(1.0))
    assert p == pytest.approx(np.exp(fake) / (np.exp(fake) + np.exp(2.5)))
    with pytest.raises(ValueError, match="method must be one of"):
        soft_scores(logits, [1], [5], "max")


@pytest.fixture(scope="module")
def tokenizer():
    return word_tokenizer(
        [
            "USER : <image> What is the authenticity of this image ? ASSISTANT : This image is",
            "fake Fake real Real AI - generated authentic",
        ]
    )


def test_case_variants_missing_and_multi_token_words(tokenizer):
    prompt = "USER: <image> What is the authenticity of this image? ASSISTANT: This image is"
    fake = resolve_anchor(tokenizer, prompt, ["fake", "Fake", "FAKE", "AI-generated"])
    assert fake.tokens == ["fake", "Fake"]
    assert fake.skipped["FAKE"] == "unknown to the tokenizer"
    assert fake.skipped["AI-generated"] == "3 tokens (multi_token=skip)"
    first = resolve_anchor(tokenizer, prompt, ["fake", "AI-generated"], multi_token="first")
    assert first.tokens == ["fake", "AI"]
    dup = resolve_anchor(tokenizer, prompt, ["fake", "fake"])
    assert dup.skipped == {"fake": "same token as another variant"}
    with pytest.raises(ValueError, match="no scorable variant for anchor 'real'"):
        resolve_anchors(tokenizer, prompt, ["fake"], ["REAL", "GENUINE"])


# -- the adapter on a tiny random LLaVA ---------------------------------------------------------
@pytest.fixture(scope="module")
def llava_path(tmp_path_factory) -> Path:
    return tiny_llava(tmp_path_factory.mktemp("tiny-llava") / "model")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_toy_data(tmp_path_factory.mktemp("toy") / "data", n_good=10, bad=False)


def run(model: str, args: dict, data: Path, out: Path, tasks="toy-task", batch_size=4, **kwargs):
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyLmmPlugin,))
    config = RunConfig(
        model=model,
        model_args=args,
        tasks=tasks,
        data_root=str(data),
        output_dir=out,
        batch_size=batch_size,
        progress=False,
        bootstrap=0,
        audit=False,
        device="cpu",
        **kwargs,
    )
    [outcome] = Evaluator(config, plugins).run()
    assert outcome.status == "done", outcome.reason
    return outcome


def test_llava_adapter_scores_batched_equal_single(llava_path, data, tmp_path):
    batched = run("fakescope-llava", {"path": str(llava_path)}, data, tmp_path / "a", batch_size=4)
    single = run("fakescope-llava", {"path": str(llava_path)}, data, tmp_path / "b", batch_size=1)
    scores_b = [r.score for r in read_samples(batched.results_path)]
    scores_s = [r.score for r in read_samples(single.results_path)]
    assert len(scores_b) == 10 and all(0 < s < 1 for s in scores_b)
    np.testing.assert_allclose(scores_b, scores_s, atol=1e-5)
    results = json.loads(batched.results_path.read_text())
    anchors = results["model"]["preprocessing"]["anchors"]
    assert anchors["fake"]["tokens"] == ["fake", "Fake"] and "FAKE" in anchors["fake"]["skipped"]
    assert results["model"]["preprocessing"]["preprocessing"]["pad_to_square"] is True
    assert results["model"]["fingerprint"]["weights_sha256"]


def test_logsumexp_option_changes_scores_and_fingerprint(llava_path, data, tmp_path):
    eq2 = run("fakescope-llava", {"path": str(llava_path)}, data, tmp_path)
    lse = run("fakescope-llava", {"path": str(llava_path), "method": "logsumexp"}, data, tmp_path)
    assert eq2.results_path != lse.results_path
    assert [r.score for r in read_samples(eq2.results_path)] != [r.score for r in read_samples(lse.results_path)]


def test_generate_mode_records_text_and_verdicts(llava_path, data, tmp_path):
    outcome = run(
        "fakescope-llava", {"path": str(llava_path), "max_new_tokens": 6}, data, tmp_path, tasks="toy-questions"
    )
    records = read_samples(outcome.results_path)
    assert all(r.mode == "generate" and isinstance(r.text, str) for r in records)
    assert all(r.prompt == "Is this a real image, yes or no?" for r in records)
    results = json.loads(outcome.results_path.read_text())
    unknown = results["metrics"]["all"]["unknown_rate"]["value"]
    assert unknown == pytest.approx(np.mean([r.verdict is None for r in records]))


def test_missing_path_and_unknown_args_are_clear_errors():
    from harness.plugins.lmm import LlavaAdapter

    with pytest.raises(ValueError, match="needs --model-args checkpoint=DIR"):
        LlavaAdapter()
    with pytest.raises(ValueError, match=r"unknown model arguments \['temprature'\]"):
        LlavaAdapter(path="x", temprature=0)


# -- isolated worker ----------------------------------------------------------------------------
@pytest.mark.slow
def test_worker_gives_the_same_scores_as_in_process(llava_path, data, tmp_path):
    local = run("fakescope-llava", {"path": str(llava_path)}, data, tmp_path / "local")
    worker = run("fakescope-llava", {"path": str(llava_path), "python": sys.executable}, data, tmp_path / "worker")
    np.testing.assert_allclose(
        [r.score for r in read_samples(worker.results_path)],
        [r.score for r in read_samples(local.results_path)],
        atol=1e-6,
    )
    info = json.loads(worker.results_path.read_text())["model"]["preprocessing"]
    assert info["isolated_worker"] is True and info["worker_python"]


@pytest.mark.slow
def test_worker_crash_mid_batch_is_reported_restarted_and_loses_nothing(llava_path, data, tmp_path, monkeypatch):
    from harness.plugins.lmm import LlavaAdapter

    crash_data = tmp_path / "data"
    shutil.copytree(data, crash_data)
    shutil.copy(crash_data / "img003.png", crash_data / "crash.png")
    with open(crash_data / "labels.txt", "a") as handle:
        handle.write("crash.png 1 gen\n")
    monkeypatch.setattr(LlavaAdapter, "backend_spec", "crashy_backend:CrashyBackend")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), str(Path(__file__).parent.parent / "plugins" / "lmm" / "backends")])
    )
    outcome = run(
        "fakescope-llava",
        {"path": str(llava_path), "python": sys.executable},
        crash_data,
        tmp_path / "out",
        batch_size=4,
    )
    records = {r.sample_id: r for r in read_samples(outcome.results_path)}
    assert outcome.n_failed == 1
    assert "exited with code 3" in records["crash.png"].error
    assert all(r.score is not None for k, r in records.items() if k != "crash.png")
    # a rerun recomputes only the crashed sample
    again = run("fakescope-llava", {"path": str(llava_path), "python": sys.executable}, crash_data, tmp_path / "out")
    assert again.n_cached == 10 and again.n_failed == 1


def test_worker_stderr_log_is_closed_and_removed(tmp_path, monkeypatch):
    """The worker's stderr goes to a temporary log (its tail explains crashes); closing the client removes it."""
    from harness.plugins.lmm.worker_client import WorkerClient

    (tmp_path / "quiet_backend.py").write_text(
        "import sys\nclass Quiet:\n    def __init__(self, **args):\n        print('loading', file=sys.stderr)\n"
        "    def score(self, sources):\n        return [0.25 for _ in sources]\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    client = WorkerClient(sys.executable, "quiet_backend:Quiet", {"path": "x"})
    client.start()
    log = Path(client._stderr_path)
    assert log.exists()
    assert client.request("score", [{"image": "a"}]) == [{"score": 0.25}]
    client.close()
    assert not log.exists() and client._stderr_handle is None
