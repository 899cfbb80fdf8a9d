"""``format-shortcut``: a detector that never looks at pixels.

It predicts P(fake) from container properties alone: file format, width,
height, colour mode and the estimated JPEG quality (read from the file header,
not from the task's metadata). A benchmark on which it scores above chance
leaks its labels through how its files are stored ("Fake or JPEG?", Grommelt et
al., arXiv 2403.17608: GenImage reals are JPEG, fakes PNG). The byte size is
deliberately *not* a feature: it depends on image content, so it would measure
compressibility, not storage.

Model: one-hot tokens (``format=PNG``, ``width=512``, ``jpeg_quality=75``...)
and a logistic regression fitted by the ``format-shortcut`` trainer; tokens
unseen in training contribute nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.audit import one_hot, storage_tokens
from harness.checkpoints import checkpoint_argument, load_numpy_checkpoint
from harness.images import file_metadata
from harness.interfaces import ModelAdapter
from harness.records import Request

TENSOR_KEYS = {"coef", "intercept"}


class FormatShortcut(ModelAdapter):
    """Logistic regression on storage tokens, from a ``harness train format-shortcut`` checkpoint."""

    request_kinds = frozenset({"score"})

    def __init__(self, checkpoint: str | None = None, path: str | None = None, **args: Any) -> None:
        checkpoint = checkpoint_argument("format-shortcut", checkpoint, path)
        super().__init__(checkpoint=checkpoint, **args)
        if not checkpoint:
            raise ValueError(
                "format-shortcut needs a trained checkpoint: run `harness train format-shortcut "
                "--task TASK --out DIR`, then pass --model-args checkpoint=DIR"
            )
        tensors, config, self.checkpoint_sha256 = load_numpy_checkpoint(checkpoint, "format-shortcut", TENSOR_KEYS)
        self.config = config
        self.vocabulary = {token: i for i, token in enumerate(config["vocabulary"])}
        self.coef = tensors["coef"].astype(np.float64).ravel()
        self.intercept = float(np.asarray(tensors["intercept"]).ravel()[0])
        if self.coef.size != len(self.vocabulary):
            raise ValueError(f"{checkpoint}: {self.coef.size} weights for {len(self.vocabulary)} tokens")

    def fingerprint(self) -> dict[str, Any]:
        """Class and checkpoint content hash."""
        return {"class": "format-shortcut", "checkpoint_sha256": self.checkpoint_sha256}

    def trained_on(self) -> dict[str, Any] | None:
        """The training task and seen generators, from the checkpoint's config."""
        return self.config.get("trained_on")

    def preprocessing(self) -> dict[str, Any]:
        """What the model reads."""
        return {
            "reads": "file header only: format, width, height, mode, JPEG quality estimate",
            "pixels": "never decoded",
            "checkpoint_sha256": self.checkpoint_sha256,
        }

    def prepare(self, request: Request) -> np.ndarray:
        """Header tokens -> indicator vector."""
        return one_hot(storage_tokens(file_metadata(request.sample.image)), self.vocabulary)

    def score_batch(self, inputs: Sequence[np.ndarray]) -> list[float]:
        """P(fake) from the logistic regression."""
        from scipy.special import expit

        return expit(np.stack(inputs) @ self.coef + self.intercept).tolist()
