"""A Qwen-VL-Chat stand-in with the repository's generation surface (see ``remote_code_standins``).

The repository's ``modeling_qwen.py`` imports ``make_context``, ``get_stop_words_ids`` and ``decode_tokens`` from
its ``qwen_generation_utils``; its ``chat`` builds the ChatML context of one query, generates with the ChatML stop
words (a stop word makes the next token the end-of-text token) and decodes up to the first ``<|im_end|>`` /
``<|im_start|>``, dropping the last generated token when there is none (a quirk the harness must keep). This
module has functions of those names and a model class whose ``chat`` is built from them, so that the harness's
batched generation can be compared with ``chat`` one image at a time. None of it is upstream's code.
"""

from __future__ import annotations

from typing import Any

import torch
from remote_code_standins import QwenVlStandin, _tiny_lm
from transformers import LogitsProcessor, LogitsProcessorList

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def make_context(tokenizer, query, history=None, system="", max_window_size=6144, chat_format="chatml"):
    """The ChatML text of one turn and its token ids."""
    raw = f"{IM_START}system\n{system}{IM_END}\n{IM_START}user\n{query}{IM_END}\n{IM_START}assistant\n"
    return raw, list(tokenizer(raw, add_special_tokens=False)["input_ids"])


def get_stop_words_ids(chat_format, tokenizer):
    """ChatML's stop words."""
    return [[tokenizer.convert_tokens_to_ids(IM_END)], [tokenizer.convert_tokens_to_ids(IM_START)]]


def decode_tokens(tokens, tokenizer, raw_text_len, context_length, chat_format, verbose=False, errors="replace"):
    """The answer: the generated tokens up to the first ChatML marker; without one, all but the last token."""
    if torch.is_tensor(tokens):
        tokens = tokens.cpu().tolist()
    markers = {tokenizer.convert_tokens_to_ids(IM_START), tokenizer.convert_tokens_to_ids(IM_END)}
    end = context_length
    for end in range(context_length, len(tokens)):
        if tokens[end] in markers:
            break
    return tokenizer.decode(tokens[context_length:end])


class _StopWords(LogitsProcessor):
    """After a stop word, only the end-of-text token."""

    def __init__(self, stop_ids: list[int], eos: int) -> None:
        self.stop_ids, self.eos = stop_ids, eos

    def __call__(self, input_ids, scores):
        stopped = torch.isin(input_ids[:, -1], torch.tensor(self.stop_ids))
        scores[stopped] = -float("inf")
        scores[stopped, self.eos] = 0.0
        return scores


class QwenVlGenerating(QwenVlStandin):
    """``generate(input_ids, stop_words_ids=..., generation_config=...)`` on a batch, ``chat`` on one query."""

    def __init__(self, tokenizer) -> None:
        super().__init__(tokenizer)
        self.lm = _tiny_lm(tokenizer, seed=21)  # a seed whose answers to two-word questions end unlike each other
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id
        fields = {"max_window_size": 512, "chat_format": "chatml", "eos_token_id": eos, "pad_token_id": eos}
        self.generation_config = type("GenerationConfig", (), fields)()
        self.generate_calls: list[int] = []

    def generate(self, input_ids, stop_words_ids=None, return_dict_in_generate=False, generation_config=None, **kw):
        self.generate_calls.append(int(input_ids.shape[0]))
        config = generation_config or self.generation_config
        stops = [ids[0] for ids in stop_words_ids or []]
        return self.lm.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            logits_processor=LogitsProcessorList([_StopWords(stops, config.eos_token_id)]),
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            **kw,
        )

    def chat(self, tokenizer, query, history=None, system="You are a helpful assistant.", **kwargs: Any):
        self.chat_calls.append({"query": query, "system": system, **kwargs})
        raw, tokens = make_context(tokenizer, query, history=history, system=system)
        outputs = self.generate(torch.tensor([tokens]), stop_words_ids=get_stop_words_ids("chatml", tokenizer),
                                **kwargs)  # fmt: skip
        response = decode_tokens(outputs[0], tokenizer, len(raw), len(tokens), "chatml")
        return response, [(query, response)]
