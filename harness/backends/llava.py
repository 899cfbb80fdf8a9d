"""LLaVA-1.5 (Hugging Face ``LlavaForConditionalGeneration``) backend: soft-scores and greedy answers.

Runs in-process (adapter ``fakescope-llava`` / ``llava-1.5``) or in a worker
process (``--model-args python=...``). Batches are left-padded, and scoring
computes logits at the last position only (``logits_to_keep=1``).
"""

from __future__ import annotations

from typing import Any, Sequence

try:
    from ._sibling import sibling
except ImportError:  # inside a worker: this folder is on sys.path
    from _sibling import sibling

soft_scoring = sibling("soft_scoring")
images_mod = sibling("images")

DEFAULT_CHAT = "USER: <image> {prompt} ASSISTANT:"


def _dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
            "fp32": torch.float32, "float32": torch.float32}[name]


def _plain(value: Any) -> Any:
    """Processor attributes such as ``SizeDict`` as plain JSON values."""
    if value is None or isinstance(value, (int, float, str, list)):
        return value
    try:
        return {k: v for k, v in dict(value).items() if v is not None}
    except (TypeError, ValueError):
        return str(value)


class LlavaBackend:
    """Loads a LLaVA checkpoint folder and serves ``score`` and ``generate``."""

    def __init__(self, path: str, device: str = "cpu", dtype: str = "auto",
                 score_prompt: str = soft_scoring.DEFAULT_PROMPT, chat_template: str = DEFAULT_CHAT,
                 fake: Sequence[str] = soft_scoring.DEFAULT_FAKE, real: Sequence[str] = soft_scoring.DEFAULT_REAL,
                 multi_token: str = "skip", method: str = "eq2", pad_to_square: bool = True,
                 attn_implementation: str | None = None) -> None:
        import torch
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        self.device, self.dtype_name = device, dtype
        self.score_prompt, self.chat_template, self.method = score_prompt, chat_template, method
        self.pad_to_square = pad_to_square
        import transformers

        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        dtype_key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"  # renamed in transformers 4.56
        kwargs: dict[str, Any] = {dtype_key: _dtype(dtype, device)}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        # local files only: a folder, or a hub id already in the user's Hugging Face cache; never a download
        self.model = LlavaForConditionalGeneration.from_pretrained(path, local_files_only=True,
                                                                   **kwargs).to(device).eval()
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.fake, self.real = soft_scoring.resolve_anchors(self.tokenizer, score_prompt, fake, real, multi_token)
        mean = getattr(self.processor.image_processor, "image_mean", None) or [0.5, 0.5, 0.5]
        self.fill = [255.0 * m for m in mean]
        self._torch = torch

    def info(self) -> dict[str, Any]:
        """Anchors, prompts and preprocessing, for results."""
        improc = self.processor.image_processor
        return {
            "backend": "llava", "device": self.device, "dtype": str(self.model.dtype),
            "score_prompt": self.score_prompt, "chat_template": self.chat_template, "method": self.method,
            "anchors": {"fake": self.fake.as_dict(), "real": self.real.as_dict()},
            "anchor_counts_equal": len(self.fake.ids) == len(self.real.ids),
            "preprocessing": {"pad_to_square": self.pad_to_square, "pad_fill": self.fill,
                              "processor": type(improc).__name__,
                              "size": _plain(getattr(improc, "size", None)),
                              "crop_size": _plain(getattr(improc, "crop_size", None)),
                              "image_mean": getattr(improc, "image_mean", None),
                              "image_std": getattr(improc, "image_std", None)},
        }

    def _images(self, sources: Sequence[Any]) -> list[Any]:
        opened = [images_mod.open_image(s) for s in sources]
        return [images_mod.expand2square(i, self.fill) for i in opened] if self.pad_to_square else opened

    def _inputs(self, images: list[Any], texts: list[str]) -> Any:
        inputs = self.processor(images=images, text=texts, return_tensors="pt", padding=True)
        return {k: (v.to(self.device, self.model.dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in inputs.items()}

    def next_token_logits(self, sources: Sequence[Any], prompt: str | None = None) -> Any:
        """Logits at the position after the scoring prompt, shape [batch, vocab]."""
        images = self._images(sources)
        with self._torch.inference_mode():
            output = self.model(**self._inputs(images, [prompt or self.score_prompt] * len(images)),
                                logits_to_keep=1)
        return output.logits[:, -1, :].float().cpu()

    def score(self, sources: Sequence[Any]) -> list[float]:
        """P(fake) per image by Eq. 2 (or the logsumexp variant)."""
        return soft_scoring.soft_scores(self.next_token_logits(sources), self.fake.ids, self.real.ids, self.method)

    def generate(self, sources: Sequence[Any], prompts: Sequence[str], max_new_tokens: int = 256,
                 temperature: float = 0.0, top_p: float = 1.0, do_sample: bool = False) -> list[str]:
        """Answers to ``prompts`` (greedy unless ``do_sample``), new tokens only."""
        images = self._images(sources)
        texts = [self.chat_template.format(prompt=p) for p in prompts]
        inputs = self._inputs(images, texts)
        kwargs: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "do_sample": bool(do_sample),
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if do_sample:
            kwargs.update(temperature=float(temperature), top_p=float(top_p))
        with self._torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
