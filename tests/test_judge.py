"""LLM-as-judge: score parsing, and the judge against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.interfaces import MetricContext
from harness.metrics_runner import compute_metrics, make_metric_calls
from harness.plugins.judge_metrics import Completeness, Relevance, parse_judge_score
from harness.plugins.judges import OpenAICompatibleJudge
from harness.records import SampleRecord
from harness.testkit.standin_engine import ScriptedEngine

SECRET = "sk-test-SECRET-never-written-4242"


@pytest.mark.parametrize(
    "reply,expected",
    [
        ("Score: 2", 2.0),
        ("score：1", 1.0),
        ("**Score:** 1", 1.0),
        ("Score: 0.", 0.0),
        ("Score:2\nBecause...", 2.0),
        ("The score is 1", 1.0),
        ("1/2", 1.0),
        ("I'd give it 2 out of 2.", 2.0),
        ("2", 2.0),
        ("  0  ", 0.0),
        ("Rating 1.5 for partial coverage", 1.5),
        ("Score: 3", None),
        ("Score: 7/10", None),
        ("I cannot judge this.", None),
        ("", None),
        ("between 1 and 2", None),
    ],
)
def test_judge_score_parsing_on_messy_replies(reply, expected):
    assert parse_judge_score(reply) == expected


def judged(metric, recs, context):
    """The judge's calls (the runner's execute stage), then the metric over what they gave (no calls)."""
    make_metric_calls([metric], recs, context)
    return metric.aggregate(recs, context)


def records(candidates):
    return [
        SampleRecord(
            sample_id=str(i),
            subset="s",
            split="test",
            label=1,
            mode="generate",
            text=c,
            prompt="Why is this image fake?",
            metadata={"reference": "fused fingers; garbled text"},
        )
        for i, c in enumerate(candidates)
    ]


@pytest.fixture()
def judge_env(monkeypatch):
    monkeypatch.setenv("HARNESS_JUDGE_API_KEY", SECRET)


def make_judge(server, **kwargs):
    return OpenAICompatibleJudge(
        model="judge-model",
        base_url=server.base_url,
        timeout=kwargs.pop("timeout", 5),
        max_retries=kwargs.pop("max_retries", 2),
        **kwargs,
    )


def test_judge_against_a_real_server(judge_env, tmp_path: Path):
    candidates = [
        "REPLY=Score: 2|",
        "REPLY=**Score:** 1|",
        "RATE429 REPLY=Score: 0|",
        "ALWAYS500",
        "GARBAGE",
        "REPLY=no idea|",
        "SLOW",
    ]
    with ScriptedEngine(slow_seconds=2.0) as server:
        metric = Completeness(judge=make_judge(server, timeout=0.5, max_retries=1), concurrency=3)
        recs = records(candidates)
        context = MetricContext(cache_dir=tmp_path)
        value = judged(metric, recs, context)
        assert [r.metrics.get("judge_completeness") for r in recs] == [2.0, 1.0, 0.0, None, None, None, None]
        assert value.value == pytest.approx(1.0) and value.n == 3
        assert value.data["judge_failures"] == 4 and "4 judge failures left out (not scored 0)" in value.note
        errors = {r.text: r.extra["judge_errors"]["judge_completeness"] for r in recs if r.extra.get("judge_errors")}
        assert "HTTP 500" in errors["ALWAYS500"]
        assert "timed out" in errors["SLOW"]
        assert "malformed judge response" in errors["GARBAGE"]
        assert "unparseable judge reply" in errors["REPLY=no idea|"]
        assert server.seen["RATE429"] == 2  # 429, then the client's retry succeeded
        assert server.seen["ALWAYS500"] == 2  # one try + one retry
        assert all(req["temperature"] == 0 for req in server.requests)
        assert all(h == f"Bearer {SECRET}" for h in server.auth_headers)
        first_round = len(server.requests)

        # a rerun pays nothing for what succeeded: only the failures are asked again
        again = records(candidates)
        judged(Completeness(judge=make_judge(server, timeout=0.5, max_retries=0), concurrency=3), again, context)
        assert [r.metrics.get("judge_completeness") for r in again][:3] == [2.0, 1.0, 0.0]
        asked_again = [r["messages"][-1]["content"] for r in server.requests[first_round:]]
        assert not any("REPLY=Score: 2|" in a or "RATE429" in a for a in asked_again)

    # the key is nowhere on disk, nor in any error message
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()
    assert all(SECRET not in e for e in errors.values())
    assert SECRET not in json.dumps(make_judge_fingerprint())


def test_identical_prompts_in_one_run_are_asked_once(judge_env, tmp_path: Path):
    """Two samples with the same answer, question and reference are one judge call, in one run, cache cold."""
    with ScriptedEngine() as server:
        recs = records(["REPLY=Score: 2|", "REPLY=Score: 2|", "REPLY=Score: 1|", "REPLY=Score: 2|"])
        judged(Completeness(judge=make_judge(server), concurrency=4), recs, MetricContext(cache_dir=tmp_path))
        assert [r.metrics.get("judge_completeness") for r in recs] == [2.0, 2.0, 1.0, 2.0]
        assert len(server.requests) == 2


def make_judge_fingerprint():
    judge = OpenAICompatibleJudge(model="m", base_url="http://127.0.0.1:9/v1")
    return judge.fingerprint()


def test_judge_concurrency_is_bounded(judge_env, tmp_path: Path):
    with ScriptedEngine(slow_seconds=0.3) as server:
        recs = records([f"SLOW {i}" for i in range(6)])
        import time

        start = time.perf_counter()
        judged(Relevance(judge=make_judge(server), concurrency=2), recs, MetricContext(cache_dir=tmp_path))
        elapsed = time.perf_counter() - start
        assert elapsed >= 0.85  # 6 calls of 0.3 s, at most 2 at a time -> >= 0.9 s
        assert all(r.metrics.get("judge_relevance") == 2.0 for r in recs)


def test_judge_needs_explicit_configuration(monkeypatch):
    for var in (
        "HARNESS_JUDGE_API_KEY",
        "OPENAI_API_KEY",
        "HARNESS_JUDGE_BASE_URL",
        "OPENAI_BASE_URL",
        "HARNESS_JUDGE_MODEL",
    ):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="needs a model"):
        OpenAICompatibleJudge()
    with pytest.raises(ValueError, match="HARNESS_JUDGE_API_KEY"):
        OpenAICompatibleJudge(model="gpt-4o")


def test_judge_metrics_in_compute_metrics_use_the_run_cache(judge_env, tmp_path: Path):
    with ScriptedEngine(default_reply="Score: 1") as server:
        result = compute_metrics(
            [Completeness(judge=make_judge(server))], records(["a", "b"]), context=MetricContext(cache_dir=tmp_path)
        )
    assert result["all"]["judge_completeness"]["value"] == 1.0
    assert (tmp_path / "judge.sqlite").exists()


def test_local_transformers_judge_runs_and_counts_unparseable_replies(tmp_path: Path):
    """A tiny random causal LM as judge: it answers (nonsense), so every sample is a counted failure."""
    from tiny_models import tiny_causal_lm

    from harness.plugins.judges import TransformersJudge

    judge = TransformersJudge(path=str(tiny_causal_lm(tmp_path / "lm")), max_new_tokens=4)
    recs = records(["some answer", "another answer"])
    value = judged(Completeness(judge=judge), recs, MetricContext(cache_dir=tmp_path))
    replies = [judge.complete("Score :")]
    assert isinstance(replies[0], str)
    assert value.data["judge_failures"] + value.n == 2


def test_local_judge_answers_many_prompts_by_continuous_batching_as_one_by_one(tmp_path: Path):
    """Issue #28 item 2: transformers' continuous batching where it wins (a local judge asked many text prompts):
    every reply equals ``complete``'s for that prompt alone, in the callers' order, duplicates included, ``chunk``
    prompts per ``generate_batch`` call; ``auto`` keeps one-by-one generation on the CPU."""
    from tiny_models import tiny_causal_lm

    from harness.plugins.judges import TransformersJudge

    path = str(tiny_causal_lm(tmp_path / "lm"))
    assert TransformersJudge(path=path).batching == "none", "auto on the CPU"
    with pytest.raises(ValueError, match="batching="):
        TransformersJudge(path=path, batching="paged")
    judge = TransformersJudge(path=path, max_new_tokens=6, batching="continuous", paged_blocks=32, chunk=3)
    calls = []
    original = judge.model.generate_batch
    judge.model.generate_batch = lambda ids, **kw: calls.append(len(ids)) or original(ids, **kw)
    prompts = ["Score : the answer is fine", "Score :", "a b c d e", "Score :", "real fake image", "x", "the answer"]
    got = dict(judge.complete_many(prompts, system="You grade answers ."))
    assert calls == [3, 3, 1] and sorted(got) == list(range(len(prompts)))
    alone = [judge.complete(prompt, system="You grade answers .") for prompt in prompts]
    assert [got[i] for i in range(len(prompts))] == alone and len(set(alone)) > 2


def test_a_request_the_batch_failed_is_that_prompts_judge_error(tmp_path: Path):
    from types import SimpleNamespace

    from tiny_models import tiny_causal_lm

    from harness.interfaces import JudgeError
    from harness.plugins.judges import TransformersJudge

    judge = TransformersJudge(path=str(tiny_causal_lm(tmp_path / "lm")), batching="continuous", paged_blocks=32)

    def generate_batch(ids, **_):
        return {
            "req_1": SimpleNamespace(prompt_ids=ids[1], generated_tokens=[], error="out of blocks"),
            "req_0": SimpleNamespace(prompt_ids=ids[0], generated_tokens=ids[0], error=None),
        }

    judge.model.generate_batch = generate_batch
    got = dict(judge.complete_many(["Score :", "a b c", "missing"]))
    assert isinstance(got[0], str) and got[0] == judge.tokenizer.decode(judge.tokenizer("Score :")["input_ids"],
                                                                         skip_special_tokens=True)  # fmt: skip
    assert isinstance(got[1], JudgeError) and "out of blocks" in str(got[1])
    assert isinstance(got[2], JudgeError) and "no output" in str(got[2])


def test_replies_are_kept_as_they_come_so_an_interrupted_judging_asks_only_the_rest(tmp_path: Path):
    from harness.interfaces import Judge

    asked: list[str] = []

    class Grader(Judge):
        interrupt_after: int | None = 2

        def complete(self, prompt, system=None):
            asked.append(prompt)
            return "Score: 2"

        def complete_many(self, prompts, system=None, concurrency=1):
            for position, reply in super().complete_many(prompts, system, concurrency):
                if position == self.interrupt_after:
                    raise KeyboardInterrupt
                yield position, reply

    with pytest.raises(KeyboardInterrupt):
        judged(
            Completeness(judge=Grader()), records(["one", "two", "three", "four"]), MetricContext(cache_dir=tmp_path)
        )
    first = list(asked)
    asked.clear()
    judge = Grader()
    judge.interrupt_after = None
    value = judged(
        Completeness(judge=judge), records(["one", "two", "three", "four"]), MetricContext(cache_dir=tmp_path)
    )
    assert len(first) >= 3 and len(asked) == 2, "the two replies handed back were kept; the rest asked again"
    assert sorted(p.rsplit("[MLLM DESC]: ", 1)[1].strip() for p in asked) == ["four", "three"]
    assert value.value == 2.0 and value.n == 4
