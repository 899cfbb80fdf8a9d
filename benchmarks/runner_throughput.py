"""Throughput of the runner alone: the ``noop`` model over many tiny cached image files.

Measures samples/s of ``Evaluator.run`` (hashing files, cache keys, batching,
thread-pool preparation, SQLite commits, metrics, JSONL/JSON writing) with no
image decoding and no model compute, for a fresh run and for a rerun served
entirely from the response cache, after a small warm-up run that pays the
one-time imports. Target (issue #2): >= 5,000 samples/s. Bootstrap intervals and
the format-shortcut audit (per-task analyses, not per-sample runner work) are off.

    python benchmarks/runner_throughput.py --n 10000 --output benchmarks/results/runner-cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from harness import hookimpl
from harness.plugin_manager import HarnessPlugins
from harness.results import write_benchmark
from harness.runner import Evaluator, RunConfig

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55"
    "0000000a49444154789c63600000000200015d0be6b50000000049454e44ae426082"
)


def make_data(root: Path, n: int) -> Path:
    """``n`` distinct tiny files (a 1x1 PNG plus a unique trailer) and their manifest."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for i in range(n):
            name = f"{i:06d}.png"
            (root / name).write_bytes(PNG_1x1 + i.to_bytes(4, "big"))
            manifest.write(
                json.dumps({"id": name, "image": name, "label": i % 2, "subset": f"gen{i % 4}" if i % 2 else "real"})
                + "\n"
            )
    return root / "manifest.jsonl"


def timed_run(plugins: HarnessPlugins, out: Path, batch_size: int, workers: int) -> tuple[float, int, int]:
    config = RunConfig(
        model="noop",
        tasks="bench-list",
        output_dir=out,
        batch_size=batch_size,
        num_workers=workers,
        progress=False,
        bootstrap=0,
        audit=False,
    )
    start = time.perf_counter()
    [outcome] = Evaluator(config, plugins).run()
    return time.perf_counter() - start, outcome.n_samples, outcome.n_cached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="samples (default 10000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--output", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        manifests = {"warmup": make_data(Path(tmp) / "warmup", 200), "main": make_data(Path(tmp) / "data", args.n)}

        def plugins_for(manifest: Path) -> HarnessPlugins:
            class BenchPlugin:
                @staticmethod
                @hookimpl
                def register_tasks(register):
                    register("bench-list", "harness.testing:ListTask", manifest=str(manifest))

            return HarnessPlugins(load_entrypoints=False, extra_plugins=(BenchPlugin,))

        # warm-up: one-time imports (scikit-learn for the metrics) are not per-sample cost
        timed_run(plugins_for(manifests["warmup"]), Path(tmp) / "warmup-out", args.batch_size, args.workers)
        plugins = plugins_for(manifests["main"])
        out = Path(tmp) / "out"
        fresh_s, n, cached0 = timed_run(plugins, out, args.batch_size, args.workers)
        cached_s, _, cached1 = timed_run(plugins, out, args.batch_size, args.workers)
    assert cached0 == 0 and cached1 == n
    result = {
        "benchmark": "runner_throughput",
        "n_samples": n,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "fresh_seconds": round(fresh_s, 3),
        "fresh_samples_per_s": round(n / fresh_s, 1),
        "cached_seconds": round(cached_s, 3),
        "cached_samples_per_s": round(n / cached_s, 1),
        "target_samples_per_s": 5000,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"runner throughput over {n} samples (noop model, no decoding):")
    print(f"  fresh run : {result['fresh_samples_per_s']:>9.1f} samples/s ({fresh_s:.2f} s)")
    print(f"  cached run: {result['cached_samples_per_s']:>9.1f} samples/s ({cached_s:.2f} s)")
    print(f"  target    : {result['target_samples_per_s']:>9} samples/s")
    write_benchmark(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
