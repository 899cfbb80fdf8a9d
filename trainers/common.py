"""Helpers shared by trainers: feature extraction with per-sample error isolation, and summaries."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.records import Sample


@dataclass
class Extracted:
    """Features of the samples that could be read, and the errors of those that could not."""

    features: np.ndarray
    labels: np.ndarray
    samples: list[Sample]
    errors: list[str] = field(default_factory=list)


def extract(
    samples: Sequence[Sample],
    featurize: Callable[[Sample], np.ndarray],
    desc: str,
    progress: bool = True,
    workers: int | None = None,
) -> Extracted:
    """Apply ``featurize`` to every labelled sample in worker threads; failures are collected, not raised."""
    from harness.progress import progress_bar

    labelled = [s for s in samples if s.label is not None]
    results: list[np.ndarray | None] = [None] * len(labelled)
    errors: list[str] = []

    def work(index: int) -> None:
        try:
            results[index] = featurize(labelled[index])
        except Exception as exc:  # noqa: BLE001 - a bad image is skipped and reported
            errors.append(f"{labelled[index].describe()}: {type(exc).__name__}: {exc}")

    workers = workers or max(1, min(8, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        progress_bar(total=len(labelled), desc=desc, unit="img", enabled=progress, leave=False) as bar,
    ):
        for _ in pool.map(work, range(len(labelled))):
            bar.update(1)
    kept = [i for i, r in enumerate(results) if r is not None]
    if not kept:
        raise ValueError(f"{desc}: no readable labelled samples ({len(errors)} failed)")
    features = np.stack([row for row in results if row is not None])
    labels = np.array([labelled[i].label for i in kept], dtype=np.int64)
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"{desc}: training needs both real and fake samples")
    return Extracted(features, labels, [labelled[i] for i in kept], errors)


def validation_summary(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """AUC, AP and accuracy at 0.5 on a validation split (sklearn)."""
    from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

    summary: dict[str, Any] = {"n": int(labels.size), "acc": float(accuracy_score(labels, scores > 0.5))}
    if len(set(labels.tolist())) == 2:
        summary["auc"] = float(roc_auc_score(labels, scores))
        summary["ap"] = float(average_precision_score(labels, scores))
    return summary


def seen_generators(samples: Sequence[Sample]) -> list[str]:
    """The subsets (generators) of the fake training samples, for Seen/Unseen reporting."""
    return sorted({s.subset for s in samples if s.label == 1})
