"""``fakescope-owl2`` / ``mplug-owl2`` against a stand-in of upstream ``mplug_owl2`` (tests/standins) that
reproduces what bit the backend: the loader forces float16, the pad colour is the *truncated* mean x 255, the
checkpoint's ``image_aspect_ratio`` decides the preprocessing. The real upstream code is compared by
``conformance/check_mplug_owl2.py`` (results in ``conformance/results/mplug-owl2.json``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_components
from PIL import Image
from tiny_models import word_tokenizer
from toy_components import write_toy_data

from harness.plugin_manager import HarnessPlugins
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig

TESTS = Path(__file__).resolve().parent
STANDINS = TESTS / "standins"
CORPUS = [
    "USER : What is the authenticity of this image ? ASSISTANT : This image is fake real Fake Real yes no .",
    "Is this a real image , yes or no ?",
]


@pytest.fixture
def standin_package(monkeypatch):
    """Upstream's package name importable here and in worker processes started from here."""
    monkeypatch.syspath_prepend(str(STANDINS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(STANDINS), os.environ.get("PYTHONPATH", "")]))
    for name in [m for m in sys.modules if m == "mplug_owl2" or m.startswith("mplug_owl2.")]:
        monkeypatch.delitem(sys.modules, name)


def checkpoint(folder: Path, aspect: str | None = "pad") -> Path:
    """A stand-in FakeScope-Owl2 checkpoint (folder name without 'mplug_owl2', as users name theirs)."""
    from mplug_owl2.model import save_tiny_owl2

    return save_tiny_owl2(folder / f"fakescope-{aspect}", word_tokenizer(CORPUS), image_aspect_ratio=aspect)


def photos(n: int = 3) -> list[Image.Image]:
    """Real photo crops, square and non-square."""
    import skimage.data

    photo = skimage.data.astronaut()
    sizes = [(40, 24), (32, 32), (24, 48)]
    return [Image.fromarray(photo[50 * i : 50 * i + h, 60 * i : 60 * i + w]) for i, (w, h) in enumerate(sizes[:n])]


def reference_scores(path: Path, images: list[Image.Image], aspect: str | None) -> list[float]:
    """Eq. 2 written out, on the stand-in's own functions in float32 (what a correct backend must give)."""
    from types import SimpleNamespace

    from mplug_owl2.mm_utils import process_images, tokenizer_image_token
    from mplug_owl2.model.builder import load_pretrained_model

    tokenizer, model, processor, _ = load_pretrained_model(str(path), None, "mplug_owl2", device="cpu")
    model = model.float()
    prompt = "USER: <|image|>What is the authenticity of this image? ASSISTANT: This image is"
    ids = tokenizer_image_token(prompt, tokenizer, return_tensors="pt").unsqueeze(0)
    fake = [tokenizer.convert_tokens_to_ids(w) for w in ("fake", "Fake")]
    real = [tokenizer.convert_tokens_to_ids(w) for w in ("real", "Real")]
    scores = []
    for image in images:
        pixels = process_images([image], processor, SimpleNamespace(image_aspect_ratio=aspect))
        with torch.no_grad():
            z = model(ids, images=pixels)["logits"][0, -1]
        scores.append(float(torch.softmax(torch.stack([z[fake].sum(), z[real].sum()]), 0)[0]))
    return scores


def test_pad_fill_is_truncated_as_upstream():
    """CLIP's mean x 255 = (122.77, 116.74, 104.09): upstream truncates to (122, 116, 104), LLaVA too."""
    from harness.plugins.lmm.backends.images import expand2square

    mean = (0.48145466, 0.4578275, 0.40821073)
    padded = expand2square(Image.new("RGB", (4, 2), (0, 0, 0)), [255 * m for m in mean])
    assert padded.size == (4, 4) and padded.getpixel((0, 0)) == (122, 116, 104)


def test_owl2_casts_upstreams_float16_model_to_the_dtype_asked_and_scores_like_upstream(standin_package, tmp_path):
    from harness.plugins.lmm.backends.owl2 import Owl2Backend

    path = checkpoint(tmp_path, "pad")
    images = photos()
    backend = Owl2Backend(str(path), device="cpu")  # auto on the CPU: float32, whatever upstream's loader did
    info = backend.info()
    assert info["dtype"] == "float32" and info["upstream_loader_dtype"] == "float16"
    assert info["preprocessing"]["pad_fill"] == [122, 116, 104]
    scores = backend.score(images)
    np.testing.assert_allclose(scores, reference_scores(path, images, "pad"), atol=1e-6)
    np.testing.assert_allclose(scores, [backend.score([i])[0] for i in images], atol=1e-6)
    assert Owl2Backend(str(path), device="cpu", dtype="bf16").info()["dtype"] == "bfloat16"


@pytest.mark.parametrize("aspect", ["pad", "resize", None])
def test_owl2_follows_the_checkpoints_image_aspect_ratio(standin_package, tmp_path, aspect):
    from harness.plugins.lmm.backends.owl2 import Owl2Backend

    path = checkpoint(tmp_path, aspect)
    images = photos()
    backend = Owl2Backend(str(path), device="cpu")
    assert backend.info()["preprocessing"]["image_aspect_ratio"] == aspect
    assert backend.info()["preprocessing"]["image_aspect_ratio_source"] == "checkpoint config"
    np.testing.assert_allclose(backend.score(images), reference_scores(path, images, aspect), atol=1e-6)


def test_owl2_aspect_choices_differ_on_non_square_images_and_the_argument_overrides(standin_package, tmp_path):
    from harness.plugins.lmm.backends.owl2 import Owl2Backend

    path = checkpoint(tmp_path, "pad")
    wide, square = photos(2)
    by_mode = {
        mode: Owl2Backend(str(path), device="cpu", image_aspect_ratio=mode) for mode in ("pad", "resize", "none")
    }
    wide_scores = {mode: b.score([wide])[0] for mode, b in by_mode.items()}
    assert len({round(s, 7) for s in wide_scores.values()}) == 3
    square_scores = {mode: b.score([square])[0] for mode, b in by_mode.items()}
    assert max(square_scores.values()) - min(square_scores.values()) < 1e-6
    assert by_mode["resize"].info()["preprocessing"]["image_aspect_ratio_source"] == "model argument"
    with pytest.raises(ValueError, match="image_aspect_ratio must be one of"):
        Owl2Backend(str(path), device="cpu", image_aspect_ratio="square")


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> Path:
    return write_toy_data(tmp_path_factory.mktemp("toy") / "data", n_good=4, bad=False)


def run(args: dict, data: Path, out: Path, mode: str, device: str = "auto"):
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyLmmPlugin,))
    config = RunConfig(
        model="fakescope-owl2",
        model_args=args,
        tasks="toy-questions",
        data_root=str(data),
        output_dir=out,
        batch_size=2,
        progress=False,
        bootstrap=0,
        audit=False,
        device=device,
        mode=mode,
    )
    [outcome] = Evaluator(config, plugins).run()
    return outcome


@pytest.mark.slow
def test_owl2_through_its_worker_on_a_cpu_machine_with_device_auto(standin_package, tmp_path, toy_data):
    """The user's command on a machine without a GPU: python=ENV, --device auto, both modes into one folder."""
    path = checkpoint(tmp_path, "pad")
    args = {"path": str(path), "python": sys.executable, "max_new_tokens": 4}
    scored = run(args, toy_data, tmp_path / "out", "score")
    answered = run(args, toy_data, tmp_path / "out", "generate")
    assert scored.status == answered.status == "done" and scored.n_failed == answered.n_failed == 0
    assert scored.results_path != answered.results_path  # one folder per mode: nothing overwritten
    assert scored.results_path.exists() and answered.results_path.exists()
    assert {scored.results_path.parent.name, answered.results_path.parent.name} == {
        "toy-questions-score",
        "toy-questions-generate",
    }
    info = json.loads(scored.results_path.read_text())["model"]["preprocessing"]
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["isolated_worker"] is True
    records = read_samples(scored.results_path)
    images = [Image.open(toy_data / r.sample_id).convert("RGB") for r in records]
    np.testing.assert_allclose([r.score for r in records], reference_scores(path, images, "pad"), atol=1e-6)
    assert all(isinstance(r.text, str) for r in read_samples(answered.results_path))


def test_worker_resolves_auto_with_its_own_torch_and_pins_each_rank(monkeypatch):
    sys.path.insert(0, str(TESTS.parent / "plugins" / "lmm" / "backends"))
    try:
        import worker
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert worker.resolve_device("auto") == "cpu" and worker.resolve_device("cpu") == "cpu"
    with pytest.raises(RuntimeError, match="sees no CUDA device"):
        worker.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert worker.resolve_device("auto") == "cuda"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert worker.resolve_device("auto") == "cuda:1" and worker.resolve_device("cuda") == "cuda:1"
    assert worker.resolve_device("cuda:0") == "cuda:0"


def test_the_adapter_leaves_auto_to_the_worker(standin_package, tmp_path, monkeypatch):
    from harness.plugins.lmm import Owl2Adapter
    from harness.plugins.lmm.worker_client import WorkerClient

    seen = {}
    monkeypatch.setattr(WorkerClient, "start", lambda self: seen.update(self.args) or {"device": "cpu"})
    adapter = Owl2Adapter(path=str(checkpoint(tmp_path)), python=sys.executable)
    adapter.setup("auto")
    assert seen["device"] == "auto" and adapter.device == "cpu"


@pytest.mark.slow
def test_missing_upstream_package_or_environment_is_a_clear_error_before_any_data_work(tmp_path):
    """No traceback, the fix named, and aigi-mini (the default task) never built."""
    from conftest import run_cli

    cache = tmp_path / "cache"
    env = {"HARNESS_CACHE_DIR": str(cache), "PYTHONPATH": None}
    ckpt = tmp_path / "fakescope"
    ckpt.mkdir()
    in_process = run_cli("run", "--model", "fakescope-owl2", "--model-args", f"path={ckpt}", env=env)
    assert in_process.returncode == 2 and "Traceback" not in in_process.stderr
    assert "lacks" in in_process.stderr and "harness env create mplug-owl2" in in_process.stderr
    no_env = run_cli(
        "run",
        "--model",
        "fakescope-owl2",
        "--model-args",
        f"path={ckpt},python={tmp_path / 'envs/none/bin/python'}",
        env=env,
    )
    assert no_env.returncode == 2 and "worker interpreter" in no_env.stderr and "Traceback" not in no_env.stderr
    # a worker environment without the upstream package (e.g. a half-built one): found by a probe, same hint
    bare = run_cli("run", "--model", "fakescope-owl2", "--model-args", f"path={ckpt},python={sys.executable}", env=env)
    assert bare.returncode == 2 and "Traceback" not in bare.stderr
    assert "lacks mplug_owl2" in bare.stderr and "harness env create mplug-owl2" in bare.stderr
    missing = run_cli(
        "run",
        "--model",
        "fakescope-owl2",
        "--model-args",
        f"path={tmp_path / 'nowhere'},python={sys.executable}",
        env=env,
    )
    assert missing.returncode == 2 and "no checkpoint folder at" in missing.stderr
    assert not (cache / "aigi-mini-v1").exists()


def test_owl2_answers_a_batch_in_one_generate_call_with_the_tokens_of_one_image_at_a_time(standin_package, tmp_path):
    """Issue #28: prompts of equal token length go to upstream's ``generate`` together (no padding), prompts of
    other lengths in a call of their own, and every answer equals the one-image call's."""
    from harness.plugins.lmm.backends.owl2 import Owl2Backend

    backend = Owl2Backend(str(checkpoint(tmp_path, "pad")), device="cpu", dtype="fp32")
    calls = []
    original = backend.model.generate
    backend.model.generate = lambda input_ids, **kw: calls.append(input_ids.shape[0]) or original(input_ids, **kw)
    images = photos(3) + photos(2)
    prompts = ["Is this a real image , yes or no ?"] * 3 + ["real ?", "Is this a real image , yes or no ?"]
    together = backend.generate(images, prompts, max_new_tokens=6)
    assert sorted(calls) == [1, 4], "one call for the four prompts of one length, one for the other"
    calls.clear()
    pairs = zip(images, prompts, strict=True)
    alone = [backend.generate([image], [prompt], max_new_tokens=6)[0] for image, prompt in pairs]
    assert together == alone and len(set(alone)) > 1
    assert calls == [1] * 5


def test_a_finished_row_is_cut_at_its_end_token():
    from harness.plugins.lmm.backends.batching import equal_length_groups, rows_in_order, through_first_end

    assert through_first_end([5, 6, 2, 2, 2], [2]) == [5, 6, 2]
    assert through_first_end([5, 6, 7], [2, None]) == [5, 6, 7]
    assert through_first_end([5, 9, 6, 2], [2, 9]) == [5, 9]
    groups = equal_length_groups([3, 5, 3, 4, 5])
    assert groups == [[0, 2], [1, 4], [3]]
    assert rows_in_order(groups, [["a", "c"], ["b", "e"], ["d"]]) == list("abcde")
    with pytest.raises(RuntimeError, match="2 prompts got 1"):
        rows_in_order(groups, [["a"], ["b", "e"], ["d"]])
