"""The first leaderboard: best in bold, missing cells, marks for limited or failed runs."""

from harness.leaderboard import render_simple_board


def result(model, fp, task, value, date="2026-01-01", limit=None, failed=0, metric="auc"):
    return {"model": {"name": model, "fingerprint_hash": fp * 8},
            "task": {"name": task, "version": "1", "split": "test", "main_metric": metric},
            "metrics": {"all": {metric: {"value": value, "n": 10, "note": None}}},
            "counts": {"n_samples": 10, "n_failed": failed, "limit": limit},
            "provenance": {"date": date, "harness_version": "0.1.0"}}


def test_best_bold_missing_cells_and_marks():
    board = render_simple_board([
        result("a", "1", "t1", 0.9), result("b", "2", "t1", 0.8, limit=5),
        result("b", "2", "t2", None, failed=2), result("a", "1", "t2", 0.7), result("c", "3", "t1", 0.1),
    ])
    lines = board.splitlines()
    row_a = next(line for line in lines if line.startswith("| a (11111111)"))
    row_b = next(line for line in lines if line.startswith("| b (22222222)"))
    assert "**90.00**" in row_a and "**70.00**" in row_a
    assert "80.00<sup>L</sup>" in row_b and "n/a<sup>F</sup>" in row_b
    assert "t1 (auc)" in lines[0] and "t2 (auc)" in lines[0]
    row_c = next(line for line in lines if line.startswith("| c (33333333)"))
    assert row_c.rstrip().endswith("|") and row_c.split("|")[-2].strip() == ""  # no t2 result for c


def test_newest_result_wins_and_metric_override():
    board = render_simple_board([result("a", "1", "t", 0.5, date="2026-01-01"),
                                 result("a", "1", "t", 0.6, date="2026-02-01")])
    assert "60.00" in board and "50.00" not in board
    ap = result("a", "1", "t", 0.5)
    ap["metrics"]["all"]["ap"] = {"value": 0.25, "n": 10, "note": None}
    assert "25.00" in render_simple_board([ap], metric="ap")
