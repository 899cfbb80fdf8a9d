"""Trainer for FreDect (see :mod:`harness.plugins.fredect` for the feature).

Recipe: upstream's ``log2`` model is a single sigmoid unit with an L2 penalty of
0.01 on the weights (Keras: mean BCE + 0.01 * ||w||^2), trained with Adam. Here the
same convex objective is minimised to convergence with scikit-learn's
``LogisticRegression``, which minimises ``C * sum(BCE) + ||w||^2 / 2``: that is
``C * n`` times the Keras loss when ``C = 1 / (2 * 0.01 * n) = 50 / n``, the
default (pass ``C=`` to override). No augmentation.

``size=auto`` (default) uses the training images' side when they are all square
and equal (aigi-mini: 64, so no resampling touches the spectrum), otherwise
upstream's 128.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.checkpoints import save_numpy_checkpoint
from harness.images import load_image
from harness.interfaces import Trainer
from harness.plugins.fredect import EPSILON, log_dct
from harness.records import Sample
from harness.trainers.common import extract, seen_generators, validation_summary

UPSTREAM_SIZE = 128
KERAS_L2 = 0.01


def resolve_size(size: Any, samples: Sequence[Sample]) -> int:
    """``auto`` -> the common square side of the samples (from metadata) or 128; else ``int(size)``."""
    if size != "auto":
        return int(size)
    shapes = Counter((s.metadata.get("width"), s.metadata.get("height")) for s in samples)
    if len(shapes) == 1:
        ((width, height),) = shapes
        if width and width == height:
            return int(width)
    return UPSTREAM_SIZE


class FreDectTrainer(Trainer):
    """Fit the per-coefficient statistics and the logistic regression; write a checkpoint."""

    name = "fredect"
    model_name = "fredect"

    def __init__(
        self,
        size: Any = "auto",
        grayscale: bool = True,
        C: float | None = None,
        max_iter: int = 5000,
        progress: bool = True,
        **args: Any,
    ) -> None:
        super().__init__(size=size, grayscale=grayscale, C=C, max_iter=max_iter, **args)
        self.grayscale, self.C, self.max_iter, self.progress = bool(grayscale), C, int(max_iter), progress
        self.size_arg = size

    def train(
        self, train: Sequence[Sample], val: Sequence[Sample], out_dir: Path, task_name: str, resume: bool = True
    ) -> dict[str, Any]:
        """Extract log-DCT features, standardise, fit, validate, save."""
        from sklearn.linear_model import LogisticRegression

        size = resolve_size(self.size_arg, train)

        def featurize(sample: Sample) -> np.ndarray:
            return log_dct(load_image(sample), size, self.grayscale)[0]

        data = extract(train, featurize, "fredect features (train)", self.progress)
        mean = data.features.mean(axis=0)
        std = np.sqrt(data.features.var(axis=0))  # population variance, as upstream's Welford (M2 / count)
        std[std == 0] = 1.0
        flat = ((data.features - mean) / std).reshape(len(data.features), -1)
        C = float(self.C) if self.C is not None else 1.0 / (2.0 * KERAS_L2 * len(flat))
        classifier = LogisticRegression(C=C, max_iter=self.max_iter)
        classifier.fit(flat, data.labels)
        summary: dict[str, Any] = {"n_train": len(flat), "train_skipped": data.errors, "C": C, "size": size}
        if val:
            val_data = extract(val, featurize, "fredect features (val)", self.progress)
            val_flat = ((val_data.features - mean) / std).reshape(len(val_data.features), -1)
            summary["val"] = validation_summary(val_data.labels, classifier.predict_proba(val_flat)[:, 1])
        config = {
            "model": "fredect",
            "size": size,
            "grayscale": self.grayscale,
            "epsilon": EPSILON,
            "classifier": "sklearn LogisticRegression (L2)",
            "C": C,
            "trained_on": {"task": task_name, "n_train": len(flat), "seen_generators": seen_generators(data.samples)},
            "validation": summary.get("val"),
        }
        save_numpy_checkpoint(
            out_dir,
            {
                "dct_mean": mean.astype(np.float32),
                "dct_std": std.astype(np.float32),
                "coef": classifier.coef_.ravel().astype(np.float64),
                "intercept": classifier.intercept_.astype(np.float64),
            },
            config,
        )
        return summary
