"""Neural detectors on tiny random backbones: upstream checkpoint formats, strict loading, training round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import hf_vision_to_openai, tiny_clip

from harness.checkpoints import CheckpointError
from harness.plugin_manager import HarnessPlugins
from harness.plugins.detectors import ClipZeroShot, CNNSpot, FreDectResNet, UnivFD, build_resnet
from harness.records import Request
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig


def evaluate(model: str, args: dict, out: Path, limit: int | None = 60, status: str = "done"):
    config = RunConfig(
        model=model,
        model_args=args,
        tasks="aigi-mini",
        output_dir=out,
        progress=False,
        bootstrap=0,
        audit=False,
        limit=limit,
        device="cpu",
        batch_size=16,
    )
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False)).run()
    assert outcome.status == status, outcome.reason
    return outcome, json.loads(outcome.results_path.read_text())


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


# -- CNNSpot ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cnnspot_loads_cnndetection_format_and_records_preprocessing(tmp_path, aigi_mini):
    torch.manual_seed(0)
    net = build_resnet("resnet18")
    path = tmp_path / "blur_jpg_prob0.5.pth"
    torch.save({"model": net.state_dict(), "optimizer": {}, "total_steps": 7}, path)
    outcome, results = evaluate("cnnspot", {"checkpoint": str(path), "arch": "resnet18"}, tmp_path / "out", 8)
    pre = results["model"]["preprocessing"]
    assert pre["center_crop"] == 224 and pre["resize_shorter_side"] is None
    assert pre["normalize"]["mean"] == [0.485, 0.456, 0.406] and pre["checkpoint_sha256"]
    records = read_samples(outcome.results_path)
    assert all(r.extra.get("upscaled") for r in records)  # aigi-mini is 64 px: upscaled, never zero-padded
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "dp.pth")
    CNNSpot(checkpoint=str(tmp_path / "dp.pth"), arch="resnet18")  # DataParallel prefix stripped


def test_cnnspot_missing_key_fails_loudly_with_the_key_named(tmp_path):
    state = build_resnet("resnet18").state_dict()
    del state["fc.bias"]
    torch.save({"model": state}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \['fc.bias'\]"):
        CNNSpot(checkpoint=str(tmp_path / "broken.pth"), arch="resnet18")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        CNNSpot(checkpoint=str(tmp_path / "nope.pth"))
    with pytest.raises(CheckpointError, match=r"shape mismatch|missing keys"):
        CNNSpot(checkpoint=str(tmp_path / "broken.pth").replace("broken", "broken"), arch="resnet50")


def test_small_images_can_be_refused(tmp_path, aigi_mini):
    torch.save({"model": build_resnet("resnet18").state_dict()}, tmp_path / "c.pth")
    outcome, results = evaluate(
        "cnnspot",
        {"checkpoint": str(tmp_path / "c.pth"), "arch": "resnet18", "small_images": "error"},
        tmp_path / "out",
        4,
        status="failed",
    )
    assert outcome.n_failed == 4 and outcome.reason.startswith("all 4 samples failed; the first: ")
    assert outcome.results_path.exists()  # the failures are still recorded
    assert "smaller than the 224 crop" in read_samples(outcome.results_path)[0].error


# -- UnivFD -------------------------------------------------------------------------------------------------
def test_univfd_fc_weights_hf_backbone_and_openai_conversion(tmp_path, clip_dir, aigi_mini):
    from harness.plugins.detectors import load_clip_vision

    head = {"weight": torch.randn(1, 24) * 0.1, "bias": torch.zeros(1)}
    torch.save(head, tmp_path / "fc_weights.pth")
    hf = UnivFD(checkpoint=str(tmp_path / "fc_weights.pth"), clip=str(clip_dir), crop=64)
    vision, _ = load_clip_vision(str(clip_dir))
    torch.save(hf_vision_to_openai(vision), tmp_path / "ViT-tiny.pt")
    converted = UnivFD(checkpoint=str(tmp_path / "fc_weights.pth"), clip=str(tmp_path / "ViT-tiny.pt"), crop=64)
    from harness.tasks.aigi_mini import AigiMini

    sample = next(AigiMini().samples("test"))
    for model in (hf, converted):
        model.setup("cpu")
    x = torch.stack([hf.prepare(Request(sample=sample))[0]])
    torch.testing.assert_close(hf.features(x), converted.features(x), rtol=1e-5, atol=1e-5)
    assert hf.score_batch([hf.prepare(Request(sample=sample))])[0].score == pytest.approx(
        converted.score_batch([converted.prepare(Request(sample=sample))])[0].score, abs=1e-6
    )
    assert "converted" in converted.preprocessing()["backbone"]
    # a full UnivFD training checkpoint: the head is read from its fc.* keys
    torch.save(
        {"model": {"fc.weight": head["weight"], "fc.bias": head["bias"], "model.visual.x": torch.zeros(1)}},
        tmp_path / "full.pth",
    )
    UnivFD(checkpoint=str(tmp_path / "full.pth"), clip=str(clip_dir))
    with pytest.raises(CheckpointError, match="does not load cleanly"):  # wrong projection size: never re-initialised
        from transformers import CLIPConfig

        config = CLIPConfig.from_pretrained(clip_dir)
        config.projection_dim = 32
        config.save_pretrained(tmp_path / "wrong")
        import shutil

        shutil.copy(clip_dir / "model.safetensors", tmp_path / "wrong" / "model.safetensors")
        load_clip_vision(str(tmp_path / "wrong"))
    torch.save({"weight": torch.randn(1, 24)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \['bias'\]"):
        UnivFD(checkpoint=str(tmp_path / "bad.pth"), clip=str(clip_dir))


# -- FreDect (AIGCDetectBenchmark variant) ---------------------------------------------------------------------
def test_fredect_resnet_netc_checkpoint_and_dct_statistics(tmp_path, aigi_mini):
    torch.save({"netC": build_resnet("resnet18").state_dict()}, tmp_path / "fredect.pth")
    torch.save(torch.zeros(3, 32, 32, dtype=torch.float64), tmp_path / "dct_mean")
    torch.save(torch.ones(3, 32, 32, dtype=torch.float64), tmp_path / "dct_var")
    args = {
        "checkpoint": str(tmp_path / "fredect.pth"),
        "dct_mean": str(tmp_path / "dct_mean"),
        "dct_var": str(tmp_path / "dct_var"),
        "arch": "resnet18",
        "size": 32,
        "resize": 40,
    }
    outcome, results = evaluate("fredect-resnet", args, tmp_path / "out", 6)
    assert outcome.n_failed == 0 and results["model"]["preprocessing"]["center_crop"] == 32
    # the numbers, recomputed: Resize(40) -> CenterCrop(32) -> orthonormal 2-D DCT-II per channel written as
    # matrices (not scipy) -> log|.| -> standardise -> the checkpoint's ResNet -> sigmoid
    from PIL import Image

    from harness.images import load_image
    from harness.tasks.aigi_mini import AigiMini

    n = 32
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    dct = np.sqrt(2 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    dct[0] /= np.sqrt(2)
    network = build_resnet("resnet18")
    network.load_state_dict(torch.load(tmp_path / "fredect.pth")["netC"])
    network.eval()
    by_id = {s.id: s for s in AigiMini().samples("test")}
    records = read_samples(outcome.results_path)
    inputs = []
    for record in records:
        image = load_image(by_id[record.sample_id]).resize((40, 40), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float64)[4:36, 4:36]
        spectrum = np.stack([dct @ pixels[..., c] @ dct.T for c in range(3)])
        inputs.append(np.log(np.abs(spectrum) + 1e-12))
    with torch.no_grad():
        expected = torch.sigmoid(network(torch.tensor(np.stack(inputs), dtype=torch.float32)).reshape(-1))
    np.testing.assert_allclose([r.score for r in records], expected.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="dct_mean=PATH"):
        FreDectResNet(checkpoint=str(tmp_path / "fredect.pth"), arch="resnet18")


# -- CLIP zero-shot ----------------------------------------------------------------------------------------------
def clip_zero_shot_reference(clip_dir: Path, images: list, real: str, fake: str) -> list[float]:
    """CLIP zero-shot as the library computes it (``CLIPModel`` forward, ``logits_per_image``), one prompt per class."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    tokens = AutoTokenizer.from_pretrained(clip_dir)([real, fake], padding=True, return_tensors="pt")
    size = model.config.vision_config.image_size
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    with torch.no_grad():
        out = model(**tokens, pixel_values=processor(images=images, return_tensors="pt")["pixel_values"])
    return out.logits_per_image.softmax(dim=-1)[:, 1].tolist()


@pytest.mark.slow
def test_clip_zeroshot_equals_the_library_zero_shot_and_scores_vary(tmp_path, clip_dir, aigi_mini):
    from harness.images import load_image
    from harness.tasks.aigi_mini import AigiMini

    # size is not given: it comes from the checkpoint (a 64-px tower; the old default 224 failed every sample)
    args = {"clip": str(clip_dir), "real": ["real photo"], "fake": ["synthetic image"], "templates": ["a {}."]}
    outcome, results = evaluate("clip-zeroshot", args, tmp_path / "out", 12)
    assert outcome.n_failed == 0 and results["model"]["preprocessing"]["center_crop"] == 64
    records = read_samples(outcome.results_path)
    scores = [r.score for r in records]
    by_id = {s.id: s for s in AigiMini().samples("test")}
    images = [load_image(by_id[r.sample_id]) for r in records]
    np.testing.assert_allclose(
        scores, clip_zero_shot_reference(clip_dir, images, "a real photo.", "a synthetic image."), atol=1e-5
    )
    assert np.std(scores) > 1e-4  # a detector stuck at one value cannot pass


def test_clip_zeroshot_prompt_ensembles_are_recorded_and_differ(clip_dir):
    default = ClipZeroShot(clip=str(clip_dir))
    assert "a photo of a real photo." in default.prompts["real"] and "a AI-generated image." in default.prompts["fake"]
    assert len(default.prompts["real"]) == 6
    real, fake = default.class_embeddings
    assert float(real @ fake) < 0.999  # the two ensembles are different directions
    custom = ClipZeroShot(clip=str(clip_dir), real=["real"], fake=["fake"], templates=["a {} photo."], size=64)
    assert custom.prompts == {"real": ["a real photo."], "fake": ["a fake photo."]}


# -- training round trips -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cnnspot_train_save_load_evaluate_and_resume(tmp_path, aigi_mini):
    """The mechanics on a slice (the recorded 8-epoch numbers come from `make leaderboards`): training resumes
    where it stopped, the loss falls, the checkpoint loads and its scores differ per image."""
    from harness.tasks.aigi_mini import AigiMini
    from harness.trainers.torch_detectors import CNNSpotTrainer

    task = AigiMini()
    train, val = list(task.samples("train")), list(task.samples("val"))
    train = [s for s in train if s.label == 0][:100] + [s for s in train if s.label == 1][:100]
    val = [s for s in val if s.label == 0][:30] + [s for s in val if s.label == 1][:30]
    out = tmp_path / "cnnspot"
    common = dict(arch="resnet18", crop=64, resize=None, batch_size=32, progress=False, seed=0, lr=1e-3)
    first = CNNSpotTrainer(max_epochs=1, **common).train(train, val, out, "aigi-mini")
    assert len(first["history"]) == 1
    second = CNNSpotTrainer(max_epochs=3, **common).train(train, val, out, "aigi-mini")  # resumes at epoch 2
    assert [h["epoch"] for h in second["history"]] == [1, 2, 3]
    assert second["history"][0] == first["history"][0]
    assert second["history"][-1]["loss"] < second["history"][0]["loss"]
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["augmentation"] == "none" and config["trained_on"]["seen_generators"]
    outcome, results = evaluate("cnnspot", {"checkpoint": str(out)}, tmp_path / "eval", None)
    assert results["metrics"]["all"]["auc"]["value"] is not None and outcome.n_samples == 440
    assert np.std([r.score for r in read_samples(outcome.results_path)]) > 1e-4
    assert results["seen_generators"] == ["diffusion-resynth", "gan-upsample", "latent-decoder"]


@pytest.mark.slow
def test_univfd_linear_probe_round_trip(tmp_path, clip_dir, aigi_mini):
    from harness.tasks.aigi_mini import AigiMini
    from harness.trainers.torch_detectors import UnivFDTrainer

    task = AigiMini()
    out = tmp_path / "univfd"
    summary = UnivFDTrainer(clip=str(clip_dir), crop=64, max_epochs=5, progress=False).train(
        list(task.samples("train"))[:200], list(task.samples("val"))[:80], out, "aigi-mini"
    )
    assert 1 <= len(summary["history"]) <= 5 and (out / "weights.safetensors").exists()
    outcome, results = evaluate("univfd", {"checkpoint": str(out)}, tmp_path / "eval", 40)
    assert outcome.n_failed == 0 and results["model"]["fingerprint"]["clip_sha256"]
    # the numbers, recomputed as UnivFD defines them: sigmoid(fc(CLIP projected image embedding)) on a centre
    # crop with CLIP normalisation, through the library's own CLIP and processor
    from safetensors.torch import load_file
    from transformers import CLIPImageProcessor, CLIPModel

    from harness.images import load_image

    records = read_samples(outcome.results_path)
    by_id = {s.id: s for s in task.samples("test")}
    processor = CLIPImageProcessor(do_resize=False, crop_size={"height": 64, "width": 64})
    pixels = processor(images=[load_image(by_id[r.sample_id]) for r in records], return_tensors="pt")["pixel_values"]
    head = {k.removeprefix("head.").removeprefix("fc."): v for k, v in load_file(out / "weights.safetensors").items()}
    with torch.no_grad():
        embeds = CLIPModel.from_pretrained(clip_dir).get_image_features(pixel_values=pixels)
        embeds = getattr(embeds, "pooler_output", embeds)
        expected = torch.sigmoid(embeds @ head["weight"].T + head["bias"]).reshape(-1)
    np.testing.assert_allclose([r.score for r in records], expected.numpy(), atol=1e-5)


def test_early_stopping_schedule_matches_upstream_and_keeps_the_best():
    from harness.trainers.torch_detectors import EarlyStopping

    stopper = EarlyStopping(lr=1e-4, patience=2)
    assert stopper.step(0.80) == (True, False)
    assert stopper.step(0.8005) == (True, False)  # below the 0.001 delta: a plateau epoch, but a new best
    assert stopper.bad_epochs == 1
    assert stopper.step(0.70) == (False, False) and stopper.lr == pytest.approx(1e-5)  # lr / 10, fresh stage
    assert stopper.step(0.75) == (False, False)  # upstream would save this worse epoch as "best"
    assert stopper.best == pytest.approx(0.8005)
    stopper.step(0.70), stopper.step(0.70)  # plateau again -> 1e-6
    stopper.step(0.70)
    assert stopper.step(0.70)[1] or stopper.lr < 1e-6 or stopper.step(0.70)[1]


# -- decoding on the model's device ------------------------------------------------------------------
def jpeg_folder(root: Path) -> Path:
    """JPEGs of a real photograph at several sizes (one below the crop), a PNG, a truncated JPEG, and a ListTask
    manifest."""
    import skimage.data
    from toy_components import jpeg_manifest

    crops = [(i * 20, h, w) for i, (h, w) in enumerate([(300, 400), (256, 256), (480, 260), (120, 90)])]
    return jpeg_manifest(root, skimage.data.astronaut(), crops, png_side=240, quality=88, cut_at=5000)


@pytest.mark.parametrize("resize", [None, 256])
def test_torchvision_decoding_matches_pil_and_fails_bad_jpegs_per_sample(tmp_path, resize):
    from harness import hookimpl

    manifest = jpeg_folder(tmp_path / "data")

    class ListPlugin:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            register("jpeg-list", "harness.testkit.components:ListTask", manifest=str(manifest))

    torch.manual_seed(0)
    torch.save({"model": build_resnet("resnet18").state_dict()}, tmp_path / "c.pth")
    runs = {}
    for decode in ("pil", "torchvision"):
        config = RunConfig(
            model="cnnspot",
            model_args={"checkpoint": str(tmp_path / "c.pth"), "arch": "resnet18", "decode": decode, "resize": resize},
            tasks="jpeg-list",
            output_dir=tmp_path / decode,
            progress=False,
            bootstrap=0,
            audit=False,
            device="cpu",
            batch_size=8,
        )
        [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False, extra_plugins=(ListPlugin,))).run()
        assert outcome.status == "done", outcome.reason
        runs[decode] = {r.sample_id: r for r in read_samples(outcome.results_path)}
        pre = json.loads(outcome.results_path.read_text())["model"]["preprocessing"]
        assert pre["decoder"] == decode
    pil, tv = runs["pil"], runs["torchvision"]
    assert "cut.jpg" in tv["cut.jpg"].error and "corrupt or truncated" in tv["cut.jpg"].error
    assert pil["cut.jpg"].error
    for name in ("0.jpg", "1.jpg", "2.jpg", "3.jpg", "p.png"):
        assert tv[name].error is None
        # identical decoders on the CPU; where an image is resized, tensor vs PIL antialiasing differ slightly
        exact = resize is None and not pil[name].extra.get("upscaled")
        assert tv[name].score == pytest.approx(pil[name].score, abs=1e-6 if exact else 2e-3)
        assert tv[name].extra == pil[name].extra  # the small image is upscaled on both paths
    assert bool(tv["3.jpg"].extra.get("upscaled")) == (resize is None) and not tv["0.jpg"].extra


def test_decode_option_is_checked():
    with pytest.raises(ValueError, match="decode must be one of"):
        CNNSpot(checkpoint="x.pth", decode="nvjpeg")


def test_the_decoder_check_finds_the_cpu_decoders_equal_and_a_resize_or_shifted_pixels_not():
    """Issue #28: the fast path is chosen by what it gives. On the CPU torchvision's decoder gives PIL's pixels
    (both libjpeg-turbo) on every probe encoding; a tensor resize is not PIL's; a decoder that is one level off
    anywhere is caught."""
    import harness.plugins.detectors as detectors
    from harness.plugins.detectors import IMAGENET_MEAN, IMAGENET_STD, ImagePipeline, decoder_check

    crop_only = ImagePipeline(224, IMAGENET_MEAN, IMAGENET_STD)
    same = decoder_check(crop_only, "cpu")
    assert same["max_abs_pixel_diff"] == 0 and same["max_abs_input_diff"] == 0.0
    assert "3 photographs x 5 encodings" in same["probe"] and "CMYK" in same["probe"]
    resized = decoder_check(ImagePipeline(224, IMAGENET_MEAN, IMAGENET_STD, resize=256), "cpu")
    assert resized["max_abs_pixel_diff"] == 0 and 0 < resized["max_abs_input_diff"] < 0.1

    real = detectors.decode_jpegs

    def one_level_off(data, device):
        decoded = real(data, device)
        image = decoded[0]
        y, x = image.shape[1] // 2, image.shape[2] // 2  # inside the centre crop
        image[0, y, x] += 1 if image[0, y, x] < 255 else -1
        return decoded

    detectors.decode_jpegs = one_level_off
    try:
        shifted = decoder_check(crop_only, "cpu")
    finally:
        detectors.decode_jpegs = real
    assert shifted["max_abs_pixel_diff"] == 1 and shifted["max_abs_input_diff"] > 0


def test_auto_takes_the_fast_path_only_where_its_inputs_equal_and_records_the_choice(tmp_path, monkeypatch):
    import harness.plugins.detectors as detectors

    torch.save({"model": build_resnet("resnet18").state_dict()}, tmp_path / "c.pth")
    model = CNNSpot(checkpoint=str(tmp_path / "c.pth"), arch="resnet18")
    assert model.decode == "auto"
    model.setup("cpu")
    pre = model.preprocessing()
    assert pre["decoder"] == "pil" and "on the CPU" in pre["decoder_choice"]["how"]
    pipeline = model.transforms()
    checks = iter([{"max_abs_pixel_diff": 0, "max_abs_input_diff": 0.0}, {"max_abs_pixel_diff": 1,
                                                                             "max_abs_input_diff": 0.004}])  # fmt: skip
    monkeypatch.setattr(detectors, "decoder_check", lambda pipeline, device: next(checks))
    chosen, how = detectors.choose_decoder("auto", pipeline, "cuda:0")
    assert chosen == "torchvision" and how["max_abs_input_diff"] == 0.0
    chosen, how = detectors.choose_decoder("auto", pipeline, "cuda:0")
    assert chosen == "pil" and "differ" in how["how"] and how["max_abs_pixel_diff"] == 1
    assert detectors.choose_decoder("torchvision", pipeline, "cpu") == ("torchvision", {"how": "decode=torchvision"})

    def unavailable(pipeline, device):
        raise RuntimeError("nvJPEG is not available")

    monkeypatch.setattr(detectors, "decoder_check", unavailable)
    chosen, how = detectors.choose_decoder("auto", pipeline, "cuda:0")
    assert chosen == "pil" and how["error"] == "RuntimeError: nvJPEG is not available", "a failed check: PIL"
    # an explicit torchvision may answer otherwise than PIL: another cache key; auto and pil share PIL's
    asked = CNNSpot(checkpoint=str(tmp_path / "c.pth"), arch="resnet18", decode="torchvision")
    pil = CNNSpot(checkpoint=str(tmp_path / "c.pth"), arch="resnet18", decode="pil")
    assert asked.fingerprint() != model.fingerprint() == pil.fingerprint()


def test_a_decoder_error_is_told_by_its_last_line_or_its_type():
    """What a corrupt JPEG's sample error quotes: torchvision's last line, the error's type when it says nothing
    (an empty message used to fail the sample with IndexError instead)."""
    from harness.plugins.detectors import decoder_message

    assert decoder_message(RuntimeError("decode failed\nNot a JPEG file: starts with 0x89")) == (
        "Not a JPEG file: starts with 0x89"
    )
    assert decoder_message(RuntimeError()) == "RuntimeError"
