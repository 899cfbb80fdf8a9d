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
    print(f"\nuse it with:  --model-args path=CHECKPOINT,python={python}")
    return 0


def env_list(args: argparse.Namespace, plugins: object) -> int:
    """``harness env list``."""
    for name, path in recipes().items():
        print(f"{name:20s} {path}")
    return 0


@hookimpl
def register_commands(subparsers):
    """``harness env create|list``: isolated Python environments for models with old pins."""
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
