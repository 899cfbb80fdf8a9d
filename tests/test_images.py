"""Image loading errors and header metadata."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from harness.images import ImageLoadError, estimate_jpeg_quality, file_metadata, load_image


@pytest.mark.parametrize("quality", [10, 30, 50, 75, 90, 95, 100])
def test_jpeg_quality_estimate_matches_the_encoder(quality: int, tmp_path):
    import skimage.data

    path = tmp_path / f"q{quality}.jpg"
    Image.fromarray(skimage.data.chelsea()).save(path, quality=quality)
    meta = file_metadata(path)
    assert meta["format"] == "JPEG" and meta["jpeg_quality"] == quality
    assert (meta["width"], meta["height"]) == (451, 300)


def test_png_has_no_jpeg_quality(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((5, 7, 3), dtype=np.uint8)).save(path)
    assert file_metadata(path) == {"format": "PNG", "width": 7, "height": 5, "mode": "RGB", "jpeg_quality": None}
    assert estimate_jpeg_quality(None) is None


def test_load_errors_name_the_file(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    truncated = tmp_path / "t.jpg"
    truncated.write_bytes(buffer.getvalue()[:300])
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    text = tmp_path / "x.png"
    text.write_text("hello")
    cases = {truncated: "corrupt or truncated", empty: "empty file", text: "not a readable image",
             tmp_path / "missing.png": "file not found", tmp_path: "is a directory"}
    for path, reason in cases.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(str(path))
        assert str(path) in str(info.value) and reason in str(info.value)


def test_load_image_converts_mode_and_accepts_bytes():
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4), 200, dtype=np.uint8)).save(buffer, "PNG")
    image = load_image(buffer.getvalue())
    assert image.mode == "RGB" and image.size == (4, 4)


def test_read_image_bytes_has_the_same_errors_as_decoding(tmp_path):
    from harness.images import ImageLoadError, read_image_bytes

    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "ok.jpg").write_bytes(b"\xff\xd8\xff data")
    assert read_image_bytes(tmp_path / "ok.jpg") == b"\xff\xd8\xff data"
    for name, reason in (("missing.jpg", "file not found"), ("empty.jpg", "empty file"), ("dir.jpg", "directory")):
        with pytest.raises(ImageLoadError, match=f"{name}: .*{reason}"):
            read_image_bytes(tmp_path / name)
    with pytest.raises(ImageLoadError, match="empty"):
        read_image_bytes(b"")
