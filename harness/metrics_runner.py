"""Apply metrics to records: per-sample values, aggregates over all samples, per subset and per group.

Output of :func:`compute_metrics`::

    {"all":      {metric: value-dict},           # with "ci" when bootstrapped
     "subsets":  {subset: {metric: value-dict}},
     "pairing":  {subset: "how a fake-only subset was paired with reals"},
     "groups":   {"mean_over_subsets": {...},     # every subset: only where the task averages so
                                                   # (AntifakePrompt's "Avg"), see Task.average_over
                  "mean_over_generators": {metric: value-dict},
                  "average": {"group": ..., "over": [...]},  # which group is the benchmark's own average
                  "seen": {...}, "unseen": {...}},  # when seen generators are declared
     "breakdowns": {metadata key: {value: {metric: value-dict}}}  # e.g. FakeClass question types

A value-dict is :meth:`MetricValue.as_dict`. Group values are the unweighted mean
of the per-generator values (paper Table VI "Average" / "Unseen" columns); the
generators averaged are those subsets that hold fake images.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from harness.bootstrap import stratified_bootstrap_ci
from harness.interfaces import (
    ArrayMetric,
    FastArrayMetric,
    Metric,
    MetricContext,
    MetricValue,
    WeightedMetric,
)
from harness.metric_memo import memo_key
from harness.records import FAKE, REAL, SampleRecord


def usable(records: Sequence[SampleRecord], requires: str) -> list[SampleRecord]:
    """Records without error that carry a label and the field a metric needs (one comprehension per kind of
    need: this filter runs over every record several times per task)."""
    if requires == "score":
        return [r for r in records if r.error is None and r.label is not None and r.score is not None]
    if requires == "text":
        return [r for r in records if r.error is None and r.label is not None and r.text is not None]
    return [r for r in records if r.error is None and r.label is not None]


def _evaluate(
    metrics: Sequence[Metric],
    records: Sequence[SampleRecord],
    context: MetricContext | None,
    pool: Sequence[SampleRecord] = (),
) -> dict[str, MetricValue]:
    """Every metric over ``records``; metrics that pair with the real pool also over ``pool``."""
    values: dict[str, MetricValue] = {}
    chosen: dict[tuple[bool, str], list[SampleRecord]] = {}  # the usable records, filtered once per kind of need
    for metric in metrics:
        if not metric.depends_on:
            need = (metric.pairs_with_real_pool and bool(pool), metric.requires)  # no pool: the same records
            if need not in chosen:
                members = list(records) + list(pool) if metric.pairs_with_real_pool else records
                chosen[need] = usable(members, metric.requires)
            values[metric.name] = metric.aggregate(chosen[need], context)
    for metric in metrics:
        if metric.depends_on:
            values[metric.name] = metric.derive(values)
    return values


def _group_mean(
    subset_values: dict[str, dict[str, MetricValue]], subsets: Iterable[str], names: Iterable[str]
) -> dict[str, Any]:
    subsets = list(subsets)
    out = {}
    for name in names:
        present = [float(v) for s in subsets if (v := subset_values[s][name].value) is not None]
        missing = len(subsets) - len(present)
        note = f"{missing} of {len(subsets)} generators undefined, left out" if missing else None
        out[name] = MetricValue(
            float(np.mean(present)) if present else None, len(present), note, data={"generators": subsets}
        ).as_dict()
    return out


def bootstrap_interval(
    metric: Metric, records: Sequence[SampleRecord], context: MetricContext, n_resamples: int
) -> list[float] | None:
    """95% interval of one metric: every resample at once when the metric takes sample weights (``from_weights``,
    the detection metrics), else on arrays when it offers ``from_arrays``, else on records. An interval is
    cached with the labels and scores it came from (``context.intervals``): a rerun with the same records
    reuses it."""
    labels = np.array([r.label for r in records])
    from_weights = metric.from_weights if isinstance(metric, WeightedMetric) else None
    from_arrays = (
        metric.fast_from_arrays
        if isinstance(metric, FastArrayMetric)
        else metric.from_arrays
        if isinstance(metric, ArrayMetric)
        else None
    )
    if from_arrays is not None:
        scores = np.array([r.score for r in records], dtype=np.float64)
        key = memo_key("interval", metric, labels, scores, context, str(n_resamples), str(context.seed))
        cached = context.intervals.get(key) if context.intervals is not None and key else None
        if cached is not None:
            return list(cached) if cached else None
        interval = stratified_bootstrap_ci(
            labels,
            lambda idx: from_arrays(labels[idx], scores[idx], context),
            n_resamples,
            context.seed,
            weighted=(lambda w: from_weights(labels, scores, w, context)) if from_weights is not None else None,
        )
        if context.intervals is not None and key:
            context.intervals.put(key, interval or [])
        return interval
    if metric.mean_of_per_sample:
        # a mean of per-sample values: resample the samples that have one (those without are left out of the
        # value too, e.g. judge failures); never recomputed, so a metric that makes calls makes none here
        having = [r for r in records if r.metrics.get(metric.name) is not None]
        if not having:
            return None
        labels = np.array([r.label for r in having])
        values = np.array([r.metrics[metric.name] for r in having], dtype=np.float64)
        return stratified_bootstrap_ci(labels, lambda idx: float(values[idx].mean()), n_resamples, context.seed)
    return stratified_bootstrap_ci(
        labels, lambda idx: metric.aggregate([records[i] for i in idx], context).value, n_resamples, context.seed
    )


def per_sample_values(
    metrics: Sequence[Metric], records: Sequence[SampleRecord], context: MetricContext | None, calls: bool
) -> None:
    """Each metric's per-sample values, written into ``record.metrics`` where not there yet: the metrics that
    make calls (``calls=True``) or the others (``calls=False``)."""
    for metric in metrics:
        if metric.depends_on or metric.makes_calls != calls:
            continue
        candidates = [r for r in usable(records, metric.requires) if metric.name not in r.metrics]
        for record, value in zip(candidates, metric.per_sample_batch(candidates, context), strict=False):
            if value is not None:
                record.metrics[metric.name] = value


def make_metric_calls(metrics: Sequence[Metric], records: Sequence[SampleRecord], context: MetricContext) -> None:
    """The execute stage's part of the metrics: the per-sample values of the metrics that make paid calls (the LLM
    judges), asked once per run (each distinct prompt once, cached); afterwards :func:`compute_metrics` with
    ``calls=False`` reports without calling anything."""
    per_sample_values(metrics, records, context, calls=True)


def _groups(
    subset_values: dict[str, dict[str, MetricValue]],
    generators: list[str],
    names: list[str],
    average_over: str,
    seen: Iterable[str] | None,
) -> dict[str, Any]:
    """The group means: over every subset (where the task averages so), over the generators, over the seen and
    unseen generators; ``average`` names the benchmark's own average."""
    groups: dict[str, Any] = {}
    if average_over not in ("generators", "subsets"):
        raise ValueError(f"average_over must be 'generators' or 'subsets', not {average_over!r}")
    if average_over == "subsets" and len(subset_values) > 1:
        groups["mean_over_subsets"] = _group_mean(subset_values, sorted(subset_values), names)
        groups["average"] = {"group": "mean_over_subsets", "over": sorted(subset_values)}
    if generators:
        groups["mean_over_generators"] = _group_mean(subset_values, generators, names)
        groups.setdefault("average", {"group": "mean_over_generators", "over": generators})
    if seen is not None:
        seen = set(seen)
        for label, chosen in (
            ("seen", [g for g in generators if g in seen]),
            ("unseen", [g for g in generators if g not in seen]),
        ):
            if chosen:
                groups[label] = _group_mean(subset_values, chosen, names)
        groups["seen_generators"] = sorted(seen)
    return groups


def compute_metrics(
    metrics: Sequence[Metric],
    records: Sequence[SampleRecord],
    *,
    context: MetricContext | None = None,
    pair_real_pool: bool = True,
    bootstrap: int = 0,
    seen: Iterable[str] | None = None,
    breakdowns: Iterable[str] = (),
    average_over: str = "generators",
    calls: bool = True,
) -> dict[str, Any]:
    """Per-sample values (written into ``record.metrics``), then the aggregates described above.

    A subset that holds only fake images (one generator of a benchmark whose reals
    sit in a shared pool) is scored together with every real image of the run when
    ``pair_real_pool`` is true, for the metrics that need both classes
    (``Metric.pairs_with_real_pool``: AP, AUC, EER, balanced accuracy), as
    AntiFakePrompt / SynthWildX / Cozzolino et al. pair each generator with all reals;
    accuracies stay the subset's own (its fake recall), as upstream computes them per
    folder. The pairing is stated in ``pairing``. ``average_over`` (the task's
    :attr:`Task.average_over`) says whether ``groups.mean_over_subsets`` exists (every
    subset, AntifakePrompt's "Avg") besides ``mean_over_generators``; ``groups.average``
    names the benchmark's own average. ``bootstrap`` > 0 adds label-stratified 95%
    intervals to the overall values. ``calls=False`` (the runner, after :func:`make_metric_calls`): the metrics
    that make paid calls are not asked for values here; what they have is reported, nothing is called.
    """
    context = context or MetricContext()
    if calls:
        make_metric_calls(metrics, records, context)
    per_sample_values(metrics, records, context, calls=False)

    overall = _evaluate(metrics, records, context)
    if bootstrap > 0:
        for metric in metrics:
            aggregate = overall[metric.name]
            if metric.depends_on or not metric.bootstrap or aggregate.value is None:
                continue
            aggregate.ci = bootstrap_interval(metric, usable(records, metric.requires), context, bootstrap)

    by_subset: dict[str, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_subset[record.subset].append(record)
    reals = [r for r in records if r.label == REAL]
    result: dict[str, Any] = {"all": {k: v.as_dict() for k, v in overall.items()}, "subsets": {}, "pairing": {}}
    subset_values: dict[str, dict[str, MetricValue]] = {}
    generators = []
    for subset in sorted(by_subset):
        members = by_subset[subset]
        labels = {r.label for r in members if r.error is None and r.label is not None}
        if FAKE in labels:
            generators.append(subset)
        pool: list[SampleRecord] = []
        if pair_real_pool and labels == {FAKE} and reals:
            pool_subsets = sorted({r.subset for r in reals})
            paired = [m.name for m in metrics if m.pairs_with_real_pool] or ["none"]
            result["pairing"][subset] = (
                f"{len(members)} fakes of {subset} + the shared real pool: "
                f"{len(reals)} reals from {', '.join(pool_subsets)} (for "
                f"{', '.join(paired)}; the other metrics on the subset alone)"
            )
            pool = reals
        subset_values[subset] = _evaluate(metrics, members, context, pool)
        result["subsets"][subset] = {k: v.as_dict() for k, v in subset_values[subset].items()}

    names = [m.name for m in metrics if m.bootstrap or m.depends_on]
    result["groups"] = _groups(subset_values, generators, names, average_over, seen)
    for key in breakdowns:
        by_value: dict[str, list[SampleRecord]] = defaultdict(list)
        for record in records:
            by_value[str(record.metadata.get(key))].append(record)
        result.setdefault("breakdowns", {})[key] = {
            value: {k: v.as_dict() for k, v in _evaluate(metrics, members, context).items()}
            for value, members in sorted(by_value.items())
        }
    return result
