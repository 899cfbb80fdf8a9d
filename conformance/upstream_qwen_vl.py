"""Runs inside the Qwen-VL-Chat worker environment, on the model repository's own code only (never imports the
harness).

    python upstream_qwen_vl.py build SOURCE OUT_DIR
        a tiny random Qwen-VL-Chat: the repository's code files, tokenizer files (qwen.tiktoken) and generation
        config copied from SOURCE (a local copy of the model repository), a small config (hidden 128, 2 layers,
        a 56-px 1-layer vision tower) and random weights made by the repository's own classes;
    python upstream_qwen_vl.py reference CKPT ITEMS_JSON OUT_JSON --dtype fp32|bf16
        (run with CKPT as the current folder, where the repository's tokenizer looks for SimSun.ttf)
        the independent computation: the repository's ``from_list_format`` and ``make_context``, the answer
        prefix appended, Eq. 2 written out from the paper; answers from the repository's ``chat``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

QUESTION = "What is the authenticity of this image?"
PREFIX = "This image is"
SYSTEM = "You are a helpful assistant."
CODE = (
    "configuration_qwen.py",
    "modeling_qwen.py",
    "qwen_generation_utils.py",
    "tokenization_qwen.py",
    "visual.py",
    "qwen.tiktoken",
    "tokenizer_config.json",
    "generation_config.json",
    "SimSun.ttf",
)


def build(source: Path, out: Path) -> None:
    """Copy the repository's files, write a tiny config, save random weights made by its classes."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    for name in CODE:
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    if not (out / "SimSun.ttf").exists():
        # Newer revisions look the font up at import (hub cache, then the current folder) and download it
        # otherwise; it only draws boxes on pictures. A snapshot without it gets matplotlib's DejaVu Sans under
        # that name, in the checkpoint folder, where the harness (and the reference below) run.
        import matplotlib

        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", out / "SimSun.ttf")
        print("SimSun.ttf: not in the source; matplotlib's DejaVuSans.ttf placed under that name")
    config = json.loads((source / "config.json").read_text())
    config.pop("quantization_config", None)  # a mirror of the Int4 repository: same code, unquantised tiny weights
    config.update(
        {
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "kv_channels": 64,
            "seq_length": 1024,
            "max_position_embeddings": 1024,
            "bf16": False,
            "fp16": False,
            "fp32": True,
            "use_flash_attn": False,
            "torch_dtype": "float32",
            "visual": {
                **config["visual"],
                "heads": 2,
                "image_size": 56,
                "layers": 1,
                "mlp_ratio": 2.0,
                "output_dim": 128,
                "patch_size": 14,
                "width": 32,
            },
        }
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    cfg = AutoConfig.from_pretrained(out, trust_remote_code=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, trust_remote_code=True).eval()
    with torch.no_grad():
        for token in (151643, 151645):  # <|endoftext|>, <|im_end|>: greedy answers run to max_new_tokens
            model.lm_head.weight[token].zero_()
    model.save_pretrained(out)
    shutil.copy(source / "generation_config.json", out / "generation_config.json")  # save_pretrained wrote its own
    print(json.dumps({"checkpoint": str(out), "parameters": sum(p.numel() for p in model.parameters())}))


def reference(ckpt: str, items_path: str, out_path: str, dtype: str) -> None:
    """Eq. 2 scores and ``chat`` answers from the repository's code alone."""
    import importlib

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    flags = {"bf16": dtype == "bf16", "fp16": False, "fp32": dtype == "fp32"}
    tokenizer = AutoTokenizer.from_pretrained(ckpt, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(ckpt, trust_remote_code=True, **flags).eval()
    utils = importlib.import_module(type(model).__module__.rsplit(".", 1)[0] + ".qwen_generation_utils")
    base = tokenizer.encode(PREFIX)

    def anchors(words):
        ids = []
        for word in words:
            rest = tokenizer.encode(f"{PREFIX} {word}")[len(base) :]
            if len(rest) == 1 and rest[0] not in ids:
                ids.append(rest[0])
        return ids

    fake, real = anchors(("fake", "Fake", "FAKE")), anchors(("real", "Real", "REAL"))
    results = []
    for item in json.loads(Path(items_path).read_text()):
        query = tokenizer.from_list_format([{"image": item["image"]}, {"text": QUESTION}])
        _, tokens = utils.make_context(
            tokenizer,
            query,
            history=[],
            system=SYSTEM,
            max_window_size=model.generation_config.max_window_size,
            chat_format="chatml",
        )
        with torch.inference_mode():
            z = model(input_ids=torch.tensor([list(tokens) + base])).logits[0, -1].float()
        score = float(torch.softmax(torch.stack([z[fake].sum(), z[real].sum()]), dim=0)[0])
        answer, _ = model.chat(
            tokenizer,
            query=tokenizer.from_list_format([{"image": item["image"]}, {"text": item["prompt"]}]),
            history=None,
            system=SYSTEM,
            do_sample=False,
            max_new_tokens=item.get("max_new_tokens", 24),
        )
        results.append({"image": item["image"], "score": score, "text": str(answer).strip()})
    Path(out_path).write_text(
        json.dumps(
            {"results": results, "anchors": {"fake": fake, "real": real}, "dtype": str(next(model.parameters()).dtype)}
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(Path(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1] == "reference":
        reference(*sys.argv[2:5], dtype=sys.argv[sys.argv.index("--dtype") + 1] if "--dtype" in sys.argv else "fp32")
    else:
        sys.exit(__doc__)
