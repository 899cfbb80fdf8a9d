"""Money (issue #25): every paid call asked once, kept, counted. A counting stand-in engine
(:class:`harness.testkit.standin_engine.StandinEngine`: ``received`` is every chat completion that reached it, answered
or not, i.e. what a paid API bills) proves, scenario by scenario, that ``usage`` equals the engine's own count
and that nothing answered is paid for twice: reruns after deterministic failures, malformed replies, client
timeouts, mixed faults, Ctrl-C, a changed endpoint list, a refused prefill, and any ``--bootstrap`` with an LLM
judge."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import fake_distribution
from toy_components import ToyLmmPlugin, ToyTask, write_toy_data

from harness import hookimpl
from harness.interfaces import Judge, MetricContext
from harness.metrics_runner import compute_metrics, make_metric_calls
from harness.plugin_manager import HarnessPlugins
from harness.plugins.judge_metrics import Completeness
from harness.records import GenerationParams, Request, Sample, SampleRecord
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig
from harness.testkit.standin_engine import ScriptedEngine, StandinEngine

TESTS = Path(__file__).resolve().parent
N = 20


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("HARNESS_API_KEY", "EMPTY")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("paid") / "data", n_good=N, bad=False)


def run(data: Path, out: Path, model_args: dict, tasks: str = "toy-task", plugin: Any = ToyLmmPlugin, **config):
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(plugin,))
    cfg = RunConfig(
        model="openai-api",
        # every anchor among the returned log-probabilities: a sample fails only by the fault a test injects
        model_args={"model": "standin", "timeout": 10, "score_method": "topk", "top_logprobs": 200, **model_args},
        tasks=tasks,
        data_root=str(data),
        output_dir=out,
        progress=False,
        bootstrap=config.pop("bootstrap", 0),
        audit=False,
        **config,
    )
    [outcome] = Evaluator(cfg, plugins).run()
    return outcome


def engine_with(**options: Any) -> StandinEngine:
    """A stand-in engine returning up to 200 log-probabilities (its whole vocabulary)."""
    return StandinEngine(max_logprobs=200, **options)


def results_of(outcome) -> dict:
    return json.loads(outcome.results_path.read_text())


def image_of(body: dict) -> str:
    return next(p["image_url"]["url"] for p in body["messages"][0]["content"] if p.get("type") == "image_url")


def unlucky(body: dict, every: int = 4) -> bool:
    """A fixed quarter of the images (by content), whatever the order requests arrive in."""
    return int(hashlib.sha256(image_of(body).encode()).hexdigest(), 16) % every == 0


def requests_billed(outcome) -> int:
    return results_of(outcome)["usage"]["this_run"]["requests"]


# -- deterministic failures --------------------------------------------------------------------------------


def test_an_answer_that_cannot_be_scored_is_paid_once_and_retry_failed_asks_again(data, tmp_path):
    with engine_with(fault=lambda n, body: "nologprobs" if unlucky(body) else None) as engine:
        args = {"base_url": engine.base_url}
        first = run(data, tmp_path / "out", args)
        failed = first.n_failed
        assert 0 < failed < N
        assert requests_billed(first) == engine.received == N
        errors = [r.error for r in read_samples(first.results_path) if r.error]
        assert all("returned no log-probabilities" in e for e in errors)

        again = run(data, tmp_path / "out", args)
        assert engine.received == N, "the rerun paid for nothing: the unusable answers were kept as failures"
        assert again.n_cached == N and again.n_failed == failed
        kept = [r for r in read_samples(again.results_path) if r.error]
        assert all(r.extra.get("failure_cached") for r in kept)

        retried = run(data, tmp_path / "out", args, retry_failed=True)
        assert engine.received == N + failed, "--retry-failed asked exactly the kept failures again"
        assert requests_billed(retried) == failed


# -- malformed replies, timeouts, mixed faults -----------------------------------------------------------


def test_malformed_replies_are_asked_again_within_the_run(data, tmp_path):
    seen: set[str] = set()
    lock = threading.Lock()

    def first_reply_broken(n, body):
        with lock:
            fresh = image_of(body) not in seen
            seen.add(image_of(body))
        if fresh and unlucky(body, 2):
            return "garbage" if unlucky(body, 4) else "nochoices"
        return None

    with engine_with(fault=first_reply_broken) as engine:
        outcome = run(data, tmp_path / "out", {"base_url": engine.base_url, "max_retries": 3})
    assert outcome.n_failed == 0, "every malformed reply was asked again in the same run"
    assert engine.received > N
    assert requests_billed(outcome) == engine.received


def test_a_client_timeout_shorter_than_the_engine_is_counted_attempt_by_attempt(data, tmp_path):
    with engine_with(latency=0.8) as engine:
        outcome = run(data, tmp_path / "out", {"base_url": engine.base_url, "timeout": 0.2, "concurrency": 4}, limit=4)
    assert outcome.status == "failed" and outcome.n_failed == 4
    usage = results_of(outcome)["usage"]
    assert usage is not None and usage["this_run"]["requests"] == engine.received == 8  # one retry each
    assert usage["this_run"]["failed_requests"] == 8
    [error] = {r.error for r in read_samples(outcome.results_path)}
    assert "timed out after 0.2 s (2 attempts" in error


def test_usage_equals_the_engines_count_under_mixed_faults(data, tmp_path):
    attempts: Counter[str] = Counter()
    lock = threading.Lock()

    def mixed(n, body):
        if unlucky(body, 5):
            return "nologprobs"  # deterministic
        with lock:
            attempts[json.dumps(body.get("messages"), sort_keys=True)] += 1
            attempt = attempts[json.dumps(body.get("messages"), sort_keys=True)]
        if attempt > 2:  # a request's third attempt is answered: within every retry budget, whatever the timing
            return None
        if n % 7 == 0:
            return 500
        if n % 11 == 0:
            return 429
        if n % 5 == 0:
            return "garbage"
        return None

    with engine_with(fault=mixed) as engine:
        outcome = run(data, tmp_path / "out", {"base_url": engine.base_url, "max_retries": 4})
        usage = results_of(outcome)["usage"]
        assert usage["this_run"]["requests"] == usage["all"]["requests"] == engine.received
        assert usage["by_source"]["evaluated_split"]["requests"] == engine.received
        before = engine.received
        run(data, tmp_path / "out", {"base_url": engine.base_url, "max_retries": 4})
        assert engine.received == before, "nothing answered, usable or not, was asked twice"


# -- errors say what the server said ---------------------------------------------------------------------


def test_errors_carry_the_status_the_true_attempts_and_the_servers_message(data, tmp_path):
    with engine_with(max_prompt_tokens=3) as engine:
        outcome = run(data, tmp_path / "a", {"base_url": engine.base_url}, limit=2)
    [error] = {r.error for r in read_samples(outcome.results_path)}
    assert "HTTP 400 (1 attempt): The prompt has" in error and "the model takes at most 3" in error

    with engine_with(fault=lambda n, body: (503, "engine overloaded, try later")) as engine:
        outcome = run(data, tmp_path / "b", {"base_url": engine.base_url, "max_retries": 2}, limit=2)
    [error] = {r.error for r in read_samples(outcome.results_path)}
    assert "HTTP 503 (3 attempts): engine overloaded, try later" in error
    assert engine.received == 6 == requests_billed(outcome)

    with engine_with(served_model_name="other") as engine:
        outcome = run(data, tmp_path / "c", {"base_url": engine.base_url}, limit=1)
    [error] = {r.error for r in read_samples(outcome.results_path)}
    assert "HTTP 404 (1 attempt): The model `standin` does not exist." in error


def test_a_server_refusing_allowed_token_ids_with_422_falls_back_labelled(data, tmp_path):
    def refuse(n, body):
        if "allowed_token_ids" in body:
            return 422, "Unexpected fields in the request: {'allowed_token_ids'}"
        return None

    with engine_with(fault=refuse, logprobs_mode="processed_logprobs") as engine:
        outcome = run(data, tmp_path / "out", {"base_url": engine.base_url, "score_method": "auto"}, limit=6)
    assert outcome.n_failed == 0
    notes = results_of(outcome)["model"]["run_notes"]
    assert "HTTP 422" in notes["why_not_exact"] and "allowed_token_ids" in notes["why_not_exact"]
    assert set(notes["score_methods"]) == {"topk"}


# -- the cache key -----------------------------------------------------------------------------------------


def test_the_endpoint_list_is_no_part_of_the_cache_key(data, tmp_path):
    engines = [engine_with().start() for _ in range(2)]
    try:
        run(data, tmp_path / "out", {"base_url": [e.base_url for e in engines]})
        assert sum(e.received for e in engines) == N
        again = run(data, tmp_path / "out", {"base_url": engines[1].base_url})
    finally:
        for engine in engines:
            engine.stop()
    assert again.n_cached == N and sum(e.received for e in engines) == N


# -- the prefill -------------------------------------------------------------------------------------------


def test_a_server_that_ignores_the_prefill_is_refused_before_any_score(data, tmp_path):
    with engine_with(ignore_prefill=True) as engine:
        outcome = run(data, tmp_path / "out", {"base_url": engine.base_url, "prefill": True}, limit=4)
    assert outcome.status == "failed"
    [error] = {r.error for r in read_samples(outcome.results_path)}
    assert "ignores continue_final_message" in error
    usage = results_of(outcome)["usage"]
    assert engine.received == 3 == usage["by_source"]["model:probe"]["requests"] == usage["this_run"]["requests"]


def test_a_server_that_continues_the_prefill_is_verified_and_its_probes_counted(data, tmp_path):
    with engine_with() as engine:
        outcome = run(data, tmp_path / "out", {"base_url": engine.base_url, "prefill": True}, limit=4)
    assert outcome.n_failed == 0
    results = results_of(outcome)
    assert results["model"]["run_notes"]["prefill_check"]["verified"] is True
    assert results["usage"]["this_run"]["requests"] == engine.received == 3 + 4


# -- Ctrl-C ------------------------------------------------------------------------------------------------


def _cli(data: Path, out: Path, base_url: str) -> list[str]:
    return [
        sys.executable, "-m", "harness.cli", "run", "--model", "openai-api",
        "--model-args", f"model=standin,base_url={base_url},concurrency=8,score_method=topk",
        "--tasks", "toy-task", "--data-root", str(data), "--output-dir", str(out), "--quiet",
    ]  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_keeps_every_answer_in_flight(tmp_path):
    data = write_toy_data(tmp_path / "data", n_good=32, bad=False)
    site = fake_distribution(tmp_path / "site", "harness-toy", "toy", "harness_toy_plugin",
                             "from toy_components import register_tasks  # noqa: F401\n")  # fmt: skip
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{TESTS}", HARNESS_API_KEY="EMPTY")
    env.pop("HARNESS_LOAD_PLUGINS", None)
    out = tmp_path / "out"
    with engine_with(latency=1.0) as engine:
        proc = subprocess.Popen(_cli(data, out, engine.base_url), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.time() + 60
        while engine.answered < 8 and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the next 8 are in flight now
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "requests in flight" in stderr
        with sqlite3.connect(out / ".cache" / "responses.sqlite") as db:
            committed = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert engine.in_flight == 0
        assert committed == engine.answered == engine.received < 32, "every request the engine took was kept"
        resumed = subprocess.run(_cli(data, out, engine.base_url), env=env, capture_output=True, text=True,
                                 timeout=120)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        assert engine.received == 32, "the rerun asked exactly what was never answered"


# -- the LLM judge and the bootstrap -----------------------------------------------------------------------


class ExplainTask(ToyTask):
    """The toy images with a question and a reference explanation, scored by the LLM judge."""

    name = "toy-explain"
    modes = ("generate",)
    default_metrics = ("judge_completeness", "judge_preciseness", "judge_relevance")

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        for sample in super().samples(split):
            sample.metadata["reference"] = f"reference for {sample.id}"
            yield sample

    def request(self, sample: Sample, mode: str) -> Request:
        return Request(sample, kind="generate", prompt="Why?", generation=GenerationParams(max_new_tokens=4))


class ExplainPlugin:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register("toy-explain", "test_paid_calls:ExplainTask")


@pytest.mark.parametrize("bootstrap", [0, 40])
def test_judge_calls_do_not_grow_with_the_bootstrap(data, tmp_path, monkeypatch, bootstrap):
    def fails(n):
        return 500 if n % 3 == 0 else None

    with engine_with() as engine, ScriptedEngine(default_reply="Score: 1", fault=fails) as judge:
        monkeypatch.setenv("HARNESS_JUDGE_MODEL", "judge")
        monkeypatch.setenv("HARNESS_JUDGE_BASE_URL", judge.base_url)
        monkeypatch.setenv("HARNESS_JUDGE_ARGS", "max_retries=0")
        outcome = run(data, tmp_path / "out", {"base_url": engine.base_url}, tasks="toy-explain",
                      plugin=ExplainPlugin, bootstrap=bootstrap)  # fmt: skip
        prompts = {json.dumps(r["messages"], sort_keys=True) for r in judge.requests}
        assert len(judge.requests) == len(prompts), "each distinct judge prompt was asked once"
        assert len(judge.requests) <= 3 * N
        usage = results_of(outcome)["usage"]["by_source"]
        judged = sum(v["requests"] for k, v in usage.items() if k.startswith("judge:"))
        assert judged == len(judge.requests)
        failures = results_of(outcome)["metrics"]["all"]["judge_completeness"]["data"]["judge_failures"]
        assert failures > 0, "some judge calls failed (not cached: a later run asks them again)"


class CountingJudge(Judge):
    """Scores 2 unless the prompt mentions 'bad'; counts calls; ``locked`` makes any further call an error."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.locked = False

    def complete(self, prompt: str, system: str | None = None) -> str:
        if self.locked:
            raise AssertionError("the judge was called while metrics were computed")
        self.calls += 1
        from harness.interfaces import JudgeError

        if "bad" in prompt:
            raise JudgeError("HTTP 500")
        return "Score: 2"


def test_metrics_and_the_bootstrap_never_call_the_judge(tmp_path):
    records = [
        SampleRecord(
            str(i),
            "s",
            "test",
            i % 2,
            "generate",
            text="bad answer" if i % 4 == 0 else f"answer {i}",
            prompt="Why?",
            metadata={"reference": f"ref {i}"},
        )  # fmt: skip
        for i in range(40)
    ]
    judge = CountingJudge()
    metric = Completeness(judge=judge)
    context = MetricContext(cache_dir=tmp_path)
    make_metric_calls([metric], records, context)
    assert judge.calls == 40
    judge.locked = True
    result = compute_metrics([metric], records, context=context, bootstrap=200, calls=False)
    value = result["all"]["judge_completeness"]
    assert value["value"] == 2.0 and value["n"] == 30 and value["ci"] == [2.0, 2.0]
    assert value["data"]["judge_failures"] == 10


class RefusingJudge(CountingJudge):
    """Refuses prompts mentioning 'long' as a server refuses an over-long prompt (HTTP 400: deterministic)."""

    def complete(self, prompt: str, system: str | None = None) -> str:
        from harness.interfaces import JudgeError

        self.calls += 1
        if "long" in prompt:
            error = JudgeError("judge endpoint answered HTTP 400 (1 attempt): prompt too long")
            error.deterministic = True
            raise error
        return "Score: 1"


def test_a_judge_refusal_is_kept_and_not_paid_again_unless_asked(tmp_path):
    def records():
        return [SampleRecord(str(i), "s", "test", 1, "generate", text="long answer" if i < 2 else f"answer {i}",
                             prompt="Why?", metadata={"reference": "ref"}) for i in range(5)]  # fmt: skip

    judge = RefusingJudge()
    first = records()
    make_metric_calls([Completeness(judge=judge)], first, MetricContext(cache_dir=tmp_path))
    assert judge.calls == 4  # two identical refused prompts are one call
    assert all("prompt too long" in r.extra["judge_errors"]["judge_completeness"] for r in first[:2])
    again = records()
    make_metric_calls([Completeness(judge=judge)], again, MetricContext(cache_dir=tmp_path))
    assert judge.calls == 4, "the refusal and the answers came from the judge cache"
    assert "prompt too long" in again[0].extra["judge_errors"]["judge_completeness"]
    make_metric_calls([Completeness(judge=judge)], records(), MetricContext(cache_dir=tmp_path, retry_failed=True))
    assert judge.calls == 5, "--retry-failed asked the kept refusal once more"
