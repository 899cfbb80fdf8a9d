"""Data parallel under torchrun (2 CPU processes, gloo): sharded, merged on rank 0, resumable with any count."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import fake_distribution
from toy_components import write_toy_data

from harness.results import read_samples

TESTS = Path(__file__).resolve().parent
PLUGIN = "from toy_components import register_models, register_tasks  # noqa: F401\n"


def harness_args(data: Path, out: Path, log: Path) -> list[str]:
    return [
        "run",
        "--model",
        "mean-model",
        "--model-args",
        f"log={log}",
        "--tasks",
        "toy-task",
        "--data-root",
        str(data),
        "--batch-size",
        "3",
        "--output-dir",
        str(out),
        "--quiet",
        "--bootstrap",
        "0",
    ]


@pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
    reason="torchrun not installed beside this Python",
)
@pytest.mark.slow
def test_two_ranks_shard_merge_and_resume_with_one(tmp_path: Path):
    data = write_toy_data(tmp_path / "data", n_good=20, bad=True)
    site = fake_distribution(tmp_path / "site", "harness-toy", "toy", "harness_toy_plugin", PLUGIN)
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{TESTS}", OMP_NUM_THREADS="1")
    env.pop("HARNESS_LOAD_PLUGINS", None)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out, log = tmp_path / "out", tmp_path / "computed.log"
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "harness.cli", *harness_args(data, out, log)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    computed = Counter(log.read_text().split())
    assert len(computed) == 20 and max(computed.values()) == 1  # every good sample once, across both ranks
    [path] = list(out.glob("*/toy-task/results.json"))
    results = json.loads(path.read_text())
    assert results["counts"]["n_samples"] == 26 and results["counts"]["n_failed"] == 6
    errors = {r.sample_id: r.error for r in read_samples(path) if r.error}
    assert "zero.png" in errors and "corrupt.png" in errors  # failures from both ranks reach rank 0
    # each rank wrote its own cache file; rank 0 folded them into the shared one and removed them
    assert sorted(p.name for p in (out / ".cache").iterdir() if "rank" in p.name) == []
    import sqlite3

    with sqlite3.connect(out / ".cache" / "responses.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 20

    single_out = tmp_path / "single"
    single = subprocess.run(
        [sys.executable, "-m", "harness.cli", *harness_args(data, single_out, tmp_path / "s.log")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr
    [single_path] = list(single_out.glob("*/toy-task/results.json"))
    assert [(r.sample_id, r.score, r.error is None) for r in read_samples(single_path)] == [
        (r.sample_id, r.score, r.error is None) for r in read_samples(path)
    ]

    # resume the 2-rank run's output with one process: nothing good is recomputed
    log.write_text("")
    again = subprocess.run(
        [sys.executable, "-m", "harness.cli", *harness_args(data, out, log)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert log.read_text().split() == []
