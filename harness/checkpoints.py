"""Checkpoint folders: ``weights.safetensors`` + ``config.json``, loaded strictly.

Never pickle: tensors go through safetensors (NumPy API here, so detectors
without torch need no torch), everything else through JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.fingerprint import hash_path

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that is missing, of the wrong model, or with missing/unexpected keys."""


def save_numpy_checkpoint(out_dir: str | Path, tensors: Mapping[str, np.ndarray], config: dict[str, Any]) -> Path:
    """Write tensors and config into ``out_dir`` (each file replaced atomically)."""
    from safetensors.numpy import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (WEIGHTS + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, out / WEIGHTS)
    tmp_cfg = out / (CONFIG + ".tmp")
    tmp_cfg.write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp_cfg, out / CONFIG)
    return out


def load_numpy_checkpoint(
    path: str | Path, model: str, expected: set[str]
) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    """Load a checkpoint folder written by :func:`save_numpy_checkpoint`.

    Checks that ``config.json`` names ``model`` and that the tensor keys are exactly
    ``expected``; raises :class:`CheckpointError` naming what is wrong. Returns
    (tensors, config, content hash of the folder).
    """
    from safetensors.numpy import load_file

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder not found")
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: missing {name}")
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    if config.get("model") != model:
        raise CheckpointError(f"{folder}: checkpoint is for model {config.get('model')!r}, not {model!r}")
    tensors = load_file(str(folder / WEIGHTS))
    missing, unexpected = expected - set(tensors), set(tensors) - expected
    if missing or unexpected:
        raise CheckpointError(f"{folder}: missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}")
    return tensors, config, hash_path(folder / WEIGHTS)


def checkpoint_argument(model: str, checkpoint: str | None, path: str | None) -> str | None:
    """The one checkpoint argument of every adapter: ``checkpoint=`` (the detectors' name) or ``path=`` (the
    LMMs'), either works everywhere; both naming different things is an error."""
    if checkpoint and path and str(checkpoint) != str(path):
        raise ValueError(f"{model}: checkpoint= and path= name different things ({checkpoint}, {path}); give one")
    return checkpoint or path
