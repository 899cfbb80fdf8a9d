"""A tiny FakeScope, end to end on the CPU: the instruction-tuning path proven in a few minutes.

``python -m harness.trainers.fakescope_demo --out DIR`` (also ``make fakescope-demo``):

1. **Base**: a random tiny LLaVA (CLIP-style tower 64 px, 2-layer Llama) with a word-level
   tokenizer trained on the instruction vocabulary (nothing downloaded).
2. **Tower pretraining** (the stand-in for CLIP pretraining): the vision tower plus a linear
   probe on the features LLaVA reads (second-to-last layer, patch tokens) are trained end to
   end on aigi-mini's training split; the probe is discarded.
3. **FakeInstruct Part 1** from aigi-mini's training split (absolute judgments).
4. **Instruction tuning** with DeepSpeed ZeRO-2 on the CPU (gloo, one process), vision tower
   frozen (verified bit-identical), projector and language model trained.
5. **Evaluation** through the harness: ``fakescope-llava`` soft-scoring (Eq. 2) on aigi-mini test.

Writes ``DIR/demo_summary.json`` with the losses, the tower-probe validation AUC and the test AUC.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from harness.trainers.fakeinstruct import PART1_WHAT, PART1_YES_FAKE, PART1_YES_REAL, part1
from harness.trainers.fakescope import CHAT, vision_tower

IMAGE = 64


def build_tiny_base(out: Path, seed: int = 0) -> Path:
    """Save a random tiny LLaVA whose tokenizer knows the instruction vocabulary."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    from harness.plugins.lmm.backends.soft_scoring import DEFAULT_PROMPT

    corpus = (
        PART1_WHAT
        + PART1_YES_FAKE
        + PART1_YES_REAL
        + [CHAT, DEFAULT_PROMPT, "This image is fake . This image is real . Yes , No , Fake Real FAKE REAL"]
    )
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(
        corpus, trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>", "<image>"])
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    vision = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=IMAGE,
        patch_size=8,
        projection_dim=64,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(  # type: ignore[call-arg]  # transformers 5 names it image_token_id; the stubs lag
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    improc = CLIPImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE})
    processor = LlavaProcessor(
        image_processor=improc,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def pretrain_tower(base: Path, train: list, val: list, epochs: int = 30, lr: float = 1e-3, seed: int = 0) -> float:
    """Train the tower end to end with a linear probe on aigi-mini; write it back into ``base``; val AUC."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from harness.images import load_image

    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration.from_pretrained(base)
    processor = AutoProcessor.from_pretrained(base)
    tower = vision_tower(model)
    probe = torch.nn.Linear(tower.config.hidden_size, 1)

    def pixels(samples: list) -> Any:
        return processor.image_processor([load_image(s) for s in samples], return_tensors="pt")["pixel_values"]

    def logits(x: Any) -> Any:  # the features LLaVA reads: layer -2, patch tokens ("default" drops CLS)
        hidden = tower(pixel_values=x, output_hidden_states=True).hidden_states[-2][:, 1:]
        return probe(hidden.mean(dim=1)).reshape(-1)

    x_train, y_train = pixels(train), torch.tensor([float(s.label) for s in train])
    x_val, y_val = pixels(val), np.array([s.label for s in val])
    optimizer = torch.optim.Adam(list(tower.parameters()) + list(probe.parameters()), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        tower.train()
        for index in torch.randperm(len(x_train)).split(32):
            loss = loss_fn(logits(x_train[index]), y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    tower.eval()
    with torch.no_grad():
        auc = float(roc_auc_score(y_val, torch.sigmoid(logits(x_val)).numpy()))
    model.save_pretrained(base)
    return auc


def run(
    out: Path,
    epochs: float = 2.0,
    seed: int = 0,
    quiet: bool = True,
    n_train: int | None = None,
    tower_epochs: int = 30,
    eval_limit: int | None = None,
) -> dict[str, Any]:
    """The five steps of the module docstring; returns (and writes) the summary.

    ``n_train`` (a seeded, label-stratified subset of the training split, as ``--limit`` takes it),
    ``tower_epochs`` and ``eval_limit`` shrink the run for tests that prove the mechanics; the defaults are the
    recorded demo."""
    from importlib import resources

    from harness.plugin_manager import HarnessPlugins
    from harness.results import write_benchmark
    from harness.runner import Evaluator, RunConfig, limited
    from harness.tasks.aigi_mini import AigiMini
    from harness.trainers.fakescope import FakeScopeTrainer

    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    task = AigiMini()
    train, val = list(task.samples("train")), list(task.samples("val"))
    train = limited(train, n_train, seed)  # the run's own --limit sampler: seeded, label-stratified
    base = build_tiny_base(out / "base", seed)
    tower_auc = pretrain_tower(base, train, val, epochs=tower_epochs, seed=seed)
    records = [
        {"image": s.image, "authenticity": "fake" if s.label else "real", "generator": s.subset, "reasoning": ""}
        for s in train
    ]
    data = out / "fakeinstruct-part1.json"
    data.write_text(json.dumps(part1(records, per_record=2, seed=seed)), encoding="utf-8")
    zero2 = str(resources.files("harness.trainers") / "deepspeed" / "zero2.json")
    trainer = FakeScopeTrainer(
        data=str(data),
        base=str(base),
        deepspeed=zero2,
        epochs=epochs,
        lr=1e-3,
        batch_size=16,
        warmup_ratio=0.0,
        seed=seed,
        progress=not quiet,
    )
    training = trainer.train([], [], out / "fakescope-tiny", "aigi-mini (Part 1)", resume=False)
    config = RunConfig(
        model="fakescope-llava",
        model_args={"path": str(out / "fakescope-tiny")},
        tasks="aigi-mini",
        output_dir=out / "results",
        progress=not quiet,
        bootstrap=200,
        device="cpu",
        limit=eval_limit,
    )
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False)).run()
    assert outcome.results_path is not None, outcome.reason
    results = json.loads(outcome.results_path.read_text())
    summary = {
        "tower_probe_val_auc": tower_auc,
        "first_loss": training["first_loss"],
        "last_loss": training["last_loss"],
        "n_losses": len(training["losses"]),
        "vision_tower_bit_identical": training["vision_tower_bit_identical"],
        "test_auc": results["metrics"]["all"]["auc"]["value"],
        "test_auc_ci": results["metrics"]["all"]["auc"].get("ci"),
        "test_acc": results["metrics"]["all"]["acc"]["value"],
        "deepspeed": "ZeRO-2, CPU, one process (gloo)",
        "seconds": round(time.time() - start, 1),
        "results": str(outcome.results_path),
    }
    write_benchmark(out / "demo_summary.json", summary)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    summary = run(args.out, args.epochs, args.seed, quiet=False)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
