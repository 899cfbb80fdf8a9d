"""Stand-ins for the remote-code models (Qwen-VL-Chat, InternLM-XComposer2-VL) that cannot run here.

Their real code lives in their model repositories and needs transformers 4.3x
and 7B weights. These stand-ins expose the same public surface the harness's
backends call (``from_list_format``, ``chat``, ``encode_img``,
``interleav_wrap_chat``, ``tok_embeddings``, a forward pass returning
``.logits``) on top of a tiny random Llama, and record how they were called, so
the tests check the backends' prompt layout, padding, batching and options.
They do not claim to reproduce the real models' numbers, but they do reproduce the
repository behaviours the harness must cope with (Qwen-VL: the tokenizer looks for
``SimSun.ttf`` in the current folder and would otherwise download it; precision comes
from the ``bf16``/``fp16``/``fp32`` flags, not ``torch_dtype``; an image path longer
than 256 bytes inside ``<img>`` is refused). The real code is checked by
``conformance/check_qwen_vl.py``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from tiny_models import _tiny_llama_config, word_tokenizer

SPECIAL = ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]", "<ImageHere>"]
CORPUS = [
    "system user assistant You are a helpful assistant . Picture 1 : What is the authenticity of this image ?",
    "This image is fake Fake real Real yes no",
]


def sentencepiece_like_tokenizer():
    """A BPE tokenizer with SentencePiece's dummy prefix (Metaspace, prepended to the text's start only) and BOS
    added, as InternLM2's: ``This`` at the start of a text is ``▁This``, after ``assistant\n`` it is not. Trained on
    the chat turn itself, so that pieces may even span the newline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    lines = [
        "What is the authenticity of this image?[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\nThis image is fake",
        "This image is real. This image is fake. Fake Real real fake. system user assistant",
    ]
    special = ["<unk>", "<s>", "</s>", "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"]
    tok.train_from_iterator(lines * 20, trainers.BpeTrainer(special_tokens=special, vocab_size=160))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )


def standin_tokenizer():
    """A word-level tokenizer knowing the chat markers of both models as special tokens."""
    tokenizer = word_tokenizer(CORPUS, {"additional_special_tokens": SPECIAL})

    def from_list_format(items: list[dict[str, str]]) -> str:
        text, pictures = "", 0
        for item in items:
            if "image" in item:
                if len(item["image"].encode("utf-8")) > 256:  # the repository's IMG_TOKEN_SPAN
                    raise ValueError("The content in <img>..</img> is too long")
                pictures += 1
                text += f"Picture {pictures}: <img>{item['image']}</img>\n"
            else:
                text += item["text"]
        return text

    tokenizer.from_list_format = from_list_format
    return tokenizer


def _tiny_lm(tokenizer, seed: int = 0):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(_tiny_llama_config(tokenizer)).eval()


def qwen_font_lookup(path: str) -> None:
    """Newer ``tokenization_qwen.py``: SimSun.ttf from the HF cache, else the current folder, else a download
    (which fails offline)."""
    import os

    if os.path.isfile(os.path.join(path, "qwen.tiktoken")) and not os.path.exists("SimSun.ttf"):
        raise ConnectionError("Couldn't reach https://qianwen-res.oss-cn-beijing.aliyuncs.com/Qwen-VL/SimSun.ttf")


def qwen_precision(model: torch.nn.Module, flags: dict[str, Any]) -> torch.nn.Module:
    """The repository's precision rule: at most one of bf16/fp16/fp32; none = automatic (fp32 without CUDA);
    ``torch_dtype`` plays no part."""
    chosen = [k for k in ("bf16", "fp16", "fp32") if flags.get(k)]
    assert len(chosen) <= 1, 'Only one of "bf16", "fp16", "fp32" can be true'
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(chosen[0] if chosen else "fp32", torch.float32)
    return model.to(dtype)


class QwenVlStandin(torch.nn.Module):
    """Qwen-VL-Chat's surface: a causal LM over ChatML ids, and ``chat``."""

    def __init__(self, tokenizer) -> None:
        super().__init__()
        self.lm = _tiny_lm(tokenizer)
        self.generation_config = SimpleNamespace(max_window_size=512)
        self.forward_calls: list[dict[str, Any]] = []
        self.chat_calls: list[dict[str, Any]] = []

    @property
    def dtype(self):
        return self.lm.dtype

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        self.forward_calls.append(
            {"input_ids": input_ids.clone(), "attention_mask": attention_mask, "position_ids": position_ids}
        )
        return self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)

    def chat(self, tokenizer, query, history=None, system="You are a helpful assistant.", **kwargs):
        self.chat_calls.append({"query": query, "system": system, **kwargs})
        return "This image is fake .", [(query, "This image is fake .")]


class XComposer2Standin(torch.nn.Module):
    """InternLM-XComposer2-VL's surface: image embeddings from pixels, the interleaved wrap, ``chat``."""

    IMAGE_TOKENS = 4

    def __init__(self, tokenizer, seed: int = 0) -> None:
        super().__init__()
        self.lm = _tiny_lm(tokenizer, seed)
        self.pad_token_id = tokenizer.pad_token_id
        self.generate_calls: list[dict[str, Any]] = []
        self.encoded: list[str] = []
        self.model = SimpleNamespace(tok_embeddings=self.lm.get_input_embeddings())
        torch.manual_seed(1)
        self.vision = torch.nn.Linear(3, self.lm.config.hidden_size)
        self.forward_calls: list[dict[str, Any]] = []
        self.chat_calls: list[dict[str, Any]] = []

    @property
    def dtype(self):
        return self.lm.dtype

    def encode_img(self, path: str):
        from PIL import Image

        self.encoded.append(path)
        with Image.open(path) as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB").resize((2, 2)), dtype=np.float32)) / 255
        return self.vision(pixels.reshape(4, 3)).unsqueeze(0)  # [1, 4 image tokens, hidden]

    def interleav_wrap_chat(self, tokenizer, query, image, history, meta_instruction):
        prompt = f"[UNUSED_TOKEN_146]system\n{meta_instruction}[UNUSED_TOKEN_145]\n" if meta_instruction else ""
        prompt += f"[UNUSED_TOKEN_146]user\n{query}[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n"
        parts = prompt.split("<ImageHere>")
        embeds, mask = [], []
        for index, part in enumerate(parts):
            if part:
                ids = tokenizer(part, return_tensors="pt")["input_ids"]
                embeds.append(self.model.tok_embeddings(ids))
                mask.append(torch.zeros(ids.shape))
            if index < len(image):
                embeds.append(image[index].unsqueeze(0))
                mask.append(torch.ones(1, image[index].shape[0]))
        self.last_prompt = prompt
        return {"inputs_embeds": torch.cat(embeds, dim=1)}, torch.cat(mask, dim=1).bool()

    def forward(self, inputs_embeds, im_mask=None):
        self.forward_calls.append({"shape": tuple(inputs_embeds.shape), "im_mask": im_mask.clone()})
        return self.lm(inputs_embeds=inputs_embeds)

    def generate(self, inputs_embeds, im_mask=None, eos_token_id=None, **kwargs):
        """transformers' ``generate`` from input embeddings (the new tokens only), a batch of rows at once."""
        self.generate_calls.append({"rows": int(inputs_embeds.shape[0]), "eos_token_id": eos_token_id, **kwargs})
        mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long)
        return self.lm.generate(inputs_embeds=inputs_embeds, attention_mask=mask, eos_token_id=eos_token_id,
                                pad_token_id=self.pad_token_id, **kwargs)  # fmt: skip

    def chat(self, tokenizer, query, image=None, history=(), meta_instruction="", **kwargs):
        """One image as the repository's ``chat`` does it: its embeddings, the wrapped conversation, ``generate``
        with the end of the assistant's turn as an end token, the answer decoded and cut at that token."""
        self.chat_calls.append({"query": query, "image": image, **kwargs})
        inputs, im_mask = self.interleav_wrap_chat(tokenizer, query, self.encode_img(image), history, meta_instruction)
        ends = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(["[UNUSED_TOKEN_145]"])[0]]
        outputs = self.generate(**inputs, im_mask=im_mask, eos_token_id=ends, **kwargs)
        response = tokenizer.decode(outputs[0].tolist(), skip_special_tokens=True).split("[UNUSED_TOKEN_145]")[0]
        return response, [*history, (query, response)]
