"""Apply metrics to records: per-sample values, then aggregates over all samples and per subset."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from harness.interfaces import Metric
from harness.records import FAKE, REAL, SampleRecord


def usable(records: Sequence[SampleRecord], requires: str) -> list[SampleRecord]:
    """Records without error that carry a label and the field a metric needs."""
    out = []
    for record in records:
        if record.error is not None or record.label is None:
            continue
        if requires == "score" and record.score is None:
            continue
        if requires == "text" and record.text is None:
            continue
        out.append(record)
    return out


def compute_metrics(metrics: Sequence[Metric], records: Sequence[SampleRecord],
                    pair_real_pool: bool = True) -> dict[str, Any]:
    """``{"all": {metric: value}, "subsets": {subset: {metric: value}}, "pairing": {subset: note}}``.

    Per-sample values are written into each record's ``metrics`` field. A subset
    that holds only fake images (one generator of a benchmark whose reals sit in a
    shared pool) is scored together with every real image of the run when
    ``pair_real_pool`` is true, as AntiFakePrompt / SynthWildX / Cozzolino et al.
    pair each generator with all reals; the pairing is stated in ``pairing``.
    """
    for metric in metrics:
        for record in usable(records, metric.requires):
            value = metric.per_sample(record)
            if value is not None:
                record.metrics[metric.name] = value
    by_subset: dict[str, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_subset[record.subset].append(record)
    result: dict[str, Any] = {"all": {}, "subsets": {}, "pairing": {}}
    for metric in metrics:
        result["all"][metric.name] = metric.aggregate(usable(records, metric.requires)).as_dict()
    reals = [r for r in records if r.label == REAL]
    for subset in sorted(by_subset):
        members = by_subset[subset]
        labels = {r.label for r in members if r.error is None and r.label is not None}
        if pair_real_pool and labels == {FAKE} and reals:
            pool_subsets = sorted({r.subset for r in reals})
            result["pairing"][subset] = (f"{len(members)} fakes of {subset} + the shared real pool: "
                                         f"{len(reals)} reals from {', '.join(pool_subsets)}")
            members = members + reals
        result["subsets"][subset] = {
            metric.name: metric.aggregate(usable(members, metric.requires)).as_dict() for metric in metrics}
    return result
