"""Qwen-VL-Chat backend through the model repository's own code (``Qwen/Qwen-VL-Chat``, remote code).

The baseline of paper Sec. VI-A3. It follows the repository's documented chat path:

- the user turn is ``tokenizer.from_list_format([{"image": PATH}, {"text": QUESTION}])``,
  i.e. ``Picture 1: <img>PATH</img>\\nQUESTION``; the model reads the image from that path;
- the conversation is ChatML with the system message ``You are a helpful assistant.``
  (the ``make_context`` of the repository's ``qwen_generation_utils`` when the loaded
  modelling module exposes it, the same layout written here otherwise);
- soft-scoring appends the answer prefix ``This image is`` after ``<|im_start|>assistant\\n``
  and reads the logits at the last position (Eq. 2); a batch is left-padded with explicit
  position ids, so batched and single scores agree;
- answers: ``model.chat(tokenizer, query, history=None, system=...)``, greedy.

Needs ``trust_remote_code=true``; runs normally in a worker of the environment from
``harness env create qwen-vl-chat`` (transformers 4.32, tiktoken).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from . import hf_vlm, remote_code

SYSTEM = "You are a helpful assistant."


def chatml_context(
    tokenizer: Any,
    query: str,
    history: Any = None,
    system: str = SYSTEM,
    max_window_size: int = 6144,
    chat_format: str = "chatml",
) -> tuple[str, list[int]]:
    """ChatML for one user turn, ending with the assistant's header (the layout of Qwen's ``make_context``)."""
    if chat_format != "chatml":
        raise ValueError(f"unsupported chat format {chat_format!r}")
    text = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{query}<|im_end|>\n<|im_start|>assistant\n"
    return text, list(tokenizer(text, add_special_tokens=False)["input_ids"])


class QwenVlBackend(remote_code.RemoteCodeBackend):
    """Qwen-VL-Chat: ChatML soft-scoring and ``model.chat`` answers."""

    names = "qwen-vl-chat"
    max_path_bytes = 256  # IMG_TOKEN_SPAN of the repository's tokenizer

    def precision_kwargs(self, dtype: str, device: str) -> dict[str, Any]:
        """The repository's own precision flags, exactly one of them true."""
        name = str(hf_vlm.torch_dtype(dtype, device)).replace("torch.", "")
        chosen = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[name]
        return {flag: flag == chosen for flag in ("bf16", "fp16", "fp32")}

    def explain_load_error(self, exc: Exception, folder: str) -> Exception:
        """Name the font the tokenizer code fetches when it is missing offline."""
        text = f"{type(exc).__name__}: {exc}"
        if "SimSun" in text or any(word in type(exc).__name__ for word in ("Connection", "Timeout", "HTTP")):
            return RuntimeError(
                f"loading Qwen-VL-Chat's tokenizer failed ({text}). Its code looks for SimSun.ttf in the Hugging "
                f"Face cache and in the current folder, and otherwise downloads it: put SimSun.ttf (shipped in the "
                f"Qwen/Qwen-VL-Chat repository) into {folder}"
            )
        return exc

    def __init__(self, path: str, system: str = SYSTEM, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.system = system
        module = sys.modules.get(type(self.model).__module__)
        upstream = getattr(module, "make_context", None)
        self.context_source = "upstream make_context" if upstream else "harness chatml_context"
        self.make_context = upstream or chatml_context
        config = getattr(self.model, "generation_config", None)
        self.max_window_size = int(getattr(config, "max_window_size", None) or 6144)

    def info(self) -> dict[str, Any]:
        """Adds the system message and where the ChatML layout came from."""
        return {**super().info(), "system": self.system, "context": self.context_source}

    def _query(self, path: str, text: str) -> str:
        return self.tokenizer.from_list_format([{"image": path}, {"text": text}])

    def score(self, sources: Sequence[Any]) -> list[float]:
        """P(fake) per image (Eq. 2) from one left-padded forward pass."""
        torch = self.torch
        prefix = list(self.tokenizer(self.answer_prefix, add_special_tokens=False)["input_ids"])
        with remote_code.image_paths(sources, self.max_path_bytes) as paths:
            rows = []
            for path in paths:
                _, tokens = self.make_context(
                    self.tokenizer,
                    self._query(path, self.question),
                    history=[],
                    system=self.system,
                    max_window_size=self.max_window_size,
                    chat_format="chatml",
                )
                rows.append(list(tokens) + prefix)
            width = max(len(r) for r in rows)
            pad = 0 if self.tokenizer.pad_token_id is None else int(self.tokenizer.pad_token_id)
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
        return self.score_logits(list(logits))

    def generate(
        self,
        sources: Sequence[Any],
        prompts: Sequence[str],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        do_sample: bool = False,
    ) -> list[str]:
        """Answers through the repository's ``chat`` (one image at a time), greedy unless ``do_sample``."""
        answers = []
        sampling = {"temperature": float(temperature), "top_p": float(top_p)} if do_sample else {}
        with remote_code.image_paths(sources, self.max_path_bytes) as paths:
            for path, prompt in zip(paths, prompts):
                with self.torch.inference_mode():
                    response, _ = self.model.chat(
                        self.tokenizer,
                        query=self._query(path, prompt),
                        history=None,
                        system=self.system,
                        do_sample=bool(do_sample),
                        max_new_tokens=int(max_new_tokens),
                        **sampling,
                    )
                answers.append(str(response).strip())
        return answers
