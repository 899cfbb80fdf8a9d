"""Answers/s of an OpenAI-compatible server (a vLLM server of a FakeScope checkpoint) through the harness.

The route to fast explanations (issue #9): vLLM's continuous batching behind
``vllm serve``, driven by the ``openai-api`` adapter with many requests in flight
(``--concurrency``). Writes ``--images`` 1024x768 JPEGs, asks each one
``--question`` for up to ``--max-tokens`` tokens, with the response cache off, and
reports answers/s and completion tokens/s (from the server's usage counts), after a
warm-up run. The API key comes from ``HARNESS_API_KEY`` (``EMPTY`` if unset, as a
local vLLM server expects).

    vllm serve /models/fakescope-llava --served-model-name fakescope-llava --port 8000   # elsewhere
    python benchmarks/api_throughput.py --base-url http://127.0.0.1:8000/v1 --model fakescope-llava \\
        --images 512 --concurrency 128 --output benchmarks/results/api-vllm-h100.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench_data import list_task_plugins, timed_evaluation, write_jpegs


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
        batch_size=args.batch_size,
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--base-url", required=True, help="the server's /v1 URL")
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--batch-size", type=int, default=None, help="runner batch (default: 2 x concurrency)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--question", default="What is the authenticity of this image? Explain the evidence.")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    args.batch_size = args.batch_size or 2 * args.concurrency
    os.environ.setdefault("HARNESS_API_KEY", "EMPTY")

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
            "batch_size": args.batch_size,
            "max_tokens": args.max_tokens,
            "rows": [warm, main_run],
        },
    )
    return 0 if main_run["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
