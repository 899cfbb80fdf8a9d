"""Registers the built-in trainers. Imports nothing heavy: targets load on use."""

from harness import hookimpl


@hookimpl
def register_trainers(register):
    """Trainers whose checkpoints the built-in adapters load."""
    register("fredect", "harness.trainers.fredect:FreDectTrainer",
             description="Fit FreDect's standardisation and logistic regression on a task's training split.")
    register("format-shortcut", "harness.trainers.format_shortcut:FormatShortcutTrainer",
             description="Fit the storage-only auditor on a task's training split.")
