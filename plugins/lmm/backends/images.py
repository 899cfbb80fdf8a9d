"""Image helpers shared by the backends (standalone: PIL only). High-bit-depth files never reach a worker as
such: the adapter sends their 8-bit version (:func:`harness.images.to_eight_bit`)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any


def expand2square(image: Any, fill: Sequence[float]) -> Any:
    """Pad a PIL image to a square, centred, with ``fill`` (0-255 RGB): LLaVA-1.5's ``pad`` aspect
    ratio (fill = the image processor's mean x 255). Each fill value is *truncated* to an integer, as
    upstream LLaVA and mPLUG-Owl2 do (``tuple(int(x * 255) for x in image_mean)``: CLIP's mean gives
    (122, 116, 104), not the rounded (123, 117, 104))."""
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), tuple(int(c) for c in fill))
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def expand2square_tensor(image: Any, fill: Sequence[float]) -> Any:
    """:func:`expand2square` for a uint8 ``[3, H, W]`` tensor on any device: the same canvas, fill and offsets."""
    import torch

    _, height, width = image.shape
    if width == height:
        return image
    side = max(width, height)
    values = torch.tensor([int(c) for c in fill], dtype=image.dtype, device=image.device)
    canvas = values.view(3, 1, 1).expand(3, side, side).clone()
    top, left = (side - height) // 2, (side - width) // 2
    canvas[:, top : top + height, left : left + width] = image
    return canvas


def open_image(source: Any) -> Any:
    """A PIL RGB image from a PIL image (as it is when already RGB: no copy on the scoring path), a path,
    raw bytes or ``{"b64": ...}``."""
    from PIL import Image

    if hasattr(source, "convert"):
        return source if source.mode == "RGB" else source.convert("RGB")
    if isinstance(source, dict) and "b64" in source:
        source = base64.b64decode(source["b64"])
    if isinstance(source, (bytes, bytearray)):
        with Image.open(io.BytesIO(source)) as image:
            return image.convert("RGB")
    with Image.open(source) as image:
        return image.convert("RGB")
