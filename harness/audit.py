"""The format-shortcut audit: how well do file storage properties alone predict the label?

For every task the runner fits a logistic regression on one-hot storage tokens
(format, width, height, colour mode, JPEG quality: :func:`storage_tokens`, which the
``format-shortcut`` model plugin uses too) and reports its stratified 5-fold
cross-validated accuracy next to the results, with the majority-class rate
for reference. On FakeBench-FakeClass format alone scores about 72%; on
aigi-mini it is at chance by construction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.images import ImageLoadError, file_metadata
from harness.records import Sample

FOLDS = 5


HEADER_FIELDS = ("format", "width", "height", "mode", "jpeg_quality")


def header_of(sample: Sample) -> dict[str, Any]:
    """The storage facts of a sample: from its metadata when the task's listing already read the header
    (every field present, no header error), else read from the file now."""
    metadata = sample.metadata or {}
    if "header_error" in metadata:
        raise ImageLoadError(metadata["header_error"])
    if all(key in metadata for key in HEADER_FIELDS) and metadata.get("format"):
        return {key: metadata[key] for key in HEADER_FIELDS}
    return file_metadata(sample.image)


def storage_tokens(metadata: dict[str, Any]) -> list[str]:
    """The categorical tokens of one file's container metadata."""
    return [
        f"format={metadata['format']}",
        f"width={metadata['width']}",
        f"height={metadata['height']}",
        f"mode={metadata['mode']}",
        f"jpeg_quality={metadata['jpeg_quality']}",
    ]


def one_hot(tokens: Sequence[str], vocabulary: dict[str, int]) -> np.ndarray:
    """Indicator vector of the tokens present in the vocabulary."""
    vector = np.zeros(len(vocabulary))
    for token in tokens:
        if token in vocabulary:
            vector[vocabulary[token]] = 1.0
    return vector


def format_shortcut_audit(samples: Sequence[Sample], folds: int = FOLDS, seed: int = 0) -> dict[str, Any]:
    """Cross-validated accuracy of the storage-only classifier on the labelled, readable samples."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rows, labels, unreadable = [], [], 0
    for sample in samples:
        if sample.label is None:
            continue
        try:
            rows.append(storage_tokens(header_of(sample)))
        except (ImageLoadError, OSError):
            unreadable += 1
            continue
        labels.append(sample.label)
    counts = Counter(labels)
    result: dict[str, Any] = {
        "method": f"logistic regression on storage tokens, stratified {folds}-fold CV",
        "n": len(labels),
        "n_unreadable": unreadable,
        "majority_rate": max(counts.values()) / len(labels) if labels else None,
        "cv_accuracy": None,
        "token_counts": None,
    }
    if len(counts) < 2 or min(counts.values()) < folds:
        result["note"] = f"undefined: needs at least {folds} samples of each class"
        return result
    vocabulary = {t: i for i, t in enumerate(sorted({t for row in rows for t in row}))}
    matrix = np.stack([one_hot(row, vocabulary) for row in rows])
    y = np.asarray(labels)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(LogisticRegression(max_iter=1000), matrix, y, cv=cv, scoring="accuracy")
    result["cv_accuracy"] = float(scores.mean())
    result["cv_accuracy_folds"] = [float(s) for s in scores]
    by_class = {
        int(c): Counter(tuple(row[:2]) for row, lab in zip(rows, labels, strict=False) if lab == c).most_common(3)
        for c in counts
    }
    result["token_counts"] = {
        ("real" if c == 0 else "fake"): [[list(k), v] for k, v in common] for c, common in by_class.items()
    }
    return result
