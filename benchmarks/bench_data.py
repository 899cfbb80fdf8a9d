"""Benchmark inputs shared by the scripts: JPEG files made from a real photograph, with a ListTask manifest."""

from __future__ import annotations

import json
from pathlib import Path


def write_jpegs(folder: Path, n: int, size: tuple[int, int] = (1024, 768), quality: int = 90) -> Path:
    """``n`` distinct JPEGs (scikit-image's astronaut, shifted and tinted per file) and ``manifest.jsonl``."""
    import numpy as np
    import skimage.data
    from PIL import Image

    base = Image.fromarray(skimage.data.astronaut()).resize(size)
    pixels = np.asarray(base, dtype=np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for i in range(n):
            shifted = np.clip(np.roll(pixels, i * 7, axis=1) + (i % 13) - 6, 0, 255).astype(np.uint8)
            Image.fromarray(shifted).save(folder / f"{i:05d}.jpg", quality=quality)
            manifest.write(json.dumps({"id": f"{i:05d}", "image": f"{i:05d}.jpg", "label": i % 2}) + "\n")
    return folder / "manifest.jsonl"


def list_task_plugins(manifest: Path, task: str = "bench-jpegs", models: dict[str, str] | None = None):
    """Plugins registering ``task`` (a ListTask over ``manifest``) and optional ``{name: target}`` models."""
    from harness import hookimpl
    from harness.plugin_manager import HarnessPlugins

    class BenchPlugin:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            register(task, "harness.testing:ListTask", manifest=str(manifest))

        @staticmethod
        @hookimpl
        def register_models(register):
            for name, target in (models or {}).items():
                register(name, target)

    return HarnessPlugins(load_entrypoints=False, extra_plugins=(BenchPlugin,))
