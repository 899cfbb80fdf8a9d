"""Answers/s of OpenAI-compatible servers (vLLM) through the harness, next to a plain thread-pool client.

Two ways to run it:

- ``--standin`` (no GPU, no network): stand-in engines (``harness.testkit.standin_engine``, each its own process) answer
  after a fixed ``--latency`` with at most ``--capacity`` requests served at once. For each concurrency in
  ``--concurrencies`` it times, in one run each, (a) the harness streaming over **two tasks** (``--images``
  JPEGs split between them, response cache off) and (b) a plain ``ThreadPoolExecutor`` of the same width
  sending the same requests with the same ``openai`` client (file read and base64 in the worker, as the
  harness does), and reports both against the ideal ``min(concurrency, capacity) / latency``. Then the
  same harness run against ``--endpoints`` engines of ``--endpoint-capacity`` each versus one of them
  (data-parallel serving: the ideal ratio is the number of endpoints). Issue #16's goals: harness >= 0.95 x
  the plain client and >= 0.9 x ideal at every concurrency; N endpoints >= 0.9 N x one.
- ``--base-url URL --model NAME``: a real server (``vllm serve``), a warm-up and a main run of the harness.

    python benchmarks/api_throughput.py --standin --output benchmarks/results/api-standin-cpu.json
    vllm serve /models/fakescope-llava --served-model-name fakescope-llava --port 8000   # elsewhere
    python benchmarks/api_throughput.py --base-url http://127.0.0.1:8000/v1 --model fakescope-llava \\
        --images 512 --concurrency 128 --output benchmarks/results/api-vllm-h100.json
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench_data import list_task_plugins, timed_evaluation, timed_runs, write_jpegs

QUESTION = "What is the authenticity of this image? Explain the evidence."


# -- a real server -------------------------------------------------------------------------------------


def timed_run(manifest: Path, args: argparse.Namespace, n_label: str) -> dict:
    """One run of the openai-api adapter over the manifest's images; the numbers of that run."""
    model_args = {
        "model": args.model,
        "base_url": args.base_url,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "timeout": args.timeout,
    }
    outcome, seconds, results = timed_evaluation(
        list_task_plugins(manifest),
        "openai-api",
        model_args,
        allow_failed=True,
        mode="generate",
        num_workers=args.workers,
        task_args={"question": args.question},
    )
    usage = (results.get("usage") or {}).get("this_run") or (results.get("usage") or {}).get("all") or {}
    completion = int(usage.get("completion_tokens", 0))
    return {
        "run": n_label,
        "images": outcome.n_samples,
        "failed": outcome.n_failed,
        "seconds": seconds,
        "answers_per_s": (outcome.n_samples - outcome.n_failed) / seconds,
        "completion_tokens": completion,
        "completion_tokens_per_s": completion / seconds,
    }


def real_server(args: argparse.Namespace) -> int:
    """Warm-up and main run against ``--base-url``."""
    from harness.results import write_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        warm = timed_run(write_jpegs(Path(tmp) / "warm-up", min(args.images, args.concurrency)), args, "warm-up")
        main_run = timed_run(write_jpegs(Path(tmp) / "main", args.images), args, "main")
    for row in (warm, main_run):
        print(
            f"{row['run']:>8}: {row['images']} images, {row['failed']} failed, {row['answers_per_s']:.2f} answers/s, "
            f"{row['completion_tokens_per_s']:.1f} completion tokens/s"
        )
    write_benchmark(
        args.output,
        {
            "benchmark": "api_throughput",
            "base_url": args.base_url,
            "model": args.model,
            "concurrency": args.concurrency,
            "max_tokens": args.max_tokens,
            "rows": [warm, main_run],
        },
    )
    return 0 if main_run["failed"] == 0 else 1


# -- stand-in engines ----------------------------------------------------------------------------------


@contextlib.contextmanager
def engines(n: int, latency: float, capacity: int) -> Iterator[list[str]]:
    """``n`` stand-in engine processes, started and stopped by the harness's own launcher; yields their URLs."""
    from harness.plugins.vllm_launcher import VllmLauncher

    launcher = VllmLauncher(
        "standin",
        n,
        command=f"{sys.executable} -m harness.testkit.standin_engine {{model}} --port {{port}} "
        f"--served-model-name {{name}} --latency {latency} --capacity {capacity}",
        grace=5,
    )
    launcher.start()
    try:
        yield launcher.base_urls
    finally:
        launcher.stop()


def two_task_plugins(manifest: Path) -> Any:
    """``bench-a`` and ``bench-b``: the manifest's images split in two ListTasks."""
    from harness import hookimpl
    from harness.plugin_manager import HarnessPlugins

    lines = manifest.read_text().splitlines()
    halves = {"bench-a": lines[0::2], "bench-b": lines[1::2]}
    for name, part in halves.items():
        (manifest.parent / f"{name}.jsonl").write_text("\n".join(part) + "\n")

    class TwoTasks:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            for name in halves:
                register(name, "harness.testkit.components:ListTask", manifest=str(manifest.parent / f"{name}.jsonl"))

    return HarnessPlugins(load_entrypoints=False, extra_plugins=(TwoTasks,))


def harness_rate(manifest: Path, urls: list[str], concurrency: int, max_tokens: int) -> tuple[float, int]:
    """Answers/s of one harness run over both tasks (response cache off), and how many failed."""
    outcomes, seconds, _ = timed_runs(
        two_task_plugins(manifest),
        "openai-api",
        {"model": "standin", "base_url": urls, "concurrency": concurrency, "max_tokens": max_tokens},
        tasks="bench-a,bench-b",
        mode="generate",
        task_args={"question": QUESTION},
    )
    answered = sum(o.n_samples - o.n_failed for o in outcomes)
    return answered / seconds, sum(o.n_failed for o in outcomes)


def plain_rate(manifest: Path, url: str, concurrency: int, max_tokens: int) -> tuple[float, int]:
    """Answers/s of a plain thread pool of ``concurrency`` workers with one ``openai`` client, same requests."""
    from openai import OpenAI

    client = OpenAI(api_key="EMPTY", base_url=url, max_retries=0, timeout=120)
    images = [manifest.parent / json.loads(line)["image"] for line in manifest.read_text().splitlines()]

    def ask(path: Path) -> bool:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        content = [
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}", "detail": "auto"}},
            {"type": "text", "text": QUESTION},
        ]
        try:
            client.chat.completions.create(
                model="standin", messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=0
            )
            return True
        except Exception:  # noqa: BLE001 - counted
            return False

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        ok = list(pool.map(ask, images))
    seconds = time.perf_counter() - start
    return sum(ok) / seconds, len(ok) - sum(ok)


def standin(args: argparse.Namespace) -> int:
    """The comparison rows against stand-in engines."""
    from tabulate import tabulate

    from harness.results import write_benchmark

    rows: list[dict[str, Any]] = []
    os.environ.setdefault("HARNESS_API_KEY", "EMPTY")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_jpegs(Path(tmp) / "jpegs", args.images, size=(256, 192))
        with engines(1, args.latency, args.capacity) as urls:
            harness_rate(manifest, urls, 8, args.max_tokens)  # warm-up: imports, connections
            for concurrency in args.concurrencies:
                ideal = min(concurrency, args.capacity) / args.latency
                plain, plain_failed = plain_rate(manifest, urls[0], concurrency, args.max_tokens)
                ours, failed = harness_rate(manifest, urls, concurrency, args.max_tokens)
                rows.append(
                    {
                        "setting": f"concurrency {concurrency}, 1 endpoint (capacity {args.capacity})",
                        "concurrency": concurrency,
                        "endpoints": 1,
                        "harness_per_s": round(ours, 2),
                        "plain_pool_per_s": round(plain, 2),
                        "ideal_per_s": round(ideal, 2),
                        "harness_over_plain": round(ours / plain, 3),
                        "harness_over_ideal": round(ours / ideal, 3),
                        "failed": failed + plain_failed,
                    }
                )
        scaling = {}
        for n in (1, args.endpoints):
            with engines(n, args.latency, args.endpoint_capacity) as urls:
                scaling[n], failed = harness_rate(manifest, urls, args.scaling_concurrency, args.max_tokens)
            ideal = min(args.scaling_concurrency, n * args.endpoint_capacity) / args.latency
            rows.append(
                {
                    "setting": f"concurrency {args.scaling_concurrency}, {n} endpoint(s) of capacity "
                    f"{args.endpoint_capacity}",
                    "concurrency": args.scaling_concurrency,
                    "endpoints": n,
                    "harness_per_s": round(scaling[n], 2),
                    "ideal_per_s": round(ideal, 2),
                    "harness_over_ideal": round(scaling[n] / ideal, 3),
                    "failed": failed,
                }
            )
    speedup = scaling[args.endpoints] / scaling[1]
    print(tabulate(rows, headers="keys", floatfmt=".3g"))
    print(f"{args.endpoints} endpoints / 1 endpoint: {speedup:.2f}x (ideal {args.endpoints}x)")
    write_benchmark(
        args.output,
        {
            "benchmark": "api_throughput (stand-in engines)",
            "latency_s": args.latency,
            "capacity": args.capacity,
            "endpoint_capacity": args.endpoint_capacity,
            "images": args.images,
            "tasks": 2,
            "max_tokens": args.max_tokens,
            "rows": rows,
            "endpoint_speedup": round(speedup, 3),
        },
    )
    return 0 if all(r["failed"] == 0 for r in rows) else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--standin", action="store_true", help="measure against stand-in engines (no GPU)")
    parser.add_argument("--base-url", help="a real server's /v1 URL")
    parser.add_argument("--model", help="the served model name")
    parser.add_argument("--images", type=int, default=None, help="JPEGs (default 256; 1,000 with --standin)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (real server)")
    parser.add_argument("--concurrencies", default="8,64,256", help="stand-in: the widths to compare")
    parser.add_argument("--latency", type=float, default=0.5, help="stand-in: seconds per request")
    parser.add_argument("--capacity", type=int, default=64, help="stand-in: requests served at once")
    parser.add_argument("--endpoints", type=int, default=4, help="stand-in: endpoints of the scaling rows")
    parser.add_argument("--endpoint-capacity", type=int, default=16, help="stand-in: capacity of each of them")
    parser.add_argument("--scaling-concurrency", type=int, default=128)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HARNESS_API_KEY", "EMPTY")
    if args.standin:
        args.images = args.images or 1000
        args.concurrencies = [int(c) for c in args.concurrencies.split(",")]
        return standin(args)
    if not (args.base_url and args.model):
        parser.error("give --standin, or --base-url and --model of a real server")
    args.images = args.images or 256
    return real_server(args)


if __name__ == "__main__":
    sys.exit(main())
