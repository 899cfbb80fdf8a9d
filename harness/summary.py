"""The table printed at the end of ``harness run``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tabulate import tabulate

if TYPE_CHECKING:
    from harness.runner import TaskOutcome


def _fmt(value: object) -> str:
    """A metric value with four decimals, whatever its type (``1`` and ``0.95`` print as ``1.0000``, ``0.9500``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def _audit(outcome: TaskOutcome) -> str:
    """``accuracy / majority rate`` of the format audit: the baseline a reader compares the accuracy with."""
    accuracy, majority = getattr(outcome, "audit", None), getattr(outcome, "audit_majority", None)
    if accuracy is None:
        return "-"
    return f"{_fmt(accuracy)} / {_fmt(majority)}" if majority is not None else _fmt(accuracy)


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
                _audit(o),
                f"{o.seconds:.1f}s" if ran else "-",
            )
        )
        if o.status != "done":
            notes.append(f"  {o.task}: {o.status}: {o.reason}")
        if o.results_path:
            notes.append(f"  {o.task}: {o.results_path}")
    table = tabulate(
        rows,
        headers=["task", "status", "n", "failed", "cached", "main", "acc", "ap", "auc", "fmt-audit", "time"],
        disable_numparse=True,  # keep every value's four decimals (tabulate would print 0.9500 as 0.95)
    )
    legend = (
        "  fmt-audit: cross-validated accuracy from file format/size/JPEG quality alone / the majority-class rate "
        "(equal: no leak; higher: the files alone tell the classes apart)"
    )
    return f"\nmodel: {model_name}\n{table}\n{legend}\n" + ("\n".join(notes) + "\n" if notes else "")
