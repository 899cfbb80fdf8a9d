"""Trainer for the ``format-shortcut`` auditor (see :mod:`harness.plugins.format_shortcut`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.audit import one_hot, storage_tokens
from harness.checkpoints import save_numpy_checkpoint
from harness.images import file_metadata
from harness.interfaces import Trainer
from harness.records import Sample
from harness.trainers.common import extract, seen_generators, validation_summary


class FormatShortcutTrainer(Trainer):
    """Logistic regression (sklearn, C=1) on one-hot storage tokens read from file headers."""

    name = "format-shortcut"
    model_name = "format-shortcut"

    def __init__(self, C: float = 1.0, progress: bool = True, **args: Any) -> None:
        super().__init__(C=C, **args)
        self.C, self.progress = float(C), progress

    def train(
        self, train: Sequence[Sample], val: Sequence[Sample], out_dir: Path, task_name: str, resume: bool = True
    ) -> dict[str, Any]:
        """Read headers, build the token vocabulary, fit, validate, save."""
        from sklearn.linear_model import LogisticRegression

        tokens = extract(
            train,
            lambda s: np.array(storage_tokens(file_metadata(s.image)), dtype=object),
            "format-shortcut headers (train)",
            self.progress,
        )
        vocabulary = sorted({t for row in tokens.features for t in row})
        index = {t: i for i, t in enumerate(vocabulary)}
        matrix = np.stack([one_hot(list(row), index) for row in tokens.features])
        classifier = LogisticRegression(C=self.C, max_iter=1000).fit(matrix, tokens.labels)
        summary: dict[str, Any] = {"n_train": len(matrix), "vocabulary": vocabulary, "train_skipped": tokens.errors}
        if val:
            val_tokens = extract(
                val,
                lambda s: one_hot(storage_tokens(file_metadata(s.image)), index),
                "format-shortcut headers (val)",
                self.progress,
            )
            summary["val"] = validation_summary(val_tokens.labels, classifier.predict_proba(val_tokens.features)[:, 1])
        config = {
            "model": "format-shortcut",
            "vocabulary": vocabulary,
            "C": self.C,
            "trained_on": {
                "task": task_name,
                "n_train": len(matrix),
                "seen_generators": seen_generators(tokens.samples),
            },
            "validation": summary.get("val"),
        }
        save_numpy_checkpoint(
            out_dir,
            {
                "coef": classifier.coef_.ravel().astype(np.float64),
                "intercept": classifier.intercept_.astype(np.float64),
            },
            config,
        )
        return summary
