"""Runs inside the InternLM-XComposer2-VL worker environment, on the model repository's own code only (never
imports the harness).

    python upstream_xcomposer2.py build SOURCE OUT_DIR HF_HOME
        a tiny random InternLM-XComposer2-VL: the repository's five code files copied from SOURCE (a folder
        holding them, e.g. OpenGVLab/LAMM's src/ChEF/models/internlm/), a small SentencePiece vocabulary
        trained here (the real tokenizer.model is not among the five files) with the chat format's
        [UNUSED_TOKEN_146]/[UNUSED_TOKEN_145] as single pieces, a config with the widths the code fixes
        (language model 4096, vision tower 1024 on a 336/14 grid resized to 490 px) but one layer each and a
        narrow MLP, and random weights made by the repository's own classes. The vision tower is built inside
        ``__init__`` from the hub id ``openai/clip-vit-large-patch14-336``: a tiny CLIP vision config with
        random weights is placed under that id in the local hub cache ``HF_HOME`` first;
    python upstream_xcomposer2.py reference CKPT ITEMS_JSON OUT_JSON --dtype fp32|bf16 --repetition-penalty R
        the independent computation: the chat prompt the repository's ``interleav_wrap_chat`` builds, written
        out as text with the answer prefix appended *in the text* (tokenized as the model would write it after
        ``assistant\\n``), its parts tokenized as the repository does (each with BOS), image embeddings from
        ``encode_img``, one forward pass with the image mask, Eq. 2 written out from the paper; answers from
        the repository's ``chat`` (greedy, the given repetition penalty).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

QUESTION = "What is the authenticity of this image?"
PREFIX = "This image is"
CODE = (
    "build_mlp.py",
    "configuration_internlm_xcomposer2.py",
    "modeling_internlm2.py",
    "modeling_internlm_xcomposer2.py",
    "tokenization_internlm_xcomposer2.py",
)
CLIP_ID = "openai/clip-vit-large-patch14-336"
CLIP_REVISION = "0" * 40
#: the chat format's turn markers: single pieces of InternLM2's vocabulary
SPECIAL = ["[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"]


def tiny_clip(hf_home: Path) -> Path:
    """A tiny CLIP vision tower (width 1024, as ``build_mlp`` fixes; one layer) in the hub cache under CLIP_ID."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    repo = hf_home / "hub" / ("models--" + CLIP_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / CLIP_REVISION
    config = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=336,
        patch_size=14,
        projection_dim=64,
    )
    torch.manual_seed(1)
    CLIPVisionModel(config).save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(CLIP_REVISION)
    return snapshot


def tiny_tokenizer(out: Path) -> None:
    """A small SentencePiece BPE model as tokenizer.model: InternLM2's ids (unk 0, <s> 1, </s> 2), byte fallback,
    and a LLaMA-family normalizer (identity, whitespace kept, a dummy prefix space), so that a word after a newline
    is a different piece from the same word at the start of a text, as in the real vocabulary."""
    import sentencepiece as spm

    words = (
        "This image is fake. This image is real. The image is AI-generated. This photo is authentic and real. "
        "Fake real fake real FAKE REAL Fake Real. What is the authenticity of this image? Is this image real or "
        "fake? Explain why. The lighting, texture, edges and shadows look natural or artificial. user assistant "
        "system You are an AI assistant whose name is InternLM-XComposer. It is designed to be helpful, honest "
        "and harmless. a multi-modality conversational language model developed by Shanghai AI Laboratory"
    )
    corpus = out / "corpus.txt"
    corpus.write_text("\n".join([words] * 50 + [" ".join(reversed(words.split()))] * 50))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(out / "tokenizer"),
        vocab_size=400,
        model_type="bpe",
        character_coverage=1.0,
        byte_fallback=True,
        normalization_rule_name="identity",  # as LLaMA-family vocabularies: newlines and spaces kept as written
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        user_defined_symbols=SPECIAL,
        minloglevel=2,
    )
    corpus.unlink()
    (out / "tokenizer.vocab").unlink()
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "auto_map": {"AutoTokenizer": ["tokenization_internlm_xcomposer2.InternLMXComposer2Tokenizer", None]},
                "tokenizer_class": "InternLMXComposer2Tokenizer",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "pad_token": "</s>",
                "unk_token": "<unk>",
                "model_max_length": 4096,
            },
            indent=2,
        )
    )


def build(source: Path, out: Path, hf_home: Path) -> None:
    """Copy the code, train the vocabulary, write a tiny config, save random weights made by its classes."""
    import os

    os.environ["HF_HOME"] = str(hf_home)
    os.environ["HF_HUB_OFFLINE"] = "1"
    import sentencepiece as spm
    import torch
    from transformers import AutoConfig, AutoModel

    out.mkdir(parents=True, exist_ok=True)
    for name in CODE:
        shutil.copy(source / name, out / name)
    tiny_clip(hf_home)
    tiny_tokenizer(out)
    pieces = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    vocab = pieces.get_piece_size()
    auto = {
        "AutoConfig": "configuration_internlm_xcomposer2.InternLMXcomposer2Config",
        "AutoModel": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM",
        "AutoModelForCausalLM": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM",
    }
    config = {
        "architectures": ["InternLMXComposer2ForCausalLM"],
        "auto_map": auto,
        "model_type": "internlm",
        "vocab_size": vocab,
        "hidden_size": 4096,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5,
        "rope_theta": 1000000,
        "bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
        "max_length": 4096,
        "img_size": 490,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    cfg = AutoConfig.from_pretrained(out, trust_remote_code=True)
    torch.manual_seed(0)
    model = AutoModel.from_config(cfg, trust_remote_code=True).eval()
    with torch.no_grad():
        for token in (pieces.eos_id(), pieces.piece_to_id("[UNUSED_TOKEN_145]")):  # the ends: greedy answers
            model.output.weight[token].zero_()  # run to max_new_tokens
    model.save_pretrained(out, safe_serialization=False)
    print(json.dumps({"checkpoint": str(out), "parameters": sum(p.numel() for p in model.parameters())}))


def chat_prompt(query: str, meta_instruction: str) -> str:
    """The conversation ``interleav_wrap_chat`` builds (no history), as the repository writes it."""
    return (
        f"[UNUSED_TOKEN_146]system\n{meta_instruction}[UNUSED_TOKEN_145]\n"
        f"[UNUSED_TOKEN_146]user\n{query}[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n"
    )


def prompt_embeddings(model, tokenizer, text: str, image_embeds):
    """Text parts split at <ImageHere>, each tokenized as the repository does (BOS added), image rows between."""
    import torch

    parts = text.split("<ImageHere>")
    embeds, mask = [], []
    for index, part in enumerate(parts):
        if part:
            ids = tokenizer(part, return_tensors="pt").input_ids.to(model.device)
            embeds.append(model.model.tok_embeddings(ids))
            mask.append(torch.zeros(ids.shape, dtype=torch.bool))
        if index < len(parts) - 1:
            embeds.append(image_embeds)
            mask.append(torch.ones(image_embeds.shape[:2], dtype=torch.bool))
    return torch.cat(embeds, dim=1), torch.cat(mask, dim=1).to(model.device)


def reference(ckpt: str, items_path: str, out_path: str, dtype: str, repetition_penalty: float) -> None:
    """Eq. 2 scores and ``chat`` answers from the repository's code alone."""
    import inspect

    import torch
    from transformers import AutoModel, AutoTokenizer

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    tokenizer = AutoTokenizer.from_pretrained(ckpt, trust_remote_code=True)
    model = AutoModel.from_pretrained(ckpt, trust_remote_code=True, torch_dtype=torch_dtype).eval()
    model.tokenizer = tokenizer
    meta = inspect.signature(model.chat).parameters["meta_instruction"].default

    def anchors(words):
        base = tokenizer(PREFIX).input_ids
        ids = []
        for word in words:
            rest = tokenizer(f"{PREFIX} {word}").input_ids[len(base) :]
            if len(rest) == 1 and rest[0] not in ids:
                ids.append(rest[0])
        return ids

    fake, real = anchors(("fake", "Fake", "FAKE")), anchors(("real", "Real", "REAL"))
    results = []
    # as the repository's examples call chat() (under torch.cuda.amp.autocast()); on the CPU at the weights' dtype:
    # encode_img hands float32 features to the projector, which half-precision weights refuse without it
    autocast = torch.autocast("cpu", dtype=torch_dtype) if dtype != "fp32" else contextlib.nullcontext()
    for item in json.loads(Path(items_path).read_text()):
        with torch.inference_mode(), autocast:
            image = model.encode_img(item["image"])
            text = chat_prompt("<ImageHere>" + QUESTION, meta) + PREFIX
            embeds, mask = prompt_embeddings(model, tokenizer, text, image)
            z = model(inputs_embeds=embeds, im_mask=mask).logits[0, -1].float()
        score = float(torch.softmax(torch.stack([z[fake].sum(), z[real].sum()]), dim=0)[0])
        with autocast:
            answer, _ = model.chat(
                tokenizer,
                query="<ImageHere>" + item["prompt"],
                image=item["image"],
                history=[],
                do_sample=False,
                max_new_tokens=item.get("max_new_tokens", 24),
                repetition_penalty=repetition_penalty,
            )
        results.append({"image": item["image"], "score": score, "text": str(answer).strip()})
    Path(out_path).write_text(
        json.dumps(
            {"results": results, "anchors": {"fake": fake, "real": real}, "dtype": str(next(model.parameters()).dtype)}
        )
    )


def _option(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    elif sys.argv[1] == "reference":
        reference(
            *sys.argv[2:5],
            dtype=_option("--dtype", "fp32"),
            repetition_penalty=float(_option("--repetition-penalty", "1.005")),
        )
    else:
        sys.exit(__doc__)
