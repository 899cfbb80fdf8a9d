"""The table printed at the end of ``harness run``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tabulate import tabulate

if TYPE_CHECKING:
    from harness.runner import TaskOutcome


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))


def format_run_summary(model_name: str, outcomes: Sequence[TaskOutcome]) -> str:
    """One row per task: status, counts, main metric, acc/AP/AUC, time; then skip reasons and paths."""
    rows, notes = [], []
    for o in outcomes:
        metrics = getattr(o, "metrics", {}) or {}

        def value(name: str | None, metrics: dict = metrics) -> str:
            return _fmt((metrics.get(name) or {}).get("value")) if name else "-"

        ran = o.results_path is not None  # done, or failed after every sample failed (results still written)
        main = f"{o.main_metric}={value(o.main_metric)}" if o.status == "done" else "-"
        rows.append(
            (
                o.task,
                o.status,
                o.n_samples or "-",
                o.n_failed if ran else "-",
                o.n_cached if ran else "-",
                main,
                value("acc"),
                value("ap"),
                value("auc"),
                _fmt(getattr(o, "audit", None)),
                f"{o.seconds:.1f}s" if ran else "-",
            )
        )
        if o.status != "done":
            notes.append(f"  {o.task}: {o.status}: {o.reason}")
        if o.results_path:
            notes.append(f"  {o.task}: {o.results_path}")
    table = tabulate(
        rows, headers=["task", "status", "n", "failed", "cached", "main", "acc", "ap", "auc", "fmt-audit", "time"]
    )
    legend = "  fmt-audit: cross-validated accuracy from file format/size/JPEG quality alone (chance = no leak)"
    return f"\nmodel: {model_name}\n{table}\n{legend}\n" + ("\n".join(notes) + "\n" if notes else "")
