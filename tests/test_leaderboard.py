"""The quick leaderboard (``harness leaderboard`` without ``--board``): one renderer with the paper boards."""

from harness.boards import quick_spec, render_board


def result(model, fp, task, value, date="2026-01-01", limit=None, failed=0, metric="auc"):
    return {
        "model": {"name": model, "fingerprint_hash": fp * 8},
        "task": {"name": task, "version": "1", "split": "test", "mode": "score", "main_metric": metric},
        "metrics": {"all": {metric: {"value": value, "n": 10, "note": None}}},
        "counts": {"n_samples": 10, "n_failed": failed, "limit": limit},
        "provenance": {"date": date, "harness_version": "0.1.0"},
    }


def quick(results, metric=None):
    return render_board(quick_spec(results, metric), results)


def test_best_bold_second_underlined_missing_cells_and_marks():
    board = quick(
        [
            result("a", "1", "t1", 0.9),
            result("b", "2", "t1", 0.8, limit=5),
            result("b", "2", "t2", None, failed=2),
            result("a", "1", "t2", 0.7),
            result("c", "3", "t1", 0.1),
        ]
    )
    lines = board.splitlines()
    header = next(line for line in lines if line.startswith("| Model"))
    row = {name: next(line for line in lines if line.startswith(f"| {name} ")) for name in "abc"}
    assert "t1 (AUC)" in header and "t2 (AUC)" in header
    assert "**90.00**" in row["a"] and "**70.00**" in row["a"]
    assert "<ins>80.00</ins><sup>L</sup>" in row["b"]  # second best, run with --limit: shown, marked
    assert row["b"].split("|")[3].strip() == "–"  # no value (its samples failed)
    assert row["c"].split("|")[3].strip() == "–"  # no t2 result for c
    assert "--limit" in board and "2 failed in all" in board


def test_newest_result_wins_and_metric_override():
    board = quick([result("a", "1", "t", 0.5, date="2026-01-01"), result("a", "1", "t", 0.6, date="2026-02-01")])
    assert "60.00" in board and "50.00" not in board
    ap = result("a", "1", "t", 0.5)
    ap["metrics"]["all"]["ap"] = {"value": 0.25, "n": 10, "note": None}
    assert "25.00" in quick([ap], metric="ap") and "AP" in quick([ap], metric="ap")


def test_two_checkpoints_of_one_model_are_told_apart():
    board = quick([result("a", "1", "t", 0.5), result("a", "2", "t", 0.6)])
    assert "a (11111111)" in board and "a (22222222)" in board


def test_a_limited_quick_look_never_replaces_or_outranks_the_full_run(tmp_path, aigi_mini):
    """Issue #26 item 1: a --limit run beside a full one keeps results.json (what boards show) on the full run;
    --label names the model on the board."""
    import json

    from conftest import run_cli

    out = tmp_path / "out"
    full = run_cli("run", "--model", "noop", "--tasks", "aigi-mini", "--output-dir", str(out), "--bootstrap", "0",
                   "--label", "noop-full")  # fmt: skip
    assert full.returncode == 0, full.stderr
    quick = run_cli("run", "--model", "noop", "--tasks", "aigi-mini", "--output-dir", str(out), "--bootstrap", "0",
                    "--limit", "50")  # fmt: skip
    assert quick.returncode == 0, quick.stderr
    [latest] = list(out.rglob("results.json"))
    assert json.loads(latest.read_text())["counts"]["n_samples"] == 440
    assert len(list(latest.parent.glob("results_*.json"))) == 2, "the quick look is kept as its own run"
    board = run_cli("leaderboard", str(out))
    row = next(line for line in board.stdout.splitlines() if line.startswith("| noop-full"))
    assert board.returncode == 0 and "<sup>L" not in row, row


def test_boards_say_when_they_would_show_nothing(tmp_path, aigi_mini):
    """Issue #26 item 5: an unknown --metric is an error, not a table of dashes; a paper board given unrelated
    results warns."""
    from conftest import REPO, run_cli

    out = tmp_path / "out"
    assert run_cli("run", "--model", "noop", "--tasks", "aigi-mini", "--limit", "20", "--output-dir", str(out),
                   "--bootstrap", "0").returncode == 0  # fmt: skip
    unknown = run_cli("leaderboard", str(out), "--metric", "f1")
    assert unknown.returncode == 2 and "no results file holds metric 'f1'" in unknown.stderr
    unrelated = run_cli("leaderboard", "--board", str(REPO / "leaderboards" / "paper-table-vi.yaml"),
                        "--results", str(out), "--allow-limit")  # fmt: skip
    assert "none of the 1 results files is of the board's tasks" in unrelated.stderr
