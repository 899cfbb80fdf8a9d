"""Crash-safe resume: a run killed with SIGKILL mid-way recomputes nothing that finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fake_distribution
from toy_components import write_toy_data

from harness.results import read_samples

TESTS = Path(__file__).resolve().parent
PLUGIN = "from toy_components import register_models, register_tasks  # noqa: F401\n"


def harness_cmd(data: Path, out: Path, log: Path, sleep: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--model",
        "mean-model",
        "--model-args",
        f"log={log},sleep={sleep}",
        "--tasks",
        "toy-task",
        "--data-root",
        str(data),
        "--batch-size",
        "4",
        "--output-dir",
        str(out),
        "--quiet",
    ]


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path: Path):
    data = write_toy_data(tmp_path / "data", n_good=40, bad=False)
    site = fake_distribution(tmp_path / "site", "harness-toy", "toy", "harness_toy_plugin", PLUGIN)
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{TESTS}")
    env.pop("HARNESS_LOAD_PLUGINS", None)
    out, log = tmp_path / "out", tmp_path / "computed.log"

    proc = subprocess.Popen(
        harness_cmd(data, out, log, sleep=0.15),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and len(log.read_text().split()) >= 16:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = log.read_text().split()
    assert 16 <= len(first) < 40, "the run must be killed mid-way"
    assert not list(out.glob("*/toy-task/results.json")), "no results file before the task finished"

    log.write_text("")
    resumed = subprocess.run(
        harness_cmd(data, out, log, sleep=0.0), env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    second = log.read_text().split()
    [results_path] = list(out.glob("*/toy-task/results.json"))
    records = read_samples(results_path)
    cached = {r.sample_id for r in records if r.cached}
    assert cached <= set(first)
    assert len(cached) >= len(first) - 4, "at most the batch in flight is lost"
    assert cached.isdisjoint(second), "finished samples were recomputed"
    assert len(cached) + len(second) == 40

    # identical to an uninterrupted run
    fresh_out, fresh_log = tmp_path / "fresh", tmp_path / "fresh.log"
    fresh = subprocess.run(
        harness_cmd(data, fresh_out, fresh_log, sleep=0.0), env=env, capture_output=True, text=True, timeout=300
    )
    assert fresh.returncode == 0, fresh.stderr
    [fresh_path] = list(fresh_out.glob("*/toy-task/results.json"))
    assert [(r.sample_id, r.score) for r in read_samples(fresh_path)] == [(r.sample_id, r.score) for r in records]
    assert json.loads(fresh_path.read_text())["metrics"] == json.loads(results_path.read_text())["metrics"]
