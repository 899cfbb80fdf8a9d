"""Report: a task's records -> metrics, intervals, usage, the format audit, and its results files. Calls nothing.

By the time a task reaches :func:`report_task`, every model call and every judge call it needed has been made
(:mod:`harness.executors`, :func:`harness.metrics_runner.make_metric_calls`): metrics are computed with
``calls=False``, so a metric or the bootstrap that tried to call a model or a judge would fail loudly (tested).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.audit import format_shortcut_audit
from harness.interfaces import Metric, MetricContext, ModelAdapter, Task
from harness.metrics_runner import compute_metrics
from harness.records import Sample, SampleRecord
from harness.results import TaskRun, provenance, usage_totals, write_task_results
from harness.results_model import MetricInfo, Results


@dataclass
class ModelIdentity:
    """What names the evaluated model in results: its registry name, adapter, fingerprint and folder."""

    name: str
    adapter: ModelAdapter
    fingerprint: dict[str, Any]
    fingerprint_hash: str
    folder: Path


@dataclass
class TaskInHand:
    """A task listed and planned: what every stage after planning knows of it."""

    name: str
    task: Task
    mode: str
    split: str
    samples: list[Sample]
    n_available: int
    task_fp: dict[str, Any]
    metrics: list[Metric]

    def in_hand(self) -> dict[str, Any]:
        """Just these fields, to hand on to the next stage's record (``AnsweredTask(**started.in_hand(), ...)``)."""
        return {f.name: getattr(self, f.name) for f in fields(TaskInHand)}


@dataclass
class AnsweredTask(TaskInHand):
    """A task whose every call has been made: what reporting needs."""

    records: list[SampleRecord]
    context: MetricContext
    calibration_records: list[SampleRecord] = field(default_factory=list)
    calibration_used: int | None = None
    seen: list[str] | None = None
    #: calls outside the samples: judges by metric name, the model's own (probes) by source name
    judge_usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = 0.0


@dataclass
class TaskReport:
    """A reported task: its results file and what the run summary shows."""

    path: Path
    #: what the results file holds, in memory
    results: Results
    metrics: dict[str, Any]
    n_samples: int
    n_failed: int
    n_cached: int
    seconds: float
    audit: float | None
    audit_majority: float | None
    status: str
    reason: str


def report_task(
    answered: AnsweredTask,
    model: ModelIdentity,
    config: Any,
    plugins: Any,
    command: Sequence[str],
    run_facts: dict[str, Any],
    output_folder: str,
) -> TaskReport:
    """Metrics (with bootstrap intervals), usage, the format audit, provenance, the results files; nothing is
    called. ``run_facts`` joins the provenance (thread plan, the batch size ``auto`` found)."""
    metrics = compute_metrics(
        answered.metrics,
        answered.records,
        context=answered.context,
        bootstrap=config.bootstrap,
        seen=answered.seen,
        breakdowns=answered.task.breakdown_keys,
        average_over=answered.task.average_over,
        calls=False,
    )
    usage = usage_totals(answered.records, answered.calibration_records, answered.judge_usage, answered.model_calls)
    audit = format_shortcut_audit(answered.samples, seed=config.seed) if config.audit else None
    seconds = time.perf_counter() - answered.started
    prov = {**provenance(plugins, command, config.as_dict(), config.seed), **run_facts}
    run = TaskRun(
        model_name=model.name,
        model=model.adapter,
        model_fp=model.fingerprint,
        model_fp_hash=model.fingerprint_hash,
        task=answered.task,
        task_fp=answered.task_fp,
        split=answered.split,
        mode=answered.mode,
        records=answered.records,
        metrics=metrics,
        n_available=answered.n_available,
        limit=config.limit,
        seconds=seconds,
        provenance=prov,
        audit=audit,
        seen=answered.seen,
        n_calibration=answered.calibration_used,
        data_notes=answered.task.data_notes(),
        exports=answered.task.export(answered.records),
        usage=usage,
        task_name=answered.name,
        label=config.label,
        metric_info={m.name: MetricInfo(list(m.value_range), m.higher_is_better) for m in answered.metrics},
    )
    path, results = write_task_results(model.folder / output_folder, run)
    counts = run.counts
    status, reason = "done", ""
    if answered.records and counts.n_failed == counts.n_samples:
        first = next(r.error for r in answered.records if r.error)
        status, reason = "failed", f"all {len(answered.records)} samples failed; the first: {first}"
    return TaskReport(
        path=path,
        results=results,
        metrics=metrics["all"],
        n_samples=counts.n_samples,
        n_failed=counts.n_failed,
        n_cached=counts.n_cached,
        seconds=seconds,
        audit=audit["cv_accuracy"] if audit else None,
        audit_majority=audit.get("majority_rate") if audit else None,
        status=status,
        reason=reason,
    )
