"""FreDect: the feature matches upstream's computation; checkpoints load strictly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.checkpoints import CheckpointError
from harness.plugins.fredect import EPSILON, FreDect, log_dct
from harness.records import Request, Sample


def test_log_dct_matches_upstream_fftpack_formula():
    from scipy import fftpack

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    feature, resized = log_dct(Image.fromarray(pixels), 32, grayscale=True)
    # GANDCTAnalysis src/image_np.py: dct2 = dct(dct(x, axis=0, norm='ortho'), axis=1, norm='ortho')
    upstream = fftpack.dct(
        fftpack.dct(pixels.astype(np.float64), type=2, norm="ortho", axis=0), type=2, norm="ortho", axis=1
    )
    np.testing.assert_allclose(feature, np.log(np.abs(upstream) + EPSILON), rtol=1e-10, atol=1e-10)
    assert not resized


def test_non_square_images_are_center_cropped_then_resized():
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (80, 100, 3), dtype=np.uint8))
    feature, resized = log_dct(image, 64, grayscale=False)
    assert feature.shape == (64, 64, 3) and resized


def test_adapter_requires_a_checkpoint():
    with pytest.raises(ValueError, match="harness train fredect"):
        FreDect()


@pytest.fixture()
def ckpt_copy(fredect_checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(fredect_checkpoint, tmp_path / "ckpt"))


def test_missing_key_fails_loudly_with_the_key_named(ckpt_copy: Path):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(ckpt_copy / "weights.safetensors"))
    del tensors["dct_std"]
    tensors["surprise"] = np.zeros(1)
    save_file(tensors, str(ckpt_copy / "weights.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys \['dct_std'\], unexpected keys \['surprise'\]"):
        FreDect(checkpoint=str(ckpt_copy))


def test_checkpoint_of_another_model_or_missing_folder(ckpt_copy: Path, tmp_path: Path):
    config = json.loads((ckpt_copy / "config.json").read_text())
    config["model"] = "cnnspot"
    (ckpt_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="checkpoint is for model 'cnnspot', not 'fredect'"):
        FreDect(checkpoint=str(ckpt_copy))
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        FreDect(checkpoint=str(tmp_path / "nope"))


def test_fingerprint_follows_checkpoint_content_not_path(fredect_checkpoint: Path, ckpt_copy: Path):
    original, copy = FreDect(checkpoint=str(fredect_checkpoint)), FreDect(checkpoint=str(ckpt_copy))
    assert original.fingerprint() == copy.fingerprint()
    assert original.preprocessing()["checkpoint_sha256"] == original.checkpoint_sha256


def test_batched_scores_equal_single_scores(fredect_checkpoint: Path, aigi_mini: Path):
    from harness.tasks.aigi_mini import AigiMini

    model = FreDect(checkpoint=str(fredect_checkpoint))
    samples = list(AigiMini().samples("test"))[:8]
    prepared = [model.prepare(Request(sample=s)) for s in samples]
    batched = model.score_batch(prepared)
    single = [model.score_batch([p])[0] for p in prepared]
    np.testing.assert_allclose(batched, single, rtol=1e-12)
    assert all(0.0 <= s <= 1.0 for s in batched)
    assert isinstance(samples[0], Sample)
