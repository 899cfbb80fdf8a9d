"""Robustness sweeps (issue #30): each perturbation pixel for pixel against its definition in the detectors' own
code (UnivFD validate.py, CNNDetection data/datasets.py), the spec's errors, and a sweep run end to end."""

from __future__ import annotations

import io
import json

import numpy as np
import PIL
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter1d

from harness.perturbations import (
    PerturbError,
    blur,
    center_crop,
    gaussian_noise,
    jpeg,
    noise_seed,
    parse_sweep,
    resize_down,
    resize_down_and_back,
)

PIXELS = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
#: a real photograph (scikit-learn's bundled china.jpg), cropped
PHOTO = __import__("sklearn.datasets", fromlist=["load_sample_image"]).load_sample_image("china.jpg")[100:228, 200:392]


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.0])
def test_blur_is_upstreams_in_place_gaussian_filter(sigma):
    """Upstream calls gaussian_filter(img[:,:,c], output=img[:,:,c], sigma): in place into uint8, so the rows'
    pass is stored truncated to 8 bits before the columns' pass. Written out here as those two passes."""
    expected = []
    for channel in range(3):
        rows = gaussian_filter1d(PIXELS[:, :, channel].astype(np.float64), sigma, axis=0)
        rows = np.clip(rows, 0, 255).astype(np.uint8).astype(np.float64)
        expected.append(np.clip(gaussian_filter1d(rows, sigma, axis=1), 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(blur(PIXELS, sigma), np.stack(expected, -1))
    assert PIXELS.sum() != blur(PIXELS, sigma).sum(), "the input is not changed in place"


@pytest.mark.parametrize("quality", [95, 75, 50, 30])
def test_jpeg_is_pils_encoder_at_that_quality_decoded(quality):
    """UnivFD's png2jpg / CNNDetection's pil_jpg: PIL save(format='jpeg', quality=q), opened again."""
    out = io.BytesIO()
    Image.fromarray(PIXELS).save(out, format="jpeg", quality=quality)
    np.testing.assert_array_equal(jpeg(PIXELS, quality), np.array(Image.open(io.BytesIO(out.getvalue()))))
    assert np.abs(jpeg(PIXELS, quality).astype(int) - PIXELS).mean() > 0


@pytest.mark.parametrize("quality", [95, 75, 50, 30])
def test_jpeg_cv2_is_cnndetections_cv2_jpg(quality):
    """CNNDetection's cv2_jpg: img[:,:,::-1], cv2.imencode('.jpg', ..., [IMWRITE_JPEG_QUALITY, q]),
    cv2.imdecode(..., 1), [:,:,::-1]. (With Pillow 13 and OpenCV 5.1, both on libjpeg-turbo with 4:2:0 chroma, the
    two encoders' pixels were found identical at every quality tried: the encoder is still chosen explicitly and
    its library version recorded, since older pairs differed.)"""
    cv2 = pytest.importorskip("cv2", reason="OpenCV (the cv2 extra) is not installed")
    from harness.perturbations import jpeg_cv2

    photo = np.ascontiguousarray(PHOTO)
    _, encoded = cv2.imencode(".jpg", photo[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    np.testing.assert_array_equal(jpeg_cv2(photo, quality), cv2.imdecode(encoded, 1)[:, :, ::-1])
    [level] = parse_sweep(f"jpeg-cv2:quality={quality}")
    assert level.describe()["steps"][0]["encoder"] == f"OpenCV {cv2.__version__}"
    assert [lv.slug for lv in parse_sweep("jpeg-cv2:quality=90,50")] == ["jpeg-cv2-q90", "jpeg-cv2-q50"]


@pytest.mark.parametrize("shape", [(48, 64), (47, 63), (20, 300)], ids=["even", "odd", "short"])
def test_crop_is_torchvisions_center_crop(shape):
    """torchvision's CenterCrop (the detectors' test-time crop), on sides longer and shorter than the crop."""
    functional = pytest.importorskip("torchvision.transforms.functional", reason="torchvision is not installed")
    pixels = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = np.array(functional.center_crop(Image.fromarray(pixels), [32, 32]))
    np.testing.assert_array_equal(center_crop(pixels, 32), expected)


def test_resize_back_is_bilinear_down_then_up():
    found = resize_down_and_back(PHOTO, 0.5)
    down = Image.fromarray(PHOTO).resize((96, 64), Image.Resampling.BILINEAR)
    assert found.shape == PHOTO.shape
    np.testing.assert_array_equal(found, np.array(down.resize((192, 128), Image.Resampling.BILINEAR)))
    assert [lv.slug for lv in parse_sweep("resize-back:scale=0.5")] == ["resize-back-x0.5"]


def test_noise_is_seeded_per_image_and_has_its_sigma():
    """N(0, sigma) from PCG64 seeded by the sample id, added, rounded, clipped: the same image id always gets the
    same noise, another id other noise; on mid-grey (no clipping) the noise's spread is sigma."""
    grey = np.full((64, 64, 3), 128, dtype=np.uint8)
    found = gaussian_noise(grey, 8.0, "sample-1")
    drawn = np.random.default_rng(noise_seed("sample-1")).normal(0.0, 8.0, grey.shape)
    np.testing.assert_array_equal(found, np.clip(np.rint(128 + drawn), 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(found, gaussian_noise(grey, 8.0, "sample-1"))
    assert not np.array_equal(found, gaussian_noise(grey, 8.0, "sample-2"))
    assert (found.astype(float) - 128).std() == pytest.approx(8.0, rel=0.05)
    [level] = parse_sweep("noise:sigma=8")
    np.testing.assert_array_equal(level.apply(grey, key="sample-1"), found)


def test_resize_is_down_only_bilinear():
    found = resize_down(PIXELS, 0.5)
    assert found.shape == (24, 32, 3)
    np.testing.assert_array_equal(found, np.array(Image.fromarray(PIXELS).resize((32, 24), Image.Resampling.BILINEAR)))


def test_specs_chains_and_clear_errors():
    assert [lv.slug for lv in parse_sweep("jpeg:quality=90,70,50")] == ["jpeg-q90", "jpeg-q70", "jpeg-q50"]
    assert [lv.slug for lv in parse_sweep("blur:sigma=1+jpeg:quality=90,50")] == [
        "blur-s1+jpeg-q90",
        "blur-s1+jpeg-q50",
    ]
    for spec, message in [
        ("jpeg:quality=150", "whole number from 1 to 100, not 150"),
        ("blur:sigma=0", "above 0"),
        ("resize:scale=2", "resize scale must be in"),
        ("sharpen:amount=1", "unknown perturbation 'sharpen'"),
        ("jpeg:q=90", "write jpeg:quality=V"),
        ("blur:sigma=1,2+jpeg:quality=90,50", "only one step may list several values"),
        ("crop:size=22.5", "crop size must be a whole number"),
        ("noise:sigma=0", "noise sigma must be above 0"),
        ("resize-back:scale=2", "resize scale must be in"),
    ]:
        with pytest.raises(PerturbError, match=message):
            parse_sweep(spec)


def test_a_sweep_runs_each_level_as_its_own_cached_task(tmp_path, fredect_checkpoint, aigi_mini):
    """`--perturb jpeg:quality=...` on aigi-mini: one result per level named aigi-mini+jpeg-qN, the level in the
    task's fingerprint, AUC lower at quality 30 than at 95 (compression destroys FreDect's frequency traces), a
    rerun answered entirely from the cache; a bad spec stops the run before anything is built."""
    from conftest import run_cli

    args = ["run", "--model", "fredect", "--model-args", f"checkpoint={fredect_checkpoint}", "--tasks", "aigi-mini",
            "--perturb", "jpeg:quality=95,30", "--bootstrap", "0", "--no-audit", "--quiet",
            "-o", str(tmp_path)]  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    results = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("*/*/results.json")}
    assert sorted(results) == ["aigi-mini+jpeg-q30", "aigi-mini+jpeg-q95"]
    steps = results["aigi-mini+jpeg-q30"]["task"]["fingerprint"]["config"]["perturbation"]["steps"]
    assert steps == [{"kind": "jpeg", "quality": 30.0, "encoder": f"Pillow {PIL.__version__}"}]
    auc = {k: v["metrics"]["all"]["auc"]["value"] for k, v in results.items()}
    assert auc["aigi-mini+jpeg-q30"] < auc["aigi-mini+jpeg-q95"]
    again = run_cli(*args)
    assert again.returncode == 0
    rerun = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("*/*/results.json")}
    assert all(r["counts"]["n_cached"] == r["counts"]["n_samples"] for r in rerun.values())
    bad = run_cli("run", "--model", "noop", "--perturb", "jpeg:quality=150", "-o", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "JPEG quality must be a whole number from 1 to 100" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_an_unreadable_image_is_left_to_fail_as_its_sample_naming_the_file(tmp_path):
    """A corrupt file is not perturbed (nothing to perturb): it reaches the model as it is, whose load fails as
    that sample with the file's name; readable ones become PNG bytes of the perturbed pixels, marked."""
    from harness.images import load_image
    from harness.perturbations import perturbed_samples
    from harness.records import Sample

    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.fromarray(PIXELS).save(good)
    bad.write_bytes(b"\x89PNG not really")
    [level] = parse_sweep("blur:sigma=2")
    out = list(perturbed_samples(iter([Sample("g", str(good), 1), Sample("b", str(bad), 0)]), level))
    assert isinstance(out[0].image, bytes) and out[0].metadata["perturbation"] == "blur-s2"
    np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(out[0].image))), blur(PIXELS, 2.0))
    assert out[1].image == str(bad) and "perturbation" not in out[1].metadata
    with pytest.raises(Exception, match="bad.png"):
        load_image(out[1])


def test_a_sweep_from_a_run_config_file(tmp_path, aigi_mini):
    """The YAML form: ``perturb:`` in ``--config FILE`` is the same sweep as the flag."""
    from conftest import run_cli

    config = tmp_path / "run.yaml"
    config.write_text('model: noop\ntasks: aigi-mini\nperturb: "crop:size=32+noise:sigma=4,16"\nlimit: 20\n')
    done = run_cli(
        "run", "--config", str(config), "--bootstrap", "0", "--no-audit", "--quiet", "-o", str(tmp_path / "o")
    )
    assert done.returncode == 0, done.stderr
    found = sorted(p.parent.name for p in (tmp_path / "o").glob("*/*/results.json"))
    assert found == ["aigi-mini+crop-c32+noise-n16", "aigi-mini+crop-c32+noise-n4"]
