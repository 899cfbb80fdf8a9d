"""Neural binary detectors: CNNSpot, UnivFD, FreDect (AIGCDetectBenchmark ResNet variant), CLIP zero-shot.

Each loads upstream checkpoints as published *or* a ``harness train`` folder
(``weights.safetensors`` + ``config.json``), strictly (see
:mod:`harness.plugins.torch_checkpoints`), and records the checkpoint hash and the
exact test-time preprocessing. Facts per detector: ``../shared/reference/detectors.md``.

Decoding: ``decode=pil`` decodes with PIL in the runner's worker threads;
``decode=torchvision`` hands JPEG bytes to ``torchvision.io.decode_jpeg`` on the
model's device, a batch at a time (nvJPEG on CUDA: the 16 CPU cores of a GPU box
decode ~800 1024x768 JPEGs/s, below what a ResNet-50 or ViT-L/14 consumes), then
resizes/crops/normalises the tensors there: uint8 bytes over the bus. Other formats fall back to PIL. On the
CPU both decoders give identical pixels (libjpeg-turbo); with ``resize`` set the
tensor resize is antialiased bilinear, within a few 1e-3 of PIL's. ``decode=auto`` (the default) takes the
fast path only where it gives the reference path's pixels: on a CUDA device, at setup, real photographs encoded
as JPEG five ways (:func:`decoder_check`) are decoded both ways and put through the detector's pipeline, and
torchvision is used when every input the network would see is identical to PIL's, PIL otherwise; on the CPU,
PIL. The decoder used and the check's numbers are recorded in the results (``preprocessing.decoder``,
``decoder_choice``). An explicit ``decode=torchvision`` enters the model's fingerprint (its answers may differ
from PIL's); ``auto`` does not (it only ever gives PIL's pixels).

Small images: torchvision's ``CenterCrop`` zero-pads images smaller than the crop
(CNNDetection / UnivFD test code). Here an image whose shorter side is below the
crop is upscaled (bilinear, shorter side to the crop size) first, as the
CNNDetection authors advise (issue #2), and the sample records ``upscaled``;
``small_images=error`` fails such samples instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.checkpoints import CheckpointError, checkpoint_argument
from harness.images import JPEG_MAGIC, PROBE_ENCODINGS, load_image, probe_jpegs, read_image_bytes
from harness.interfaces import ModelAdapter
from harness.plugins.torch_checkpoints import (
    checkpoint_hash,
    harness_checkpoint,
    load_strict,
    load_torch_file,
    openai_clip_visual_to_hf,
    strip_prefix,
)
from harness.records import Prediction, Request

DECODERS = ("auto", "pil", "torchvision")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def build_resnet(arch: str) -> Any:
    """torchvision ResNet with a 1-logit head and no downloaded weights (``resnet50`` upstream)."""
    import torchvision

    builders = {"resnet50": torchvision.models.resnet50, "resnet18": torchvision.models.resnet18}
    if arch not in builders:
        raise ValueError(f"arch must be one of {sorted(builders)}, not {arch!r}")
    return builders[arch](weights=None, num_classes=1)


class ImagePipeline:
    """Resize (optional) -> upscale-if-small -> centre crop -> tensor -> normalise; fully recorded."""

    def __init__(
        self,
        crop: int,
        mean: Sequence[float],
        std: Sequence[float],
        resize: int | None = None,
        interpolation: str = "bilinear",
        small_images: str = "upscale",
    ) -> None:
        if small_images not in ("upscale", "error"):
            raise ValueError("small_images must be 'upscale' or 'error'")
        self.crop, self.mean, self.std, self.resize = int(crop), tuple(mean), tuple(std), resize
        self.interpolation, self.small_images = interpolation, small_images

    def describe(self) -> dict[str, Any]:
        """The pipeline as recorded in results."""
        return {
            "resize_shorter_side": self.resize,
            "interpolation": self.interpolation,
            "small_images": f"{self.small_images} (shorter side < {self.crop})",
            "center_crop": self.crop,
            "to_tensor": "[0,1]",
            "normalize": {"mean": self.mean, "std": self.std},
        }

    def __call__(self, image: Any) -> tuple[Any, bool]:
        """A PIL image, or a uint8 [3, H, W] tensor on any device -> (normalised float tensor, upscaled)."""
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode

        mode = InterpolationMode.BICUBIC if self.interpolation == "bicubic" else InterpolationMode.BILINEAR
        if self.resize:
            image = TF.resize(image, self.resize, interpolation=mode, antialias=True)
        _, height, width = TF.get_dimensions(image)
        upscaled = min(height, width) < self.crop
        if upscaled:
            if self.small_images == "error":
                raise ValueError(f"image {width}x{height} is smaller than the {self.crop} crop (small_images=error)")
            image = TF.resize(image, self.crop, interpolation=mode, antialias=True)
        image = TF.center_crop(image, [self.crop, self.crop])
        tensor = TF.to_tensor(image) if not hasattr(image, "dtype") else image.float() / 255.0
        return TF.normalize(tensor, self.mean, self.std), upscaled


@dataclass
class EncodedJpeg:
    """A JPEG read but not decoded (``decode=torchvision``): its bytes and where it came from."""

    data: Any  # 1-D uint8 tensor
    where: str


class TorchDetector(ModelAdapter):
    """Shared lifecycle: the network is built and loaded in ``__init__``, moved to the device in ``setup``."""

    request_kinds = frozenset({"score"})
    name = ""

    def __init__(self, checkpoint: str | None = None, decode: str = "auto", path: str | None = None, **args: Any):
        checkpoint = checkpoint_argument(self.name, checkpoint, path)
        super().__init__(checkpoint=checkpoint, **args)
        if not checkpoint:
            raise ValueError(
                f"{self.name} needs --model-args checkpoint=PATH (an upstream checkpoint or a folder "
                f"from `harness train {self.name}`)"
            )
        if decode not in DECODERS:
            raise ValueError(f"decode must be one of {DECODERS}, not {decode!r}")
        self.decode = decode
        #: the decoder in use (``auto`` resolved at setup) and how it was chosen
        self.decoder = "pil" if decode == "auto" else decode
        self.decoder_choice: dict[str, Any] = {}
        self.checkpoint = Path(checkpoint).expanduser()
        self.checkpoint_sha256 = checkpoint_hash(self.checkpoint)
        self.trained: dict[str, Any] | None = None
        self.network: Any = None
        self.pipeline: ImagePipeline | None = None

    def fingerprint(self) -> dict[str, Any]:
        """Detector, checkpoint content hash and the arguments that change answers."""
        found = {
            "class": self.name,
            "checkpoint_sha256": self.checkpoint_sha256,
            "args": {k: v for k, v in self.args.items() if k not in ("checkpoint",)},
        }
        if self.decode == "torchvision":  # asked for whatever its pixels: other answers than PIL's may come back
            found["decode"] = "torchvision"
        return found

    def trained_on(self) -> dict[str, Any] | None:
        """From a ``harness train`` checkpoint's config, if any."""
        return (self.trained or {}).get("trained_on")

    def preprocessing(self) -> dict[str, Any]:
        """The pipeline and the checkpoint hash."""
        return {
            **(self.pipeline.describe() if self.pipeline else {}),
            "decoder": self.decoder,
            "decoder_choice": self.decoder_choice or {"how": f"decode={self.decode}"},
            "checkpoint_sha256": self.checkpoint_sha256,
        }

    def setup(self, device: str = "cpu") -> None:
        """Move the network to the device, in eval mode."""
        from harness.devices import resolve_device

        self.device = resolve_device(device)
        self.network = self.network.to(self.device).eval()
        self.decoder, self.decoder_choice = self.choose_decoder()

    def choose_decoder(self) -> tuple[str, dict[str, Any]]:
        """The decoder to use on the set-up device and how it was chosen (see the module)."""
        return choose_decoder(self.decode, self.transforms(), str(self.device))

    def prepare(self, request: Request) -> tuple[Any, bool] | EncodedJpeg:
        """Decode and transform one image (worker threads); with ``decode=torchvision``, JPEGs are only read
        here and decoded on the model's device in :meth:`score_batch`."""
        if self.decoder == "torchvision":
            data = read_image_bytes(request.sample)
            if data[:3] == JPEG_MAGIC:
                import torch

                return EncodedJpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), request.sample.describe())
        return self.transforms()(load_image(request.sample))

    def transforms(self) -> ImagePipeline:
        """The preprocessing pipeline (set up with the model)."""
        if self.pipeline is None:
            raise RuntimeError(f"{type(self).__name__}: setup() builds the preprocessing pipeline")
        return self.pipeline

    def logits(self, batch: Any) -> Any:
        """One logit per image."""
        return self.network(batch).reshape(-1)

    def probabilities(self, batch: Any) -> list[float]:
        """P(fake) per image: sigmoid of the logit."""
        import torch

        return torch.sigmoid(self.logits(batch).float()).cpu().tolist()

    def pixels(
        self, inputs: Sequence[tuple[Any, bool] | EncodedJpeg]
    ) -> tuple[list[Any], list[bool], list[str | None]]:
        """Pixel tensors, upscaled flags and per-item errors; JPEG bytes are decoded here, one batched call."""
        tensors: list[Any] = [None] * len(inputs)
        upscaled: list[bool] = [False] * len(inputs)
        errors: list[str | None] = [None] * len(inputs)
        jpegs = [i for i, item in enumerate(inputs) if isinstance(item, EncodedJpeg)]
        for i, item in enumerate(inputs):
            if not isinstance(item, EncodedJpeg):
                tensors[i], upscaled[i] = item
        encoded: list[EncodedJpeg] = [item for item in inputs if isinstance(item, EncodedJpeg)]
        for i, item, decoded in zip(jpegs, encoded, decode_jpegs([e.data for e in encoded], self.device), strict=True):
            where = item.where
            if isinstance(decoded, Exception):
                errors[i] = f"{where}: corrupt or truncated JPEG ({decoder_message(decoded)})"
                continue
            try:
                tensors[i], upscaled[i] = self.transforms()(decoded)
            except ValueError as exc:
                errors[i] = f"{where}: {exc}"
        return tensors, upscaled, errors

    def score_batch(self, inputs: Sequence[tuple[Any, bool] | EncodedJpeg]) -> list[Prediction]:
        """sigmoid(logit) = P(fake), with ``upscaled`` recorded on small images."""
        import torch

        tensors, upscaled, errors = self.pixels(inputs)
        good = [i for i, error in enumerate(errors) if error is None]
        predictions: list[Prediction] = [Prediction(error=error) for error in errors]  # the good ones replaced below
        if good:
            batch = torch.stack([tensors[i].to(self.device) for i in good])
            with torch.inference_mode():
                scores = self.probabilities(batch)
            for i, score in zip(good, scores, strict=True):
                predictions[i] = Prediction(score=score, extra={"upscaled": True} if upscaled[i] else {})
        return predictions


def choose_decoder(requested: str, pipeline: ImagePipeline, device: str) -> tuple[str, dict[str, Any]]:
    """``requested`` as it is, or for ``auto``: torchvision on a CUDA device where :func:`decoder_check` finds the
    network's inputs identical to PIL's, else PIL; with the reason and the check's numbers."""
    if requested != "auto":
        return requested, {"how": f"decode={requested}"}
    if not device.startswith("cuda"):
        return "pil", {"how": "decode=auto: PIL (on the CPU it decodes in the worker threads, beside the model)"}
    try:
        check = decoder_check(pipeline, device)
    except Exception as exc:  # noqa: BLE001 - a check that cannot run leaves the reference path, said why
        check = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
    equal = "error" not in check and check["max_abs_input_diff"] == 0.0
    how = "decode=auto: torchvision on the device, its inputs identical to PIL's" if equal else (
        "decode=auto: PIL, the device decoder's inputs differ from PIL's")  # fmt: skip
    return ("torchvision" if equal else "pil"), {"how": how, **check}


def decoder_check(pipeline: ImagePipeline, device: str) -> dict[str, Any]:
    """What the fast path changes on ``device``: the probe JPEGs (:func:`harness.images.probe_jpegs`: three real
    photographs, baseline 4:2:0 and 4:4:4, progressive, grayscale, CMYK), each decoded by PIL and by
    ``torchvision.io.decode_jpeg`` on ``device`` and put through ``pipeline``: the largest absolute difference of
    the decoded uint8 pixels and of the normalised inputs the network sees (``{"error": ...}`` when the device
    decoder fails)."""
    import io

    import torch
    from PIL import Image

    max_pixel, max_input = 0, 0.0
    for name, data in probe_jpegs():
        with Image.open(io.BytesIO(data)) as opened:
            reference = opened.convert("RGB")
        [fast] = decode_jpegs([torch.frombuffer(bytearray(data), dtype=torch.uint8)], device)
        if isinstance(fast, Exception):
            return {"error": f"{name}: {decoder_message(fast)}"}
        pixels = torch.from_numpy(np.asarray(reference).copy()).permute(2, 0, 1)
        max_pixel = max(max_pixel, int((fast.cpu().int() - pixels.int()).abs().max()))
        expected, fast_input = pipeline(reference)[0], pipeline(fast)[0]
        max_input = max(max_input, float((expected.to(fast_input.device) - fast_input).abs().max()))
    return {
        "device": device,
        "probe": f"3 photographs x {len(PROBE_ENCODINGS)} encodings: " + ", ".join(e for e, _, _ in PROBE_ENCODINGS),
        "max_abs_pixel_diff": max_pixel,
        "max_abs_input_diff": max_input,
    }


def decoder_message(exc: BaseException) -> str:
    """The last line of a decoder's error (where torchvision says what was wrong), its type when it says nothing."""
    lines = str(exc).splitlines()
    return lines[-1][:200] if lines else type(exc).__name__


def decode_jpegs(data: list[Any], device: str) -> list[Any]:
    """``torchvision.io.decode_jpeg`` on ``device`` for a list of byte tensors (one batched call; if it
    fails, one call per image so only the bad ones fail): uint8 RGB [3, H, W] tensors or exceptions."""
    if not data:
        return []
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        results: list[Any] = []
        for item in data:
            try:
                results.append(decode_jpeg(item, mode=ImageReadMode.RGB, device=device))
            except RuntimeError as exc:
                results.append(exc)
        return results


class CNNSpot(TorchDetector):
    """``cnnspot`` (Wang et al., CVPR 2020): ResNet-50, one logit; CNNDetection ``{'model': state_dict}``.

    Test-time as upstream ``eval.py``: no resize, centre crop 224, ImageNet normalisation
    (``resize=256`` for AIGCDetectBenchmark's pipeline).
    """

    name = "cnnspot"

    def __init__(
        self,
        checkpoint: str | None = None,
        arch: str = "resnet50",
        crop: int = 224,
        resize: int | None = None,
        small_images: str = "upscale",
        **args: Any,
    ) -> None:
        super().__init__(checkpoint=checkpoint, arch=arch, crop=crop, resize=resize, small_images=small_images, **args)
        found = harness_checkpoint(self.checkpoint, self.name)
        if found is not None:
            state, self.trained = found
            arch, crop, resize = self.trained.get("arch", arch), self.trained.get("crop", crop), resize
        else:
            raw = load_torch_file(self.checkpoint)
            state = raw["model"] if isinstance(raw, dict) and "model" in raw else raw
            state = strip_prefix(state, "module.")
        self.network = build_resnet(arch)
        load_strict(self.network, state, str(self.checkpoint))
        self.pipeline = ImagePipeline(crop, IMAGENET_MEAN, IMAGENET_STD, resize=resize, small_images=small_images)


class FreDectResNet(TorchDetector):
    """``fredect-resnet``: AIGCDetectBenchmark's FreDect, ResNet-50 on a normalised 224 log-DCT.

    ``data/process.py::processing_DCT``: Resize(256) -> CenterCrop(224) -> per-channel
    full 2-D DCT (orthonormal) of the [0,255] image -> ``log(|x| + 1e-12)`` ->
    ``(x - dct_mean) / sqrt(dct_var)`` with upstream's (3,224,224) float64 statistics
    (``dct_mean=``, ``dct_var=`` files). Upstream checkpoints keep the weights under
    ``netC`` (``eval_all.py``), its own trainer saves under ``model``; both load.
    """

    name = "fredect-resnet"

    def __init__(
        self,
        checkpoint: str | None = None,
        dct_mean: str | None = None,
        dct_var: str | None = None,
        arch: str = "resnet50",
        size: int = 224,
        resize: int = 256,
        **args: Any,
    ) -> None:
        super().__init__(
            checkpoint=checkpoint, dct_mean=dct_mean, dct_var=dct_var, arch=arch, size=size, resize=resize, **args
        )
        if self.decode not in ("pil", "auto"):
            raise ValueError("fredect-resnet computes its DCT from PIL-decoded pixels: decode=pil only")
        import torch

        found = harness_checkpoint(self.checkpoint, self.name)
        if found is not None:
            state, self.trained = found
            mean, var = state.pop("dct_mean"), state.pop("dct_var")
            arch, size, resize = self.trained["arch"], self.trained["size"], self.trained["resize"]
        else:
            raw = load_torch_file(self.checkpoint)
            key = (
                "netC"
                if isinstance(raw, dict) and "netC" in raw
                else "model"
                if isinstance(raw, dict) and "model" in raw
                else None
            )
            state = strip_prefix(raw[key] if key else raw, "module.")
            if not dct_mean or not dct_var:
                raise ValueError(
                    "fredect-resnet needs dct_mean=PATH and dct_var=PATH (upstream "
                    "weights/auxiliary/dct_mean and dct_var)"
                )
            mean, var = (torch.as_tensor(load_torch_file(p)) for p in (dct_mean, dct_var))
            self.checkpoint_sha256 = (
                checkpoint_hash(self.checkpoint) + "+" + checkpoint_hash(dct_mean)[:16] + checkpoint_hash(dct_var)[:16]
            )
        self.size, self.resize = int(size), int(resize)
        mean, var = mean.double(), var.double()
        if mean.shape[0] == 3:  # stored (3, H, W): make it HWC like the DCT below
            mean, var = mean.permute(1, 2, 0), var.permute(1, 2, 0)
        if tuple(mean.shape) != (self.size, self.size, 3):
            raise CheckpointError(
                f"dct_mean/dct_var shape {tuple(mean.shape)} does not match {self.size}x{self.size}x3"
            )
        self.dct_mean, self.dct_std = mean.numpy(), np.sqrt(var.numpy())
        self.network = build_resnet(arch)
        load_strict(self.network, state, str(self.checkpoint))

    def choose_decoder(self) -> tuple[str, dict[str, Any]]:
        """PIL always: upstream computes the DCT from PIL-decoded pixels."""
        return "pil", {"how": "PIL only (the DCT is computed from PIL-decoded pixels)"}

    def preprocessing(self) -> dict[str, Any]:
        """The DCT pipeline."""
        return {
            "decoder": "pil",
            "resize_shorter_side": self.resize,
            "center_crop": self.size,
            "range": "[0,255]",
            "transform": "per-channel 2-D DCT-II, norm=ortho",
            "log": "log(|x| + 1e-12)",
            "standardise": "(x - dct_mean) / sqrt(dct_var)",
            "checkpoint_sha256": self.checkpoint_sha256,
        }

    def dct_input(self, image: Any) -> tuple[Any, bool]:
        """The normalised log-DCT tensor (3, size, size) of a PIL image."""
        import torch
        import torchvision.transforms.functional as TF
        from scipy.fft import dctn

        image = TF.center_crop(TF.resize(image, self.resize), [self.size, self.size])
        pixels = np.asarray(image, dtype=np.float64)
        feature = np.log(np.abs(dctn(pixels, type=2, norm="ortho", axes=(0, 1))) + 1e-12)
        feature = (feature - self.dct_mean) / self.dct_std
        return torch.from_numpy(feature.transpose(2, 0, 1).astype(np.float32)), False

    def prepare(self, request: Request) -> tuple[Any, bool]:
        """Decode, then the DCT pipeline."""
        return self.dct_input(load_image(request.sample))


def load_clip_vision(clip: str) -> tuple[Any, str]:
    """``CLIPVisionModelWithProjection`` from a local HF folder (or cached id), or from an OpenAI /
    open_clip ``.pt`` state dict converted on load. Returns (model, description)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    path = Path(clip).expanduser()
    if path.is_file():
        state, config = openai_clip_visual_to_hf(strip_prefix(_state_of(load_torch_file(path)), "model."))
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**config))
        load_strict(model, {k: v for k, v in state.items()}, f"{path} (converted)")
        return model, f"OpenAI/open_clip checkpoint {path.name}, converted to transformers"
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(clip, local_files_only=True)
    if config.model_type == "clip":  # a full CLIPModel folder: its projection size lives on the outer config
        vision_config = config.vision_config
        vision_config.projection_dim = config.projection_dim
    else:
        vision_config = config
    try:
        loaded: Any = CLIPVisionModelWithProjection.from_pretrained(
            clip, config=vision_config, local_files_only=True, output_loading_info=True
        )
        model, info = loaded
    except RuntimeError as exc:  # size mismatches
        raise CheckpointError(f"{clip}: CLIP vision tower does not load cleanly: {str(exc)[-300:]}") from exc
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "mismatched_keys") and v}
    if problems:  # transformers would otherwise re-initialise these silently
        raise CheckpointError(f"{clip}: CLIP vision tower does not load cleanly: {problems}")
    return model, f"transformers CLIPVisionModelWithProjection from {clip}"


def _state_of(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict) and "state_dict" in raw:
        return raw["state_dict"]
    if isinstance(raw, dict) and "model" in raw and isinstance(raw["model"], dict):
        return raw["model"]
    return raw


class UnivFD(TorchDetector):
    """``univfd`` (Ojha et al., CVPR 2023): CLIP ViT-L/14 projected CLS embedding (not normalised) + Linear(768, 1).

    ``checkpoint`` = upstream ``fc_weights.pth`` (``weight`` [1,768], ``bias`` [1]), a full
    UnivFD training checkpoint (its ``fc.*`` keys), or a ``harness train univfd`` folder;
    ``clip`` = the backbone (HF folder, or OpenAI ``.pt``). Test-time as upstream
    ``validate.py``: centre crop 224 only, CLIP normalisation.
    """

    name = "univfd"

    def __init__(
        self,
        checkpoint: str | None = None,
        clip: str | None = None,
        crop: int = 224,
        small_images: str = "upscale",
        **args: Any,
    ) -> None:
        super().__init__(checkpoint=checkpoint, clip=clip, crop=crop, small_images=small_images, **args)
        import torch

        found = harness_checkpoint(self.checkpoint, self.name)
        if found is not None:
            head_state, self.trained = found
            clip = clip or self.trained.get("clip")
            crop = self.trained.get("crop", crop)
        else:
            raw = load_torch_file(self.checkpoint)
            raw = raw.get("model", raw) if isinstance(raw, dict) else raw
            head_state = {k[3:]: v for k, v in raw.items() if k.startswith("fc.")} or dict(raw)
        if not clip:
            raise ValueError("univfd needs clip=PATH: the CLIP ViT-L/14 backbone (HF folder or OpenAI .pt)")
        self.backbone, self.backbone_source = load_clip_vision(clip)
        self.head = torch.nn.Linear(self.backbone.config.projection_dim, 1)
        load_strict(self.head, head_state, str(self.checkpoint))
        self.clip_sha256 = checkpoint_hash(clip) if Path(clip).expanduser().exists() else f"hub:{clip}"
        self.network = torch.nn.ModuleDict({"backbone": self.backbone, "head": self.head})
        self.pipeline = ImagePipeline(crop, CLIP_MEAN, CLIP_STD, resize=None, small_images=small_images)

    def fingerprint(self) -> dict[str, Any]:
        """Head and backbone hashes."""
        return {**super().fingerprint(), "clip_sha256": self.clip_sha256}

    def preprocessing(self) -> dict[str, Any]:
        """Pipeline, feature and backbone."""
        return {
            **super().preprocessing(),
            "feature": "CLIP image_embeds (projected CLS, not L2-normalised)",
            "backbone": self.backbone_source,
            "clip_sha256": self.clip_sha256,
        }

    def features(self, batch: Any) -> Any:
        """The UnivFD feature of a batch of pixel tensors."""
        return self.backbone(pixel_values=batch).image_embeds

    def logits(self, batch: Any) -> Any:
        """Linear head on the feature."""
        return self.head(self.features(batch)).reshape(-1)


DEFAULT_REAL_CLASSES = ("real photo", "photograph taken with a camera")
DEFAULT_FAKE_CLASSES = ("AI-generated image", "synthetic image generated by a diffusion model")
DEFAULT_TEMPLATES = ("a {}.", "a {} photo.", "a photo of a {}.")


class ClipZeroShot(TorchDetector):
    """``clip-zeroshot``: CLIP ViT-L/14 with prompt ensembles for real vs AI-generated.

    Standard CLIP zero-shot (OpenAI recipe, CLIPping-the-Deception): each class's prompts
    (class names x templates) are embedded, L2-normalised, averaged and renormalised;
    logits = exp(logit_scale) x cosine similarity; P(fake) = softmax over the two
    classes. No official prompt set exists; the defaults (reference notes, section 4) and
    any user prompts are recorded. Preprocessing as OpenAI's ``_transform(n_px)``:
    resize shorter side to the tower's input size (``size``; default: the checkpoint's
    ``vision_config.image_size``, 224 for ViT-L/14) (bicubic), centre crop, CLIP normalisation. The 0.5
    threshold of a two-prompt softmax is uncalibrated: read AP / AUC.
    """

    name = "clip-zeroshot"

    def __init__(
        self,
        checkpoint: str | None = None,
        clip: str | None = None,
        real: Sequence[str] = DEFAULT_REAL_CLASSES,
        fake: Sequence[str] = DEFAULT_FAKE_CLASSES,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        size: int | None = None,
        **args: Any,
    ) -> None:
        clip = clip or checkpoint
        super().__init__(
            checkpoint=clip, real=list(real), fake=list(fake), templates=list(templates), size=size, **args
        )
        import torch
        from transformers import AutoTokenizer, CLIPModel

        self.model = CLIPModel.from_pretrained(str(self.checkpoint), local_files_only=True).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.checkpoint), local_files_only=True)
        size = int(size or self.model.config.vision_config.image_size)  # the tower's own input size by default
        self.args["size"] = size
        self.prompts = {
            "real": [t.format(c) for c in real for t in templates],
            "fake": [t.format(c) for c in fake for t in templates],
        }
        with torch.no_grad():
            self.class_embeddings = torch.stack([self._embed(self.prompts["real"]), self._embed(self.prompts["fake"])])
        self.network = self.model
        self.pipeline = ImagePipeline(size, CLIP_MEAN, CLIP_STD, resize=size, interpolation="bicubic")

    def _embed(self, texts: list[str]) -> Any:
        tokens = self.tokenizer(texts, padding=True, return_tensors="pt")
        features = self.model.get_text_features(**tokens)
        features = getattr(features, "pooler_output", features)
        features = features / features.norm(dim=-1, keepdim=True)
        mean = features.mean(dim=0)
        return mean / mean.norm()

    def preprocessing(self) -> dict[str, Any]:
        """Pipeline and prompts."""
        return {
            **super().preprocessing(),
            "prompts": self.prompts,
            "score": "softmax(exp(logit_scale) * cos(image, class ensemble))[fake]",
        }

    def probabilities(self, batch: Any) -> list[float]:
        """Two-class softmax over the ensembles."""
        import torch

        image = self.model.get_image_features(pixel_values=batch)
        image = getattr(image, "pooler_output", image)
        image = image / image.norm(dim=-1, keepdim=True)
        logits = self.model.logit_scale.exp() * image @ self.class_embeddings.to(self.device).T
        return torch.softmax(logits.float(), dim=-1)[:, 1].cpu().tolist()

    def setup(self, device: str = "cpu") -> None:
        """Move the CLIP model to the device."""
        super().setup(device)
