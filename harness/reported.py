"""Published numbers (``leaderboards/reported/*.yaml``) as results-like records, so a board can show a paper's
rows beside measured runs, told apart (marked *reported*, with the table and row they come from).

A reported file says where the harness reports each printed column (``columns``: a task and a subset, a
breakdown key, or the overall value; ``aggregate`` columns are the paper's own averages), in percent or as
fractions (``scale``). Table IV's file maps whole abilities instead (``abilities``). Each printed row becomes one
record per task it touches, shaped like a ``results.json`` (``model``, ``task``, ``counts``, ``metrics``,
``provenance``) plus ``reported``: ``{source, table, row}``. A per-task aggregate the paper prints (Table III's
Fake / Overall) is kept as printed in ``metrics.reported_columns``; a task's generator mean, which the paper
does not print per task, is derived from its printed columns (said so in ``reported.derived``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.results_model import Results


class ReportedError(ValueError):
    """A reported-results file that cannot be read."""


def _skeleton(data: dict[str, Any], row: dict[str, Any], task: str, path: Path) -> dict[str, Any]:
    return {
        "model": {"name": str(row["model"]), "fingerprint_hash": "reported"},
        "task": {
            "name": task,
            "version": "reported",
            "split": "test",
            "mode": data.get("mode", "score"),
            "main_metric": (data.get("metrics") or ["avr"])[0],
        },
        "counts": {"n_samples": None, "n_failed": 0, "limit": None},
        "metrics": {"all": {}, "subsets": {}, "groups": {}, "breakdowns": {}, "reported_columns": {}},
        "provenance": {"date": "", "harness_version": "reported"},
        "reported": {
            "source": data.get("source", ""),
            "table": str(data.get("table", "")),
            "row": row.get("row"),
            "file": path.name,
            "derived": [],
        },
        "_path": str(path),
    }


def _place(entry: dict[str, Any], where: dict[str, Any], metric: str, value: float) -> None:
    cell = {"value": value, "n": None}
    metrics = entry["metrics"]
    if "subset" in where:
        metrics["subsets"].setdefault(where["subset"], {})[metric] = cell
    elif "breakdown" in where:
        metrics["breakdowns"].setdefault(where["breakdown"], {}).setdefault(str(where["key"]), {})[metric] = cell
    elif where.get("all"):
        metrics["all"][metric] = cell
    else:
        raise ReportedError(f"column target {where} names no subset, breakdown or 'all'")


def load_reported(path: str | Path) -> list[Results]:
    """One :class:`~harness.results_model.Results` per (printed row, task) of a reported-results file, marked
    ``reported``."""
    import yaml

    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if data.get("kind") != "reported":
        raise ReportedError(f"{path}: not a reported-results file (kind: reported)")
    scale = 0.01 if data.get("scale") == "percent" else 1.0
    records: list[Results] = []
    for row in data.get("rows", []):
        entries: dict[str, dict[str, Any]] = {}

        def entry(task: str, entries: dict[str, dict[str, Any]] = entries, row: dict[str, Any] = row) -> dict[str, Any]:
            if task not in entries:
                entries[task] = _skeleton(data, row, task, path)
            return entries[task]

        if "abilities" in data:  # Table IV: per ability, the file's measure columns
            for ability, where in data["abilities"].items():
                for metric, value in zip(data["columns"], row[ability], strict=False):
                    _place(entry(where["task"]), where, metric, float(value) * scale)
        else:
            headers = list(data["columns"])
            for metric in data["metrics"]:
                values = dict(zip(headers, row[metric], strict=False))
                for header, where in data["columns"].items():
                    if "aggregate" in where:
                        continue
                    _place(entry(where.get("task", data.get("task"))), where, metric, float(values[header]) * scale)
                for header, where in data["columns"].items():
                    tasks = {data["columns"][h].get("task", data.get("task")) for h in where.get("of", [])}
                    if where.get("aggregate") == "mean" and len(tasks) == 1:  # printed, and about one task
                        entry(tasks.pop())["metrics"]["reported_columns"].setdefault(header, {})[metric] = {
                            "value": float(values[header]) * scale,
                            "n": None,
                        }
        for record in entries.values():
            _derive_generator_means(record)
            records.append(Results.from_json(record))
    return records


def _derive_generator_means(record: dict[str, Any]) -> None:
    """``groups.mean_over_generators`` from the printed subset columns (the paper prints no per-task mean)."""
    subsets = record["metrics"]["subsets"]
    if not subsets:
        return
    names = sorted({m for values in subsets.values() for m in values})
    generators = list(subsets)
    group = {}
    for metric in names:
        present = [subsets[s][metric]["value"] for s in generators if metric in subsets[s]]
        group[metric] = {"value": float(np.mean(present)), "n": len(present), "data": {"generators": generators}}
    record["metrics"]["groups"]["mean_over_generators"] = group
    record["reported"]["derived"].append("per-task generator mean (Average) from the printed columns")
