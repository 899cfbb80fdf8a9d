"""The benchmark scripts run (tiny sizes; the numbers themselves live in benchmarks/results/)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


@pytest.mark.slow
def test_runner_throughput_script_runs(tmp_path: Path):
    out = tmp_path / "runner.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "runner_throughput.py"),
            "--sizes",
            "300",
            "--rounds",
            "1",
            "--bootstrap-n",
            "300",
            "--output",
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    [row] = data["rows"]
    assert row["n"] == 300 and all(v > 0 for v in row["seconds"].values())
    assert data["cached_rerun_with_bootstrap_1000"]["seconds"] > 0


@pytest.mark.slow
def test_detector_throughput_script_runs_tiny(tmp_path: Path):
    out = tmp_path / "detectors.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "detector_throughput.py"),
            "--tiny",
            "--repeats",
            "1",
            "--batch-size",
            "4",
            "--e2e",
            "8",
            "--workers",
            "2",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 9 and all(r["images_per_s"] > 0 for r in rows)
    e2e = rows[6:]
    assert [r["stage"].split("decode=")[1].split(",")[0] for r in e2e] == ["pil", "torchvision", "auto"]
    assert [r["decoder_used"] for r in e2e] == ["pil", "torchvision", "pil"], "auto on the CPU: PIL"
    assert e2e[0]["max_abs_score_diff_vs_pil"] == 0.0 and e2e[2]["max_abs_score_diff_vs_pil"] == 0.0
    assert e2e[1]["max_abs_score_diff_vs_pil"] < 1e-5, "the CPU decoders give PIL's pixels"


@pytest.mark.slow
def test_lmm_throughput_script_runs_tiny(tmp_path: Path):
    """Every mode runs on the CPU at the tiny shape: ceiling, forward, end to end through the runner, generation,
    continuous batching."""
    out = tmp_path / "lmm.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "lmm_throughput.py"),
            "--shape",
            "tiny",
            "--device",
            "cpu",
            "--e2e-images",
            "8",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    modes = [r["mode"] for r in data["rows"]]
    assert modes == [
        "score",
        "score",
        "score-e2e",
        "generate",
        "generate",
        "generate static-cache",
        "generate static-cache",
        "score-e2e preprocess=device",
        "generate-padded-text",
        "generate-batch-text (continuous)",
    ]
    continuous = data["rows"][-1]
    assert continuous["status"] == "ok" and continuous["tokens_generated"] == 4 * 8  # 4 requests x 8 new tokens
    assert data["ceiling_images_per_s"] > 0 and data["tokens_per_image"] > 50
    assert all(r.get("images_per_s", r.get("answers_per_s", 0)) > 0 for r in data["rows"])
    assert data["rows"][2]["images"] == 8 and 0 < data["rows"][0]["ratio_to_ceiling"] < 1
    device = data["rows"][7]
    assert device["images"] == 8 and device["max_abs_score_diff_vs_cpu_path"] < 1e-5
    assert "x ceiling" in result.stdout


@pytest.mark.slow
def test_api_throughput_script_runs_against_a_local_server(tmp_path: Path):
    """The vLLM route's benchmark, against the test suite's OpenAI-compatible server on 127.0.0.1."""
    from harness.testkit.standin_engine import ScriptedEngine

    out = tmp_path / "api.json"
    with ScriptedEngine(default_reply="This image is fake: the hands are malformed.") as server:
        result = subprocess.run(
            [
                sys.executable,
                str(REPO / "benchmarks" / "api_throughput.py"),
                "--base-url",
                server.base_url,
                "--model",
                "fakescope-llava",
                "--images",
                "6",
                "--concurrency",
                "3",
                "--question",
                "Explain this image.",
                "--output",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        asked = [m for body in server.requests for m in body["messages"]]
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["run"] for r in rows] == ["warm-up", "main"] and rows[1]["images"] == 6 and rows[1]["failed"] == 0
    assert rows[1]["answers_per_s"] > 0 and rows[1]["completion_tokens"] > 0
    assert len(server.requests) == 9 and "Explain this image." in json.dumps(asked)


def test_card_names_are_the_model_not_the_memory_type():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_data import card_name

    assert card_name("NVIDIA H100 80GB HBM3") == "h100"
    assert card_name("NVIDIA A100-SXM4-80GB") == "a100"
    assert card_name("NVIDIA H200") == "h200"
    assert card_name("NVIDIA GeForce RTX 4090") == "4090"


@pytest.mark.slow
def test_gpu_session_rehearses_on_the_cpu(tmp_path: Path):
    """benchmarks/gpu_session.sh end to end at tiny shapes: every step finishes, writes its JSON and log, and the
    compiled scoring runs in a process of its own (the compiled model is never the one that generates)."""
    import os

    out = tmp_path / "session"
    env = dict(os.environ, GPU_SESSION_REHEARSAL="1", OUT=str(out), PYTHON=sys.executable)
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_session.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (out / "summary.txt").read_text().splitlines()
    assert [line.split()[:2] for line in summary[1:]] == [
        ["lmm", "rc=0"],
        ["lmm-static", "rc=0"],
        ["lmm-compiled", "rc=0"],
        ["detectors", "rc=0"],
        ["agreement", "rc=0"],
    ], summary
    lmm = json.loads((out / "lmm-cpu-rehearsal.json").read_text())
    assert [r["mode"] for r in lmm["rows"]][:3] == ["score", "score", "score-e2e"]
    assert "score-e2e preprocess=device" in [r["mode"] for r in lmm["rows"]]
    compiled = json.loads((out / "lmm-compiled-cpu-rehearsal.json").read_text())
    assert [r["mode"] for r in compiled["rows"]] == ["score-e2e compiled"] and compiled["rows"][0]["images_per_s"] > 0
    assert json.loads((out / "detectors-cpu-rehearsal.json").read_text())["rows"]
    static = json.loads((out / "lmm-static-cpu-rehearsal.json").read_text())
    assert [r["mode"] for r in static["rows"]] == ["generate static-cache"]
    agreement = json.loads((out / "agreement-cpu-rehearsal.json").read_text())
    assert [r["model"] for r in agreement["rows"]] == ["fakescope-llava", "fakescope-llava", "cnnspot"]
    assert agreement["rows"][0]["max_abs_diff"] == 0.0 and all(r["passed"] for r in agreement["rows"])
    steps = ("lmm", "lmm-static", "lmm-compiled", "detectors", "agreement")
    assert all((out / f"{step}.log").stat().st_size > 0 for step in steps)


def test_gpu_session_keeps_going_past_a_failing_step(tmp_path: Path):
    """A step that fails is recorded and the next steps still run (no set -e with a pipe losing the rest)."""
    import os

    out = tmp_path / "session"
    env = dict(os.environ, GPU_SESSION_REHEARSAL="1", OUT=str(out), PYTHON="false")
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_session.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    summary = (out / "summary.txt").read_text()
    steps = ("lmm", "lmm-static", "lmm-compiled", "detectors", "agreement")
    assert all(f"{step} rc=1" in summary for step in steps), summary
    assert "all output in" in result.stdout


@pytest.mark.slow
def test_api_throughput_compares_the_harness_with_a_plain_pool_on_standin_engines(tmp_path: Path):
    """The comparison rows of issue #16 at a tiny size: both clients, every concurrency, the endpoint scaling."""
    out = tmp_path / "api.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "api_throughput.py"), "--standin", "--images", "24",
         "--concurrencies", "4,16", "--latency", "0.05", "--capacity", "8", "--endpoints", "2",
         "--endpoint-capacity", "2", "--scaling-concurrency", "8", "--max-tokens", "4", "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [(r["concurrency"], r["endpoints"]) for r in rows] == [(4, 1), (16, 1), (8, 1), (8, 2)]
    assert all(r["failed"] == 0 and r["harness_per_s"] > 0 for r in rows)
    assert rows[0]["ideal_per_s"] == 80 and rows[1]["ideal_per_s"] == 160  # min(concurrency, capacity) / latency
    assert rows[0]["plain_pool_per_s"] > 0 and data["endpoint_speedup"] > 1


@pytest.mark.slow
def test_cpu_threads_script_runs_tiny(tmp_path: Path):
    out = tmp_path / "threads.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cpu_threads.py"), "--tiny", "--images", "8", "--prepare-n", "10",
         "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["measure"] for r in rows] == ["prepare (PIL image)", "end to end, resnet18"]
    assert rows[1]["torch_threads"].startswith("auto") and all(r["images_per_s"] > 0 for r in rows)


def test_the_continuous_batching_row_counts_only_answers_with_tokens(capsys):
    """A failed generation thread (as on the H200: every request errored, no tokens) is a failed row, not a rate:
    only answers that carry tokens and no error count."""
    import importlib
    from types import SimpleNamespace

    sys.path.insert(0, str(REPO / "benchmarks"))
    bench = importlib.import_module("lmm_throughput")
    ok = SimpleNamespace(generated_tokens=[5, 6, 7], error=None)
    broken = SimpleNamespace(generated_tokens=[], error="Inplace update to inference tensor outside InferenceMode")
    good = bench.continuous_row({"a": ok, "b": ok}, 2, 1.0)
    assert good["status"] == "ok" and good["answers_per_s"] == 2.0 and good["tokens_generated"] == 6
    bad = bench.continuous_row({"a": broken, "b": broken, "c": ok}, 4, 1.0)
    assert bad["status"] == "failed" and bad["answers_per_s"] == 1.0 and bad["failed_requests"] == 3
    assert "Inplace update" in bad["first_error"] and "FAILED" in capsys.readouterr().err


def test_continuous_batching_generates_the_eager_tokens():
    """transformers' generate_batch (paged cache, requests of different lengths), outside inference_mode as the
    benchmark runs it, gives each request the tokens of its own greedy generate()."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 300, (10 + 3 * i,), generator=generator).tolist() for i in range(5)]
    generation = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=2)
    with torch.no_grad():
        batched = model.generate_batch(
            prompts,
            generation_config=generation,
            progress_bar=False,
            continuous_batching_config=ContinuousBatchingConfig(num_blocks=32),
        )
        eager = [model.generate(torch.tensor([p]), generation_config=generation)[0, len(p) :].tolist() for p in prompts]
    by_request = {o.request_id: list(o.generated_tokens) for o in batched.values()}
    assert [by_request[f"req_{i}"] for i in range(len(prompts))] == eager
