"""Board layouts: which columns a board shows for a task, one small class per layout.

A layout turns a task's chosen results into columns, each ``(header, metric, getter)`` where the getter picks a
result's :class:`~harness.results_model.MetricEntry` (``None`` when it has none). A new layout is a class with a
``columns`` method in a new file and one line in :data:`LAYOUTS`; :mod:`harness.boards` does the rest (ranking,
marks, ± intervals, footnotes)::

    class WorstSubsetLayout(Layout):
        def columns(self, spec, task, results):
            metric = spec.metrics[0]
            return [("Worst", metric, lambda r: min(r.metrics.subsets.values(), key=...).get(metric))]

    LAYOUTS["worst_subset"] = WorstSubsetLayout   # or one line in the dict below
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from harness.results_model import MetricEntry, Results

#: (header, metric, getter): one column of a board
Column = tuple[str, str, Callable[[Results], MetricEntry | None]]

METRIC_LABELS = {
    "acc": "Acc",
    "ap": "AP",
    "auc": "AUC",
    "eer": "EER",
    "balanced_acc": "B.Acc",
    "real_acc": "Real",
    "fake_acc": "Fake",
    "qual_acc": "Acc",
    "bleu1": "B.-1",
    "bleu2": "B.-2",
    "rouge_l": "R.-L",
    "bertscore": "Sim.",
    "judge_completeness": "α",
    "judge_preciseness": "ρ",
    "judge_relevance": "κ",
    "avr": "Avr.",
    "acc_val_threshold": "Acc@val-thr",
}


def metric_label(metric: str) -> str:
    """A metric's column header (``auc`` -> ``AUC``)."""
    return METRIC_LABELS.get(metric, metric)


def union(lists: Sequence[Sequence[str] | None]) -> list[str]:
    """Items of every list, in first-seen order."""
    out: list[str] = []
    for items in lists:
        out.extend(i for i in items or [] if i not in out)
    return out


def measured_first(results: Sequence[Results]) -> list[Results]:
    """Runs before a paper's printed rows (a printed row's columns come last)."""
    return sorted(results, key=lambda r: r.reported is not None)


def weighted(entries: Sequence[MetricEntry | None]) -> MetricEntry | None:
    """The sample-weighted mean of entries with a value and a count."""
    present = [e for e in entries if e is not None and e.value is not None and e.n]
    if not present:
        return None
    n = sum(e.n or 0 for e in present)
    return MetricEntry(sum((e.value or 0.0) * (e.n or 0) for e in present) / n, n)


def mean(entries: Sequence[MetricEntry | None]) -> MetricEntry | None:
    """The unweighted mean of entries with a value."""
    values = [e.value for e in entries if e is not None and e.value is not None]
    return MetricEntry(sum(values) / len(values), len(values)) if values else None


Getter = Callable[[Results], MetricEntry | None]


def overall(metric: str) -> Getter:
    """A column's getter: the metric over all samples."""
    return lambda r: r.metrics.all.get(metric)


def of_subset(metric: str, subset: str) -> Getter:
    """A column's getter: the metric on one subset."""
    return lambda r: r.metrics.entry(metric, subset=subset)


def of_group(metric: str, group: str) -> Getter:
    """A column's getter: the metric of one group of subsets (a mean, Seen / Unseen)."""
    return lambda r: r.metrics.entry(metric, group=group)


def of_breakdown(metric: str, breakdown: str, key: str) -> Getter:
    """A column's getter: the metric on one value of a breakdown."""
    return lambda r: r.metrics.breakdown(breakdown).get(key, {}).get(metric)


def combined(combine: Callable[[Sequence[MetricEntry | None]], MetricEntry | None], parts: list[Getter]) -> Getter:
    """A column's getter: ``combine`` (:func:`weighted` or :func:`mean`) over other getters' entries."""
    return lambda r: combine([part(r) for part in parts])


class Layout:
    """One way of laying a task's results out in columns."""

    #: whether each column's header already names its task (else a board of several tasks prefixes it)
    headers_name_task: ClassVar[bool] = False

    def __init__(self, name: str, summaries: bool = False, percent: bool = True):
        self.name = name
        #: whether the layout prints a board-wide "Overall" per declared summary (Table IV)
        self.summaries = summaries
        #: whether its values print in percent (a spec's ``percent: false`` turns it off for any layout)
        self.percent = percent

    def columns(self, spec: Any, task: str, results: Sequence[Results]) -> list[Column]:
        """The task's columns, given its chosen results (measured and printed)."""
        raise NotImplementedError

    def board_tasks(self, spec: Any, found: set[str]) -> list[str]:
        """The tasks the board shows, given the task names of the results at hand (default: the spec's)."""
        return list(spec.tasks)

    def summary_columns(self, spec: Any, by_task: dict[str, list[Results]]) -> list[tuple[str, str]]:
        """Board-wide columns after the tasks' own, ``(header, metric)``: each the mean of the columns of that
        metric before it (default: none)."""
        return []


class MainMetricLayout(Layout):
    """The quick board: one column per task, its main metric (or the spec's first metric)."""

    headers_name_task = True

    def columns(self, spec: Any, task: str, results: Sequence[Results]) -> list[Column]:
        """``task (Metric)``."""
        metric = spec.metrics[0] if spec.metrics else results[0].task.main_metric
        return [(f"{task} ({metric_label(metric)})", metric, overall(metric))]


class MetricsLayout(Layout):
    """Paper Fig. 6: one column per metric over all samples."""

    def columns(self, spec: Any, task: str, results: Sequence[Results]) -> list[Column]:
        """``Acc | AP | AUC``."""
        return [(metric_label(m), m, overall(m)) for m in spec.metrics]


class PerSubsetLayout(Layout):
    """Paper Tables V / VI: one metric per generator or platform, then Unseen (when declared) and Average."""

    def columns(self, spec: Any, task: str, results: Sequence[Results]) -> list[Column]:
        """A column per generator, then the group means."""
        metric = spec.metrics[0]
        generators = union([r.metrics.generators(metric) for r in measured_first(results)])
        cols: list[Column] = [(subset, metric, of_subset(metric, subset)) for subset in generators]
        if "unseen" in results[0].metrics.groups:
            cols.append(("Unseen", metric, of_group(metric, "unseen")))
        cols.append(("Average", metric, of_group(metric, "mean_over_generators")))
        return cols


class DeclaredLayout(Layout):
    """Paper Tables III and IV: the columns the task declares (``Task.board_columns``), travelling in its results
    files, so boards know no benchmark's breakdowns. Column specs:

    - ``{"header": H, "all": true}``: the overall value; with ``"metrics": [...]``, one column per metric;
    - ``{"header": H, "breakdown": B, "keys": [...]}``: that breakdown's value, weighted by count over the keys
      present;
    - ``{"header": H, "mean_of": B, "except": [...]}``: the unweighted mean over the breakdown's keys;
    - ``{"each_of": B, "except": [...], "metrics": [...]}``: one column per key (every result's keys, in
      order), per metric;
    - ``{"summary": M}``: a board-wide mean of the M columns (:attr:`summaries`).
    """

    def columns(self, spec: Any, task: str, results: Sequence[Results]) -> list[Column]:
        """The declared columns."""
        return declared_columns(declared(task, self.name, results), results, "qual_acc")

    def summary_columns(self, spec: Any, by_task: dict[str, list[Results]]) -> list[tuple[str, str]]:
        """Table IV's Overall: per declared summary metric, the mean of every ability's column of it."""
        if not self.summaries:
            return []
        metrics = {
            c["summary"]
            for task, results in by_task.items()
            for c in declared(task, self.name, results) or []
            if "summary" in c
        }
        return [("Overall", metric) for metric in sorted(metrics)]


def level_order(name: str) -> tuple[str, float]:
    """A robustness level's place in its sweep, mildest first: JPEG quality falling, blur σ rising, the resize
    scale falling (``aigi-mini+jpeg-q70`` -> ``("jpeg", -70)``)."""
    last = name.rsplit("+", 1)[-1]
    kind, _, code = last.partition("-")
    try:
        value = float(code[1:])
    except ValueError:
        return (last, 0.0)
    return (kind, value if kind == "blur" else -value)


class RobustnessLayout(Layout):
    """A robustness sweep (``--perturb``): for each task of the spec, one column per level found among the results
    (``aigi-mini+jpeg-q90`` ...), mildest first, then the mean over the levels: the sweep's one robustness number.
    The unperturbed run is on the task's own boards."""

    headers_name_task = True

    def board_tasks(self, spec: Any, found: set[str]) -> list[str]:
        """Every level of the spec's tasks that the results hold."""
        return [
            name
            for task in spec.tasks
            for name in sorted((n for n in found if n.startswith(f"{task}+")), key=level_order)
        ]

    def columns(self, spec: Any, task: str, results: Sequence[Results]) -> list[Column]:
        """The level's column, headed by the task's level name (``aigi-mini+jpeg-q70``)."""
        metric = spec.metrics[0] if spec.metrics else results[0].task.main_metric
        return [(task, metric, overall(metric))]

    def summary_columns(self, spec: Any, by_task: dict[str, list[Results]]) -> list[tuple[str, str]]:
        """The mean over the levels."""
        metric = spec.metrics[0] if spec.metrics else next(iter(by_task.values()))[0].task.main_metric
        return [("Mean over levels", metric)] if by_task else []


def declared(task: str, layout: str, results: Sequence[Results]) -> list[dict[str, Any]] | None:
    """The task's column specs for a layout: from its results files (``task.board_columns``), else from the task
    class itself through the registry (printed rows, results written before tasks declared columns)."""
    for result in results:
        columns = result.task.board_columns.get(layout)
        if columns:
            return list(columns)
    try:
        from harness.plugin_manager import get_plugins

        return getattr(get_plugins().get("task", task).load(), "board_columns", {}).get(layout)
    except Exception:  # noqa: BLE001 - an unknown task simply declares nothing
        return None


def _keys(results: Sequence[Results], breakdown: str, excluded: Sequence[str]) -> list[str]:
    """A breakdown's keys over every result (measured first), less the excluded ones."""
    found = union([sorted(r.metrics.breakdown(breakdown)) for r in measured_first(results)])
    return [k for k in found if k not in excluded]


def declared_columns(specs: list[dict[str, Any]] | None, results: Sequence[Results], metric: str) -> list[Column]:
    """Columns from a task's column specs (see :class:`DeclaredLayout`)."""
    cols: list[Column] = []

    def label(text: str, m: str) -> str:
        return f"{text}: {metric_label(m)}" if text else metric_label(m)

    for col in specs or []:
        metrics = col.get("metrics", [metric])
        if col.get("all"):
            cols += [(col.get("header") or label("", m), m, overall(m)) for m in metrics]
        elif "breakdown" in col:
            parts = col["keys"]
            cols += [
                (col["header"], m, combined(weighted, [of_breakdown(m, col["breakdown"], k) for k in parts]))
                for m in metrics
            ]
        elif "mean_of" in col:
            keys = _keys(results, col["mean_of"], col.get("except", []))
            cols += [
                (col["header"], m, combined(mean, [of_breakdown(m, col["mean_of"], k) for k in keys])) for m in metrics
            ]
        elif "each_of" in col:
            for key in _keys(results, col["each_of"], col.get("except", [])):
                cols += [
                    (label(key, m) if "metrics" in col else key, m, of_breakdown(m, col["each_of"], key))
                    for m in metrics
                ]
    return cols


#: layout name -> the layout (a board spec's ``layout:``); a new layout is one line here
LAYOUTS: dict[str, Layout] = {
    "metrics": MetricsLayout("metrics"),
    "per_subset": PerSubsetLayout("per_subset"),
    "qualitative": DeclaredLayout("qualitative"),
    "transparency": DeclaredLayout("transparency", summaries=True, percent=False),  # LLM-judge scores are 0-2
    "main_metric": MainMetricLayout("main_metric"),
    "robustness": RobustnessLayout("robustness"),
}
