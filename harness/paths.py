"""Where the harness keeps built data: ``$HARNESS_CACHE_DIR`` or ``~/.cache/aigi-harness``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The harness's data cache folder (created on demand by whoever writes into it)."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aigi-harness"
