"""Image helpers shared by the backends and the harness's loader (standalone: PIL and NumPy only)."""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def to_eight_bit(image: Any) -> Any:
    """High-bit-depth and float images scaled to 8-bit ``L`` (PIL's own ``convert`` *clips* them: a 16-bit
    gradient with mean 127.5 would load with mean 254 and two distinct values).

    - ``I;16*`` (16-bit PNG / TIFF): value x 255 / 65535, rounded;
    - ``I`` (32-bit integer, how PIL hands back some 16-bit files): 8-bit when every value fits in
      0-255, else 16-bit when they fit in 0-65535, else scaled by the maximum; negatives clip at 0;
    - ``F`` (float): values in [0, 1] scaled by 255, else clipped to 0-255.

    Every other mode is returned as it is (PIL's conversions of ``CMYK``, ``YCbCr``, ``P``, ``PA``, ``LA``
    and ``RGBA`` are the standard ones, as upstream loaders use them: alpha is dropped, not composited).
    """
    import numpy as np
    from PIL import Image

    if image.mode not in SIXTEEN_BIT + ("I", "F"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = float(values.max()) if values.size else 0.0
    if image.mode in SIXTEEN_BIT:
        scale = 65535.0
    elif image.mode == "F":
        scale = 1.0 if top <= 1.0 else 255.0
    else:
        scale = 255.0 if top <= 255 else (65535.0 if top <= 65535 else top)
    eight = np.clip(np.round(values * (255.0 / scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(eight)


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


def open_image(source: Any) -> Any:
    """A PIL RGB image from a PIL image (as it is when already RGB: no copy on the scoring path), a path,
    raw bytes or ``{"b64": ...}``; high-bit-depth images scaled (:func:`to_eight_bit`), not clipped."""
    from PIL import Image

    if hasattr(source, "convert"):
        return source if source.mode == "RGB" else to_eight_bit(source).convert("RGB")
    if isinstance(source, dict) and "b64" in source:
        source = base64.b64decode(source["b64"])
    if isinstance(source, (bytes, bytearray)):
        with Image.open(io.BytesIO(source)) as image:
            return to_eight_bit(image).convert("RGB")
    with Image.open(source) as image:
        return to_eight_bit(image).convert("RGB")
