"""``harness ls``: the registries, from manifests only (nothing is imported)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from harness.cli.common import add_include_path
from harness.plugin_manager import HarnessPlugins

KINDS = ("models", "tasks", "metrics", "trainers", "judges")


def add_parser(sub: Any, plugins: HarnessPlugins) -> None:
    """Add ``ls`` to the sub-commands."""
    ls = sub.add_parser("ls", help="list registered models, tasks, metrics, trainers or judges")
    ls.add_argument("kind", nargs="?", choices=KINDS, help="which registry to list (default: every one)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument(
        "--options",
        action="store_true",
        help="models: also each adapter's --model-args and their defaults (imports the adapters' modules)",
    )
    add_include_path(ls)
    ls.set_defaults(func=cmd_ls)


def cmd_ls(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness ls [KIND]``: manifests only, nothing imported; every kind when none is named."""
    from tabulate import tabulate

    kinds = [args.kind[:-1]] if args.kind else [k[:-1] for k in KINDS]
    if getattr(args, "options", False):
        return print_model_options(plugins, args.json)
    if args.json:
        print(json.dumps([m.as_dict() for kind in kinds for m in plugins.registry.manifests(kind)], indent=2))
        return 0
    for kind in kinds:
        manifests = plugins.registry.manifests(kind)
        rows = [(m.name, ", ".join(m.aliases), m.plugin.replace("harness.", ""), m.description) for m in manifests]
        if len(kinds) > 1:
            print(f"\n{kind}s")
        print(
            tabulate(
                rows,
                headers=["name", "aliases", "plugin", "description"],
                tablefmt="simple",
                maxcolwidths=[None, 20, 24, 70],
            )
        )
    for warning in plugins.registry.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def model_options(plugins: HarnessPlugins) -> dict[str, dict[str, Any]]:
    """Each registered model's ``--model-args`` (name -> default, ``None`` for "required or none"), or the
    reason its adapter cannot be imported here."""
    import inspect

    from harness.registry import RegistryError

    found: dict[str, dict[str, Any]] = {}
    for manifest in plugins.registry.manifests("model"):
        try:
            cls = manifest.load()
        except RegistryError as exc:
            found[manifest.name] = {"error": str(exc)}
            continue
        options = cls.options() if hasattr(cls, "options") else {}
        defaults = {k: (None if v is inspect.Parameter.empty else v) for k, v in options.items()}
        found[manifest.name] = {"options": {k: manifest.options.get(k, v) for k, v in sorted(defaults.items())}}
    return found


def print_model_options(plugins: HarnessPlugins, as_json: bool) -> int:
    """``harness ls models --options``."""
    found = model_options(plugins)
    if as_json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    for name, entry in found.items():
        if "error" in entry:
            print(f"{name}: (cannot import here: {entry['error']})")
            continue
        shown = ", ".join(f"{k}={v!r}" if v is not None else k for k, v in entry["options"].items())
        print(f"{name}: {shown}")
    return 0
