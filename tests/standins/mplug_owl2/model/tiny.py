"""A tiny random multimodal LM with mPLUG-Owl2's calling surface (``forward(input_ids, images=...)`` and
``generate(input_ids, images=..., max_new_tokens=...)`` returning prompt + answer ids)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..constants import IMAGE_TOKEN_INDEX

IMAGE_TOKENS = 4


class TinyOwl2(torch.nn.Module):
    """Conv patch encoder -> 2x2 pooled visual tokens spliced where ``IMAGE_TOKEN_INDEX`` stands -> tiny Llama."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = SimpleNamespace(**config)
        text = LlamaConfig(**config["text_config"])
        self.lm = LlamaForCausalLM(text)
        self.patch = torch.nn.Conv2d(3, text.hidden_size, kernel_size=8, stride=8)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)
        self.eos_token_id = text.eos_token_id

    @property
    def dtype(self):
        return self.patch.weight.dtype

    @classmethod
    def from_folder(cls, path) -> TinyOwl2:
        config = json.loads((Path(path) / "config.json").read_text())
        model = cls(config)
        model.load_state_dict(torch.load(Path(path) / "standin_model.bin", weights_only=True))
        return model.eval()

    def _embeds(self, input_ids, images):
        rows = []
        for row, pixels in zip(input_ids, images, strict=False):
            visual = self.pool(self.patch(pixels.unsqueeze(0))).flatten(2).transpose(1, 2)[0]  # [4, hidden]
            parts, start = [], 0
            for at in (row == IMAGE_TOKEN_INDEX).nonzero().flatten().tolist():
                parts += [self.lm.get_input_embeddings()(row[start:at]), visual]
                start = at + 1
            parts.append(self.lm.get_input_embeddings()(row[start:]))
            rows.append(torch.cat(parts))
        return torch.stack(rows)

    def forward(self, input_ids, images=None, attention_mask=None, **_):
        if images is None:
            return CausalLMOutputWithPast(logits=self.lm(input_ids=input_ids).logits)
        if images.shape[0] != input_ids.shape[0]:
            images = images.expand(input_ids.shape[0], *images.shape[1:])
        return CausalLMOutputWithPast(logits=self.lm(inputs_embeds=self._embeds(input_ids, images)).logits)

    def generate(self, input_ids, images=None, max_new_tokens=16, do_sample=False, use_cache=True, **_):
        """Greedy, a batch of rows at once as transformers' ``generate`` does it: a finished row (its end token
        given) continues with the pad token (the end token when there is none) until every row is finished."""
        ids = input_ids
        pad = self.config.text_config.get("pad_token_id")
        pad = self.eos_token_id if pad is None else pad
        finished = torch.zeros(ids.shape[0], dtype=torch.bool)
        for _step in range(max_new_tokens):
            next_id = self.forward(ids, images=images)["logits"][:, -1].argmax(-1)
            next_id = torch.where(finished, torch.full_like(next_id, pad), next_id)
            ids = torch.cat([ids, next_id[:, None]], dim=1)
            finished |= next_id == self.eos_token_id
            if bool(finished.all()):
                break
        return ids


def save_tiny_owl2(
    path, tokenizer, image_aspect_ratio: str | None = "pad", image_size: int = 32, seed: int = 0
) -> Path:
    """Write a stand-in checkpoint: config (with ``image_aspect_ratio``), weights, tokenizer, CLIP processor."""
    from transformers import CLIPImageProcessor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 256,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config = {"model_type": "mplug_owl2", "text_config": text}
    if image_aspect_ratio is not None:
        config["image_aspect_ratio"] = image_aspect_ratio
    torch.manual_seed(seed)
    model = TinyOwl2(config)
    (path / "config.json").write_text(json.dumps(config))
    torch.save(model.state_dict(), path / "standin_model.bin")
    tokenizer.save_pretrained(path)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(path)
    return path
