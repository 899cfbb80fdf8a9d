"""Image loading with errors that name the file, and container metadata without decoding pixels."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.records import Sample

# Standard IJG luminance quantisation table (JPEG Annex K, Table K.1), natural order.
_IJG_LUMA = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    dtype=np.float64,
)


class ImageLoadError(Exception):
    """An image that cannot be read: the message names the file and the reason."""


#: PIL's decompression-bomb guard, as a setting: ``HARNESS_MAX_IMAGE_PIXELS`` (pixels; 0 = no limit). PIL
#: refuses images over twice this many pixels; the harness makes that the sample's error, never the task's.
MAX_PIXELS_VARIABLE = "HARNESS_MAX_IMAGE_PIXELS"


def _apply_pixel_limit() -> None:
    import os

    value = os.environ.get(MAX_PIXELS_VARIABLE)
    if value is not None and value.strip():
        Image.MAX_IMAGE_PIXELS = int(value) or None


_apply_pixel_limit()


def _too_large(where: str, exc: Exception) -> ImageLoadError:
    """The sample error for PIL's ``DecompressionBombError``."""
    limit = Image.MAX_IMAGE_PIXELS
    return ImageLoadError(
        f"{where}: image too large ({exc}); the limit is {2 * limit if limit else 'off'} pixels: "
        f"raise it with {MAX_PIXELS_VARIABLE}=N (0 = no limit) if the file is genuine"
    )


SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
#: modes PIL's ``convert`` would clip: :func:`to_eight_bit` scales them
HIGH_BIT_MODES = SIXTEEN_BIT + ("I", "F")


def to_eight_bit(image: Image.Image) -> Image.Image:
    """High-bit-depth and float images scaled to 8-bit ``L`` (PIL's own ``convert`` *clips* them: a 16-bit
    gradient with mean 127.5 would load with mean 254 and two distinct values).

    - ``I;16*`` (16-bit PNG / TIFF): value x 255 / 65535, rounded;
    - ``I`` (32-bit integer, how PIL hands back some 16-bit files): 8-bit when every value fits in
      0-255, else 16-bit when they fit in 0-65535, else scaled by the maximum; negatives clip at 0;
    - ``F`` (float): values in [0, 1] scaled by 255, else clipped to 0-255.

    Every other mode is returned as it is (PIL's conversions of ``CMYK``, ``YCbCr``, ``P``, ``PA``, ``LA``
    and ``RGBA`` are the standard ones, as upstream loaders use them: alpha is dropped, not composited).
    """
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


def _checked_path(source: str | Path) -> Path:
    """The path, after the checks every reader shares: missing, a directory, empty."""
    path = Path(source)
    if not path.exists():
        raise ImageLoadError(f"{path}: file not found")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    return path


def _open(source: str | bytes | Path) -> Image.Image:
    if isinstance(source, (bytes, bytearray)):
        return Image.open(io.BytesIO(source))
    return Image.open(_checked_path(source))


def read_image_bytes(sample_or_source: Sample | str | bytes | Path) -> bytes:
    """The file's raw bytes (for decoders other than PIL), with the same errors as :func:`load_image`
    for missing, empty and directory paths."""
    source = sample_or_source.image if isinstance(sample_or_source, Sample) else sample_or_source
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageLoadError("in-memory image: empty (0 bytes)")
        return bytes(source)
    return _checked_path(source).read_bytes()


def load_image(
    sample_or_source: Sample | str | bytes | Path, mode: str = "RGB", where: str | None = None
) -> Image.Image:
    """Decode an image fully (so truncation is caught here) and convert it to ``mode``.

    High-bit-depth and float images are scaled, not clipped (:func:`to_eight_bit`). Pixels are
    returned in stored order: an EXIF orientation tag is not applied, as no upstream benchmark loader
    applies it (a corrupt EXIF block is ignored the same way). Raises :class:`ImageLoadError` naming
    the file (or ``where``: e.g. the path of bytes already read) for missing, empty, truncated, corrupt and
    non-image files.
    """
    source = sample_or_source.image if isinstance(sample_or_source, Sample) else sample_or_source
    if where is None:
        where = sample_or_source.describe() if isinstance(sample_or_source, Sample) else str(source)[:200]
    try:
        with _open(source) as im:
            im.load()
            if mode and mode not in SIXTEEN_BIT + ("I", "F"):
                im = to_eight_bit(im)
            return im.convert(mode) if mode and im.mode != mode else im.copy()
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{where}: not a readable image (unidentified format)") from None
    except Image.DecompressionBombError as exc:
        raise _too_large(where, exc) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(f"{where}: corrupt or truncated image ({exc})") from None


def estimate_jpeg_quality(quantization: dict[int, Any] | None) -> int | None:
    """Estimate the IJG quality (1-100) that produced a JPEG's luminance table.

    Scales the standard table with libjpeg's formula for every quality and returns
    the closest one (exact for files written by libjpeg/PIL/OpenCV). ``None`` when
    there is no table (not a JPEG).
    """
    if not quantization or 0 not in quantization:
        return None
    table = np.asarray(list(quantization[0])[:64], dtype=np.float64)
    if table.size != 64:
        return None
    # Compare sorted values: the estimate then does not depend on whether the library
    # reports the table in zig-zag or natural order.
    table_sorted = np.sort(table)
    best_q, best_err = 0, np.inf
    for q in range(1, 101):
        scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
        candidate = np.clip(np.floor((_IJG_LUMA * scale + 50.0) / 100.0), 1, 255)
        err = np.abs(np.sort(candidate) - table_sorted).sum()
        if err < best_err:
            best_q, best_err = q, err
    return best_q


def file_metadata(source: str | bytes | Path) -> dict[str, Any]:
    """Container-level facts read from the header: format, width, height, mode, JPEG quality.

    Never decodes pixels. Raises :class:`ImageLoadError` for unreadable files.
    """
    try:
        with _open(source) as im:
            quality = estimate_jpeg_quality(getattr(im, "quantization", None)) if im.format == "JPEG" else None
            return {
                "format": im.format or "unknown",
                "width": im.width,
                "height": im.height,
                "mode": im.mode,
                "jpeg_quality": quality,
            }
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{str(source)[:200]}: not a readable image (unidentified format)") from None
    except Image.DecompressionBombError as exc:
        raise _too_large(str(source)[:200], exc) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(f"{str(source)[:200]}: unreadable image header ({exc})") from None


#: the first bytes of every JPEG file (SOI marker and the next marker's 0xFF): what a JPEG-only fast path tests
JPEG_MAGIC = b"\xff\xd8\xff"

#: how :func:`probe_jpegs` writes its JPEGs: (name, PIL save options, image mode) -- the ways files come
PROBE_ENCODINGS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("baseline 4:2:0 q75", {"quality": 75, "subsampling": 2}, "RGB"),
    ("baseline 4:4:4 q95", {"quality": 95, "subsampling": 0}, "RGB"),
    ("progressive 4:2:0 q85", {"quality": 85, "subsampling": 2, "progressive": True}, "RGB"),
    ("grayscale q90", {"quality": 90}, "L"),
    ("CMYK q90", {"quality": 90}, "CMYK"),
)


def probe_jpegs() -> list[tuple[str, bytes]]:
    """Real photographs (scikit-image's astronaut, coffee and chelsea) written as JPEG in each of
    :data:`PROBE_ENCODINGS`: ``(description, bytes)``. What a fast decoding path is checked on against PIL before a
    run uses it (the detectors' and the LMMs' ``auto`` choices)."""
    import skimage.data

    photos = {"astronaut": skimage.data.astronaut(), "coffee": skimage.data.coffee(), "chelsea": skimage.data.chelsea()}
    found = []
    for name, photo in photos.items():
        for encoding, options, mode in PROBE_ENCODINGS:
            buffer = io.BytesIO()
            Image.fromarray(photo).convert(mode).save(buffer, format="JPEG", **options)
            found.append((f"{name}, {encoding}", buffer.getvalue()))
    return found
