"""Upstream ``load_pretrained_model``'s behaviour: a (tokenizer, model, image processor, context) tuple, with the
model in float16 whatever dtype the caller wanted (upstream sets ``torch_dtype=torch.float16`` after merging the
caller's keyword arguments)."""

from __future__ import annotations

import torch
from transformers import CLIPImageProcessor, PreTrainedTokenizerFast

from .tiny import TinyOwl2


def load_pretrained_model(
    model_path, model_base, model_name, load_8bit=False, load_4bit=False, device_map="auto", device="cuda", **kwargs
):
    """Load the stand-in checkpoint at ``model_path``, forced to float16."""
    if device != "cuda":
        device_map = {"": device}
    target = device_map.get("", "cpu") if isinstance(device_map, dict) else "cuda"
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_path)
    model = TinyOwl2.from_folder(model_path).to(device=target, dtype=torch.float16)
    return tokenizer, model, CLIPImageProcessor.from_pretrained(model_path), 2048
