"""Scoring pixels made on the model's device (issue #28 item 3): JPEG bytes decoded, padded and put through the
image processor where the model runs, for the families with a fixed-size image encoding. On the CPU both paths give
the same pixels, so the same scores; a corrupt JPEG fails as its own sample; ``auto`` takes the device path only
where the probe photographs score the same both ways, and the results say which path ran."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness import hookimpl
from harness.plugin_manager import HarnessPlugins
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig


def jpeg_files(root: Path) -> Path:
    """Real photo crops as JPEGs (square and not, wider and taller), a PNG and a truncated JPEG."""
    import skimage.data
    from toy_components import jpeg_manifest

    crops = [(0, 300, 451), (0, 200, 200), (0, 280, 150), (0, 120, 260)]
    return jpeg_manifest(root, skimage.data.chelsea(), crops, png_side=100, quality=85, cut_at=4000)


def run(path: Path, manifest: Path, out: Path, preprocess: str):
    class ListPlugin:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            register("jpeg-list", "harness.testkit.components:ListTask", manifest=str(manifest))

    config = RunConfig(model="fakescope-llava", model_args={"path": str(path), "preprocess": preprocess},
                       tasks="jpeg-list", output_dir=out, progress=False, bootstrap=0, audit=False, device="cpu",
                       batch_size=3)  # fmt: skip
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False, extra_plugins=(ListPlugin,))).run()
    assert outcome.status == "done", outcome.reason
    records = {r.sample_id: r for r in read_samples(outcome.results_path)}
    return records, json.loads(outcome.results_path.read_text())["model"]["preprocessing"]


def test_the_device_path_scores_as_the_cpu_path_and_fails_a_corrupt_jpeg_alone(tmp_path):
    from tiny_models import tiny_llava

    path = tiny_llava(tmp_path / "m")
    manifest = jpeg_files(tmp_path / "data")
    cpu, cpu_info = run(path, manifest, tmp_path / "cpu", "cpu")
    device, device_info = run(path, manifest, tmp_path / "device", "device")
    assert cpu_info["preprocess"] == "cpu" and device_info["preprocess"] == "device"
    for name in ("0.jpg", "1.jpg", "2.jpg", "3.jpg", "p.png"):
        assert device[name].error is None and device[name].score == pytest.approx(cpu[name].score, abs=1e-6)
    assert len({round(device[n].score, 6) for n in ("0.jpg", "1.jpg", "2.jpg", "3.jpg")}) > 1
    assert cpu["cut.jpg"].error and "cut.jpg" in device["cut.jpg"].error and "corrupt" in device["cut.jpg"].error


def test_auto_keeps_the_device_path_only_where_the_probe_scores_agree(tmp_path):
    from tiny_models import tiny_llava

    from harness.images import probe_jpegs
    from harness.plugins.lmm.backends import llava

    backend = llava.LlavaBackend(str(tiny_llava(tmp_path / "m")))
    assert backend.preprocess == "cpu" and backend.info()["preprocess_check"] is None, "auto: CPU until checked"
    probes = probe_jpegs()
    check = backend.check_device_preprocessing(probes)
    assert check["kept"] and check["max_abs_pixel_diff"] == 0.0 and check["max_abs_score_diff"] <= 1e-6
    assert backend.preprocess == "device" and len(check["probe"]) == 15

    skewed = llava.LlavaBackend(str(tiny_llava(tmp_path / "m2", seed=1)))
    original = skewed.device_pixels
    skewed.device_pixels = lambda items: original(items) + 0.5
    check = skewed.check_device_preprocessing(probes)
    assert not check["kept"] and check["max_abs_pixel_diff"] == pytest.approx(0.5) and skewed.preprocess == "cpu"
    assert skewed.info()["preprocess_check"]["max_abs_score_diff"] > check["tolerance"]


def test_padding_on_the_device_is_pils():
    """The fill truncated and the offsets floored as PIL's canvas has them, wider and taller."""
    from harness.plugins.lmm.backends.images import expand2square, expand2square_tensor

    image = Image.new("RGB", (7, 4), (10, 200, 30))
    for size in ((7, 4), (4, 7), (5, 5), (6, 3)):
        picture = image.resize(size)
        expected = torch.from_numpy(np.asarray(expand2square(picture, [122.9, 116.1, 104.5])).copy())
        tensor = torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)
        assert torch.equal(expand2square_tensor(tensor, [122.9, 116.1, 104.5]).permute(1, 2, 0), expected)


def test_choices_made_while_running_reach_the_results(tmp_path, monkeypatch):
    """The results record the backend's info as it is at the end of the run: compile=auto's check, made on the first
    batch (here with a stand-in compiler that returns the forward as it is)."""
    from tiny_models import tiny_llava

    from harness.plugins.lmm.backends import hf_vlm

    monkeypatch.setattr(hf_vlm, "auto_compile_backend", lambda device: "stand-in")
    monkeypatch.setattr(torch, "compile", lambda forward, **_: forward)
    _, info = run(tiny_llava(tmp_path / "m"), jpeg_files(tmp_path / "data"), tmp_path / "out", "cpu")
    assert info["torch_compile"] == "stand-in" and info["compile_check"]["kept"] is True
    assert info["compile_check"]["batch"] == 3 and info["compile_check"]["max_abs_score_diff"] == 0.0


def test_the_adapter_runs_the_check_on_cuda_only_and_a_failed_check_leaves_the_cpu_path(tmp_path, monkeypatch):
    """``preprocess=auto`` is decided by the adapter after loading: nothing on the CPU; on CUDA the backend's check
    (here the CPU backend stands in for a CUDA one: the adapter is told its device is cuda:0); a check that
    cannot run leaves the CPU path with the reason."""
    from tiny_models import tiny_llava

    import harness.images
    from harness.plugins.lmm import LlavaAdapter

    adapter = LlavaAdapter(path=str(tiny_llava(tmp_path / "m")))
    adapter.setup("cpu")
    backend = adapter.engine.backend
    assert backend.preprocess == "cpu" and backend.preprocess_check is None
    adapter.device = "cuda:0"
    adapter._choose_preprocessing()
    assert backend.preprocess == "device" and backend.preprocess_check["kept"] is True
    assert adapter.preprocessing()["preprocess"] == "device"

    backend.preprocess, backend.preprocess_check = "cpu", None

    def missing():
        raise OSError("no scikit-image data")

    monkeypatch.setattr(harness.images, "probe_jpegs", missing)
    adapter._choose_preprocessing()
    assert backend.preprocess == "cpu" and backend.preprocess_check == {
        "kept": False,
        "error": "OSError: no scikit-image data",
    }
