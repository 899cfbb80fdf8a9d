"""A training-free detector: smooth images (little high-frequency energy) score as fake."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.images import load_image
from harness.interfaces import ModelAdapter
from harness.records import Request


class HighPassDetector(ModelAdapter):
    """P(fake) = sigmoid(gain * (threshold - log mean |Laplacian|)) on the grayscale image in [0, 1]."""

    request_kinds = frozenset({"score"})

    def __init__(self, threshold: float = -3.0, gain: float = 2.0, **args: Any) -> None:
        super().__init__(threshold=threshold, gain=gain, **args)
        self.threshold, self.gain = float(threshold), float(gain)

    def preprocessing(self) -> dict[str, Any]:
        """What the detector does to an image."""
        return {"color": "grayscale", "range": "[0, 1]", "feature": "log mean |4-neighbour Laplacian|"}

    def prepare(self, request: Request) -> float:
        """Decode and reduce the image to its high-frequency energy."""
        gray = np.asarray(load_image(request.sample, mode="L"), dtype=np.float64) / 255.0
        lap = 4 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
        return math.log(float(np.abs(lap).mean()) + 1e-6)

    def score_batch(self, inputs: Sequence[float]) -> list[float]:
        """Logistic map of the energies."""
        return [1.0 / (1.0 + math.exp(-self.gain * (self.threshold - x))) for x in inputs]
