"""FakeScope supervised instruction tuning on FakeInstruct (paper Sec. V-A): LLaVA-1.5 here, mPLUG-Owl2 in its worker.

``harness train fakescope --data FakeInstruct.json --base LLAVA_DIR --out DIR [--deepspeed CONFIG]``

``--backbone mplug-owl2 --args python=ENV/bin/python`` trains FakeScope-owl2 instead: the run happens in the
mPLUG-Owl2 worker environment (upstream's classes and data pipeline, DeepSpeed beside its torch 2.0.1), driven
from here like the evaluation worker (``plugins/lmm/backends/owl2_train.py``); the data is FakeInstruct in
mPLUG-Owl2's format (``harness data build-fakeinstruct --backbone owl2``). The rest of this docstring is the
LLaVA backbone:

- Data: LLaVA conversation JSON (``{"image", "conversations": [{"from": "human", "value":
  "<image>\\n..."}, {"from": "gpt", "value": "..."}]}``, as written by
  :mod:`harness.trainers.fakeinstruct`); the loss covers the answer tokens only.
- The vision encoder is frozen; the projector and the language model are trained (Sec. V-A).
  The tower is verified bit-identical after training.
- Hugging Face ``Trainer`` with DeepSpeed (``trainers/deepspeed/zero2.json`` /
  ``zero3.json``), bf16 on GPUs, optional gradient checkpointing, resume from the last
  checkpoint in ``DIR/trainer``. Multi-GPU / multi-node: start the same command under
  ``deepspeed`` or ``torchrun`` (``python -m harness.cli train fakescope ...``).
- Output: a LLaVA folder that ``harness run --model fakescope-llava --model-args path=DIR``
  evaluates as it is, plus ``harness_training.json`` (data, base, losses, the generators
  seen in training for Seen / Unseen reporting).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.interfaces import Trainer
from harness.records import Sample

CHAT = "USER: <image> {question} ASSISTANT:"
BACKBONES = ("llava", "mplug-owl2")
META = "harness_training.json"


def vision_tower(model: Any) -> Any:
    """The LLaVA vision encoder, across transformers versions."""
    inner = getattr(model, "model", model)
    return getattr(inner, "vision_tower", None) or model.vision_tower


def tower_unchanged(before: dict[str, Any], out_dir: Path) -> bool:
    """Whether the saved checkpoint's vision tower equals ``before`` bit for bit.

    Read from the saved files rather than the live model: under ZeRO-3 the live
    parameters are partitioned placeholders.
    """
    import torch
    from safetensors.torch import load_file

    saved: dict[str, Any] = {}
    for shard in sorted(out_dir.glob("*.safetensors")):
        saved.update(load_file(str(shard)))
    for key, tensor in before.items():
        match = [k for k in saved if k.endswith("vision_tower." + key)]
        if len(match) != 1 or not torch.equal(tensor, saved[match[0]].to(tensor.dtype)):
            return False
    return True


class InstructionDataset:
    """LLaVA conversations -> input ids, labels masked on the prompt, pixel values."""

    def __init__(self, records: Sequence[dict[str, Any]], processor: Any, base_dir: Path, max_length: int = 1024):
        self.records, self.processor, self.base_dir, self.max_length = list(records), processor, base_dir, max_length

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from harness.images import load_image

        record = self.records[index]
        human, gpt = record["conversations"][0]["value"], record["conversations"][1]["value"]
        question = human.replace("<image>", "").strip()
        image_path = Path(record["image"])
        image = load_image(str(image_path if image_path.is_absolute() else self.base_dir / image_path))
        prompt = CHAT.format(question=question)
        eos = self.processor.tokenizer.eos_token or ""
        prompt_ids = self.processor(images=image, text=prompt, return_tensors="pt")["input_ids"][0]
        full = self.processor(images=image, text=f"{prompt} {gpt}{eos}", return_tensors="pt")
        input_ids = full["input_ids"][0][: self.max_length]
        labels = input_ids.clone()
        labels[: len(prompt_ids)] = -100
        return {"input_ids": input_ids, "labels": labels, "pixel_values": full["pixel_values"][0]}


def collate(batch: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad ids and labels; stack pixel values."""
    import torch

    width = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, item in enumerate(batch):
        n = len(item["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = item["input_ids"], item["labels"], 1
    return {
        "input_ids": ids,
        "labels": labels,
        "attention_mask": mask,
        "pixel_values": torch.stack([b["pixel_values"] for b in batch]),
    }


def single_process_env() -> dict[str, str | None]:
    """Set the rendezvous variables DeepSpeed needs when no launcher started us (one process, a free
    loopback port); returns the previous values for :func:`restore_env`."""
    import socket

    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return {}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    values = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    return previous


def restore_env(previous: dict[str, str | None]) -> None:
    """Undo :func:`single_process_env` and tear down the process group it led to."""
    import torch.distributed as dist

    if not previous:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class FakeScopeTrainer(Trainer):
    """Instruction tuning of a LLaVA checkpoint on FakeInstruct (see the module docstring)."""

    name = "fakescope"
    model_name = "fakescope-llava"
    requires_task = False

    def __init__(
        self,
        data: str | None = None,
        base: str | None = None,
        deepspeed: str | None = None,
        epochs: float = 1.0,
        max_steps: int = -1,
        lr: float = 2e-5,
        batch_size: int = 4,
        grad_accum: int = 1,
        bf16: Any = "auto",
        gradient_checkpointing: bool = False,
        seed: int = 0,
        max_length: int = 1024,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.03,
        progress: bool = True,
        backbone: str = "llava",
        python: str | None = None,
        save_steps: int = 500,
        **args: Any,
    ) -> None:
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, not {backbone!r}")
        if backbone == "mplug-owl2" and not python:
            raise ValueError(
                "--backbone mplug-owl2 trains in the mPLUG-Owl2 worker environment: pass --args python=ENV/bin/python "
                "(build it with `harness env create mplug-owl2`)"
            )
        self.backbone, self.python, self.save_steps = backbone, python, int(save_steps)
        super().__init__(
            data=data,
            base=base,
            deepspeed=deepspeed,
            epochs=epochs,
            max_steps=max_steps,
            lr=lr,
            batch_size=batch_size,
            grad_accum=grad_accum,
            bf16=bf16,
            gradient_checkpointing=gradient_checkpointing,
            seed=seed,
            max_length=max_length,
            backbone=backbone,
            **args,
        )
        if not data or not base:
            raise ValueError("fakescope training needs --data FakeInstruct.json and --base CHECKPOINT_DIR")
        self.data, self.base, self.deepspeed = Path(data), base, deepspeed
        self.epochs, self.max_steps, self.lr = float(epochs), int(max_steps), float(lr)
        self.batch_size, self.grad_accum, self.bf16 = int(batch_size), int(grad_accum), bf16
        self.gradient_checkpointing, self.seed, self.max_length = (
            bool(gradient_checkpointing),
            int(seed),
            int(max_length),
        )
        self.weight_decay, self.warmup_ratio, self.progress = float(weight_decay), float(warmup_ratio), progress

    def evaluation_command(self, out_dir: Path, task_name: str) -> str:
        """``harness run`` on the written folder: ``fakescope-owl2`` in its worker's Python for that backbone."""
        model = "fakescope-owl2" if self.backbone == "mplug-owl2" else self.model_name
        python = f",python={self.python}" if self.python else ""
        return f"harness run --model {model} --model-args path={out_dir}{python} --tasks {task_name or 'aigi-mini'}"

    def train(
        self, train: Sequence[Sample], val: Sequence[Sample], out_dir: Path, task_name: str, resume: bool = True
    ) -> dict[str, Any]:
        """Fine-tune, verify the frozen tower, save a folder the ``fakescope-llava`` (or ``fakescope-owl2``)
        adapter loads."""
        if self.backbone == "mplug-owl2":
            return self._train_owl2(Path(out_dir))
        import torch
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        records = json.loads(self.data.read_text(encoding="utf-8"))
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        model = LlavaForConditionalGeneration.from_pretrained(self.base, local_files_only=True)
        processor = AutoProcessor.from_pretrained(self.base, local_files_only=True)
        tower = vision_tower(model)
        tower.requires_grad_(False)
        before = {k: v.detach().clone() for k, v in tower.state_dict().items()}
        cuda = torch.cuda.is_available()
        bf16 = cuda if self.bf16 == "auto" else bool(self.bf16)
        saved_env = dict(os.environ)  # HF / accelerate set ACCELERATE_USE_DEEPSPEED etc.: do not leak them
        previous = single_process_env() if self.deepspeed else {}
        try:
            return self._train(model, processor, before, bf16, records, out_dir, task_name, resume)
        finally:
            restore_env(previous)
            os.environ.clear()
            os.environ.update(saved_env)

    def _train_owl2(self, out_dir: Path) -> dict[str, Any]:
        """Run ``owl2_train.py`` with the worker environment's Python (ranks inherit the launcher's variables)."""
        import subprocess
        import sys

        from harness.interfaces import ModelLoadError

        script = Path(__file__).resolve().parent.parent / "plugins" / "lmm" / "backends" / "owl2_train.py"
        if not script.is_file():  # installed package layout
            from importlib import resources

            script = Path(str(resources.files("harness.plugins.lmm.backends") / "owl2_train.py"))
        python = Path(str(self.python)).expanduser()
        if not python.exists():
            raise ModelLoadError(
                f"{python}: no such Python; build the environment with `harness env create mplug-owl2`"
            )
        argv = [
            str(python), str(script), "--base", str(self.base), "--data", str(self.data.resolve()),
            "--out", str(out_dir), "--epochs", str(self.epochs), "--max-steps", str(self.max_steps),
            "--lr", str(self.lr), "--weight-decay", str(self.weight_decay), "--batch-size", str(self.batch_size),
            "--grad-accum", str(self.grad_accum), "--max-length", str(self.max_length),
            "--bf16", "auto" if self.bf16 == "auto" else str(bool(self.bf16)).lower(),
            "--save-steps", str(self.save_steps), "--seed", str(self.seed),
        ]  # fmt: skip
        if self.deepspeed:
            argv += ["--deepspeed", str(Path(self.deepspeed).resolve())]
        if self.gradient_checkpointing:
            argv.append("--gradient-checkpointing")
        print("training in the mPLUG-Owl2 environment: " + " ".join(argv[:2]), file=sys.stderr, flush=True)
        finished = subprocess.run(argv, check=False)
        if finished.returncode != 0:
            raise RuntimeError(f"mPLUG-Owl2 training failed (exit code {finished.returncode}); see its output above")
        meta = json.loads((out_dir / META).read_text(encoding="utf-8"))
        if not meta["frozen"]["vision_encoder_unchanged"]:
            raise RuntimeError("the frozen vision encoder changed during training")
        losses = meta["losses"]
        return {
            "losses": losses,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "vision_tower_bit_identical": True,
            "backbone": "mplug-owl2",
        }

    def _train(
        self,
        model: Any,
        processor: Any,
        before: dict[str, Any],
        bf16: bool,
        records: list[dict[str, Any]],
        out_dir: Path,
        task_name: str,
        resume: bool,
    ) -> dict[str, Any]:
        from transformers import Trainer as HFTrainer
        from transformers.trainer_utils import get_last_checkpoint

        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        dataset = InstructionDataset(records, processor, self.data.parent, self.max_length)
        pad_id = processor.tokenizer.pad_token_id or 0
        args = self._training_arguments(out_dir, bf16)
        trainer = HFTrainer(
            model=model, args=args, train_dataset=dataset, data_collator=lambda batch: collate(batch, pad_id)
        )
        last = get_last_checkpoint(args.output_dir) if resume and Path(str(args.output_dir)).is_dir() else None
        trainer.train(resume_from_checkpoint=last)
        trainer.save_model(str(out_dir))
        processor.save_pretrained(str(out_dir))
        identical = tower_unchanged(before, out_dir)
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        meta = self._meta(records, bf16, losses, identical, task_name)
        (out_dir / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if not identical:
            raise RuntimeError("the frozen vision tower changed during training")
        return {
            "losses": losses,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "vision_tower_bit_identical": identical,
        }

    def _training_arguments(self, out_dir: Path, bf16: bool) -> Any:
        """Hugging Face ``TrainingArguments`` of the recipe (cosine schedule, a checkpoint per epoch, DeepSpeed
        when configured)."""
        import inspect

        import torch
        from transformers import TrainingArguments

        # transformers 5 folded warmup_ratio into warmup_steps (a float below 1 is a ratio)
        warmup: dict[str, Any] = (
            {"warmup_ratio": self.warmup_ratio}
            if "warmup_ratio" in inspect.signature(TrainingArguments.__init__).parameters
            else {"warmup_steps": self.warmup_ratio}
        )
        return TrainingArguments(
            output_dir=str(out_dir / "trainer"),
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.grad_accum,
            learning_rate=self.lr,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            weight_decay=self.weight_decay,
            **warmup,
            lr_scheduler_type="cosine",
            logging_steps=1,
            save_strategy="epoch",
            save_total_limit=1,
            report_to=[],
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            deepspeed=self.deepspeed,
            remove_unused_columns=False,
            seed=self.seed,
            dataloader_num_workers=0,
            disable_tqdm=not self.progress,
        )

    def _meta(
        self, records: list[dict[str, Any]], bf16: bool, losses: list[float], identical: bool, task_name: str
    ) -> dict[str, Any]:
        """What ``fakescope_meta.json`` records of the training (data, recipe, losses, the frozen tower)."""
        seen = sorted({str(r["generator"]) for r in records if r.get("authenticity") == "fake" and r.get("generator")})
        return {
            "trainer": "fakescope",
            "base": str(self.base),
            "data": str(self.data),
            "n_instructions": len(records),
            "parts": sorted({r["part"] for r in records if r.get("part") is not None}),
            "deepspeed": self.deepspeed,
            "bf16": bf16,
            "lr": self.lr,
            "epochs": self.epochs,
            "max_steps": self.max_steps,
            "losses": losses,
            "vision_tower_bit_identical": identical,
            "trained_on": {"task": task_name or str(self.data), "seen_generators": seen},
        }
