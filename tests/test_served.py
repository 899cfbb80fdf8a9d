"""Served LMMs at full speed (issue #16): the streaming runner, several endpoints with failover, exact Eq. 2
through the server, and the engine launcher, against the stand-in engine (vLLM's HTTP surface on the CPU)."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fake_distribution
from toy_components import ToyLmmPlugin, write_toy_data

from harness.plugin_manager import HarnessPlugins
from harness.plugins.openai_api import OpenAIApiModel, split_urls
from harness.plugins.vllm_launcher import VllmLauncher, chat_template_path
from harness.records import Request, Sample
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig
from harness.testkit.standin_engine import TOKEN_ID, StandinEngine, logits_for

TESTS = Path(__file__).resolve().parent
FAKE, REAL = ("fake", "Fake", "FAKE"), ("real", "Real", "REAL")


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("HARNESS_API_KEY", "EMPTY")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("served") / "data", n_good=20, bad=False)


def run(data: Path, out: Path, model_args: dict, tasks: str = "toy-task", **config) -> list:
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(ToyLmmPlugin,))
    cfg = RunConfig(
        model="openai-api",
        model_args={"model": "standin", "timeout": 10, **model_args},
        tasks=tasks,
        data_root=str(data),
        output_dir=out,
        progress=False,
        bootstrap=0,
        audit=False,
        **config,
    )
    return Evaluator(cfg, plugins).run()


def eq2(messages) -> float:
    """The paper's Eq. 2 on the stand-in's known logits, written out: softmax over the classes' summed logits."""
    z = logits_for(messages)
    s_fake = sum(z[TOKEN_ID[v]] for v in FAKE)
    s_real = sum(z[TOKEN_ID[v]] for v in REAL)
    top = max(s_fake, s_real)
    return math.exp(s_fake - top) / (math.exp(s_fake - top) + math.exp(s_real - top))


# -- the streaming runner ------------------------------------------------------------------------------


def test_concurrency_is_kept_in_flight_across_batches_and_tasks(data, tmp_path):
    """16 in flight with --batch-size 4, and the second task's requests start while the first's are running."""
    with StandinEngine(latency=0.15, served_model_name="standin", logprobs_mode="processed_logprobs") as engine:
        outcomes = run(
            data,
            tmp_path / "out",
            {"base_url": engine.base_url, "concurrency": 16},
            tasks="toy-task,toy-questions",
            batch_size=4,
        )
    assert [o.status for o in outcomes] == ["done", "done"]
    assert [o.n_failed for o in outcomes] == [0, 0]
    assert engine.answered == 40
    assert engine.peak_in_flight == 16, "concurrency is capped by neither the batch size nor a batch barrier"
    first = [(start, end) for start, end, text in engine.timeline if "authenticity" in text]
    second = [(start, end) for start, end, text in engine.timeline if "yes or no" in text]
    assert len(first) == len(second) == 20
    assert min(s for s, _ in second) < max(e for _, e in first), "the tasks overlap: no barrier between them"


def test_a_streaming_run_matches_the_batched_path_and_resumes_from_the_cache(data, tmp_path):
    with StandinEngine(served_model_name="standin", logprobs_mode="processed_logprobs") as engine:
        args = {"base_url": engine.base_url, "concurrency": 8}
        [first] = run(data, tmp_path / "out", args)
        [again] = run(data, tmp_path / "out", args)
        adapter = OpenAIApiModel(model="standin", base_url=engine.base_url, concurrency=3)
        adapter.setup()
        requests = [
            Request(sample=Sample(id=f"img{i:03d}.png", image=str(data / f"img{i:03d}.png"), label=i % 2))
            for i in range(20)
        ]
        batched = adapter.score_batch([adapter.prepare(r) for r in requests])
    assert engine.answered == 40, "the rerun asked nothing: every answer was in the cache"
    assert again.n_cached == 20
    records = {r.sample_id: r for r in read_samples(first.results_path)}
    assert [records[f"img{i:03d}.png"].score for i in range(20)] == [p.score for p in batched]


def _cli(data: Path, out: Path, base_url: str) -> list[str]:
    return [
        sys.executable, "-m", "harness.cli", "run", "--model", "openai-api",
        "--model-args", f"model=standin,base_url={base_url},concurrency=4",
        "--tasks", "toy-task", "--data-root", str(data), "--batch-size", "32", "--output-dir", str(out), "--quiet",
    ]  # fmt: skip


@pytest.mark.slow
def test_kill_9_loses_at_most_the_requests_in_flight(tmp_path):
    """Each answer is committed as it arrives: with a batch size of 32 over 24 samples the batched path would
    have committed nothing before the kill."""
    data = write_toy_data(tmp_path / "data", n_good=24, bad=False)
    source = "from toy_components import register_tasks  # noqa: F401\n"
    site = fake_distribution(tmp_path / "site", "harness-toy", "toy", "harness_toy_plugin", source)
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{TESTS}", HARNESS_API_KEY="EMPTY")
    env.pop("HARNESS_LOAD_PLUGINS", None)
    out = tmp_path / "out"
    with StandinEngine(latency=0.2, served_model_name="standin", logprobs_mode="processed_logprobs") as engine:
        proc = subprocess.Popen(_cli(data, out, engine.base_url), env=env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.time() + 120
        while engine.answered < 10 and time.time() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        while engine.in_flight:  # what the server was answering when the client died still finishes there
            time.sleep(0.01)
        answered_at_kill = engine.answered
        with sqlite3.connect(out / ".cache" / "responses.sqlite") as db:
            committed = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert 10 <= answered_at_kill < 24, "killed mid-way"
        assert committed >= answered_at_kill - 4, "at most the 4 requests in flight are lost"
        resumed = subprocess.run(_cli(data, out, engine.base_url), env=env, capture_output=True, text=True,
                                 timeout=120)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        assert engine.answered - answered_at_kill == 24 - committed, "nothing committed was asked again"


# -- several endpoints ---------------------------------------------------------------------------------


def test_base_url_lists():
    assert split_urls("http://a/v1;http://b/v1 http://c/v1") == ["http://a/v1", "http://b/v1", "http://c/v1"]
    assert split_urls(["http://a/v1", "http://a/v1"]) == ["http://a/v1"]
    assert split_urls(None) == [None]


def test_requests_spread_over_endpoints_by_load(data, tmp_path):
    engines = [
        StandinEngine(latency=0.05, served_model_name="standin", logprobs_mode="processed_logprobs").start()
        for _ in range(4)
    ]
    try:
        [outcome] = run(data, tmp_path / "out", {"base_url": [e.base_url for e in engines], "concurrency": 8})
    finally:
        for engine in engines:
            engine.stop()
    assert outcome.status == "done" and outcome.n_failed == 0
    counts = [e.answered for e in engines]
    assert sum(counts) == 20 and min(counts) >= 3, counts
    results = json.loads(outcome.results_path.read_text())
    notes = results["model"]["run_notes"]
    assert [n["answered"] for n in notes["endpoints"]] == counts
    assert "base_url" not in results["model"]["fingerprint"], "which endpoints answered is no part of the key"
    assert {r.extra["endpoint"] for r in read_samples(outcome.results_path)} == {e.base_url for e in engines}


def test_an_endpoint_dying_mid_run_costs_no_sample(data, tmp_path):
    healthy = StandinEngine(latency=0.05, served_model_name="standin", logprobs_mode="processed_logprobs").start()
    dying = StandinEngine(latency=0.05, served_model_name="standin", logprobs_mode="processed_logprobs", die_after=3)
    dying.start()
    try:
        [outcome] = run(data, tmp_path / "out", {"base_url": f"{dying.base_url};{healthy.base_url}", "concurrency": 4})
    finally:
        healthy.stop()
        dying.stop()
    assert outcome.status == "done" and outcome.n_failed == 0
    assert dying.answered >= 3 and dying.answered + healthy.answered == 20  # (requests already inside finish)
    notes = json.loads(outcome.results_path.read_text())["model"]["run_notes"]
    assert dying.base_url in notes["failover"]
    [dead] = [n for n in notes["endpoints"] if n.get("dead")]
    assert dead["base_url"] == dying.base_url and dead["errors"]["connection"] >= 3


# -- Eq. 2 through the server --------------------------------------------------------------------------


def _scores_and_expected(outcome, data: Path, base_url: str):
    adapter = OpenAIApiModel(model="standin", base_url=base_url)
    records = read_samples(outcome.results_path)
    rows = []
    for record in records:
        url, _ = adapter.prepare(Request(sample=Sample(id=record.sample_id, image=str(data / record.sample_id),
                                                       label=record.label), kind="score"))  # fmt: skip
        rows.append((record, eq2(adapter._messages(url, "What is the authenticity of this image?"))))
    return rows


def test_eq2_is_exact_when_the_server_restricts_and_returns_processed_logprobs(data, tmp_path):
    with StandinEngine(served_model_name="standin", logprobs_mode="processed_logprobs") as engine:
        [outcome] = run(data, tmp_path / "out", {"base_url": engine.base_url})
        rows = _scores_and_expected(outcome, data, engine.base_url)
    assert outcome.n_failed == 0
    for record, expected in rows:
        assert record.extra["soft_score"]["method"] == "eq2" and record.extra["soft_score"]["exact"]
        assert record.score == pytest.approx(expected, abs=1e-12)
    assert len({round(r.score, 6) for r, _ in rows}) > 15, "scores vary"
    results = json.loads(outcome.results_path.read_text())
    assert results["model"]["run_notes"]["score_methods"] == {"eq2": 20}
    anchors = rows[0][0].extra["soft_score"]["anchors"]
    assert anchors["fake"]["ids"] == [TOKEN_ID[v] for v in FAKE]


def test_eq2_with_raw_logprobs_is_exact_only_where_every_anchor_came_back(data, tmp_path):
    """Raw log-probabilities are over the whole vocabulary: its top 100 of 126 holds every anchor only sometimes. Those
    samples are still exact (the normaliser cancels); the others are labelled and not Eq. 2."""
    with StandinEngine(served_model_name="standin", logprobs_mode="raw_logprobs", max_logprobs=100) as engine:
        [outcome] = run(data, tmp_path / "out", {"base_url": engine.base_url, "top_logprobs": 100})
        rows = _scores_and_expected(outcome, data, engine.base_url)
    methods = [r.extra["soft_score"]["method"] for r, _ in rows if r.error is None]
    assert "anchor-mass" in methods and "eq2" in methods
    for record, expected in rows:
        if record.error is not None:
            assert "no anchor token among the returned" in record.error
        elif record.extra["soft_score"]["exact"]:
            assert record.score == pytest.approx(expected, abs=1e-12)
        else:
            assert "not among the returned" in record.extra["soft_score"]["why"]


def test_eq2_falls_back_labelled_on_an_openai_style_endpoint(data, tmp_path):
    with StandinEngine(served_model_name="standin", strict_openai=True) as engine:
        [auto] = run(data, tmp_path / "auto", {"base_url": engine.base_url})
        [exact] = run(data, tmp_path / "exact", {"base_url": engine.base_url, "score_method": "exact"})
    records = read_samples(auto.results_path)
    assert auto.n_failed == sum(r.error is not None for r in records)
    assert all(r.extra["soft_score"]["method"] == "topk" for r in records if r.error is None)
    notes = json.loads(auto.results_path.read_text())["model"]["run_notes"]
    assert "/tokenize" in notes["why_not_exact"]
    assert exact.status == "failed" and "exact Eq. 2 needs" in exact.reason


# -- the launcher --------------------------------------------------------------------------------------


def standin_command() -> str:
    return f"{sys.executable} -m harness.testkit.standin_engine {{model}} --port {{port}} --served-model-name {{name}}"


@pytest.fixture()
def launched(monkeypatch) -> list[VllmLauncher]:
    """Every launcher whose engines a test's runs start."""
    started: list[VllmLauncher] = []
    original = VllmLauncher.start

    def start(self):
        started.append(self)
        original(self)

    monkeypatch.setattr(VllmLauncher, "start", start)
    return started


def test_launch_runs_on_n_engines_and_stops_them(data, tmp_path, launched):
    [outcome] = run(
        data,
        tmp_path / "out",
        {"model": "/models/fakescope-llava", "launch": 2, "launch_command": standin_command(),
         "launch_args": "--logprobs-mode processed_logprobs --startup-delay 0.3"},
    )  # fmt: skip
    assert outcome.status == "done" and outcome.n_failed == 0
    results = json.loads(outcome.results_path.read_text())
    notes = results["model"]["run_notes"]
    assert notes["launched"]["replicas"] == 2 and "--served-model-name fakescope-llava" in notes["launched"]["command"]
    assert sorted(n["answered"] > 0 for n in notes["endpoints"]) == [True, True]
    assert results["model"]["fingerprint"]["launched_from"] == "/models/fakescope-llava"
    assert notes["score_methods"] == {"eq2": 20}
    [again] = run(
        data,
        tmp_path / "out",
        {"model": "/models/fakescope-llava", "launch": 2, "launch_command": standin_command(),
         "launch_args": "--logprobs-mode processed_logprobs"},
    )  # fmt: skip
    assert again.n_cached == 20 and len(launched) == 1, "a rerun answered from the cache starts no engine"
    import urllib.request

    for endpoint in notes["endpoints"]:
        with pytest.raises(OSError):  # connection refused: the engines are gone
            urllib.request.urlopen(endpoint["base_url"].replace("/v1", "/health"), timeout=1)


def test_launch_stops_the_engines_on_interrupt(data, tmp_path, monkeypatch, launched):
    # interrupted once the engines are up and the first requests are about to go
    from harness.executors import StreamingExecutor

    monkeypatch.setattr(StreamingExecutor, "_start", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run(data, tmp_path / "out", {"model": "m", "launch": 2, "launch_command": standin_command()})
    [launcher] = launched
    assert len(launcher.processes) == 2
    assert all(p.poll() is not None for p in launcher.processes), "no engine outlives the run"


def test_launch_failure_names_the_log(tmp_path):
    from harness.interfaces import ModelLoadError

    launcher = VllmLauncher("m", 1, command=f"{sys.executable} -c \"print('CUDA out of memory'); raise SystemExit(3)\"")
    with pytest.raises(ModelLoadError, match="(?s)exited with code 3.*CUDA out of memory"):
        launcher.start()
    missing = VllmLauncher("m", 1, command="no-such-vllm-binary serve {model}")
    with pytest.raises(ModelLoadError, match="cannot start 'no-such-vllm-binary'"):
        missing.start()


def test_the_real_command_line(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    launcher = VllmLauncher("/models/fakescope llava", 2, chat_template="fakescope-llava",
                            extra_args="--tensor-parallel-size 1")  # fmt: skip
    argv = launcher.command_line(1)
    assert argv == [
        "vllm", "serve", "/models/fakescope llava", "--served-model-name", "fakescope llava",
        "--port", str(launcher.ports[1]), "--max-logprobs", "20", "--logprobs-mode", "processed_logprobs",
        "--chat-template", str(chat_template_path("fakescope-llava")), "--tensor-parallel-size", "1",
    ]  # fmt: skip
    assert launcher.gpu(1) == "5"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("fakescope-llava", "USER: <image> What is the authenticity of this image? ASSISTANT: This image is"),
        (
            "llava-1.5",
            "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
            "detailed, and polite answers to the human's questions. USER: <image>\n"
            "What is the authenticity of this image? ASSISTANT: This image is",
        ),
    ],
)
def test_shipped_chat_templates_render_the_scored_prompt(template, expected):
    """The prefilled score request (continue_final_message) renders as the checkpoint was trained."""
    import jinja2

    source = chat_template_path(template).read_text()
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}},
                                     {"type": "text", "text": "What is the authenticity of this image?"}]},
        {"role": "assistant", "content": "This image is"},
    ]  # fmt: skip
    rendered = jinja2.Environment().from_string(source).render(messages=messages, add_generation_prompt=False)
    assert rendered == expected
    asked = jinja2.Environment().from_string(source).render(messages=messages[:1], add_generation_prompt=True)
    assert asked == expected.removesuffix(" This image is")
