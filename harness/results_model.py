"""The results file as types: what ``results_<time>.json`` holds, declared once.

A run builds a :class:`Results` in memory (:func:`harness.results.write_task_results`), writes its
:meth:`Results.to_json`, and hands the same object to the run's caller (:func:`harness.evaluate`) and to boards;
:meth:`Results.from_json` reads a file back, validating what boards read (:func:`harness.results.load_results`).
``Results.from_json(r.to_json()) == r`` for every file a run writes (tested), so a reader never sees more or less
than the writer wrote.

Layout::

    Results
      model: ModelInfo        name, label / display name, args, fingerprint (+ hash), preprocessing, request kinds
      task: TaskInfo          name, version, split, mode, main metric, fingerprint (+ hash), board columns,
                              metrics: {name: MetricInfo(range, higher_is_better)}: direction, declared by the metric
      metrics: MetricTable    all / subsets / groups / breakdowns: {metric: MetricEntry(value, n, note, ci, ...)}
      counts: Counts          n_samples, n_scored, n_failed, n_cached, n_available, limit, n_calibration
      usage, data, exports, audit, failures, seconds, provenance (open JSON: they vary by model and task)

A metric's direction lives in one place: the metric class (``Metric.higher_is_better``), recorded per task in
``task.metrics``; boards read it from there (:meth:`TaskInfo.higher_is_better`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_SCHEMA = 1

#: a group of ``metrics.groups`` that describes rather than holds values
_GROUP_FACTS = ("average", "seen_generators")


@dataclass
class MetricEntry:
    """One aggregate value: ``value`` (``None`` when undefined, with a ``note`` saying why), the samples it stands
    on, its 95 % bootstrap interval and any non-scalar data (curves, thresholds)."""

    value: float | None
    n: int | None = None
    note: str | None = None
    ci: list[float] | None = None
    data: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> MetricEntry:
        """An entry of a results file."""
        return cls(entry.get("value"), entry.get("n"), entry.get("note"), entry.get("ci"), entry.get("data"))

    def to_json(self) -> dict[str, Any]:
        """As written: value, n and note always; ci and data when present."""
        out: dict[str, Any] = {"value": self.value, "n": self.n, "note": self.note}
        if self.ci is not None:
            out["ci"] = self.ci
        if self.data is not None:
            out["data"] = self.data
        return out

    @property
    def half_ci(self) -> float | None:
        """Half the width of the interval (what boards print as ±)."""
        return (self.ci[1] - self.ci[0]) / 2 if self.ci else None


Values = dict[str, MetricEntry]


def _values(section: Any) -> Values:
    """``{metric: entry}`` from JSON (entries that are not objects are skipped)."""
    return {k: MetricEntry.from_json(v) for k, v in (section or {}).items() if isinstance(v, dict)}


def _json(values: Values) -> dict[str, Any]:
    return {k: v.to_json() for k, v in values.items()}


@dataclass
class MetricTable:
    """Every aggregate of a task: over all samples, per subset (generator / platform), per group of subsets
    (means, seen / unseen) and per breakdown value; ``pairing`` says which subsets were scored with the shared
    real pool; ``reported_columns`` holds a paper's printed aggregates (reported rows only)."""

    all: Values = field(default_factory=dict)
    subsets: dict[str, Values] = field(default_factory=dict)
    pairing: dict[str, str] = field(default_factory=dict)
    groups: dict[str, Values] = field(default_factory=dict)
    #: ``{"group": name, "over": [subsets]}``: which group is the benchmark's own average
    average: dict[str, Any] | None = None
    #: the generators seen in training, when known (the Seen / Unseen groups are over them)
    seen_generators: list[str] | None = None
    breakdowns: dict[str, dict[str, Values]] | None = None
    reported_columns: dict[str, Values] | None = None

    @classmethod
    def from_json(cls, metrics: dict[str, Any]) -> MetricTable:
        """The ``metrics`` object of a results file."""
        groups = metrics.get("groups") or {}
        breakdowns = metrics.get("breakdowns")
        reported = metrics.get("reported_columns")
        return cls(
            all=_values(metrics.get("all")),
            subsets={k: _values(v) for k, v in (metrics.get("subsets") or {}).items()},
            pairing=dict(metrics.get("pairing") or {}),
            groups={k: _values(v) for k, v in groups.items() if k not in _GROUP_FACTS},
            average=groups.get("average"),
            seen_generators=groups.get("seen_generators"),
            breakdowns=None
            if breakdowns is None
            else {k: {value: _values(v) for value, v in by.items()} for k, by in breakdowns.items()},
            reported_columns=None if reported is None else {k: _values(v) for k, v in reported.items()},
        )

    def to_json(self) -> dict[str, Any]:
        """As written (``breakdowns`` / ``reported_columns`` only when present)."""
        groups: dict[str, Any] = {k: _json(v) for k, v in self.groups.items()}
        if self.average is not None:
            groups["average"] = self.average
        if self.seen_generators is not None:
            groups["seen_generators"] = self.seen_generators
        out: dict[str, Any] = {
            "all": _json(self.all),
            "subsets": {k: _json(v) for k, v in self.subsets.items()},
            "pairing": self.pairing,
            "groups": groups,
        }
        if self.breakdowns is not None:
            out["breakdowns"] = {k: {value: _json(v) for value, v in by.items()} for k, by in self.breakdowns.items()}
        if self.reported_columns is not None:
            out["reported_columns"] = {k: _json(v) for k, v in self.reported_columns.items()}
        return out

    def entry(self, metric: str, subset: str | None = None, group: str | None = None) -> MetricEntry | None:
        """A metric's entry over all samples, one subset or one group (``None`` when absent)."""
        if subset is not None:
            return self.subsets.get(subset, {}).get(metric)
        if group is not None:
            return self.groups.get(group, {}).get(metric)
        return self.all.get(metric)

    def generators(self, metric: str) -> list[str]:
        """The generator subsets of a metric, as its generator mean lists them (else every subset, sorted)."""
        mean = self.groups.get("mean_over_generators", {}).get(metric)
        listed = (mean.data or {}).get("generators") if mean is not None else None
        return list(listed) if listed else sorted(self.subsets)

    def breakdown(self, key: str) -> dict[str, Values]:
        """A breakdown's values (``{}`` when the results have none by that key)."""
        return (self.breakdowns or {}).get(key, {})


@dataclass
class MetricInfo:
    """What a metric declares about its values: the range they lie in and whether higher is better."""

    range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    higher_is_better: bool = True

    def to_json(self) -> dict[str, Any]:
        """As written."""
        return {"range": self.range, "higher_is_better": self.higher_is_better}


@dataclass
class ModelInfo:
    """The evaluated model: registry name, what boards call it, its arguments and identity."""

    name: str
    fingerprint_hash: str
    args: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    request_kinds: list[str] = field(default_factory=list)
    #: the served model's own name (API models)
    display_name: str | None = None
    #: ``--label``
    label: str | None = None
    run_notes: dict[str, Any] | None = None

    @property
    def shown_name(self) -> str:
        """What boards call it: the ``--label``, else the served model's name, else the registry name."""
        return self.label or self.display_name or self.name

    @classmethod
    def from_json(cls, model: dict[str, Any]) -> ModelInfo:
        """The ``model`` object of a results file."""
        return cls(
            name=model["name"],
            fingerprint_hash=model.get("fingerprint_hash", ""),
            args=model.get("args") or {},
            fingerprint=model.get("fingerprint") or {},
            preprocessing=model.get("preprocessing") or {},
            request_kinds=list(model.get("request_kinds") or []),
            display_name=model.get("display_name"),
            label=model.get("label"),
            run_notes=model.get("run_notes"),
        )

    def to_json(self) -> dict[str, Any]:
        """As written (display name, label and run notes only when present)."""
        return {
            "name": self.name,
            **({"display_name": self.display_name} if self.display_name else {}),
            **({"label": self.label} if self.label else {}),
            "args": self.args,
            "fingerprint": self.fingerprint,
            "fingerprint_hash": self.fingerprint_hash,
            "preprocessing": self.preprocessing,
            "request_kinds": self.request_kinds,
            **({"run_notes": self.run_notes} if self.run_notes else {}),
        }


@dataclass
class TaskInfo:
    """The task as run: name, version, split, mode, main metric, identity, its board columns and what each of its
    metrics declares."""

    name: str
    version: str
    split: str
    mode: str
    main_metric: str
    fingerprint: dict[str, Any] = field(default_factory=dict)
    fingerprint_hash: str = ""
    board_columns: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, MetricInfo] = field(default_factory=dict)

    @classmethod
    def from_json(cls, task: dict[str, Any]) -> TaskInfo:
        """The ``task`` object of a results file (``higher_is_better`` of files before direction was per metric
        is dropped: it said ``true`` for every metric)."""
        return cls(
            name=task["name"],
            version=str(task.get("version", "")),
            split=task.get("split", ""),
            mode=task.get("mode", ""),
            main_metric=task.get("main_metric", ""),
            fingerprint=task.get("fingerprint") or {},
            fingerprint_hash=task.get("fingerprint_hash", ""),
            board_columns=task.get("board_columns") or {},
            metrics={
                k: MetricInfo(list(v.get("range") or (0.0, 1.0)), bool(v.get("higher_is_better", True)))
                for k, v in (task.get("metrics") or {}).items()
                if isinstance(v, dict)
            },
        )

    def to_json(self) -> dict[str, Any]:
        """As written."""
        return {
            "name": self.name,
            "version": self.version,
            "split": self.split,
            "mode": self.mode,
            "main_metric": self.main_metric,
            "fingerprint": self.fingerprint,
            "fingerprint_hash": self.fingerprint_hash,
            "board_columns": self.board_columns,
            "metrics": {k: v.to_json() for k, v in self.metrics.items()},
        }

    def higher_is_better(self, metric: str) -> bool | None:
        """The metric's direction as it declared it (``None`` when this task's results do not say)."""
        info = self.metrics.get(metric)
        return None if info is None else info.higher_is_better


@dataclass
class Counts:
    """How many samples the task had, were evaluated, scored, failed, came from the cache, calibrated."""

    n_samples: int | None = None
    n_scored: int | None = None
    n_failed: int = 0
    n_cached: int = 0
    n_available: int | None = None
    #: ``--limit`` (a count, or a fraction below 1), ``None`` for a full run
    limit: int | float | None = None
    n_calibration: int | None = None

    @classmethod
    def from_json(cls, counts: dict[str, Any]) -> Counts:
        """The ``counts`` object of a results file."""
        defaults = cls()
        return cls(**{k: counts.get(k, getattr(defaults, k)) for k in defaults.__dict__})

    def to_json(self) -> dict[str, Any]:
        """As written."""
        return dict(self.__dict__)

    @property
    def limited(self) -> bool:
        """Whether the run was a ``--limit`` quick look."""
        return self.limit is not None


@dataclass
class Results:
    """One run of one model on one task: the whole results file."""

    model: ModelInfo
    task: TaskInfo
    metrics: MetricTable
    counts: Counts
    schema: int = RESULTS_SCHEMA
    created: str = ""
    run_file: str = ""
    samples_file: str = ""
    seen_generators: list[str] | None = None
    usage: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    exports: list[str] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)
    #: ``results.json``: the folder's latest run
    latest: bool = False
    #: a paper's printed row (:mod:`harness.reported`), not a run: ``{source, table, row, file, derived}``
    reported: dict[str, Any] | None = None
    #: the file it was read from (not written)
    path: Path | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str | Path | None = None) -> Results:
        """A results file's content (checked by :func:`harness.results.validate_results` before, when read)."""
        return cls(
            model=ModelInfo.from_json(data["model"]),
            task=TaskInfo.from_json(data["task"]),
            metrics=MetricTable.from_json(data.get("metrics") or {}),
            counts=Counts.from_json(data.get("counts") or {}),
            schema=data.get("schema", RESULTS_SCHEMA),
            created=data.get("created", ""),
            run_file=data.get("run_file", ""),
            samples_file=data.get("samples_file", ""),
            seen_generators=data.get("seen_generators"),
            usage=data.get("usage"),
            data=data.get("data") or {},
            exports=list(data.get("exports") or []),
            audit=data.get("audit") or {},
            failures=list(data.get("failures") or []),
            seconds=float(data.get("seconds") or 0.0),
            provenance=data.get("provenance") or {},
            latest=bool(data.get("latest", False)),
            reported=data.get("reported"),
            path=Path(path) if path is not None else (Path(data["_path"]) if data.get("_path") else None),
        )

    def to_json(self) -> dict[str, Any]:
        """The results file's content (``latest`` and ``reported`` only when set)."""
        out: dict[str, Any] = {
            "schema": self.schema,
            "created": self.created,
            "run_file": self.run_file,
            "samples_file": self.samples_file,
            "model": self.model.to_json(),
            "task": self.task.to_json(),
            "metrics": self.metrics.to_json(),
            "counts": self.counts.to_json(),
            "seen_generators": self.seen_generators,
            "usage": self.usage,
            "data": self.data,
            "exports": self.exports,
            "audit": self.audit,
            "failures": self.failures,
            "seconds": self.seconds,
            "provenance": self.provenance,
        }
        if self.latest:
            out["latest"] = True
        if self.reported is not None:
            out["reported"] = self.reported
        return out

    @property
    def finished(self) -> str:
        """When the run finished (files from before timestamps: their provenance date)."""
        return str(self.created or self.provenance.get("date", ""))


def as_results(item: Results | dict[str, Any]) -> Results:
    """A :class:`Results` from itself or from a results file's JSON (boards and scripts may pass either)."""
    return item if isinstance(item, Results) else Results.from_json(item)
