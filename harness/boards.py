"""Paper-style leaderboards from results files, driven by board specs (YAML files in ``leaderboards/``).

A spec::

    title: "aigi-mini: detection (paper Fig. 6 style)"
    layout: metrics              # metrics | per_subset | qualitative | transparency | main_metric | robustness
    tasks: [aigi-mini]
    metrics: [acc, ap, auc]      # per_subset: the one metric shown per generator
    models: [fredect, cnnspot]   # optional: model names to include (default: all found)
    labels: {fredect: FreDect}   # optional display names
    improvement: {model: fredect, over: format-shortcut}   # optional "Improvement" row
    allow_limit: false           # refuse runs made with --limit unless true (then marked L)
    allow_failed: false          # refuse runs with failed samples unless true (then marked F)
    plots: [acc_curve, subset_bars]
    reported: [reported/fakescope-table-vi.yaml]   # optional: a paper's printed rows beside the runs (marked R)

Layouts mirror the paper: ``metrics`` (Fig. 6: Acc / AP / AUC per task), ``per_subset``
(Tables V / VI: one metric per generator or platform, plus Average and, from the
declared seen generators, Seen / Unseen), ``qualitative`` and ``transparency`` (Tables III
and IV: their columns are declared by each task, ``Task.board_columns``, and travel in its
results files, so this module knows no benchmark's breakdowns or metrics; FakeClass declares
Fake = mean of the generator columns, Real, question types, generators, Overall; FakeClue and
FakeQA declare the measures per ability and an Overall = mean of the Avr. columns; see
:func:`declared_columns`); ``main_metric`` (the quick board of
``harness leaderboard`` without ``--board``: one column per task, its main metric or
``metrics[0]``; see :func:`quick_spec`). In every column the best value
is **bold** and the second best underlined (ties share the mark); values carry
``± half-width`` of their 95% bootstrap interval when the results have one.

``reported`` files (:mod:`harness.reported`, paths relative to the spec) add a paper's printed rows, labelled
``<model> [paper]`` (the row's label is its mark: a mark in each of 20 cells only crowds them), so a user's runs
sit beside the published
baselines in the paper's own layout; they are exempt from the refusal rules (they are no runs) and never
count as measured.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.board_layouts import LAYOUTS, Column
from harness.names import board_text
from harness.results_model import MetricEntry, Results, as_results

LAYOUT_NAMES = tuple(LAYOUTS)


class BoardError(ValueError):
    """A spec that cannot be rendered, or results refused by the board's rules."""


@dataclass
class BoardSpec:
    """A parsed board spec (see the module docstring)."""

    title: str
    layout: str
    tasks: list[str]
    metrics: list[str] = field(default_factory=lambda: ["acc", "ap", "auc"])
    models: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    improvement: dict[str, str] | None = None
    allow_limit: bool = False
    allow_failed: bool = False
    allow_mixed_versions: bool = False
    plots: list[str] = field(default_factory=list)
    percent: bool = True
    description: str = ""
    reported: list[str] = field(default_factory=list)
    #: a board wider than this many value columns is shown as several tables (see :func:`column_groups`); 0: never
    max_columns: int = 10
    #: α of the "not significantly different from the best" marks (:mod:`harness.board_significance`); None: off
    significance: float | None = None

    @classmethod
    def load(cls, path: str | Path) -> BoardSpec:
        """Read and validate a YAML spec."""
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise BoardError(f"{path}: unknown board keys {sorted(unknown)}")
        if data.get("layout") not in LAYOUTS:
            raise BoardError(f"{path}: layout must be one of {LAYOUT_NAMES}, not {data.get('layout')!r}")
        if not data.get("tasks"):
            raise BoardError(f"{path}: 'tasks' is required")
        data.setdefault("title", Path(path).stem)
        alpha = data.get("significance")
        if alpha is not None and not (isinstance(alpha, float) and 0 < alpha < 1):
            raise BoardError(f"{path}: significance is the test's alpha, a number between 0 and 1, not {alpha!r}")
        data["reported"] = [
            str((Path(path).parent / p).resolve()) if not Path(p).is_absolute() else p
            for p in data.get("reported") or []
        ]
        return cls(**data)


def quick_spec(results: Sequence[Results | dict[str, Any]], metric: str | None = None) -> BoardSpec:
    """The board of ``harness leaderboard`` without ``--board``: every task found, one column each (its main
    metric, or ``metric``); runs with ``--limit``, failed samples or other task versions are shown, marked."""
    tasks = sorted({as_results(r).task.name for r in results})
    return BoardSpec(
        title="Leaderboard",
        layout="main_metric",
        tasks=tasks,
        metrics=[metric] if metric else [],
        allow_limit=True,
        allow_failed=True,
        allow_mixed_versions=True,
    )


@dataclass
class Cell:
    """One table cell: a value (fraction), its CI half-width and marks."""

    value: float | None
    half_ci: float | None = None
    marks: list[str] = field(default_factory=list)


def _label(result: Results, spec: BoardSpec, ambiguous: set[str]) -> str:
    """A row's label: the spec's label for the run (by name-fingerprint or name), ``name (fp8)`` when one name
    has several fingerprints on the board, ``name [paper]`` for a printed row."""
    name = result.model.shown_name
    if result.reported is not None:
        return f"{name} [paper]"
    key = f"{name}-{result.model.fingerprint_hash[:8]}"
    if key in spec.labels:
        return spec.labels[key]
    if name in spec.labels and name not in ambiguous:
        return spec.labels[name]
    return f"{name} ({result.model.fingerprint_hash[:8]})" if name in ambiguous else name


Chosen = dict[tuple[str, str], Results]


def _refusals(chosen: Chosen, spec: BoardSpec) -> list[str]:
    """Why the board refuses chosen runs: --limit, failed samples, mixed task versions (unless allowed)."""
    problems = []
    for result in chosen.values():
        counts = result.counts
        where = f"{result.model.shown_name} on {result.task.name} ({result.path or '?'})"
        if counts.limit is not None and not spec.allow_limit:
            problems.append(
                f"{where}: run with --limit {counts.limit} (pass --allow-limit, or allow_limit: true in the board "
                "spec, to show it marked L; or name the full run's results_<time>.json)"
            )
        if counts.n_failed and not spec.allow_failed:
            problems.append(f"{where}: {counts.n_failed} failed samples (set allow_failed: true to show it)")
    versions: dict[str, set[str]] = {}
    for (_, task), result in chosen.items():
        versions.setdefault(task, set()).add(result.task.version)  # runs only: printed rows come later
    for task, found in versions.items():
        if len(found) > 1 and not spec.allow_mixed_versions:
            problems.append(
                f"{task}: results from different task versions {sorted(found)} cannot share a board "
                "(set allow_mixed_versions: true to show them, marked V)"
            )
    return problems


def select_results(results: Sequence[Results | dict[str, Any]], spec: BoardSpec) -> Chosen:
    """(model label, task) -> newest result, after the board's refusal rules (raises :class:`BoardError`)."""
    typed = [as_results(r) for r in results]
    relevant = [
        r
        for r in typed
        if r.task.name in spec.tasks
        and r.reported is None
        and (spec.models is None or r.model.name in spec.models or r.model.shown_name in spec.models)
    ]
    by_name: dict[str, set[str]] = {}
    for r in relevant:
        by_name.setdefault(r.model.shown_name, set()).add(r.model.fingerprint_hash)
    ambiguous = {n for n, hashes in by_name.items() if len(hashes) > 1}
    chosen: Chosen = {}
    for result in relevant:  # the latest run per (model, task): earlier runs are history, not rows
        key = (_label(result, spec, ambiguous), result.task.name)
        if key not in chosen or result.finished > chosen[key].finished:
            chosen[key] = result
    problems = _refusals(chosen, spec)
    if problems:
        raise BoardError("refused:\n  " + "\n  ".join(problems))
    for result in typed:  # printed rows: no refusal rules, never mixed with a run's task version
        if result.reported is not None and result.task.name in spec.tasks:
            chosen[(_label(result, spec, set()), result.task.name)] = result
    if not chosen:
        raise BoardError(f"no results for tasks {spec.tasks}" + (f" and models {spec.models}" if spec.models else ""))
    return chosen


def _cell(entry: MetricEntry | None) -> Cell:
    if entry is None or entry.value is None:
        return Cell(None)
    return Cell(entry.value, entry.half_ci)


def _marks(result: Results, mixed: bool = False) -> list[str]:
    if result.reported is not None:
        return []  # the row's label says it: "<model> [paper]"
    marks = ["V"] if mixed else []
    if result.counts.limit is not None:
        marks.append("L")
    if result.counts.n_failed:
        marks.append("F")
    return marks


def lower_is_better(metric: str, results: Sequence[Results]) -> bool:
    """A metric's direction as the metric declares it: from the results files that record it (``task.metrics``),
    else from the registered metric class (printed rows, files written before directions were recorded)."""
    for result in results:
        higher = result.task.higher_is_better(metric)
        if higher is not None:
            return not higher
    try:
        from harness.plugin_manager import get_plugins

        return not get_plugins().get("metric", metric).load().higher_is_better
    except Exception:  # noqa: BLE001 - a metric nothing declares: higher is better, as most are
        return False


def task_results(chosen: Chosen, task: str) -> list[Results]:
    """The chosen results of one task, in model order."""
    return [r for (_, t), r in sorted(chosen.items()) if t == task]


def columns_for(spec: BoardSpec, chosen: Chosen) -> list[tuple[str, list[Column]]]:
    """Per task: the columns of the board's layout (:mod:`harness.board_layouts`); then the layout's board-wide
    summary columns (Table IV's Overall, a sweep's mean over levels), task ``""``, filled per model by the caller
    as the mean of the columns of their metric before them."""
    layout = LAYOUTS[spec.layout]
    out = []
    by_task = {task: task_results(chosen, task) for task in spec.tasks}
    for task, results in by_task.items():
        if results:
            out.append((task, layout.columns(spec, task, results)))
    for header, metric in layout.summary_columns(spec, {t: r for t, r in by_task.items() if r}):
        out.append(("", [(header, metric, lambda r: None)]))
    return out


def for_results(spec: BoardSpec, results: Sequence[Results]) -> BoardSpec:
    """The spec with the tasks its layout shows for these results (a sweep's levels; others: as written)."""
    tasks = LAYOUTS[spec.layout].board_tasks(spec, {r.task.name for r in results})
    return spec if tasks == list(spec.tasks) else dataclasses.replace(spec, tasks=tasks)


def _format(cell: Cell, percent: bool) -> str:
    if cell.value is None:
        return "–"
    value = cell.value * 100 if percent else cell.value
    text = f"{value:.2f}" if percent else f"{value:.3f}"
    if cell.half_ci is not None:
        half = cell.half_ci * 100 if percent else cell.half_ci
        text += f"&nbsp;±&nbsp;{half:.2f}" if percent else f"&nbsp;±&nbsp;{half:.3f}"  # never wrapped apart
    return text


def rank_marks(values: Sequence[float | None], lower_is_better: bool) -> list[str]:
    """ "best" / "second" / "" per value (ties share a mark; ``None`` gets none). "second" only among three or more
    distinct values: of two, the second is simply the worst."""
    present = sorted({v for v in values if v is not None}, reverse=not lower_is_better)
    best = present[0] if present else None
    second = present[1] if len(present) > 2 else None
    return [
        "best" if v is not None and v == best else "second" if v is not None and v == second else "" for v in values
    ]


def with_reported(spec: BoardSpec, results: Sequence[Results | dict[str, Any]]) -> list[Results]:
    """The results plus the printed rows of the spec's ``reported`` files."""
    from harness.reported import ReportedError, load_reported

    out = [as_results(r) for r in results]
    for path in spec.reported:
        try:
            out.extend(load_reported(path))
        except (OSError, ReportedError) as exc:
            raise BoardError(f"reported file {path}: {exc}") from exc
    return out


def _improvement_row(
    spec: BoardSpec, models: list[str], grid: dict[str, list[Cell]], lower: list[bool], percent: bool
) -> list[str] | None:
    """The spec's "Improvement (A − B)" row: how much better A is than B per column, positive = better everywhere
    (for a lower-is-better metric, B's value minus A's); ``None`` when not asked for or a model is missing."""
    if not spec.improvement:
        return None
    target, base = spec.improvement.get("model"), spec.improvement.get("over")
    label = {m.split(" (")[0]: m for m in models}
    if target not in label or base not in label:
        return None
    row = [board_text(f"Improvement ({target} − {base})")]
    for index, lower_better in enumerate(lower):
        a, b = grid[label[target]][index].value, grid[label[base]][index].value
        if a is None or b is None:
            row.append("–")
        else:
            # positive is better in every column: for a lower-is-better metric (EER) the gain is the reduction
            gain = (b - a) if lower_better else (a - b)
            diff = gain * (100 if percent else 1)
            row.append(f"{diff:+.2f}" if percent else f"{diff:+.3f}")
    return row


@dataclass
class Grid:
    """A board's cells before formatting: headers, per model a cell per column, each column's metric."""

    headers: list[str]
    cells: dict[str, list[Cell]]
    metrics: list[str]
    #: per column: its task ("" for a board-wide summary) and its header as the layout named it
    sources: list[tuple[str, str]] = field(default_factory=list)


def _mixed_version_tasks(spec: BoardSpec, chosen: Chosen) -> set[str]:
    """Tasks whose measured runs on the board are of different task versions (marked V)."""
    return {
        t
        for t in spec.tasks
        if len({r.task.version for (_, tt), r in chosen.items() if tt == t and r.reported is None}) > 1
    }


def _fill_grid(spec: BoardSpec, chosen: Chosen, models: list[str]) -> Grid:
    """Every model's cell in every column of the layout (a printed aggregate wins over a computed one)."""
    mixed = _mixed_version_tasks(spec, chosen)
    grid = Grid(["Model"], {m: [] for m in models}, [])
    for task, cols in columns_for(spec, chosen):
        for header, metric, getter in cols:
            named = len(spec.tasks) == 1 or not task or LAYOUTS[spec.layout].headers_name_task
            grid.headers.append(header if named else f"{task}: {header}")
            grid.metrics.append(metric)
            grid.sources.append((task, header))
            for model in models:
                result = chosen.get((model, task))
                if task == "":  # a board-wide summary: the mean of its metric's columns so far
                    values = [
                        c.value
                        for c, meta in zip(grid.cells[model], grid.metrics[:-1], strict=False)
                        if meta == metric and c.value is not None
                    ]
                    grid.cells[model].append(Cell(sum(values) / len(values) if values else None))
                    continue
                if result is None:
                    grid.cells[model].append(Cell(None))
                    continue
                printed = (result.metrics.reported_columns or {}).get(header, {}).get(metric)
                cell = _cell(printed if printed is not None else getter(result))
                cell.marks = _marks(result, mixed=task in mixed)
                grid.cells[model].append(cell)
    return grid


def _cell_text(cell: Cell, percent: bool) -> str:
    """A cell as markdown: value ± half-interval, bold best, underlined second, superscript flags."""
    text = _format(cell, percent)
    if "best" in cell.marks:
        text = f"**{text}**"
    elif "second" in cell.marks:
        text = f"<ins>{text}</ins>"  # underlined; GitHub strips <u> but keeps <ins>
    flags = [m for m in cell.marks if m in ("ns", "L", "F", "V")]
    if flags and cell.value is not None:
        text += "<sup>" + ",".join(flags) + "</sup>"
    return text


def render_board(spec: BoardSpec, results: Sequence[Results | dict[str, Any]]) -> str:
    """The board as markdown (title, table, improvement row, footnotes)."""
    everything = with_reported(spec, results)
    spec = for_results(spec, everything)
    chosen = select_results(everything, spec)
    models = sorted({m for m, _ in chosen}, key=lambda m: (m.lower(), m))  # "cnnspot" beside "CNNSpot-v2"
    grid = _fill_grid(spec, chosen, models)
    percent = spec.percent and LAYOUTS[spec.layout].percent
    lower = [lower_is_better(metric, list(chosen.values())) for metric in grid.metrics]
    for index, lower_better in enumerate(lower):
        marks = rank_marks([grid.cells[m][index].value for m in models], lower_better)
        for model, mark in zip(models, marks, strict=True):
            grid.cells[model][index].marks = [mark] + grid.cells[model][index].marks
    tested = _mark_not_different(chosen, grid, models, spec.significance) if spec.significance is not None else None
    # a served model's name is free text: no live HTML, no extra cells
    rows = [[board_text(model)] + [_cell_text(cell, percent) for cell in grid.cells[model]] for model in models]
    improvement = _improvement_row(spec, models, grid.cells, lower, percent)
    if improvement:
        rows.append(improvement)
    headers = [board_text(h) for h in grid.headers]  # generator folders name columns: escaped like model names
    table = _tables(rows, headers, spec.max_columns)
    return (
        f"## {spec.title}\n\n"
        + (f"{spec.description}\n\n" if spec.description else "")
        + table
        + "\n\n"
        + _footnotes(spec, chosen, percent, _explained(headers, grid.cells, models) + _significance_note(spec, tested))
        + "\n"
    )


def column_groups(headers: Sequence[str], max_columns: int) -> list[tuple[str, list[int]]]:
    """How a wide board is split: (caption, value-column indices) per table. Columns are grouped by what their
    headers name before the last ``": "`` (a task, an ability), a header without one (a board-wide summary such
    as Overall) staying with the group before it; a group wider than ``max_columns`` is cut into even parts.
    One group, unsplit, when the board has at most ``max_columns`` value columns (or ``max_columns`` is 0)."""
    count = len(headers)
    if not max_columns or count <= max_columns:
        return [("", list(range(count)))]
    groups: list[tuple[str, list[int]]] = []
    for index, header in enumerate(headers):
        prefix = header.rsplit(": ", 1)[0] if ": " in header else None
        if groups and (prefix is None or prefix == groups[-1][0]):
            groups[-1][1].append(index)
        else:
            groups.append((prefix or "", [index]))
    out: list[tuple[str, list[int]]] = []
    for caption, indices in groups:
        parts = -(-len(indices) // max_columns)
        size = -(-len(indices) // parts)
        out.extend((caption, indices[i : i + size]) for i in range(0, len(indices), size))
    return out


def _tables(rows: list[list[str]], headers: list[str], max_columns: int) -> str:
    """The board's table, or for a wide board one table per :func:`column_groups` group, each repeating the
    Model column, captioned with what its headers share (and the headers shortened by it), so that no header or
    model name has to wrap in a page of GitHub's width."""
    groups = column_groups(headers[1:], max_columns)
    if len(groups) == 1:
        return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    parts = []
    for caption, indices in groups:
        cut = len(caption) + 2 if caption else 0
        names = [headers[0]] + [
            headers[i + 1][cut:] if caption and headers[i + 1].startswith(caption + ": ") else headers[i + 1]
            for i in indices
        ]
        body = [[row[0]] + [row[i + 1] for i in indices] for row in rows]
        table = tabulate(body, headers=names, tablefmt="github", disable_numparse=True)
        parts.append((f"**{caption}**\n\n" if caption else "") + table)
    return "\n\n".join(parts)


def _mark_not_different(chosen: Chosen, grid: Grid, models: list[str], alpha: float) -> tuple[int, int]:
    """Mark ``ns`` the cells not significantly different from their column's best (Holm, at ``alpha``);
    returns (columns tested, columns of a tested metric)."""
    from harness.board_significance import TESTED_METRICS, ColumnInput, SampleScores, column_verdict

    scores, tested, candidates = SampleScores(), 0, 0
    for index, (metric, (task, header)) in enumerate(zip(grid.metrics, grid.sources, strict=True)):
        if metric not in TESTED_METRICS or not task:
            continue
        candidates += 1
        runs = {m: (r if (r := chosen.get((m, task))) is not None and r.reported is None else None) for m in models}
        values = {m: grid.cells[m][index].value for m in models}
        best = [m for m in models if "best" in grid.cells[m][index].marks]
        verdict = None
        for subset in (None, header):  # the column is of all the task's samples, or of one generator's
            verdict = column_verdict(ColumnInput(metric, subset, values, runs, best), scores)
            if verdict is not None:
                break
        if verdict is None:
            continue
        tested += 1
        for model in verdict.not_different(alpha):
            grid.cells[model][index].marks.insert(1, "ns")
    return tested, candidates


def _significance_note(spec: BoardSpec, tested: tuple[int, int] | None) -> list[str]:
    """The footnote of the significance marks: the test, α, and how many columns it could be run on."""
    if tested is None:
        return []
    return [
        f"- <sup>ns</sup>: not significantly different from the column's best on the same samples (paired tests: "
        f"DeLong for AUC, a paired label-stratified bootstrap for AP and Acc; Holm-corrected across the column, "
        f"α = {spec.significance}); tested in {tested[0]} of {tested[1]} AUC/AP/Acc columns (the others lack "
        "per-sample scores that give the value shown)."
    ]


#: what each abbreviated column header stands for (said under a board that uses it)
ABBREVIATIONS = {
    "B.Acc": "balanced accuracy",
    "B.-1": "BLEU-1",
    "B.-2": "BLEU-2",
    "R.-L": "ROUGE-L",
    "Sim.": "BERTScore F1",
    "α": "LLM-judge completeness (0-2)",
    "ρ": "LLM-judge preciseness (0-2)",
    "κ": "LLM-judge relevance (0-2)",
    "Avr.": "the paper's transparency average",
    "Acc@val-thr": "accuracy at the threshold chosen on the validation split",
}


def _explained(headers: list[str], grid: dict[str, list[Cell]], models: list[str]) -> list[str]:
    """Footnote lines for a board's columns: the abbreviations its headers use, and the columns no row fills."""
    lines = []
    used = [f"{short} = {long}" for short, long in ABBREVIATIONS.items() if any(short in h for h in headers[1:])]
    if used:
        lines.append("- Abbreviations: " + "; ".join(used) + ".")
    empty = [h for i, h in enumerate(headers[1:]) if models and all(grid[m][i].value is None for m in models)]
    if empty:
        lines.append(f"- No run here reports {', '.join(empty)}: those columns are – in every row.")
    return lines


def _footnotes(spec: BoardSpec, chosen: Chosen, percent: bool, explained: list[str] | None = None) -> str:
    lines = list(explained or [])
    measured = {k: r for k, r in chosen.items() if r.reported is None}
    for task in spec.tasks:
        results = task_results(measured, task)
        if not results:
            continue
        r = results[0]
        n = sorted({x.counts.n_samples for x in results if x.counts.n_samples is not None})
        failed = sum(x.counts.n_failed for x in results)
        lines.append(
            f"- `{task}` v{board_text(r.task.version)}, split {board_text(r.task.split)}, "
            f"mode {board_text(r.task.mode)}: "
            f"{'/'.join(map(str, n))} samples per model, {failed} failed in all."
        )
    reported = [r.reported for r in chosen.values() if r.reported is not None]
    for source, name in sorted({(p["source"], p["file"]) for p in reported}):
        derived = sorted({d for p in reported if p["file"] == name for d in p["derived"]})
        lines.append(
            f"- `[paper]` rows: reported in {source} (`leaderboards/reported/{name}`), not "
            "measured here" + (f"; {'; '.join(derived)}" if derived else "") + "."
        )
    if spec.improvement:
        lines.append("- Improvement: how much better the first model is than the second, positive = better in every "
                     "column (for EER, the reduction).")  # fmt: skip
    harness_versions = sorted({str(r.provenance.get("harness_version")) for r in measured.values()}) or ["(none)"]
    dates = sorted(str(r.provenance.get("date", ""))[:10] for r in measured.values()) or ["–"]
    unit = "in percent" if percent else "raw (0-1; LLM-judge scores 0-2)"
    lines.append(
        f"- Values {unit}; **best** and <ins>second</ins> (of three or more) per column; ± is half the 95% "
        "bootstrap interval where the results carry one; <sup>L</sup> run with --limit, <sup>F</sup> some samples "
        "failed, <sup>V</sup> task versions differ within the column (shown only when the board allows "
        "them)."
    )
    lines.append(
        f"- aigi-harness {', '.join(harness_versions)}; runs from {dates[0]} to {dates[-1]}; "
        f"rendered {_dt.date.today().isoformat()} from {len(measured)} results files."
    )
    return "\n".join(lines)


def render_plots(spec: BoardSpec, results: Sequence[Results | dict[str, Any]], out_dir: Path, stem: str) -> list[Path]:
    """PNG plots named in the spec (:mod:`harness.board_plots`), over the board's chosen results."""
    from harness.board_plots import draw_plots

    everything = with_reported(spec, results)
    spec = for_results(spec, everything)
    return draw_plots(spec, select_results(everything, spec), out_dir, stem)
