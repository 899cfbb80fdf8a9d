"""FreDect (Frank et al., "Leveraging Frequency Analysis for Deep Fake Image Recognition", ICML 2020).

Feature, as upstream ``RUB-SysSec/GANDCTAnalysis`` (``prepare_dataset.py -l -n``):

1. the image as uint8 values in [0, 255] (no division by 255), grayscale by default
   (PIL ``"L"``) or 3 channels with ``grayscale=false``;
2. centre crop to a square and resize to ``size`` only if the crop differs
   (upstream ``crop_lsun.py``: ``skimage.transform.resize``, bilinear, anti-aliased);
3. full-image 2-D DCT-II with orthonormal scaling along both axes (not 8x8 blocks);
4. ``log(|x| + 1e-12)``;
5. per-coefficient standardisation ``(x - mean) / std`` with the population mean and
   variance over all training images (of the *log* DCT, as ``prepare_dataset.py``
   does; upstream's ``compute_mean_var.py`` takes them on the raw DCT, a bug not copied).

Classifier: logistic regression on the flattened feature (upstream ``log2``: a
dense sigmoid unit with L2 0.01), fitted with scikit-learn by the ``fredect``
trainer. Checkpoints are safetensors + JSON, never pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.checkpoints import checkpoint_argument, load_numpy_checkpoint
from harness.images import load_image
from harness.interfaces import ModelAdapter
from harness.records import Request

EPSILON = 1e-12
TENSOR_KEYS = {"dct_mean", "dct_std", "coef", "intercept"}


def center_square(image: Any) -> Any:
    """Centre-crop a PIL image to a square of its shorter side."""
    side = min(image.width, image.height)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def log_dct(image: Any, size: int, grayscale: bool) -> tuple[np.ndarray, bool]:
    """The log-magnitude 2-D DCT of a PIL image (steps 1-4 above); returns (feature, resized?)."""
    from scipy.fft import dctn

    square = center_square(image.convert("L" if grayscale else "RGB"))
    pixels = np.asarray(square, dtype=np.float64)
    resized = square.width != size
    if resized:
        from skimage.transform import resize

        shape = (size, size) if grayscale else (size, size, 3)
        pixels = resize(pixels, shape, order=1, anti_aliasing=True, preserve_range=True)
    coefficients = dctn(pixels, type=2, norm="ortho", axes=(0, 1))
    return np.log(np.abs(coefficients) + EPSILON), resized


class FreDect(ModelAdapter):
    """``fredect``: log-DCT + standardisation + logistic regression, from a ``harness train`` checkpoint."""

    request_kinds = frozenset({"score"})

    def __init__(self, checkpoint: str | None = None, path: str | None = None, **args: Any) -> None:
        checkpoint = checkpoint_argument("fredect", checkpoint, path)
        super().__init__(checkpoint=checkpoint, **args)
        if not checkpoint:
            raise ValueError(
                "fredect needs a trained checkpoint: run `harness train fredect --task aigi-mini "
                "--out DIR`, then pass --model-args checkpoint=DIR"
            )
        tensors, self.config, self.checkpoint_sha256 = load_numpy_checkpoint(checkpoint, "fredect", TENSOR_KEYS)
        self.size = int(self.config["size"])
        self.grayscale = bool(self.config["grayscale"])
        self.mean = tensors["dct_mean"].astype(np.float64)
        self.std = tensors["dct_std"].astype(np.float64)
        self.coef = tensors["coef"].astype(np.float64).ravel()
        self.intercept = float(np.asarray(tensors["intercept"]).ravel()[0])
        expected_shape = (self.size, self.size) if self.grayscale else (self.size, self.size, 3)
        if self.mean.shape != expected_shape or self.std.shape != expected_shape or self.coef.size != self.mean.size:
            raise ValueError(
                f"{checkpoint}: tensor shapes {self.mean.shape}/{self.std.shape}/{self.coef.shape} "
                f"do not match size={self.size}, grayscale={self.grayscale}"
            )

    def fingerprint(self) -> dict[str, Any]:
        """Class and checkpoint content hash (the path itself does not matter)."""
        return {
            "class": "fredect",
            "checkpoint_sha256": self.checkpoint_sha256,
            "args": {k: v for k, v in self.args.items() if k != "checkpoint"},
        }

    def trained_on(self) -> dict[str, Any] | None:
        """The training task and seen generators, from the checkpoint's config."""
        return self.config.get("trained_on")

    def preprocessing(self) -> dict[str, Any]:
        """The exact feature pipeline."""
        return {
            "color": "grayscale (PIL L)" if self.grayscale else "RGB",
            "range": "uint8 [0,255], no /255",
            "crop": "center square of the shorter side",
            "resize": f"to {self.size}x{self.size} only if the crop differs (skimage bilinear, anti-aliased)",
            "transform": "2-D DCT-II, norm=ortho, full image",
            "log": f"log(|x| + {EPSILON})",
            "standardise": "per-coefficient (x - train mean) / train std (population)",
            "classifier": "logistic regression, sigmoid(w.x + b) = P(fake)",
            "checkpoint_sha256": self.checkpoint_sha256,
        }

    def features(self, image: Any) -> np.ndarray:
        """Standardised, flattened feature of a PIL image."""
        feature, _ = log_dct(image, self.size, self.grayscale)
        return ((feature - self.mean) / self.std).ravel()

    def prepare(self, request: Request) -> np.ndarray:
        """Decode and transform one image (runs in worker threads)."""
        return self.features(load_image(request.sample))

    def score_batch(self, inputs: Sequence[np.ndarray]) -> list[float]:
        """P(fake) = sigmoid(w.x + b) for each feature vector."""
        from scipy.special import expit

        logits = np.stack(inputs) @ self.coef + self.intercept
        return expit(logits).tolist()
