"""Shared machinery of the vision-language backends: loading, prompts, soft-scoring and greedy answers.

A *family* subclass says which transformers class loads the checkpoint, how its
chat turn is written (``chat_template``, where ``{prompt}`` is the question and
``<image>`` marks where the image goes, for families whose processor places it
from the text) and how the processor is called. Everything else is shared:

- **Same prompts for every model** (paper Sec. VI-A3: "all tested LMMs are
  evaluated using same prompting templates as FakeScope"): the soft-scoring text
  is the family's chat turn around :data:`soft_scoring.QUESTION`, followed by
  :data:`soft_scoring.ANSWER_PREFIX` (``"This image is"``), so for LLaVA it is
  exactly the paper's ``USER: <image> What is the authenticity of this image?
  ASSISTANT: This image is``. Qualitative prompts come from the task.
- **Eq. 2 soft-scoring** (:mod:`soft_scoring`) on the logits at the last
  position only (``logits_to_keep=1``), many images per forward pass, left padding.
- Local files only: a folder, or a hub id already in the user's Hugging Face
  cache; never a download.
- **Where scoring pixels are made** (``preprocess``, families with a fixed-size image encoding): ``cpu``
  decodes with PIL and runs the image processor in the runner's worker threads; ``device`` hands the JPEG
  bytes to the model's device, decodes them there (``torchvision.io.decode_jpeg``, nvJPEG on CUDA), pads and
  runs the same image processor there (its torchvision backend, ``device=``); ``auto`` (the default) is ``cpu``
  until :meth:`HfVlmBackend.check_device_preprocessing` finds the two paths' scores within the precision's
  rounding on probe photographs (the adapter runs it on CUDA). Other formats always take the CPU path.

Standalone like the rest of :mod:`harness.plugins.lmm.backends`: it runs inside worker
environments that do not have the harness installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import images as images_mod
from . import soft_scoring

IMAGE_MARK = "<image>"


def torch_dtype(name: str, device: str) -> Any:
    """``auto`` (bf16 on CUDA, fp32 elsewhere), ``bf16``, ``fp16`` or ``fp32`` as a torch dtype."""
    import torch

    if name == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    table = {
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
        "fp32": torch.float32,
        "float32": torch.float32,
    }
    if name not in table:
        raise ValueError(f"dtype must be auto, bf16, fp16 or fp32, not {name!r}")
    return table[name]


def load_kwargs(dtype: str, device: str, attn_implementation: str | None = None) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for the installed transformers (``torch_dtype`` became
    ``dtype`` in 4.56; worker environments pin older versions)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    kwargs: dict[str, Any] = {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch_dtype(dtype, device)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    return kwargs


def plain(value: Any) -> Any:
    """Processor attributes such as ``SizeDict`` as plain JSON values."""
    if value is None or isinstance(value, (int, float, str, list)):
        return value
    try:
        return {k: v for k, v in dict(value).items() if v is not None}
    except (TypeError, ValueError):
        return str(value)


def require_remote_code(trust_remote_code: Any, model: str) -> None:
    """Refuse to run a model repository's own Python code unless the user opted in."""
    if str(trust_remote_code).lower() not in ("1", "true", "yes"):
        raise ValueError(
            f"{model} runs Python code shipped inside its model repository; allow it with "
            "--model-args trust_remote_code=true (normally together with python=ENV/bin/python "
            "of an environment from `harness env create`)"
        )


#: ``generate()``'s KV cache (``cache_implementation``): transformers' default growing cache, or a static one of
#: fixed shape, with which transformers compiles the decoding step on CUDA (CUDA graphs: one launch per step
#: instead of ~1,500 kernel launches from the host); tokens are the same (tested on the CPU)
CACHE_IMPLEMENTATIONS = ("dynamic", "static")


#: ``compile=auto`` (the default) keeps the compiled scoring forward only where the first batch's Eq. 2 scores are
#: within this distance of the eager ones: what reordering a floating-point sum may change at the weights' precision
COMPILE_TOLERANCE = {"float32": 1e-5, "bfloat16": 4e-3, "float16": 1e-3}


def _compile_backend(value: Any) -> str | None:
    """``compile=true`` -> inductor; ``compile=NAME`` -> that torch.compile backend; false -> None."""
    text = str(value).lower()
    if text in ("", "0", "false", "no", "none"):
        return None
    return "inductor" if text in ("1", "true", "yes") else str(value)


def error_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (the type alone when the message is empty), at most ``limit`` characters
    of the message: what a fallback records about why it fell back."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


def auto_compile_backend(device: str) -> str | None:
    """What ``compile=auto`` tries on ``device``: inductor on CUDA (its fused kernels and fewer launches are what
    the scoring forward lacks there, issue #28), nothing on the CPU (compiling costs more than it saves)."""
    return "inductor" if str(device).startswith("cuda") else None


#: where scoring pixels are made (see the module)
PREPROCESS = ("auto", "cpu", "device")


@dataclass
class EncodedImage:
    """A JPEG read but not decoded (``preprocess=device``): its bytes (a 1-D uint8 tensor) and where it came from."""

    data: Any
    where: str


def score_text(chat_template: str) -> str:
    """The soft-scoring text for a chat turn: the question in the turn, then the answer prefix."""
    return f"{chat_template.format(prompt=soft_scoring.QUESTION)} {soft_scoring.ANSWER_PREFIX}"


class HfVlmBackend:
    """A transformers-native vision-language checkpoint serving ``score`` and ``generate``."""

    family = "hf-vlm"
    model_class = "AutoModelForImageTextToText"
    default_chat = f"USER: {IMAGE_MARK} {{prompt}} ASSISTANT:"
    default_pad_to_square = False
    #: every image becomes the same number of tokens (a fixed-size image processor), so a scoring batch is
    #: one cached token sequence repeated plus stacked pixels, and pixels can be made off the model thread
    fixed_image_tokens = False

    def __init__(
        self,
        path: str,
        device: str = "cpu",
        dtype: str = "auto",
        score_prompt: str | None = None,
        chat_template: str | None = None,
        fake: Sequence[str] = soft_scoring.DEFAULT_FAKE,
        real: Sequence[str] = soft_scoring.DEFAULT_REAL,
        multi_token: str = "skip",
        method: str = "eq2",
        pad_to_square: bool | None = None,
        attn_implementation: str | None = None,
        compile: Any = "auto",
        cache_implementation: str = "dynamic",
        preprocess: str = "auto",
    ) -> None:
        import transformers

        model_class = getattr(transformers, self.model_class)
        model = (
            model_class.from_pretrained(path, local_files_only=True, **load_kwargs(dtype, device, attn_implementation))
            .to(device)
            .eval()
        )
        processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
        self._configure(
            model,
            processor,
            device,
            score_prompt,
            chat_template,
            fake,
            real,
            multi_token,
            method,
            pad_to_square,
            compile,
            cache_implementation,
            preprocess,
        )

    @classmethod
    def from_components(cls, model: Any, processor: Any, device: str = "cpu", **options: Any) -> HfVlmBackend:
        """A backend over a model and processor already in memory (benchmarks with random weights, tests);
        ``options`` as for the constructor, minus the loading ones."""
        backend = cls.__new__(cls)
        backend._configure(model.to(device).eval(), processor, device, **options)
        return backend

    def _configure(
        self,
        model: Any,
        processor: Any,
        device: str,
        score_prompt: str | None = None,
        chat_template: str | None = None,
        fake: Sequence[str] = soft_scoring.DEFAULT_FAKE,
        real: Sequence[str] = soft_scoring.DEFAULT_REAL,
        multi_token: str = "skip",
        method: str = "eq2",
        pad_to_square: bool | None = None,
        compile: Any = "auto",
        cache_implementation: str = "dynamic",
        preprocess: str = "auto",
    ) -> None:
        import torch

        self._torch = torch
        if cache_implementation not in CACHE_IMPLEMENTATIONS:
            raise ValueError(
                f"cache_implementation={cache_implementation!r}: one of {', '.join(CACHE_IMPLEMENTATIONS)}"
            )
        self.cache_implementation = cache_implementation
        if preprocess not in PREPROCESS:
            raise ValueError(f"preprocess={preprocess!r}: one of {', '.join(PREPROCESS)}")
        #: asked for, and in use (``auto`` stays ``cpu`` until the check finds the device path's scores equal)
        self.preprocess_requested = preprocess
        self.preprocess = "device" if preprocess == "device" and self.fixed_image_tokens else "cpu"
        self.preprocess_check: dict[str, Any] | None = None
        self.model, self.processor, self.device, self.method = model, processor, device, method
        self.chat_template = chat_template or self.default_chat
        self.score_prompt = score_prompt or score_text(self.chat_template)
        self.pad_to_square = self.default_pad_to_square if pad_to_square is None else bool(pad_to_square)
        self.compile_auto = str(compile).lower() == "auto"
        self.compiled = auto_compile_backend(device) if self.compile_auto else _compile_backend(compile)
        #: compile=auto: the comparison of the first compiled batch with the eager forward (None until then)
        self.compile_check: dict[str, Any] | None = None
        # the scoring forward pass only, as a separate callable: generate() keeps the model's own eager forward
        # (compiling the model object itself made every decoding step of generate() a new shape to compile)
        self._score_forward = (
            torch.compile(self.model.forward, backend=self.compiled, dynamic=False) if self.compiled else self.model
        )
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.fake, self.real = soft_scoring.resolve_anchors(self.tokenizer, self.score_prompt, fake, real, multi_token)
        improc = self.processor.image_processor
        mean = getattr(improc, "image_mean", None) or [0.5, 0.5, 0.5]
        self.fill = [int(255 * m) for m in mean]  # truncated, as upstream LLaVA
        self._score_text_inputs: dict[str, Any] | None = None
        self.pin_memory = str(device).startswith("cuda") and torch.cuda.is_available()

    # -- description ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Anchors, prompts and preprocessing, for results."""
        improc = self.processor.image_processor
        return {
            "backend": self.family,
            "model_class": self.model_class,
            "device": self.device,
            "dtype": str(self.model.dtype),
            "torch_compile": self.compiled or False,
            "compile_check": self.compile_check,
            "preprocess": self.preprocess,
            "preprocess_check": self.preprocess_check,
            "cache_implementation": self.cache_implementation,
            "score_prompt": self.score_prompt,
            "chat_template": self.chat_template,
            "method": self.method,
            **soft_scoring.anchors_record(self.fake, self.real),
            "preprocessing": {
                "pad_to_square": self.pad_to_square,
                "pad_fill": self.fill,
                "processor": type(improc).__name__,
                "size": plain(getattr(improc, "size", None)),
                "crop_size": plain(getattr(improc, "crop_size", None)),
                "image_mean": plain(getattr(improc, "image_mean", None)),
                "image_std": plain(getattr(improc, "image_std", None)),
            },
        }

    # -- family hooks --------------------------------------------------------------------------
    def encode(self, images: list[Any], texts: list[str]) -> dict[str, Any]:
        """Processor outputs for images and their texts (one image per text)."""
        return dict(self.processor(images=images, text=texts, return_tensors="pt", padding=True))

    def generate_kwargs(self) -> dict[str, Any]:
        """Extra ``generate`` arguments of the family (stop tokens, banned tokens)."""
        return {}

    # -- shared ----------------------------------------------------------------------------------
    def _images(self, sources: Sequence[Any]) -> list[Any]:
        opened = [images_mod.open_image(s) for s in sources]
        return [images_mod.expand2square(i, self.fill) for i in opened] if self.pad_to_square else opened

    def _inputs(self, images: list[Any], texts: list[str]) -> dict[str, Any]:
        return self._to_device(self.encode(images, texts))

    def _to_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        moved = {}
        for key, value in inputs.items():
            if self.pin_memory and value.device.type == "cpu":
                value = value.pin_memory()
            dtype = self.model.dtype if value.is_floating_point() else value.dtype
            moved[key] = value.to(self.device, dtype, non_blocking=self.pin_memory)
        return moved

    def prepare_pixels(self, source: Any) -> Any:
        """Decode, pad and run the image processor for one image: a [3, H, W] float tensor.

        Thread-safe and model-free, so the adapter calls it in the runner's worker threads while
        the model runs on the previous batch. Only for ``fixed_image_tokens`` families.
        """
        [image] = self._images([source])
        return self.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]

    def encoded(self, data: bytes, where: str) -> EncodedImage:
        """JPEG bytes to be decoded on the model's device (``preprocess=device``)."""
        return EncodedImage(self._torch.frombuffer(bytearray(data), dtype=self._torch.uint8), where)

    def device_pixels(self, items: Sequence[EncodedImage]) -> Any:
        """The image processor's pixels of JPEG bytes, made on the model's device: one batched decode, the
        square padding as :meth:`_images` pads (the same fill and offsets), the processor with ``device=``. A JPEG
        that does not decode raises ``ValueError`` naming it (the runner retries a failed batch item by item)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            decoded = list(decode_jpeg([i.data for i in items], mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError as exc:
            where = items[0].where if len(items) == 1 else f"one of {len(items)} JPEGs"
            reason = (str(exc).splitlines() or [type(exc).__name__])[-1][:200]  # torchvision's last line says what
            raise ValueError(f"{where}: corrupt or truncated JPEG ({reason})") from exc
        if self.pad_to_square:
            decoded = [images_mod.expand2square_tensor(image, self.fill) for image in decoded]
        return self.processor.image_processor(images=decoded, return_tensors="pt", device=self.device)["pixel_values"]

    def _pixel_batch(self, sources: Sequence[Any]) -> Any:
        """Stacked pixels of prepared tensors, JPEG bytes for the device (:meth:`device_pixels`) and images."""
        torch = self._torch
        encoded = [i for i, s in enumerate(sources) if isinstance(s, EncodedImage)]
        rows: list[Any] = [s if torch.is_tensor(s) else None for s in sources]
        if encoded:
            for i, pixels in zip(encoded, self.device_pixels([sources[i] for i in encoded])):
                rows[i] = pixels
        rows = [self.prepare_pixels(s) if row is None else row for s, row in zip(sources, rows)]
        if encoded:  # some made on the device: all there
            rows = [row.to(self.device) for row in rows]
        return torch.stack(rows)

    def check_device_preprocessing(self, probes: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
        """``preprocess=auto``: score the probe JPEGs both ways (PIL and the processor in threads; decoded and
        processed on the device) and use the device path from now on when every Eq. 2 score is within the
        precision's rounding (:data:`COMPILE_TOLERANCE`) of the CPU path's; the comparison is recorded."""
        reference = [self.prepare_pixels(images_mod.open_image(data)) for _, data in probes]
        check: dict[str, Any] = {"device": str(self.device), "probe": [name for name, _ in probes]}
        check["tolerance"] = self.score_tolerance()
        try:
            fast = self.device_pixels([self.encoded(data, name) for name, data in probes])
        except Exception as exc:  # noqa: BLE001 - a device decoder that cannot do this: the CPU path, said why
            check.update(kept=False, error=error_line(exc))
            self.preprocess_check = check
            return check
        slow = self._torch.stack(reference).to(fast.device)
        check["max_abs_pixel_diff"] = float((slow.float() - fast.float()).abs().max())
        expected, found = self.score(list(slow.cpu())), self.score(list(fast))
        check["max_abs_score_diff"] = max(abs(a - b) for a, b in zip(expected, found))
        check["kept"] = check["max_abs_score_diff"] <= check["tolerance"]
        self.preprocess = "device" if check["kept"] else "cpu"
        self.preprocess_check = check
        return check

    def _scoring_inputs(self, pixels: Any) -> dict[str, Any]:
        """The cached token inputs of the scoring text, repeated for the batch, plus the stacked pixels."""
        if self._score_text_inputs is None:
            from PIL import Image

            blank = Image.new("RGB", (32, 32), tuple(int(c) for c in self.fill))
            encoded = self.encode([blank], [self.score_prompt])
            self._score_text_inputs = {k: v for k, v in encoded.items() if k != "pixel_values"}
        n = pixels.shape[0]
        inputs = {k: v.expand(n, *v.shape[1:]).contiguous() for k, v in self._score_text_inputs.items()}
        return self._to_device({**inputs, "pixel_values": pixels})

    def next_token_logits(self, sources: Sequence[Any], prompt: str | None = None) -> Any:
        """Logits at the position after the scoring text, shape [batch, vocab].

        ``sources`` are images (paths, bytes, PIL) or, for ``fixed_image_tokens`` families, tensors
        from :meth:`prepare_pixels`.
        """
        torch = self._torch
        if self.fixed_image_tokens and prompt is None:
            inputs = self._scoring_inputs(self._pixel_batch(sources))
        else:
            images = self._images(sources)
            inputs = self._inputs(images, [prompt or self.score_prompt] * len(images))
        with torch.inference_mode():
            if self.compile_auto and self.compiled and self.compile_check is None:
                return self._checked_compiled_logits(inputs)
            output = self._score_forward(**inputs, logits_to_keep=1)
        return output.logits[:, -1, :].float().cpu()

    def score_tolerance(self) -> float:
        """How far two ways of computing the same Eq. 2 score may differ at the weights' precision
        (:data:`COMPILE_TOLERANCE`; the loosest for a precision it does not name)."""
        dtype = str(self.model.dtype).replace("torch.", "")
        return COMPILE_TOLERANCE.get(dtype, max(COMPILE_TOLERANCE.values()))

    def _checked_compiled_logits(self, inputs: dict[str, Any]) -> Any:
        """``compile=auto``'s first batch: the compiled and the eager forward on it; the compiled one is kept when
        its Eq. 2 scores are within :data:`COMPILE_TOLERANCE` of the eager ones (and it compiled at all), else the
        run goes on eagerly. Either way the comparison is recorded (``info()["compile_check"]``)."""
        eager = self.model(**inputs, logits_to_keep=1).logits[:, -1, :].float().cpu()
        tolerance = self.score_tolerance()
        check: dict[str, Any] = {"backend": self.compiled, "batch": int(eager.shape[0]), "tolerance": tolerance}
        try:
            compiled = self._score_forward(**inputs, logits_to_keep=1).logits[:, -1, :].float().cpu()
        except Exception as exc:  # noqa: BLE001 - a backend that cannot compile this model: eager, said why
            compiled, check["error"] = None, error_line(exc)
        if compiled is not None:
            scores = [soft_scoring.soft_scores(x, self.fake.ids, self.real.ids, self.method) for x in (eager, compiled)]
            check["max_abs_score_diff"] = max(abs(a - b) for a, b in zip(*scores))
        check["kept"] = compiled is not None and check["max_abs_score_diff"] <= tolerance
        self.compile_check = check
        if not check["kept"]:
            self._score_forward, self.compiled = self.model, None
            return eager
        return compiled

    def score(self, sources: Sequence[Any]) -> list[float]:
        """P(fake) per image by Eq. 2 (or the logsumexp variant)."""
        return soft_scoring.soft_scores(self.next_token_logits(sources), self.fake.ids, self.real.ids, self.method)

    def generate(
        self,
        sources: Sequence[Any],
        prompts: Sequence[str],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        do_sample: bool = False,
    ) -> list[str]:
        """Answers to ``prompts`` (greedy unless ``do_sample``), new tokens only."""
        images = self._images(sources)
        inputs = self._inputs(images, [self.chat_template.format(prompt=p) for p in prompts])
        kwargs: dict[str, Any] = {
            "max_new_tokens": int(max_new_tokens),
            "do_sample": bool(do_sample),
            "pad_token_id": self.tokenizer.pad_token_id,
            **self.generate_kwargs(),
        }
        if self.cache_implementation != "dynamic":
            kwargs["cache_implementation"] = self.cache_implementation
        if do_sample:
            kwargs.update(temperature=float(temperature), top_p=float(top_p))
        with self._torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
