"""Registers the built-in trainers. Imports nothing heavy: targets load on use."""

from harness import hookimpl


@hookimpl
def register_trainers(register):
    """Trainers whose checkpoints the built-in adapters load."""
    register(
        "fredect",
        "harness.trainers.fredect:FreDectTrainer",
        description="Fit FreDect's standardisation and logistic regression on a task's training split.",
    )
    register(
        "format-shortcut",
        "harness.trainers.format_shortcut:FormatShortcutTrainer",
        description="Fit the storage-only auditor on a task's training split.",
    )
    register(
        "cnnspot",
        "harness.trainers.torch_detectors:CNNSpotTrainer",
        description="Retrain CNNSpot without augmentation (Adam 1e-4, batch 64, early stopping on val acc).",
    )
    register(
        "univfd",
        "harness.trainers.torch_detectors:UnivFDTrainer",
        description="UnivFD linear probe on frozen CLIP features (--args clip=PATH).",
    )
    register(
        "fakescope",
        "harness.trainers.fakescope:FakeScopeTrainer",
        description="Instruction-tune a LLaVA checkpoint on FakeInstruct (--data, --base, [--deepspeed]); "
        "vision tower frozen.",
        flags={
            "--data": "instruction data JSON (FakeInstruct)",
            "--base": "base checkpoint folder",
            "--deepspeed": "DeepSpeed config JSON, e.g. trainers/deepspeed/zero2.json",
            "--backbone": "llava (default) or mplug-owl2 (trains in its worker environment: --args python=...)",
        },
    )
