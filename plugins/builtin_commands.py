"""Built-in CLI commands added through the ``register_commands`` hook (as a third-party plugin would)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import resources
from pathlib import Path

from harness import hookimpl


def recipes() -> dict[str, Path]:
    """Environment recipes shipped in ``harness/backends/envs``: name -> requirements file."""
    folder = Path(str(resources.files("harness") / "backends" / "envs"))
    return {p.stem: p for p in sorted(folder.glob("*.txt"))}


def env_create(args: argparse.Namespace, plugins: object) -> int:
    """``harness env create NAME --dir DIR``: build a worker environment from its recipe."""
    available = recipes()
    if args.name not in available:
        print(f"error: no environment recipe {args.name!r}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    target = Path(args.dir or f"envs/{args.name}").resolve()
    python = target / "bin" / "python"
    steps = [[args.python, "-m", "venv", str(target)],
             [str(python), "-m", "pip", "install", "--upgrade", "pip"],
             [str(python), "-m", "pip", "install", "-r", str(available[args.name])]]
    for step in steps:
        print("+ " + " ".join(step))
        if not args.dry_run:
            result = subprocess.run(step)
            if result.returncode != 0:
                print(f"error: step failed with exit code {result.returncode}", file=sys.stderr)
                return result.returncode
    remote = "remote code" in available[args.name].read_text().splitlines()[0]
    hint = ",trust_remote_code=true" if remote else ""
    print(f"\nuse it with:  --model-args path=CHECKPOINT,python={python}{hint}")
    return 0


def env_list(args: argparse.Namespace, plugins: object) -> int:
    """``harness env list``."""
    for name, path in recipes().items():
        print(f"{name:20s} {path}")
    return 0


def data_check(args: argparse.Namespace, plugins: object) -> int:
    """``harness data check TASK``: counts per subset and label against expectations, and every defect."""
    from tabulate import tabulate

    from harness.runner import build_task

    from harness.cli_args import parse_kv

    task = build_task(plugins, args.task, args.data_root, parse_kv(args.task_args))
    if not hasattr(task, "check"):
        print(f"error: task {task.name!r} has no data check", file=sys.stderr)
        return 2
    report = task.check()
    print(f"{report.task}: {report.root}")
    keys = sorted(set(report.counts) | set(report.expected), key=lambda k: (str(k[0]), k[1]))
    rows = [(subset, "fake" if label == 1 else "real", report.counts.get((subset, label), 0),
             report.expected.get((subset, label), "")) for subset, label in keys]
    if rows:
        print(tabulate(rows, headers=["subset", "label", "found", "expected"]))
    for title, items in (("missing", report.missing), ("unreadable", report.unreadable),
                         ("unexpected", report.unexpected), ("note", report.notes)):
        if items:
            print(f"\n{title} ({len(items)}):")
            for item in items[: args.max_items]:
                print(f"  {item}")
            if len(items) > args.max_items:
                print(f"  ... and {len(items) - args.max_items} more")
    print("\nOK" if report.ok else "\nPROBLEMS FOUND")
    return 0 if report.ok else 1


@hookimpl
def register_commands(subparsers):
    """``harness env create|list`` (isolated worker environments) and ``harness data check``."""
    env = subparsers.add_parser("env", help="build isolated worker environments for models with old pins")
    sub = env.add_subparsers(dest="env_command", metavar="ACTION")
    create = sub.add_parser("create", help="create a worker environment from a recipe")
    create.add_argument("name", help="recipe name (see `harness env list`)")
    create.add_argument("--dir", default=None, help="where to create it (default: envs/NAME)")
    create.add_argument("--python", default=sys.executable, help="interpreter for `-m venv` (default: this one)")
    create.add_argument("--dry-run", action="store_true", help="print the steps without running them")
    create.set_defaults(func=env_create)
    listing = sub.add_parser("list", help="list the recipes")
    listing.set_defaults(func=env_list)

    data = subparsers.add_parser("data", help="inspect benchmark data on disk")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    check = data_sub.add_parser("check", help="counts per subset and label against expectations; list what is "
                                              "missing, unreadable or unexpected (exit 1 if anything is)")
    check.add_argument("task", help="task name (see `harness ls tasks`)")
    check.add_argument("--data-root", default=None, help="root folder of the task's data")
    check.add_argument("--task-args", default="", metavar="K=V,...", help="task options")
    check.add_argument("--max-items", type=int, default=20, help="items listed per category (default 20)")
    check.set_defaults(func=data_check)
