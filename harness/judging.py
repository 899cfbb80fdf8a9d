"""Build a registered LLM judge (``harness ls judges``) from a plugin manager.

Core code: the judge metrics (a plugin) and the runner's verdict fallback both call it with the plugin
manager they run under, so a judge registered by a plugin loaded into *that* manager is found.
"""

from __future__ import annotations

import os
from typing import Any

from harness.cli_args import parse_kv
from harness.interfaces import Judge


def build_judge(plugins: Any, name: str | None = None, args: dict[str, Any] | str | None = None) -> Judge:
    """Instantiate judge ``name`` (default ``HARNESS_JUDGE`` or ``openai``) with ``args`` (default
    ``HARNESS_JUDGE_ARGS``, ``k=v,...`` or a dict) from the registry of ``plugins``."""
    name = name or os.environ.get("HARNESS_JUDGE") or "openai"
    if args is None:
        args = os.environ.get("HARNESS_JUDGE_ARGS", "")
    if isinstance(args, str):
        args = parse_kv(args)
    manifest = plugins.get("judge", name)
    return manifest.load()(**{**manifest.options, **args})
