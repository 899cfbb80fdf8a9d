"""Metric results kept with the labels and scores they came from: a rerun over the same records computes nothing
again (issue #31).

A score metric's value and its bootstrap interval are functions of the (label, score) arrays, the threshold a
metric takes from the validation split, the resampling settings and the code that computes them. :func:`memo_key`
digests all of these; the run's response cache keeps the result under that key (``metric_values`` and
``intervals`` tables, :class:`harness.cache.MemoTable`), so a cached rerun reads fifteen small rows where it would
call scikit-learn fifteen times (each call ~0.7 ms of argument checks alone, whatever the size: most of a cached
rerun's fixed cost at 1,000 samples).

The code is part of the key (:func:`code_identity`): the metric class's module file (path, size, modification
time) and the versions of the harness, NumPy and scikit-learn; an edited metric or an upgraded library computes
afresh instead of reading what older code computed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from importlib import metadata

import numpy as np

from harness.interfaces import Metric, MetricContext, Thresholded


@functools.cache
def _versions() -> str:
    found = []
    for package in ("aigi-harness", "numpy", "scikit-learn"):
        try:
            found.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package}=?")
    return ";".join(found)


@functools.cache
def code_identity(metric_type: type) -> str:
    """What identifies the code of ``metric_type`` within this process: its module and class, the module file's
    path, size and modification time, and the versions of the harness, NumPy and scikit-learn."""
    module = sys.modules.get(metric_type.__module__)
    path = getattr(module, "__file__", None) or ""
    try:
        stat = os.stat(path) if path else None
    except OSError:
        stat = None
    file_part = f"{path}:{stat.st_size}:{stat.st_mtime_ns}" if stat else path
    return f"{metric_type.__module__}.{metric_type.__qualname__}|{file_part}|{_versions()}"


def memo_key(
    kind: str, metric: Metric, labels: np.ndarray, scores: np.ndarray, context: MetricContext | None, *parts: str
) -> str:
    """The digest a result of ``kind`` (``"value"``, ``"interval"``) of ``metric`` over these labels and scores is
    kept under: the metric's name and code, the threshold it takes from the validation split (a
    :class:`~harness.interfaces.Thresholded` metric), ``parts`` (resamples, seed) and the arrays themselves."""
    threshold = repr(metric.threshold(context)) if isinstance(metric, Thresholded) and context is not None else ""
    digest = hashlib.sha256()
    for part in (kind, metric.name, code_identity(type(metric)), threshold, *parts):
        digest.update(part.encode() + b"\0")
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(scores, dtype=np.float64).tobytes())
    return digest.hexdigest()
