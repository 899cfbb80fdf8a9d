"""``harness plugins``: every plugin's name, version, hooks and status."""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.plugin_manager import HarnessPlugins, PluginInfo


def add_parser(sub: Any, plugins: HarnessPlugins) -> None:
    """Add ``plugins`` to the sub-commands."""
    plug = sub.add_parser("plugins", help="show loaded plugins, their versions, hooks and errors")
    plug.add_argument("--json", action="store_true", help="machine-readable output")
    plug.set_defaults(func=cmd_plugins)


def plugin_status(info: PluginInfo) -> str:
    """One word or line: blocked, ok, the load error, or the hooks that failed."""
    if info.blocked:
        return "blocked"
    if info.error:
        return "ERROR: " + info.error
    return f"PARTLY: {info.problem()}" if info.failed_hooks else "ok"


def cmd_plugins(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness plugins``: name, version, hooks and error of every plugin."""
    from tabulate import tabulate

    if args.json:
        print(json.dumps([info.as_dict() for info in plugins.infos], indent=2))
        return 0
    rows = [
        (info.name, info.version or "", "builtin" if info.builtin else "external", ", ".join(info.hooks),
         plugin_status(info))
        for info in plugins.infos
    ]  # fmt: skip
    print(tabulate(rows, headers=["plugin", "version", "kind", "hooks", "status"], maxcolwidths=[34, 10, 8, 40, 60]))
    return 0
