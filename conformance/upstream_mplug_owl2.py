"""Runs inside the mPLUG-Owl2 worker environment, on upstream code only (never imports the harness).

    python upstream_mplug_owl2.py build OUT_DIR [--aspect pad|resize|none]
        a tiny random mPLUG-Owl2 built with upstream's own classes (MPLUGOwl2Config,
        MPLUGOwl2LlamaForCausalLM), a sentencepiece Llama tokenizer trained here, a CLIP processor;
    python upstream_mplug_owl2.py reference CKPT ITEMS_JSON OUT_JSON
        the independent computation: upstream's loader, ``process_images`` with the checkpoint's
        config, upstream's conversation template and ``tokenizer_image_token``; Eq. 2 written out from
        the paper (softmax over the summed fake / real anchor logits); greedy ``generate``.

ITEMS_JSON: ``[{"image": PATH, "prompt": TEXT}, ...]``. Everything runs in float32 on the CPU (upstream's
loader loads float16; the reference casts it back, as the harness does).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

QUESTION = "What is the authenticity of this image?"
PREFIX = "This image is"
CORPUS = (
    "USER: ASSISTANT: What is the authenticity of this image? This image is fake. This image is real. "
    "Fake Real yes no Is this a real image, yes or no? Is this a fake image, fake or real? "
)


def build(out: Path, aspect: str) -> None:
    """Save the tiny checkpoint (folder name deliberately without 'mplug_owl2' in it)."""
    import sentencepiece as spm
    import torch
    from mplug_owl2.model.configuration_mplug_owl2 import (
        MPLUGOwl2Config,
        MplugOwlVisionConfig,
        MplugOwlVisualAbstractorConfig,
    )
    from mplug_owl2.model.modeling_mplug_owl2 import MPLUGOwl2LlamaForCausalLM
    from transformers import CLIPImageProcessor, LlamaTokenizer

    out.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([CORPUS] * 50),
        model_prefix=str(out / "tokenizer"),
        vocab_size=120,
        model_type="bpe",
        hard_vocab_limit=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    tokenizer = LlamaTokenizer(vocab_file=str(out / "tokenizer.model"))
    (out / "tokenizer.model").unlink()
    (out / "tokenizer.vocab").unlink()
    visual = {
        "visual_model": MplugOwlVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=56,
            patch_size=14,
        ).to_dict(),
        "visual_abstractor": MplugOwlVisualAbstractorConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            encoder_hidden_size=32,
            num_learnable_queries=4,
            grid_size=4,
        ).to_dict(),
    }
    config = MPLUGOwl2Config(
        visual_config=visual,
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    if aspect != "none":
        config.image_aspect_ratio = aspect
    torch.manual_seed(0)
    model = MPLUGOwl2LlamaForCausalLM(config).eval()
    with torch.no_grad():  # random init leaves some weights at 0; make every path carry signal
        for name, param in model.named_parameters():
            if "norm" not in name and param.dim() > 1 and float(param.abs().max()) == 0.0:
                param.normal_(0, 0.02)
        model.lm_head.weight[config.eos_token_id].zero_()  # greedy answers then run to max_new_tokens
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}).save_pretrained(out)
    print(json.dumps({"checkpoint": str(out), "parameters": sum(p.numel() for p in model.parameters())}))


def anchor_ids(tokenizer, words) -> list[int]:
    """Ids of the words that are one token after the answer prefix (others skipped, as the paper's variants)."""
    base = tokenizer(PREFIX, add_special_tokens=False).input_ids
    ids = []
    for word in words:
        full = tokenizer(f"{PREFIX} {word}", add_special_tokens=False).input_ids
        rest = full[len(base) :] if full[: len(base)] == base else []
        if len(rest) == 1 and rest[0] != tokenizer.unk_token_id and rest[0] not in ids:
            ids.append(rest[0])
    return ids


def reference(ckpt: str, items_path: str, out_path: str) -> None:
    """Eq. 2 scores and greedy answers from upstream code alone."""
    import torch
    from mplug_owl2.constants import DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX
    from mplug_owl2.conversation import conv_templates
    from mplug_owl2.mm_utils import process_images, tokenizer_image_token
    from mplug_owl2.model.builder import load_pretrained_model
    from PIL import Image

    tokenizer, model, processor, _ = load_pretrained_model(
        ckpt, None, "mplug_owl2", device_map={"": "cpu"}, device="cpu"
    )
    loaded = str(model.dtype)
    model = model.float().eval()
    fake, real = anchor_ids(tokenizer, ("fake", "Fake", "FAKE")), anchor_ids(tokenizer, ("real", "Real", "REAL"))

    def prompt_for(question: str, prefix: str = "") -> str:
        conv = conv_templates["mplug_owl2"].copy()
        conv.append_message(conv.roles[0], DEFAULT_IMAGE_TOKEN + question)
        conv.append_message(conv.roles[1], None)
        return conv.get_prompt() + (" " + prefix if prefix else "")

    results = []
    for item in json.loads(Path(items_path).read_text()):
        image = Image.open(item["image"]).convert("RGB")
        pixels = process_images([image], processor, model.config).float()
        with torch.inference_mode():
            ids = tokenizer_image_token(
                prompt_for(QUESTION, PREFIX), tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt"
            ).unsqueeze(0)
            z = model(ids, images=pixels).logits[0, -1].float()
            pair = torch.stack([z[fake].sum(), z[real].sum()])
            score = float(torch.softmax(pair, dim=0)[0])
            ids = tokenizer_image_token(
                prompt_for(item["prompt"]), tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt"
            ).unsqueeze(0)
            output = model.generate(
                ids, images=pixels, do_sample=False, max_new_tokens=item.get("max_new_tokens", 32), use_cache=True
            )
        answer = tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True).strip()
        results.append({"image": item["image"], "score": score, "text": answer})
    Path(out_path).write_text(
        json.dumps(
            {
                "results": results,
                "anchors": {"fake": fake, "real": real},
                "upstream_loader_dtype": loaded,
                "image_aspect_ratio": getattr(model.config, "image_aspect_ratio", None),
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "build":
        aspect = sys.argv[sys.argv.index("--aspect") + 1] if "--aspect" in sys.argv else "pad"
        build(Path(sys.argv[2]), aspect)
    elif sys.argv[1] == "reference":
        reference(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
