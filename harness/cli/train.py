"""``harness train``: fit a registered trainer and write the checkpoint folder its adapter loads.

The core offers only what every trainer shares (task, splits, output, ``--args``); a trainer's own flags are
declared where it is registered (``register(..., flags={"--data": "help"})``, see :mod:`harness.hookspecs`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.cli.common import add_data_options, add_quiet, apply_quiet
from harness.cli_args import parse_kv
from harness.plugin_manager import HarnessPlugins
from harness.registry import Manifest


def add_parser(sub: Any, plugins: HarnessPlugins) -> None:
    """Add ``train``, with every registered trainer's own flags."""
    train = sub.add_parser(
        "train",
        help="train a detector on a task's training split",
        description="Train a detector and write a checkpoint folder that the model "
        "adapter of the same name loads with --model-args checkpoint=DIR.",
    )
    train.add_argument("trainer", help="trainer name (see `harness ls trainers`)")
    train.add_argument("--task", default=None, help="task whose splits to train on (detectors)")
    train.add_argument("--split", default="train", help="training split (default: train)")
    train.add_argument("--val-split", "--val_split", default="val", help="validation split, '' for none (default: val)")
    train.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    train.add_argument("--args", default="", metavar="K=V,...", help="trainer arguments")
    add_data_options(train)
    add_quiet(train)
    add_trainer_flags(train, plugins)
    train.set_defaults(func=cmd_train)


#: trainers' flags are parsed under this prefix, apart from the core's own (``--data`` -> ``trainer_data``)
TRAINER_DEST = "trainer_"


def trainer_flags(manifest: Manifest) -> dict[str, str]:
    """The flags a trainer declared at registration (flag -> help)."""
    flags = manifest.options.get("flags") or {}
    return {str(flag): str(text) for flag, text in flags.items()} if isinstance(flags, dict) else {}


def flag_dest(flag: str) -> str:
    """``--val-split`` -> ``val_split``: the keyword argument a flag becomes."""
    return flag.lstrip("-").replace("-", "_")


def add_trainer_flags(parser: argparse.ArgumentParser, plugins: HarnessPlugins) -> None:
    """Offer each registered trainer's flags, their help naming the trainers that take them; a flag that clashes
    with a core one is left out with a registry warning."""
    owners: dict[str, list[str]] = {}
    helps: dict[str, str] = {}
    for manifest in plugins.registry.manifests("trainer"):
        for flag, text in trainer_flags(manifest).items():
            owners.setdefault(flag, []).append(manifest.name)
            helps.setdefault(flag, text)
    for flag, names in owners.items():
        try:
            name = flag_dest(flag)
            parser.add_argument(flag, dest=TRAINER_DEST + name, default=None, metavar=name.upper(),
                                help=f"{helps[flag]} ({', '.join(names)})")  # fmt: skip
        except (argparse.ArgumentError, ValueError) as exc:
            plugins.registry.warnings.append(f"trainer flag {flag} of {', '.join(names)} left out: {exc}")


def trainer_arguments(args: argparse.Namespace, manifest: Manifest, plugins: HarnessPlugins) -> dict[str, Any]:
    """``--args`` plus the trainer's own flags that were given; another trainer's flag is an error."""
    values = parse_kv(args.args)
    own = {flag_dest(flag) for flag in trainer_flags(manifest)}
    for other in plugins.registry.manifests("trainer"):
        for flag in trainer_flags(other):
            dest = flag_dest(flag)
            given = getattr(args, TRAINER_DEST + dest, None)  # absent when the flag clashed and was left out
            if given is None:
                continue
            if dest not in own:
                owner = f"trainer {other.name!r} takes it"
                raise ValueError(f"{flag} is not an option of trainer {manifest.name!r} ({owner})")
            values[dest] = given
    return values


def cmd_train(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness train``."""
    manifest = plugins.get("trainer", args.trainer)
    trainer_args = trainer_arguments(args, manifest, plugins)
    apply_quiet(args)
    trainer_cls = manifest.load()
    trainer = trainer_cls(**trainer_args)
    if not trainer_cls.requires_task:  # it reads its own data: no task, empty splits
        summary = trainer.train([], [], args.out, task_name=args.task or "")
        write_summary(args.out, summary)
        print(f"model written to {args.out}  (evaluate with: {trainer.evaluation_command(args.out, args.task or '')})")
        return 0
    if not args.task:
        print(f"error: trainer {manifest.name!r} needs --task", file=sys.stderr)
        return 2
    from harness.runner import build_task

    task = build_task(plugins, args.task, args.data_root, parse_kv(args.task_args))
    ok, reason = task.available()
    if not ok:
        print(f"error: task {task.name!r} has no data: {reason}", file=sys.stderr)
        return 1
    train = list(task.samples(args.split))
    val = list(task.samples(args.val_split)) if args.val_split else []
    print(
        f"training {manifest.name} on {task.name}/{args.split} ({len(train)} samples"
        f"{f', validating on {len(val)} from {args.val_split}' if val else ''})"
    )
    summary = trainer.train(train, val, args.out, task_name=task.name)
    write_summary(args.out, summary)
    skipped = summary.get("train_skipped") or []
    if skipped:
        print(f"warning: {len(skipped)} training samples could not be read, e.g. {skipped[0]}", file=sys.stderr)
    if summary.get("val"):
        print(
            "validation: "
            + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary["val"].items())
        )
    print(f"checkpoint written to {args.out}  (evaluate with: {trainer.evaluation_command(args.out, task.name)})")
    return 0


def write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    """``train_summary.json`` beside the checkpoint."""
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
