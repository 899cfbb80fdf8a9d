"""Import a sibling backend module both as ``harness.plugins.lmm.backends.X`` (in-process) and as plain ``X``
(inside a worker, where this folder itself is on ``sys.path`` and ``harness`` may not be installed)."""

from __future__ import annotations

import importlib
from types import ModuleType


def sibling(name: str) -> ModuleType:
    """The sibling module ``name``."""
    package = __name__.rpartition(".")[0]
    return importlib.import_module(f"{package}.{name}" if package else name)
