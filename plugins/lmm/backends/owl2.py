"""mPLUG-Owl2 backend through the upstream ``mplug_owl2`` package (X-PLUG/mPLUG-Owl, mPLUG-Owl2/).

Upstream pins torch 2.0.1, transformers 4.31 and tokenizers < 0.14, so this
module normally runs inside a worker of its own environment (``harness env
create mplug-owl2``). It follows upstream's own inference path (its serving
worker, and Q-Align's scorer from the same group on the same backbone):

- ``load_pretrained_model(path, None, "mplug_owl2", device_map={"": device})``. Upstream's loader
  **forces float16** whatever it is asked (``kwargs['torch_dtype'] = torch.float16`` in
  ``model/builder.py``), which cannot run on a CPU; the loaded model is therefore cast to the
  dtype asked for here (``auto``: fp16 on CUDA as upstream, fp32 on the CPU) and the pixels
  follow the model's dtype. The dtype actually used is recorded.
- images through upstream's ``process_images`` with the checkpoint's ``image_aspect_ratio``
  (``config.json``; upstream's trainer writes its ``--image_aspect_ratio`` there, ``pad`` in its
  fine-tuning scripts): ``pad`` = pad to a square filled with ``int(mean x 255)`` (truncated, as
  upstream), ``resize`` = stretch to a square (what upstream's benchmark scripts do, calling it
  without a config), anything else = the plain CLIP processor (resize + centre crop). The
  ``image_aspect_ratio`` model argument overrides the checkpoint's value; the choice and where it
  came from are recorded. The FakeScope paper does not state its preprocessing.
- the prompt tokenised with ``tokenizer_image_token`` (``<|image|>`` -> ``IMAGE_TOKEN_INDEX``);
- logits at the last position for the anchor ids (Eq. 2); answers with
  ``model.generate(input_ids, images=...)``, greedy.

The test suite runs this module against a stand-in package that reproduces upstream's
loader and preprocessing behaviour; ``conformance/mplug_owl2.py`` runs it against the real
upstream code on a tiny random checkpoint (results in ``conformance/results/``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from . import batching, hf_vlm, soft_scoring
from . import images as images_mod

OWL2_SCORE_PROMPT = "USER: <|image|>What is the authenticity of this image? ASSISTANT: This image is"
OWL2_CHAT = "USER: <|image|>{prompt} ASSISTANT:"
ASPECT_CHOICES = ("config", "pad", "resize", "none")


def owl2_dtype(name: str, device: str) -> Any:
    """``auto`` = fp16 on CUDA (upstream's choice), fp32 elsewhere; else as :func:`hf_vlm.torch_dtype`."""
    if name == "auto":
        return hf_vlm.torch_dtype("fp16" if str(device).startswith("cuda") else "fp32", device)
    return hf_vlm.torch_dtype(name, device)


def upstream_model_name(path: str) -> str:
    """The name upstream's loader branches on: ``mplug_owl2_1`` for Qwen-based checkpoints, else
    ``mplug_owl2`` (upstream derives it from the folder name, so a folder called ``fakescope`` would
    silently take its generic ``AutoModelForCausalLM`` branch)."""
    config = os.path.join(os.path.expanduser(path), "config.json")
    if os.path.isfile(config):
        with open(config, encoding="utf-8") as handle:
            if json.load(handle).get("model_type") == "mplug_owl2_1":
                return "mplug_owl2_1"
    return "mplug_owl2"


class Owl2Backend:
    """Loads an mPLUG-Owl2 (or FakeScope-Owl2) checkpoint with upstream code."""

    def __init__(
        self,
        path: str,
        device: str = "cuda",
        dtype: str = "auto",
        score_prompt: str = OWL2_SCORE_PROMPT,
        chat_template: str = OWL2_CHAT,
        fake: Sequence[str] = soft_scoring.DEFAULT_FAKE,
        real: Sequence[str] = soft_scoring.DEFAULT_REAL,
        multi_token: str = "skip",
        method: str = "eq2",
        image_aspect_ratio: str = "config",
        **_: Any,
    ) -> None:
        import torch
        from mplug_owl2.constants import IMAGE_TOKEN_INDEX
        from mplug_owl2.mm_utils import process_images, tokenizer_image_token
        from mplug_owl2.model.builder import load_pretrained_model

        if image_aspect_ratio not in ASPECT_CHOICES:
            raise ValueError(f"image_aspect_ratio must be one of {ASPECT_CHOICES}, not {image_aspect_ratio!r}")
        self.torch, self.device, self.method = torch, device, method
        self.score_prompt, self.chat_template = score_prompt, chat_template
        self.tokenizer, model, self.image_processor, _ = load_pretrained_model(
            path, None, upstream_model_name(path), device_map={"": device}, device=device
        )
        self.loaded_dtype = str(model.dtype)
        self.model = model.to(device=device, dtype=owl2_dtype(dtype, device)).eval()
        configured = getattr(self.model.config, "image_aspect_ratio", None)
        self.aspect = configured if image_aspect_ratio == "config" else image_aspect_ratio
        self.aspect_source = "checkpoint config" if image_aspect_ratio == "config" else "model argument"
        self._process = lambda opened: process_images(
            opened, self.image_processor, SimpleNamespace(image_aspect_ratio=self.aspect)
        )
        self._tokenize = lambda text: tokenizer_image_token(
            text, self.tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt"
        )
        text_prompt = score_prompt.replace("<|image|>", "")
        self.fake, self.real = soft_scoring.resolve_anchors(self.tokenizer, text_prompt, fake, real, multi_token)

    def info(self) -> dict[str, Any]:
        """Anchors, prompts, dtype and preprocessing, for results."""
        mean = list(self.image_processor.image_mean)
        return {
            "backend": "mplug-owl2 (upstream mplug_owl2)",
            "device": self.device,
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "upstream_loader_dtype": self.loaded_dtype.replace("torch.", ""),
            "score_prompt": self.score_prompt,
            "chat_template": self.chat_template,
            "method": self.method,
            **soft_scoring.anchors_record(self.fake, self.real),
            "preprocessing": {
                "image_aspect_ratio": self.aspect,
                "image_aspect_ratio_source": self.aspect_source,
                "pad_fill": [int(m * 255) for m in mean] if self.aspect == "pad" else None,
                "image_mean": mean,
                "image_std": list(self.image_processor.image_std),
            },
        }

    def _pixels(self, sources: Sequence[Any]) -> Any:
        pixels = self._process([images_mod.open_image(s) for s in sources])
        if isinstance(pixels, list):  # upstream returns a list when shapes differ (never for a fixed-size CLIP)
            pixels = self.torch.stack(pixels)
        return pixels.to(device=self.device, dtype=self.model.dtype)

    def score(self, sources: Sequence[Any]) -> list[float]:
        """P(fake) per image (Eq. 2 or logsumexp)."""
        pixels = self._pixels(sources)
        input_ids = self._tokenize(self.score_prompt).unsqueeze(0).to(self.device)
        with self.torch.inference_mode():
            logits = self.model(input_ids.repeat(pixels.shape[0], 1), images=pixels)["logits"][:, -1]
        return soft_scoring.soft_scores(logits.float().cpu(), self.fake.ids, self.real.ids, self.method)

    def generate(
        self,
        sources: Sequence[Any],
        prompts: Sequence[str],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        do_sample: bool = False,
    ) -> list[str]:
        """Greedy answers (sampled with ``do_sample``): the prompts of equal token length in one batched
        ``generate`` call, unpadded (upstream's multimodal merge pads on the right; see :mod:`.batching`)."""
        sampling = {"temperature": float(temperature), "top_p": float(top_p)} if do_sample else {}
        ids = [self._tokenize(self.chat_template.format(prompt=prompt)) for prompt in prompts]
        groups = batching.equal_length_groups([len(row) for row in ids])
        answers = []
        for group in groups:
            pixels = self._pixels([sources[i] for i in group])
            input_ids = self.torch.stack([ids[i] for i in group]).to(self.device)
            with self.torch.inference_mode():
                output = self.model.generate(
                    input_ids,
                    images=pixels,
                    max_new_tokens=int(max_new_tokens),
                    do_sample=bool(do_sample),
                    use_cache=True,
                    **sampling,
                )
            ends = [self.tokenizer.eos_token_id]
            rows = [batching.through_first_end(row, ends) for row in output[:, input_ids.shape[1] :].tolist()]
            answers.append([self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in rows])
        return batching.rows_in_order(groups, answers)
