"""The openai-api adapter against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import toy_components
from toy_components import write_toy_data

from harness.plugin_manager import HarnessPlugins
from harness.plugins.openai_api import OpenAIApiModel, anchor_probability
from harness.records import GenerationParams, Request, Sample
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig
from harness.testkit.standin_engine import ScriptedEngine

SECRET = "sk-api-SECRET-must-not-leak-9876"


@pytest.fixture()
def api_env(monkeypatch):
    monkeypatch.setenv("HARNESS_API_KEY", SECRET)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("api") / "data", n_good=6, bad=False)


def model(server, **kwargs):
    adapter = OpenAIApiModel(
        model="gpt-test",
        base_url=server.base_url,
        timeout=kwargs.pop("timeout", 5),
        max_retries=kwargs.pop("max_retries", 2),
        concurrency=4,
        **kwargs,
    )
    adapter.setup()
    return adapter


def ask(adapter, data: Path, prompts):
    requests = [
        Request(
            sample=Sample(id=f"s{i}", image=str(data / "img000.png"), label=1),
            kind="generate",
            prompt=p,
            generation=GenerationParams(max_new_tokens=16),
        )
        for i, p in enumerate(prompts)
    ]
    return adapter.generate_batch([adapter.prepare(r) for r in requests])


def test_generate_retries_and_per_request_failures(api_env, data):
    with ScriptedEngine(default_reply="This image is fake.", slow_seconds=2.0) as server:
        adapter = model(server, timeout=0.5, max_retries=1)
        answers = ask(adapter, data, ["RATE429 Is this real?", "ALWAYS500", "SLOW", "GARBAGE", "REPLY=Real.|"])
        assert answers[0].text == "This image is fake." and answers[0].extra["usage"]["prompt_tokens"] == 10
        assert "HTTP 500" in answers[1].error
        assert "timed out" in answers[2].error
        assert "malformed API response" in answers[3].error
        assert answers[4].text == "Real."
        assert server.seen["RATE429"] == 2  # 429, then success on the retry
        sent = server.requests[0]
        assert sent["temperature"] == 0 and sent["max_tokens"] == 16
        parts = sent["messages"][0]["content"]
        assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert all(h == f"Bearer {SECRET}" for h in server.auth_headers)


def test_a_reply_without_choices_is_that_items_error_and_nothing_is_asked_twice(api_env, data):
    with ScriptedEngine(default_reply="This image is fake.") as server:
        adapter = model(server, max_retries=0)
        answers = ask(adapter, data, ["NOCHOICES", "REPLY=Real.|", "REPLY=Fake.|"])
        assert "malformed API response" in answers[0].error and "no choices" in answers[0].error
        assert [a.text for a in answers[1:]] == ["Real.", "Fake."]
        assert len(server.requests) == 3  # one request per item: the answered ones are not asked again


def test_soft_scores_from_logprobs_present_and_absent(api_env, data):
    top = [("▁fake", math.log(0.6)), (" Real", math.log(0.2)), ("real", math.log(0.1)), ("maybe", math.log(0.05))]
    with ScriptedEngine(top_logprobs=top) as server:
        adapter = model(server)
        request = Request(sample=Sample(id="a", image=str(data / "img001.png"), label=1))
        [prediction] = adapter.score_batch([adapter.prepare(request)])
        assert prediction.score == pytest.approx(0.6 / 0.9)
        assert server.requests[-1]["logprobs"] is True and server.requests[-1]["top_logprobs"] == 20
        assert server.requests[-1]["max_tokens"] == 1
    with ScriptedEngine(top_logprobs=None) as server:
        adapter = model(server)
        [prediction] = adapter.score_batch([adapter.prepare(request)])
        assert prediction.score is None and "no log-probabilities" in prediction.error
    with ScriptedEngine(top_logprobs=[("maybe", -0.1), ("perhaps", -2.0)]) as server:
        adapter = model(server)
        [prediction] = adapter.score_batch([adapter.prepare(request)])
        assert "no anchor variant" in prediction.error


def test_prefill_continues_the_papers_prompt(api_env, data):
    with ScriptedEngine(top_logprobs=[("fake", -0.5), ("real", -1.5)]) as server:
        adapter = model(server, prefill=True)
        adapter.score_batch([adapter.prepare(Request(sample=Sample(id="a", image=str(data / "img001.png"), label=1)))])
        sent = server.requests[-1]
        assert sent["messages"][-1] == {"role": "assistant", "content": "This image is"}
        assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False


def test_anchor_probability_one_class_missing():
    score, detail = anchor_probability([("fake", -0.1), ("other", -3.0)], ["fake"], ["real"])
    assert score == 1.0 and "counted as 0" in detail["note"]


def test_run_records_usage_cost_and_never_the_key(api_env, data, tmp_path):
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyLmmPlugin,))
    with ScriptedEngine(default_reply="No, it is AI-generated.") as server:
        config = RunConfig(
            model="openai-api",
            model_args={"model": "gpt-test", "base_url": server.base_url, "price_in": 2.5, "price_out": 10.0},
            tasks="toy-questions",
            data_root=str(data),
            output_dir=tmp_path,
            progress=False,
            bootstrap=0,
        )
        [outcome] = Evaluator(config, plugins).run()
        n_requests = len(server.requests)
        # a rerun pays nothing twice
        [again] = Evaluator(config, plugins).run()
        assert len(server.requests) == n_requests and again.n_cached == 6
    results = json.loads(outcome.results_path.read_text())
    usage = results["usage"]["all"]
    assert usage["requests"] == 6 and usage["prompt_tokens"] == 60 and usage["completion_tokens"] == 12
    assert usage["cost_usd"] == pytest.approx((60 * 2.5 + 12 * 10.0) / 1e6)
    assert results["metrics"]["all"]["qual_acc"]["value"] == 0.5  # "No" to "Is this real?" -> fake, half are fake
    assert all(r.verdict == 1 for r in read_samples(outcome.results_path))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_missing_configuration_is_a_clear_error(monkeypatch):
    for var in ("HARNESS_API_KEY", "OPENAI_API_KEY", "HARNESS_API_BASE_URL", "OPENAI_BASE_URL", "HARNESS_API_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="model=NAME"):
        OpenAIApiModel()
    with pytest.raises(ValueError, match="HARNESS_API_KEY"):
        OpenAIApiModel(model="gpt-4o").setup()


def test_judge_fallback_resolves_only_unknown_verdicts(api_env, data, tmp_path, monkeypatch):
    """Answers the rules cannot read go to the judge; parsed ones never do."""
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyLmmPlugin,))
    monkeypatch.setenv("HARNESS_JUDGE_API_KEY", "judge-key")
    with (
        ScriptedEngine(default_reply="The picture shows an astronaut.") as model_server,
        ScriptedEngine(default_reply="Fake.") as judge_server,
    ):
        monkeypatch.setenv("HARNESS_JUDGE_ARGS", f"model=judge,base_url={judge_server.base_url}")
        config = RunConfig(
            model="openai-api",
            model_args={"model": "m", "base_url": model_server.base_url},
            tasks="toy-questions",
            data_root=str(data),
            output_dir=tmp_path,
            progress=False,
            bootstrap=0,
            verdict_judge="openai",
        )
        [outcome] = Evaluator(config, plugins).run()
        assert len(judge_server.requests) == 1  # six identical (question, answer) pairs: asked once
        assert "The picture shows an astronaut." in judge_server.requests[0]["messages"][-1]["content"]
    records = read_samples(outcome.results_path)
    assert all(r.verdict == 1 and r.extra["verdict_source"] == "judge" for r in records)


def test_usage_counts_every_request_of_the_run_calibration_and_judge_included(api_env, data, tmp_path, monkeypatch):
    from benchmark_replicas import folder_tree

    root = folder_tree(
        tmp_path / "WildRF", {"val/0_real": 5, "val/1_fake": 5, "test/reddit/0_real": 3, "test/reddit/1_fake": 3}
    )
    plugins = HarnessPlugins(load_entrypoints=False)
    with ScriptedEngine(top_logprobs=[("fake", -0.2), ("real", -1.8)]) as server:
        config = RunConfig(
            model="openai-api",
            model_args={"model": "m", "base_url": server.base_url, "price_in": 1.0, "price_out": 1.0},
            tasks="wildrf",
            data_root=str(root),
            output_dir=tmp_path / "out",
            progress=False,
            bootstrap=0,
            audit=False,
        )
        [outcome] = Evaluator(config, plugins).run()
        usage = json.loads(outcome.results_path.read_text())["usage"]
        assert usage["this_run"]["requests"] == len(server.requests) == 16  # 6 test + 10 validation
        assert usage["by_source"]["calibration_split"]["requests"] == 10
        assert usage["this_run"]["cost_usd"] == pytest.approx(16 * 12 / 1e6)

    toy = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyLmmPlugin,))
    monkeypatch.setenv("HARNESS_JUDGE_API_KEY", "judge-key")
    with ScriptedEngine(default_reply="An astronaut.") as model_server, ScriptedEngine(default_reply="Fake.") as judge:
        monkeypatch.setenv("HARNESS_JUDGE_ARGS", f"model=judge,base_url={judge.base_url}")
        config = RunConfig(
            model="openai-api",
            model_args={"model": "m", "base_url": model_server.base_url},
            tasks="toy-questions",
            data_root=str(data),
            output_dir=tmp_path / "judged",
            progress=False,
            bootstrap=0,
            verdict_judge="openai",
            audit=False,
        )
        [outcome] = Evaluator(config, toy).run()
        usage = json.loads(outcome.results_path.read_text())["usage"]
        assert usage["by_source"]["judge:verdict_fallback"]["requests"] == len(judge.requests) == 1
        assert usage["this_run"]["requests"] == len(model_server.requests) + len(judge.requests)


def test_under_injected_faults_no_successful_answer_is_asked_twice_in_a_run_or_across_resumes(api_env, tmp_path):
    """A server failing a third of the calls (500, 429, garbage, empty choices): each run answers what it can,
    every failure is that sample's error, and no answer the server gave successfully is ever requested again."""
    import random

    data = write_toy_data(tmp_path / "data", n_good=24, bad=False)
    rng = random.Random(0)
    faults = [500, 429, "garbage", "nochoices"]

    def fault(_n: int):
        return rng.choice(faults) if rng.random() < 1 / 3 else None

    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyLmmPlugin,))
    with ScriptedEngine(default_reply="No, it is AI-generated.", fault=fault) as server:
        config = RunConfig(
            model="openai-api",
            model_args={"model": "m", "base_url": server.base_url, "max_retries": 0, "concurrency": 4},
            tasks="toy-questions",
            data_root=str(data),
            output_dir=tmp_path / "out",
            progress=False,
            bootstrap=0,
            audit=False,
            batch_size=8,
        )
        failed = []
        for _ in range(12):  # the first run, then resumes until every sample is answered
            [outcome] = Evaluator(config, plugins).run()
            failed.append(outcome.n_failed)
            if not outcome.n_failed:
                break
        assert failed[0] > 0 and failed[-1] == 0 and failed == sorted(failed, reverse=True)
        assert len(server.answered_by_messages) == 24 and max(server.answered_by_messages.values()) == 1


def test_the_plan_is_printed_before_the_first_call_with_an_estimate(api_env, data, tmp_path, capsys):
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyLmmPlugin,))
    with ScriptedEngine(default_reply="Fake.") as server:
        config = RunConfig(
            model="openai-api",
            model_args={"model": "m", "base_url": server.base_url, "price_in": 2.0, "price_out": 8.0},
            tasks="toy-questions",
            data_root=str(data),
            output_dir=tmp_path,
            progress=True,
            bootstrap=0,
            audit=False,
            limit=4,
        )
        Evaluator(config, plugins).run()
        plan = capsys.readouterr().err
        assert "toy-questions: 4 of 6 test samples (--limit 4: label-stratified, seed 0)" in plan
        assert "4 to answer now, 0 from the cache; about 3," in plan and "at most 32 completion tokens" in plan
        assert "at most about $0.01 (estimate)" in plan and len(server.requests) == 4
