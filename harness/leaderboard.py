"""A first leaderboard: models x tasks, one metric per task, best in bold.

Paper-style boards (Tables III-VI) build on the same results files.
"""

from __future__ import annotations

from typing import Any, Sequence

from tabulate import tabulate


def _model_label(result: dict[str, Any]) -> str:
    model = result["model"]
    return f"{model['name']} ({model['fingerprint_hash'][:8]})"


def render_simple_board(results: Sequence[dict[str, Any]], metric: str | None = None) -> str:
    """Markdown table: a row per model, a column per task (``task (metric)``), best per column in bold.

    When a (model, task) pair has several results the newest (by provenance date)
    wins. Cells from runs with ``--limit`` or failed samples are marked and
    explained in footnotes, as is every task's version and sample count.
    """
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for result in results:
        key = (_model_label(result), result["task"]["name"])
        if key not in latest or result["provenance"]["date"] > latest[key]["provenance"]["date"]:
            latest[key] = result
    models = sorted({m for m, _ in latest})
    tasks = sorted({t for _, t in latest})
    metric_of = {t: metric or next(r["task"]["main_metric"] for (m, tt), r in latest.items() if tt == t)
                 for t in tasks}
    values: dict[tuple[str, str], float | None] = {}
    for (model, task), result in latest.items():
        entry = result["metrics"]["all"].get(metric_of[task])
        values[(model, task)] = entry.get("value") if entry else None
    best = {}
    for task in tasks:
        column = [v for (m, t), v in values.items() if t == task and v is not None]
        best[task] = max(column) if column else None
    rows, footnotes = [], []
    for model in models:
        row = [model]
        for task in tasks:
            if (model, task) not in latest:
                row.append("")
                continue
            value, result = values[(model, task)], latest[(model, task)]
            cell = "n/a" if value is None else f"{100 * value:.2f}"
            if value is not None and value == best[task]:
                cell = f"**{cell}**"
            counts = result["counts"]
            marks = []
            if counts.get("limit") is not None:
                marks.append("L")
            if counts.get("n_failed"):
                marks.append("F")
            if marks:
                cell += "<sup>" + ",".join(marks) + "</sup>"
            row.append(cell)
        rows.append(row)
    headers = ["model"] + [f"{t} ({metric_of[t]})" for t in tasks]
    table = tabulate(rows, headers=headers, tablefmt="github")
    for task in tasks:
        some = next(r for (m, t), r in latest.items() if t == task)
        counts = some["counts"]
        footnotes.append(f"- {task}: version {some['task']['version']}, split {some['task']['split']}, "
                         f"{counts['n_samples']} samples")
    footnotes.append("- Values are percentages; best per column in bold. "
                     "<sup>L</sup>: run with --limit (not comparable); <sup>F</sup>: some samples failed.")
    harness_versions = sorted({r["provenance"]["harness_version"] for r in latest.values()})
    footnotes.append(f"- aigi-harness {', '.join(harness_versions)}; "
                     f"generated from {len(latest)} results files.")
    return table + "\n\n" + "\n".join(footnotes) + "\n"
