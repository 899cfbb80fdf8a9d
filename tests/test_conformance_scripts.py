"""The conformance scripts (conformance/): they skip with a reason without upstream code, and their
comparison fails on any difference. Their runs against the real code are recorded in conformance/results/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "conformance"))
import common  # noqa: E402


@pytest.mark.parametrize(
    "script, variable",
    [
        ("check_mplug_owl2.py", "MPLUG_OWL_SRC"),
        ("check_qwen_vl.py", "QWEN_VL_SRC"),
        ("check_owl2_training.py", "MPLUG_OWL_SRC"),
        ("check_xcomposer2.py", "XCOMPOSER2_SRC"),
    ],
)
def test_scripts_skip_with_a_reason_without_upstream_code(script, variable, tmp_path, monkeypatch):
    monkeypatch.delenv(variable, raising=False)
    result = subprocess.run(
        [sys.executable, str(REPO / "conformance" / script), "--output", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.startswith("SKIPPED: ")
    assert not (tmp_path / "r.json").exists()


def test_comparison_fails_on_a_score_or_answer_difference():
    reference = {"a.png": {"score": 0.5, "text": "fake"}, "b.png": {"score": 0.25, "text": "real"}}
    same = common.compare(
        {"a.png": {"score": 0.5, "text": "fake"}, "b.png": {"score": 0.25, "text": "real"}}, reference
    )
    assert common.passed(same, 1e-5) and same["max_abs_score_diff"] == 0.0
    off = common.compare(
        {"a.png": {"score": 0.50002, "text": "fake"}, "b.png": {"score": 0.25, "text": "real"}}, reference
    )
    assert not common.passed(off, 1e-5)
    wrong_answer = common.compare(
        {"a.png": {"score": 0.5, "text": "fake"}, "b.png": {"score": 0.25, "text": "x"}}, reference
    )
    assert not common.passed(wrong_answer, 1e-5) and wrong_answer["answers_identical"] == 1
    failed = common.compare({"a.png": {"score": None, "error": "boom", "text": None}}, {"a.png": reference["a.png"]})
    assert not common.passed(failed, 1e-5)


def test_recorded_results_name_their_upstream_and_passed():
    for family in ("mplug-owl2", "qwen-vl-chat", "internlm-xcomposer2-vl"):
        [*_, latest] = json.loads((REPO / "conformance" / "results" / f"{family}.json").read_text())
        assert latest["passed"] is True and latest["upstream"]["commit"]
        assert all(run["max_abs_score_diff"] <= latest["tolerance"] for run in latest["runs"])
        assert all(run["answers_identical"] == run["images"] >= 4 for run in latest["runs"])


def test_the_recorded_owl2_training_ran_against_upstream_and_passed():
    """FakeScope-owl2 trained by the harness with upstream's classes: loss fell, the encoder stayed, the resume
    continued, and the harness scored the checkpoint as upstream's own loader and code do."""
    [*_, latest] = json.loads((REPO / "conformance" / "results" / "mplug-owl2-training.json").read_text())
    assert latest["passed"] is True and latest["upstream"]["commit"] and all(latest["checks"].values())
    losses = latest["training"]["losses"]
    assert losses[-1] < losses[0] and latest["training"]["zero_stage"] == 2
    assert latest["scoring"]["max_abs_score_diff"] <= latest["tolerance"]
    assert latest["scoring"]["answers_identical"] == latest["scoring"]["images"] >= 4


def test_the_served_check_skips_without_serving_extras(tmp_path):
    """conformance/check_served.py needs transformers' serving extras in the server's interpreter."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "conformance" / "check_served.py"),
            "--server-python",
            "/bin/false",
            "--work",
            str(tmp_path),
            "--no-record",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.startswith("SKIPPED: ") and "serving extras" in result.stdout


def test_the_recorded_served_run_passed_every_check():
    [*_, latest] = json.loads((REPO / "conformance" / "results" / "transformers-serve.json").read_text())
    assert latest["passed"] is True and "transformers serve" in latest["server"]
    checks = latest["checks"]
    generate = checks["generate"]
    assert generate["answers_identical_to_transformers_generate"] == generate["samples"] > 0
    assert generate["usage_requests"] == generate["server_requests"]
    assert checks["score"]["server_requests_on_rerun"] == 0
    assert "HTTP 422" in checks["prefill"]["error"] and "HTTP 400" in checks["wrong_model"]["error"]


def test_a_fetched_snapshot_gives_the_folder_that_holds_the_files(tmp_path):
    """A bare repository, as the snapshot tool fetches it: the shallowest folder of HEAD holding every needed file
    is extracted (LAMM keeps XComposer2's files in src/ChEF/models/internlm/); a plain folder is used as it is;
    a snapshot without the files gives None."""
    work = tmp_path / "work"
    (work / "src" / "models" / "internlm").mkdir(parents=True)
    (work / "other").mkdir()
    for name in ("modeling_a.py", "tokenizer_b.py"):
        (work / "src" / "models" / "internlm" / name).write_text(f"# {name}\n")
    (work / "other" / "modeling_a.py").write_text("# a decoy without the second file\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "files"], check=True)
    bare = tmp_path / "snapshot"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    found = common.upstream_folder(bare, ("modeling_a.py", "tokenizer_b.py"), tmp_path / "out")
    assert found == tmp_path / "out" / "src" / "models" / "internlm"
    assert (found / "tokenizer_b.py").read_text() == "# tokenizer_b.py\n"
    assert common.upstream_folder(found, ("modeling_a.py",), tmp_path / "x") == found
    assert common.upstream_folder(bare, ("missing.py",), tmp_path / "y") is None
    assert common.upstream_commit(bare, None) == common.upstream_commit(work, None)
