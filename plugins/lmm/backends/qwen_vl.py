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
- answers: what ``model.chat(tokenizer, query, history=None, system=...)`` gives, greedy. Where the modelling
  module exposes ``chat``'s own steps (``make_context``, ``get_stop_words_ids``, ``decode_tokens``), the
  contexts of equal length are generated in one batched call and each row is cut at its first end-of-text
  token, then decoded by ``decode_tokens`` as ``chat`` decodes its one row (:mod:`.batching`; the image span
  is padded to 256 tokens, so every query of one question has one length); otherwise ``chat`` per image.

Needs ``trust_remote_code=true``; runs normally in a worker of the environment from
``harness env create qwen-vl-chat`` (transformers 4.32, tiktoken).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from . import batching, hf_vlm, remote_code

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
        steps = [getattr(module, name, None) for name in ("make_context", "get_stop_words_ids", "decode_tokens")]
        self.chat_steps: list[Any] | None = steps if all(steps) and hasattr(self.model, "generate") else None

    def info(self) -> dict[str, Any]:
        """Adds the system message and where the ChatML layout came from."""
        answers = "chat's steps, batched by context length" if self.chat_steps else "chat, one image at a time"
        return {**super().info(), "system": self.system, "context": self.context_source, "answers": answers}

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
        """Answers as the repository's ``chat`` gives them, greedy unless ``do_sample``: equal-length contexts in one
        batched ``generate`` call where ``chat``'s steps are available (see the module), else ``chat`` per image."""
        sampling = {"temperature": float(temperature), "top_p": float(top_p)} if do_sample else {}
        options = {"do_sample": bool(do_sample), "max_new_tokens": int(max_new_tokens), **sampling}
        with remote_code.image_paths(sources, self.max_path_bytes) as paths:
            queries = [self._query(path, prompt) for path, prompt in zip(paths, prompts)]
            if self.chat_steps is None:
                return [self._chat(query, options) for query in queries]
            return self._generate_batched(queries, options)

    def _chat(self, query: str, options: dict[str, Any]) -> str:
        with self.torch.inference_mode():
            response, _ = self.model.chat(self.tokenizer, query=query, history=None, system=self.system, **options)
        return str(response).strip()

    def _generate_batched(self, queries: list[str], options: dict[str, Any]) -> list[str]:
        """``chat``'s steps on a batch: the ChatML contexts, one ``generate`` per context length with ``chat``'s stop
        words, each row cut at its first end-of-text token (the batch pads finished rows) and decoded as ``chat``
        decodes its one row."""
        torch = self.torch
        assert self.chat_steps is not None
        make_context, get_stop_words_ids, decode_tokens = self.chat_steps
        config = self.model.generation_config
        contexts = [
            make_context(self.tokenizer, query, history=[], system=self.system,
                         max_window_size=self.max_window_size, chat_format=config.chat_format)
            for query in queries
        ]  # fmt: skip
        stop_words_ids = get_stop_words_ids(config.chat_format, self.tokenizer)
        eos = config.eos_token_id
        ends = list(eos) if isinstance(eos, (list, tuple)) else [eos]
        groups = batching.equal_length_groups([len(tokens) for _, tokens in contexts])
        answers = []
        for group in groups:
            input_ids = torch.tensor([contexts[i][1] for i in group]).to(self.device)
            with torch.inference_mode():
                outputs = self.model.generate(
                    input_ids, stop_words_ids=stop_words_ids, return_dict_in_generate=False, generation_config=config,
                    **options,
                )  # fmt: skip
            decoded = []
            for i, row in zip(group, outputs.tolist()):
                raw, tokens = contexts[i]
                whole = row[: len(tokens)] + batching.through_first_end(row[len(tokens) :], ends)
                text = decode_tokens(torch.tensor(whole), self.tokenizer, raw_text_len=len(raw),
                                     context_length=len(tokens), chat_format=config.chat_format, verbose=False,
                                     errors="replace")  # fmt: skip
                decoded.append(str(text).strip())
            answers.append(decoded)
        return batching.rows_in_order(groups, answers)
