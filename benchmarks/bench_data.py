"""Shared by the benchmark scripts: JPEG inputs made from a real photograph, a ListTask over them, and one
timed harness run over that task."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any


def card_name(device_name: str) -> str:
    """A GPU's model as a file-name word: "NVIDIA H100 80GB HBM3" -> h100, "NVIDIA A100-SXM4-80GB" -> a100,
    "NVIDIA H200" -> h200 (the first word with a digit that is not a memory size; not the last word: hbm3)."""
    import re

    words = [w for w in re.split(r"[\s-]+", device_name) if re.search(r"\d", w) and not re.fullmatch(r"\d+GB", w, re.I)]
    return (words[0] if words else device_name.split()[-1]).lower()


def write_jpegs(
    folder: Path, n: int, size: tuple[int, int] = (1024, 768), quality: int = 90, workers: int | None = None
) -> Path:
    """``n`` distinct JPEGs (scikit-image's astronaut, shifted and tinted per file) and ``manifest.jsonl``,
    encoded in ``workers`` threads (PIL releases the GIL while encoding; default: every core)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import skimage.data
    from PIL import Image

    base = Image.fromarray(skimage.data.astronaut()).resize(size)
    pixels = np.asarray(base, dtype=np.int16)
    folder.mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        shifted = np.clip(np.roll(pixels, i * 7, axis=1) + (i % 13) - 6, 0, 255).astype(np.uint8)
        Image.fromarray(shifted).save(folder / f"{i:05d}.jpg", quality=quality)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(write, range(n)))
    with open(folder / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for i in range(n):
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
            register(task, "harness.testkit.components:ListTask", manifest=str(manifest))

        @staticmethod
        @hookimpl
        def register_models(register):
            for name, target in (models or {}).items():
                register(name, target)

    return HarnessPlugins(load_entrypoints=False, extra_plugins=(BenchPlugin,))


def timed_runs(
    plugins: Any, model: str, model_args: dict[str, Any] | None = None, tasks: str = "bench-jpegs", **config: Any
) -> tuple[list[Any], float, list[dict[str, Any]]]:
    """One harness run of ``model`` over ``tasks``, response cache off, into a temporary folder: the tasks'
    outcomes, the wall seconds and their results.json (with ``scores_by_sample`` added from the samples file).
    ``config``: further :class:`RunConfig` fields."""
    from harness.results import read_samples
    from harness.runner import Evaluator, RunConfig

    with tempfile.TemporaryDirectory() as out:
        run = RunConfig(
            model=model,
            model_args=model_args or {},
            tasks=tasks,
            output_dir=Path(out),
            progress=False,
            bootstrap=0,
            audit=False,
            use_cache=False,
            **config,
        )
        start = time.perf_counter()
        outcomes = Evaluator(run, plugins).run()
        seconds = time.perf_counter() - start
        results = [json.loads(o.results_path.read_text()) if o.results_path else {} for o in outcomes]
        for outcome, found in zip(outcomes, results, strict=True):
            if outcome.results_path:  # what each sample got, read before the folder goes
                found["scores_by_sample"] = {r.sample_id: r.score for r in read_samples(outcome.results_path)}
    return outcomes, seconds, results


def timed_evaluation(
    plugins: Any, model: str, model_args: dict[str, Any] | None = None, allow_failed: bool = False, **config: Any
) -> tuple[Any, float, dict[str, Any]]:
    """One harness run of ``model`` over the ``bench-jpegs`` task (:func:`timed_runs`): its outcome, wall seconds
    and results.json. Raises when the run did not finish, or (unless ``allow_failed``) when a sample failed."""
    [outcome], seconds, [results] = timed_runs(plugins, model, model_args, **config)
    if outcome.status != "done" or (outcome.n_failed and not allow_failed):
        raise RuntimeError(
            f"benchmark run of {model} failed: {outcome.status} {outcome.reason} ({outcome.n_failed} samples failed)"
        )
    return outcome, seconds, results
