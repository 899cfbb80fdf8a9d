"""The benchmark scripts run (tiny sizes; the numbers themselves live in benchmarks/results/)."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_runner_throughput_script_runs(tmp_path: Path):
    out = tmp_path / "runner.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "runner_throughput.py"), "--n", "300",
                             "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["n_samples"] == 300 and data["fresh_samples_per_s"] > 0 and data["cached_samples_per_s"] > 0


def test_detector_throughput_script_runs_tiny(tmp_path: Path):
    out = tmp_path / "detectors.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "detector_throughput.py"), "--tiny",
                             "--repeats", "1", "--batch-size", "4", "--output", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 6 and all(r["images_per_s"] > 0 for r in rows)
