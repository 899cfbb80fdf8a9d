"""Robustness sweeps: every image perturbed before the model sees it, one evaluation per level (issue #30).

``--perturb SPEC`` names a sweep, ``KIND:PARAM=v1,v2,...``, optionally after fixed steps joined with ``+``
(``blur:sigma=1+jpeg:quality=90,70,50``: blurred at σ 1, then JPEG at each quality); only one step may list
several values. Each level runs as its own task, ``<task>+<level>`` (``aigi-mini+jpeg-q70``), with the
perturbation in the task's fingerprint and the perturbed image's bytes in the cache key, so a rerun pays nothing.

The perturbations are those of the detectors' own robustness protocols, re-implemented from their code:

- ``jpeg:quality=Q`` (1-100): PIL's JPEG encoder at quality Q, decoded again: UnivFD's ``validate.py::png2jpg``
  and CNNDetection's ``data/datasets.py::pil_jpg`` (PIL defaults: 4:2:0 chroma subsampling below quality 90...,
  as PIL chooses);
- ``jpeg-cv2:quality=Q``: OpenCV's JPEG encoder and decoder instead (CNNDetection's ``cv2_jpg``, the default of
  its training augmentation, and one of AIGCDetectBenchmark's two encoders; the two encoders' pixels differ);
  needs the ``cv2`` extra (``opencv-python-headless``). With Pillow 13 and OpenCV 5.1 (both libjpeg-turbo, 4:2:0)
  the two give identical pixels at every quality tried; the step records its encoder's library and version;
- ``blur:sigma=S`` (> 0): ``scipy.ndimage.gaussian_filter`` on each RGB channel separately, in place into the
  8-bit image: UnivFD's and CNNDetection's ``gaussian_blur`` (kernel truncated at 4 σ, scipy's default; mode
  ``reflect``). Because upstream filters in place into ``uint8``, the separable filter's first pass (along the
  rows) is stored truncated to 8 bits before the second: what upstream computes, kept, and tested pixel for
  pixel against that two-pass definition;
- ``resize:scale=F`` (0 < F <= 1): down-scaling only, by F on each side, with PIL's bilinear filter (the
  interpolation CNNDetection's ``custom_resize`` defaults to); ``resize-back:scale=F`` scales down and back up
  to the original size, both bilinear (the two are told apart in the level's name: ``resize-x0.5`` vs
  ``resize-back-x0.5``);
- ``crop:size=N``: the central N x N pixels as torchvision's ``CenterCrop`` takes them (the detectors' test-time
  crop), zero-padded first where a side is shorter;
- ``noise:sigma=S`` (> 0, 8-bit units): additive Gaussian noise, seeded per image from its sample id (every
  model and every rerun sees the same noise), rounded and clipped.

A perturbed image reaches the model as PNG bytes of the perturbed pixels (lossless), so every adapter, in-process
or in a worker, sees exactly those pixels.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = {
    "jpeg": "quality",
    "jpeg-cv2": "quality",
    "blur": "sigma",
    "resize": "scale",
    "resize-back": "scale",
    "crop": "size",
    "noise": "sigma",
}
#: the letter before a step's value in a task name
SHORT = {"jpeg": "q", "jpeg-cv2": "q", "blur": "s", "resize": "x", "resize-back": "x", "crop": "c", "noise": "n"}


class PerturbError(ValueError):
    """A ``--perturb`` spec that cannot be used: the message says which part and why."""


@dataclass(frozen=True)
class Step:
    """One perturbation at one value."""

    kind: str
    value: float

    @property
    def slug(self) -> str:
        """The step in a task name: ``jpeg-q70``, ``blur-s1.5``, ``resize-x0.5``."""
        return f"{self.kind}-{SHORT[self.kind]}{self.value:g}"

    def apply(self, pixels: np.ndarray, key: str = "") -> np.ndarray:
        """The perturbed 8-bit RGB pixels (``key``, the sample's id, seeds the noise)."""
        if self.kind == "jpeg":
            return jpeg(pixels, int(self.value))
        if self.kind == "jpeg-cv2":
            return jpeg_cv2(pixels, int(self.value))
        if self.kind == "blur":
            return blur(pixels, self.value)
        if self.kind == "resize-back":
            return resize_down_and_back(pixels, self.value)
        if self.kind == "crop":
            return center_crop(pixels, int(self.value))
        if self.kind == "noise":
            return gaussian_noise(pixels, self.value, key)
        return resize_down(pixels, self.value)


@dataclass(frozen=True)
class Level:
    """A chain of steps: one point of a sweep."""

    steps: tuple[Step, ...]

    @property
    def slug(self) -> str:
        """The level in a task name (steps joined with ``+``)."""
        return "+".join(step.slug for step in self.steps)

    def describe(self) -> dict[str, Any]:
        """The level as recorded in the task's fingerprint and results."""
        return {"steps": [{"kind": s.kind, KINDS[s.kind]: s.value, **encoder(s.kind)} for s in self.steps]}

    def apply(self, pixels: np.ndarray, key: str = "") -> np.ndarray:
        """Each step in turn."""
        for step in self.steps:
            pixels = step.apply(pixels, key)
        return pixels


def encoder(kind: str) -> dict[str, str]:
    """The JPEG encoder's library and version, recorded with a JPEG step (the bytes depend on it); {} otherwise."""
    if kind == "jpeg":
        import PIL

        return {"encoder": f"Pillow {PIL.__version__}"}
    if kind == "jpeg-cv2":
        import cv2

        return {"encoder": f"OpenCV {cv2.__version__}"}
    return {}


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """PIL JPEG at ``quality``, decoded (UnivFD ``png2jpg``, CNNDetection ``pil_jpg``)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="jpeg", quality=quality)
    with Image.open(out) as decoded:
        return np.array(decoded)


def jpeg_cv2(pixels: np.ndarray, quality: int) -> np.ndarray:
    """OpenCV's JPEG encoder at ``quality``, decoded by OpenCV in colour: CNNDetection's ``cv2_jpg`` (the default
    ``jpg_method`` of its training options, one of AIGCDetectBenchmark's two encoders). The RGB pixels are handed
    to OpenCV as BGR and turned back, as upstream does."""
    import cv2

    ok, encoded = cv2.imencode(
        ".jpg", np.ascontiguousarray(pixels[:, :, ::-1]), [int(cv2.IMWRITE_JPEG_QUALITY), quality]
    )
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise ValueError(f"OpenCV could not encode and decode a {pixels.shape} image as JPEG")
    return np.ascontiguousarray(decoded[:, :, ::-1])


def blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur per channel into the 8-bit image (UnivFD / CNNDetection ``gaussian_blur``)."""
    from scipy.ndimage import gaussian_filter

    out = np.array(pixels)
    for channel in range(3):
        gaussian_filter(out[:, :, channel], output=out[:, :, channel], sigma=sigma)
    return out


def resize_down(pixels: np.ndarray, scale: float) -> np.ndarray:
    """Down-scaled by ``scale`` on each side with PIL's bilinear filter (no scaling back)."""
    from PIL import Image

    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.array(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))


def resize_down_and_back(pixels: np.ndarray, scale: float) -> np.ndarray:
    """Down-scaled by ``scale`` and back up to the original size, both with PIL's bilinear filter (the detail lost
    by a web platform's down-scaling, at the resolution the detector was trained on)."""
    from PIL import Image

    height, width = pixels.shape[:2]
    return np.array(Image.fromarray(resize_down(pixels, scale)).resize((width, height), Image.Resampling.BILINEAR))


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` pixels as torchvision's ``CenterCrop`` takes them (CNNDetection's and UnivFD's
    test-time crop): offsets ``int(round((H - size) / 2))``; a smaller side is first padded with zeros on both
    sides (``(size - H) // 2`` before, the rest after), as torchvision pads."""
    height, width = pixels.shape[:2]
    if height < size or width < size:
        pad_h, pad_w = max(0, size - height), max(0, size - width)
        pixels = np.pad(pixels, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
        height, width = pixels.shape[:2]
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return np.ascontiguousarray(pixels[top : top + size, left : left + size])


def noise_seed(key: str) -> int:
    """The noise's seed for one image: from its sample id, so a rerun (and every model) sees the same noise."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def gaussian_noise(pixels: np.ndarray, sigma: float, key: str) -> np.ndarray:
    """Additive white Gaussian noise of standard deviation ``sigma`` in 8-bit units, drawn by numpy's PCG64
    generator seeded from the sample id (:func:`noise_seed`), added to every channel value, rounded to the nearest
    integer and clipped to 0-255."""
    noise = np.random.default_rng(noise_seed(key)).normal(0.0, sigma, pixels.shape)
    return np.clip(np.rint(pixels.astype(np.float64) + noise), 0, 255).astype(np.uint8)


def _step_values(text: str) -> tuple[str, list[float]]:
    kind, _, params = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise PerturbError(f"--perturb {text!r}: unknown perturbation {kind!r} (known: {', '.join(KINDS)})")
    name, _, values = params.partition("=")
    if name.strip() != KINDS[kind] or not values:
        raise PerturbError(f"--perturb {text!r}: write {kind}:{KINDS[kind]}=V[,V...]")
    try:
        found = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise PerturbError(f"--perturb {text!r}: {KINDS[kind]} values must be numbers") from None
    for value in found:
        _check(kind, value, text)
    if kind == "jpeg-cv2":
        try:
            import cv2  # noqa: F401
        except ImportError:
            raise PerturbError(
                f"--perturb {text!r}: OpenCV's JPEG encoder needs OpenCV: pip install 'aigi-harness[cv2]' "
                "(or use jpeg:, PIL's encoder)"
            ) from None
    return kind, found


def _check(kind: str, value: float, text: str) -> None:
    if kind.startswith("jpeg") and not (1 <= value <= 100 and float(value).is_integer()):
        raise PerturbError(f"--perturb {text!r}: JPEG quality must be a whole number from 1 to 100, not {value:g}")
    if kind == "blur" and not value > 0:
        raise PerturbError(f"--perturb {text!r}: blur sigma must be above 0, not {value:g}")
    if kind.startswith("resize") and not 0 < value <= 1:
        raise PerturbError(f"--perturb {text!r}: resize scale must be in (0, 1] (down-scaling), not {value:g}")
    if kind == "crop" and not (value >= 1 and float(value).is_integer()):
        raise PerturbError(f"--perturb {text!r}: crop size must be a whole number of pixels, not {value:g}")
    if kind == "noise" and not value > 0:
        raise PerturbError(f"--perturb {text!r}: noise sigma must be above 0 (8-bit units), not {value:g}")


def parse_sweep(spec: str) -> list[Level]:
    """The levels of a ``--perturb`` spec (see the module docstring); a clear :class:`PerturbError` otherwise."""
    steps = [_step_values(part) for part in spec.split("+") if part.strip()]
    if not steps:
        raise PerturbError("--perturb: empty spec (e.g. jpeg:quality=90,70,50)")
    sweeping = [i for i, (_, values) in enumerate(steps) if len(values) > 1]
    if len(sweeping) > 1:
        raise PerturbError(f"--perturb {spec!r}: only one step may list several values (a sweep is one axis)")
    axis = sweeping[0] if sweeping else len(steps) - 1
    return [
        Level(tuple(Step(kind, value if i == axis else values[0]) for i, (kind, values) in enumerate(steps)))
        for value in steps[axis][1]
    ]


def perturbed_samples(samples: Iterator[Any], level: Level) -> Iterator[Any]:
    """Each sample with its image replaced by the PNG bytes of its perturbed pixels (an unreadable image is left
    as it is: it fails as that sample, where the model loads it)."""
    import dataclasses

    from PIL import Image

    from harness.images import load_image

    for sample in samples:
        try:
            pixels = np.asarray(load_image(sample).convert("RGB"))
        except Exception:  # noqa: BLE001 - the model's own load reports it, naming the file
            yield sample
            continue
        out = io.BytesIO()
        Image.fromarray(level.apply(pixels, key=str(sample.id))).save(out, format="PNG")
        metadata = {**(sample.metadata or {}), "perturbation": level.slug}
        yield dataclasses.replace(sample, image=out.getvalue(), metadata=metadata)


def perturb_task(task: Any, level: Level) -> Any:
    """The task with every sample perturbed at ``level`` and the level in its configuration (its fingerprint)."""
    samples, config = task.samples, task.config

    def perturbed(split: str | None = None) -> Iterator[Any]:
        return perturbed_samples(samples(split), level)

    def configured() -> dict[str, Any]:
        return {**config(), "perturbation": level.describe()}

    task.samples, task.config = perturbed, configured
    return task
