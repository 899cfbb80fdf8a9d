"""FakeScope-owl2 training: instruction tuning of mPLUG-Owl2 on FakeInstruct, in the mPLUG-Owl2 worker environment.

Standalone (imports no harness module): it runs with the worker environment's Python, where upstream's
``mplug_owl2`` and its old torch / transformers pins live, driven by ``harness train fakescope --backbone
mplug-owl2 --args python=ENV/bin/python`` (or under ``deepspeed`` / ``torchrun`` for several GPUs, one process
per rank). What the paper states (Sec. III): the vision encoder frozen, the modality projector (for mPLUG-Owl2 its
visual abstractor) and the language model trained, on eight GPUs. The data pipeline is upstream's own
(``mplug_owl2.train.train``: ``LazySupervisedDataset``, the ``mplug_owl2`` conversation template, label masking,
the collator), so the checkpoint is trained exactly as upstream trains; the optimisation is a DeepSpeed engine
(ZeRO-2 or -3 from a config file, ``"auto"`` values filled from the arguments), gradient checkpointing optional,
resumed from the last DeepSpeed checkpoint in ``OUT/deepspeed``.

One upstream behaviour is not kept: ``LazySupervisedDataset`` replaces an item whose image file is missing by a
random other item, silently. Here every image is checked before training and a missing one is an error that
names it.

The output folder is what upstream's ``load_pretrained_model`` and the harness's ``fakescope-owl2`` adapter load
as is (config, weights, tokenizer, image processor), with ``harness_training.json``: data, hyper-parameters,
environment versions, per-step losses and the frozen-encoder check (its weights bit-identical after training).

    python owl2_train.py --base DIR --data FAKEINSTRUCT.json --out DIR [--deepspeed zero2.json] [--epochs 1]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def ds_config(path: str | None, args: argparse.Namespace, bf16: bool, world: int) -> dict[str, Any]:
    """The DeepSpeed config: the file's (ZeRO-2 by default), its ``"auto"`` values filled from the arguments."""
    config: dict[str, Any] = json.loads(Path(path).read_text()) if path else {"zero_optimization": {"stage": 2}}
    fill = {
        "train_micro_batch_size_per_gpu": args.batch_size,
        "gradient_accumulation_steps": args.grad_accum,
        "train_batch_size": args.batch_size * args.grad_accum * world,
        "gradient_clipping": 1.0,
    }
    for key, value in fill.items():
        if config.get(key, "auto") == "auto":
            config[key] = value
    config["optimizer"] = {
        "type": "AdamW",
        "params": {"lr": args.lr, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": args.weight_decay},
    }
    config.pop("scheduler", None)
    config["bf16"] = {"enabled": bf16}
    config["fp16"] = {"enabled": False}
    config["zero_allow_untested_optimizer"] = True
    zero = config.setdefault("zero_optimization", {"stage": 2})
    for key in list(zero):
        if zero[key] == "auto":
            zero.pop(key)
    return config


def tensor_digest(module: Any) -> str:
    """SHA-256 over a module's parameters (names, shapes, bytes): the frozen-encoder check."""
    digest = hashlib.sha256()
    for name, param in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(param.shape)).encode())
        digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def single_process_defaults() -> None:
    """The distributed variables a launcher would set, for a run started without one (one process, a free port)."""
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}.items():
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(probe.getsockname()[1])


def build_parser() -> argparse.ArgumentParser:
    """The script's options (``harness train fakescope --backbone mplug-owl2`` passes them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="mPLUG-Owl2 checkpoint folder")
    parser.add_argument("--data", required=True, help="FakeInstruct in mPLUG-Owl2 format (JSON list)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--image-folder", default="", help="prefix of relative image paths (default: absolute)")
    parser.add_argument("--deepspeed", default=None, help="DeepSpeed config JSON (default: ZeRO-2)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--bf16", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--save-steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def load_model(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """Tokenizer and model from ``--base``, the vision encoder frozen and the rest trainable (paper Sec. III /
    upstream's freeze_vision_model + tune_visual_abstractor); returns them and the encoder's digest."""
    import torch
    from mplug_owl2.model.modeling_mplug_owl2 import MPLUGOwl2LlamaForCausalLM
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.base, use_fast=False, local_files_only=True)
    tokenizer.model_max_length = args.max_length
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token  # as upstream's train()
    model = MPLUGOwl2LlamaForCausalLM.from_pretrained(args.base, torch_dtype=torch.float32, local_files_only=True)
    model.config.use_cache = False
    model.requires_grad_(True)
    vision = model.get_model().vision_model
    vision.requires_grad_(False)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return tokenizer, model, tensor_digest(vision)


def build_loader(args: argparse.Namespace, model: Any, tokenizer: Any, rank: int, world: int) -> tuple[Any, Any, Any]:
    """Upstream's own data pipeline (``LazySupervisedDataset``, the mplug_owl2 template, its collator) over a
    sampler sharded by rank; returns the data arguments, the loader and the sampler."""
    import torch
    from mplug_owl2.train import train as upstream
    from transformers import CLIPImageProcessor

    upstream.conversation_lib.default_conversation = upstream.conversation_lib.conv_templates["mplug_owl2"]
    data_args = upstream.DataArguments(
        data_path=args.data,
        lazy_preprocess=True,
        is_multimodal=True,
        image_folder=args.image_folder,
        image_aspect_ratio=getattr(model.config, "image_aspect_ratio", None) or "pad",
    )
    data_args.image_processor = CLIPImageProcessor.from_pretrained(args.base, local_files_only=True)
    dataset = upstream.LazySupervisedDataset(data_path=args.data, tokenizer=tokenizer, data_args=data_args)
    collator = upstream.DataCollatorForSupervisedDataset(tokenizer=tokenizer)
    sampler: Any = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank, seed=args.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, collate_fn=collator)
    return data_args, loader, sampler


def train_steps(
    engine: Any, loader: Any, sampler: Any, args: argparse.Namespace, bf16: bool, rank: int, checkpoints: Path
) -> tuple[int, list[float], int]:
    """The optimisation: DeepSpeed steps until ``--max-steps`` or the epochs, resumed from the last checkpoint,
    a checkpoint every ``--save-steps``; returns the steps done, the losses and the total asked for."""
    import torch

    steps_per_epoch = max(1, len(loader) // args.grad_accum)
    total = args.max_steps if args.max_steps > 0 else max(1, int(args.epochs * steps_per_epoch))
    step, losses = 0, []
    if (checkpoints / "latest").is_file():  # resume
        _, client = engine.load_checkpoint(str(checkpoints))
        step, losses = int(client.get("step", 0)), list(client.get("losses", []))
        print(f"resumed from step {step}", flush=True)
    device, micro = engine.device, 0
    while step < total:
        sampler.set_epoch(step // steps_per_epoch)
        for batch in loader:
            if step >= total:
                break
            images = batch["images"].to(device, dtype=torch.bfloat16 if bf16 else torch.float32)
            output = engine(
                input_ids=batch["input_ids"].to(device),
                labels=batch["labels"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                images=images,
            )
            engine.backward(output.loss)
            engine.step()
            micro += 1
            if micro % args.grad_accum == 0:
                step += 1
                losses.append(round(float(output.loss.detach()), 6))
                if rank == 0:
                    print(json.dumps({"step": step, "of": total, "loss": losses[-1]}), flush=True)
                if step % args.save_steps == 0 or step == total:
                    engine.save_checkpoint(str(checkpoints), client_state={"step": step, "losses": losses})
    return step, losses, total


def training_record(args: argparse.Namespace, facts: dict[str, Any]) -> dict[str, Any]:
    """``harness_training.json``: data, hyper-parameters, DeepSpeed, the frozen-encoder check, losses, versions."""
    import deepspeed
    import mplug_owl2
    import torch
    import transformers

    records, before, after = facts["records"], facts["encoder_before"], facts["encoder_after"]
    return {
        "backbone": "mplug-owl2",
        "base": str(args.base),
        "data": {
            "path": str(args.data),
            "sha256": hashlib.sha256(Path(args.data).read_bytes()).hexdigest(),
            "instructions": len(records),
        },
        "hyperparameters": {
            k: getattr(args, k)
            for k in ("epochs", "max_steps", "lr", "weight_decay", "batch_size", "grad_accum", "max_length", "seed")
        }
        | {"gradient_checkpointing": args.gradient_checkpointing, "bf16": facts["bf16"], "world_size": facts["world"]},
        "deepspeed": {"config": args.deepspeed, "zero_stage": facts["stage"], "resolved": facts["config"]},
        "frozen": {
            "vision_encoder_sha256_before": before,
            "vision_encoder_sha256_after": after,
            "vision_encoder_unchanged": before == after,
            "trained": "visual abstractor + language model (paper Sec. III)",
            "trainable_parameters": facts["trainable_parameters"],
        },
        "steps": facts["step"],
        "losses": facts["losses"],
        "trained_on": {
            "task": str(args.data),
            "seen_generators": sorted(
                {r.get("generator") for r in records if r.get("authenticity") == "fake" and r.get("generator")}
            ),
        },
        "seconds": facts["seconds"],
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "deepspeed": deepspeed.__version__,
            "mplug_owl2": getattr(mplug_owl2, "__version__", "unknown"),
            "python": sys.version.split()[0],
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Train and save (see the module docstring)."""
    args = build_parser().parse_args(argv)
    import torch

    single_process_defaults()
    import deepspeed

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = json.loads(Path(args.data).read_text(encoding="utf-8"))
    missing = [r["image"] for r in records if "image" in r and not Path(args.image_folder, r["image"]).is_file()]
    if missing:  # upstream would silently train on a random other item instead
        print(f"error: {len(missing)} image files not found, e.g. {missing[:3]}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    cuda = torch.cuda.is_available()
    bf16 = (cuda and torch.cuda.is_bf16_supported()) if args.bf16 == "auto" else args.bf16 == "true"
    tokenizer, model, encoder_before = load_model(args)
    data_args, loader, sampler = build_loader(args, model, tokenizer, rank, world)
    config = ds_config(args.deepspeed, args, bf16, world)
    stage = config["zero_optimization"].get("stage", 0)
    if stage == 3 and not cuda:
        # measured: DeepSpeed 0.14's ZeRO-3 on torch 2.0.1's gloo fails ("no support for _allgather_base")
        print("error: ZeRO-3 needs GPUs in this environment (torch 2.0.1's gloo lacks the all-gather ZeRO-3 uses); "
              "use trainers/deepspeed/zero2.json on the CPU", file=sys.stderr)  # fmt: skip
        return 2
    trainable = [p for p in model.parameters() if p.requires_grad]
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=trainable, config=config)
    begin = time.time()
    step, losses, _ = train_steps(engine, loader, sampler, args, bf16, rank, out / "deepspeed")
    module = engine.module
    params = list(module.parameters())
    gather = deepspeed.zero.GatheredParameters(params, modifier_rank=0) if stage == 3 else contextlib.nullcontext()
    with gather:
        encoder_after = tensor_digest(module.get_model().vision_model)
        if rank == 0:
            module.config.use_cache = True
            module.save_pretrained(str(out), safe_serialization=False)
    if rank == 0:
        tokenizer.save_pretrained(str(out))
        data_args.image_processor.save_pretrained(str(out))
        facts = dict(records=records, encoder_before=encoder_before, encoder_after=encoder_after, bf16=bf16,
                     world=world, stage=stage, config=config, trainable_parameters=sum(p.numel() for p in trainable),
                     step=step, losses=losses, seconds=round(time.time() - begin, 3))  # fmt: skip
        (out / "harness_training.json").write_text(
            json.dumps(training_record(args, facts), indent=2, default=str) + "\n"
        )
        print(json.dumps({"done": str(out), "steps": step, "encoder_unchanged": encoder_before == encoder_after}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
