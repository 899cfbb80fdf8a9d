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
    cases = {
        truncated: "corrupt or truncated",
        empty: "empty file",
        text: "not a readable image",
        tmp_path / "missing.png": "file not found",
        tmp_path: "is a directory",
    }
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


# -- every mode PIL can hand back, against a reference conversion written here --------------------------
def _roundtrip(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_sixteen_bit_png_is_scaled_not_clipped():
    gradient = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    data = _roundtrip(Image.fromarray(gradient), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    loaded = np.asarray(load_image(data))
    expected = np.round(gradient / 65535 * 255).astype(np.uint8)
    assert (loaded == expected[..., None]).all()  # grey replicated into R, G, B
    assert loaded.mean() == pytest.approx(127.5, abs=0.5) and len(np.unique(loaded)) == 256


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.linspace(0, 65535, 16).astype(np.int32), np.round(np.linspace(0, 65535, 16) / 65535 * 255)),  # 16-bit in I
        (np.arange(16, dtype=np.int32) * 10, np.arange(16) * 10),  # 8-bit in I
        (np.linspace(0, 1, 16).astype(np.float32), np.round(np.linspace(0, 1, 16) * 255)),  # float 0-1
        (
            np.linspace(0, 300, 16).astype(np.float32),
            np.clip(np.round(np.linspace(0, 300, 16)), 0, 255),
        ),  # float 0-255+
    ],
)
def test_i_and_f_modes_are_scaled_by_their_range(values, expected):
    image = Image.fromarray(values.reshape(4, 4))
    assert image.mode in ("I", "F")
    assert (np.asarray(load_image(_roundtrip(image, "TIFF")))[..., 0].ravel() == expected.astype(np.uint8)).all()


def test_cmyk_ycbcr_and_alpha_modes_follow_the_standard_conversions():
    rng = np.random.default_rng(0)
    cmyk = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    rgb = np.asarray(load_image(_roundtrip(Image.fromarray(cmyk, mode="CMYK"), "TIFF"))).astype(float)
    reference = 255 * (1 - cmyk[..., :3] / 255) * (1 - cmyk[..., 3:] / 255)  # multiplicative CMYK -> RGB
    assert np.abs(rgb - reference).max() <= 1
    ycc = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    rgb = np.asarray(load_image(_roundtrip(Image.fromarray(ycc, mode="YCbCr"), "TIFF")))
    y, cb, cr = (ycc[..., i].astype(float) for i in range(3))  # JFIF full-range BT.601
    reference = np.stack(
        [y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)], axis=-1
    )
    assert np.abs(rgb.astype(float) - np.clip(np.round(reference), 0, 255)).max() <= 1
    la = np.stack([rng.integers(0, 256, (8, 8), dtype=np.uint8), np.full((8, 8), 7, np.uint8)], axis=-1)
    loaded = np.asarray(load_image(_roundtrip(Image.fromarray(la, mode="LA"), "PNG")))
    assert (loaded == la[..., :1]).all()  # alpha dropped (as upstream loaders' convert("RGB")), grey kept
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    assert (np.asarray(load_image(_roundtrip(Image.fromarray(rgba, mode="RGBA"), "PNG"))) == rgba[..., :3]).all()
    palette = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0  # a palette PNG with a transparent entry (PIL: P + tRNS, or PA)
    assert (np.asarray(load_image(_roundtrip(palette, "PNG"))) == np.asarray(palette.convert("RGB"))).all()


def test_exif_orientation_is_not_applied_and_corrupt_exif_is_ignored():
    """Stored pixel order, as every upstream benchmark loader reads it."""
    pixels = np.zeros((4, 8, 3), np.uint8)
    pixels[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif.tobytes())
    loaded = np.asarray(load_image(buffer.getvalue()))
    assert loaded.shape == (4, 8, 3) and loaded[0, 0, 0] == 255
    exif_bad = io.BytesIO()
    Image.fromarray(pixels).save(exif_bad, format="PNG", exif=b"Exif\x00\x00garbage-not-tiff")
    assert np.asarray(load_image(exif_bad.getvalue())).shape == (4, 8, 3)


def test_a_worker_is_sent_the_scaled_pixels_of_a_sixteen_bit_file(tmp_path):
    """Workers decode with their own (old) PIL, which would clip: the adapter sends the 8-bit pixels instead."""
    import base64
    import io
    import sys

    from harness.plugins.lmm import InstructBlipAdapter
    from harness.plugins.lmm.backends.images import open_image
    from harness.records import Request, Sample

    gradient = np.linspace(0, 65535, 256).reshape(16, 16).astype(np.uint16)
    Image.fromarray(gradient).save(tmp_path / "deep.png")
    Image.fromarray((gradient // 257).astype(np.uint8)).save(tmp_path / "plain.png")
    adapter = InstructBlipAdapter(path=str(tmp_path), python=sys.executable)
    payload, _ = adapter.prepare(
        Request(sample=Sample(id="d", image=str(tmp_path / "deep.png"), label=1), kind="score")
    )
    pixels = np.asarray(open_image(payload))
    assert (pixels == np.asarray(load_image(str(tmp_path / "deep.png")))).all() and pixels.mean() > 120
    assert Image.open(io.BytesIO(base64.b64decode(payload["b64"]))).mode == "RGB"
    plain, _ = adapter.prepare(Request(sample=Sample(id="p", image=str(tmp_path / "plain.png"), label=1), kind="score"))
    assert plain == str((tmp_path / "plain.png").resolve())  # 8-bit files go as paths, as before
    in_memory, _ = adapter.prepare(
        Request(sample=Sample(id="b", image=(tmp_path / "deep.png").read_bytes(), label=1), kind="score")
    )
    assert (np.asarray(open_image(in_memory)) == pixels).all()  # 16-bit bytes are sent scaled too


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression-bomb header)."""
    import struct
    import zlib

    data = _roundtrip(Image.new("RGB", (2, 2)), "PNG")
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return data[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


def test_a_decompression_bomb_is_that_samples_error_not_the_tasks(tmp_path):
    from benchmark_replicas import folder_tree

    from harness.tasks.folder_benchmarks import AIGCDetectBenchmark

    root = folder_tree(tmp_path / "aigc" / "test", {"gen/0_real": 2, "gen/1_fake": 2})
    (root / "gen" / "1_fake" / "bomb.png").write_bytes(bomb_png())
    samples = list(AIGCDetectBenchmark(data_root=str(tmp_path / "aigc")).samples())  # listing survives
    bomb = next(s for s in samples if s.id.endswith("bomb.png"))
    assert (
        "image too large" in bomb.metadata["header_error"]
        and "HARNESS_MAX_IMAGE_PIXELS" in bomb.metadata["header_error"]
    )
    with pytest.raises(ImageLoadError, match=r"bomb\.png: image too large .*10000000000 pixels"):
        load_image(bomb)
    assert load_image(next(s for s in samples if s is not bomb)).size == (16, 16)


def test_the_pixel_limit_is_a_setting():
    import os
    import subprocess
    import sys

    code = "import PIL.Image, harness.images; print(PIL.Image.MAX_IMAGE_PIXELS)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_MAX_IMAGE_PIXELS": "1234"},
    )
    assert out.stdout.strip() == "1234"
