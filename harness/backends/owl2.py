"""mPLUG-Owl2 backend through the upstream ``mplug_owl2`` package (X-PLUG/mPLUG-Owl, mPLUG-Owl2/).

Upstream pins torch 2.0.1, transformers 4.31 and tokenizers < 0.14, so this
module normally runs inside a worker of its own environment (``harness env
create mplug-owl2``). It follows upstream's own inference path, the one Q-Align's
scorer (same group, same backbone) uses for soft-scoring:

- ``load_pretrained_model(path, None, model_name, device=...)``;
- images padded to a square filled with the processor mean x 255 (``expand2square``), then
  ``image_processor.preprocess``, in half precision on GPU;
- the prompt tokenised with ``tokenizer_image_token`` (``<|image|>`` -> ``IMAGE_TOKEN_INDEX``);
- logits at the last position for the anchor ids; generation with ``model.generate(input_ids, images=...)``.

This path needs the upstream package and weights, which the development
machines do not have: it is exercised by its authors' recipe, not by the test suite.
"""

from __future__ import annotations

from typing import Any, Sequence

try:
    from ._sibling import sibling
except ImportError:
    from _sibling import sibling

soft_scoring = sibling("soft_scoring")
images_mod = sibling("images")

OWL2_SCORE_PROMPT = "USER: <|image|>What is the authenticity of this image? ASSISTANT: This image is"
OWL2_CHAT = "USER: <|image|>{prompt} ASSISTANT:"


class Owl2Backend:
    """Loads an mPLUG-Owl2 (or FakeScope-Owl2) checkpoint with upstream code."""

    def __init__(self, path: str, device: str = "cuda", dtype: str = "auto",
                 score_prompt: str = OWL2_SCORE_PROMPT, chat_template: str = OWL2_CHAT,
                 fake: Sequence[str] = soft_scoring.DEFAULT_FAKE, real: Sequence[str] = soft_scoring.DEFAULT_REAL,
                 multi_token: str = "skip", method: str = "eq2", pad_to_square: bool = True, **_: Any) -> None:
        import torch
        from mplug_owl2.constants import IMAGE_TOKEN_INDEX
        from mplug_owl2.mm_utils import get_model_name_from_path, tokenizer_image_token
        from mplug_owl2.model.builder import load_pretrained_model

        self.torch, self.device, self.method = torch, device, method
        self.score_prompt, self.chat_template, self.pad_to_square = score_prompt, chat_template, pad_to_square
        self.tokenizer, self.model, self.image_processor, _ = load_pretrained_model(
            path, None, get_model_name_from_path(path), device=device)
        self.model.eval()
        self.half = device.startswith("cuda") if dtype == "auto" else dtype in ("fp16", "float16")
        self._tokenize = lambda text: tokenizer_image_token(text, self.tokenizer, IMAGE_TOKEN_INDEX,
                                                            return_tensors="pt")
        self.fill = [255.0 * m for m in self.image_processor.image_mean]
        text_prompt = score_prompt.replace("<|image|>", "")
        self.fake, self.real = soft_scoring.resolve_anchors(self.tokenizer, text_prompt, fake, real, multi_token)

    def info(self) -> dict[str, Any]:
        """Anchors, prompts and preprocessing, for results."""
        return {"backend": "mplug-owl2 (upstream mplug_owl2)", "device": self.device, "half": self.half,
                "score_prompt": self.score_prompt, "chat_template": self.chat_template, "method": self.method,
                **soft_scoring.anchors_record(self.fake, self.real),
                "preprocessing": {"pad_to_square": self.pad_to_square, "pad_fill": self.fill,
                                  "image_mean": list(self.image_processor.image_mean),
                                  "image_std": list(self.image_processor.image_std)}}

    def _pixels(self, sources: Sequence[Any]) -> Any:
        opened = [images_mod.open_image(s) for s in sources]
        if self.pad_to_square:
            opened = [images_mod.expand2square(i, self.fill) for i in opened]
        pixels = self.image_processor.preprocess(opened, return_tensors="pt")["pixel_values"]
        return (pixels.half() if self.half else pixels.float()).to(self.device)

    def score(self, sources: Sequence[Any]) -> list[float]:
        """P(fake) per image (Eq. 2 or logsumexp)."""
        pixels = self._pixels(sources)
        input_ids = self._tokenize(self.score_prompt).unsqueeze(0).to(self.device)
        with self.torch.inference_mode():
            logits = self.model(input_ids.repeat(pixels.shape[0], 1), images=pixels)["logits"][:, -1]
        return soft_scoring.soft_scores(logits.float().cpu(), self.fake.ids, self.real.ids, self.method)

    def generate(self, sources: Sequence[Any], prompts: Sequence[str], max_new_tokens: int = 256,
                 temperature: float = 0.0, top_p: float = 1.0, do_sample: bool = False) -> list[str]:
        """Greedy answers, one image at a time (prompts differ in length)."""
        answers = []
        for source, prompt in zip(sources, prompts):
            pixels = self._pixels([source])
            input_ids = self._tokenize(self.chat_template.format(prompt=prompt)).unsqueeze(0).to(self.device)
            with self.torch.inference_mode():
                output = self.model.generate(input_ids, images=pixels, max_new_tokens=int(max_new_tokens),
                                             do_sample=bool(do_sample), temperature=float(temperature) or None,
                                             top_p=float(top_p), use_cache=True)
            answers.append(self.tokenizer.decode(output[0, input_ids.shape[1]:], skip_special_tokens=True).strip())
        return answers
