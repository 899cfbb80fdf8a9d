"""CPU thread settings, measured: preparation worker threads x torch intra-op threads (harness/threads.py).

Two measurements, each setting in a fresh process (torch's thread pools are per process):

- ``prepare``: CNNSpot's per-image transforms (resize 256, centre crop 224, to tensor, normalise) of a decoded
  1024x768 image (a PIL image, and a uint8 tensor as ``decode=torchvision`` gives) in ``workers`` threads,
  torch at ``threads`` intra-op threads: images/s;
- ``end to end``: CNNSpot (ResNet-50; ResNet-18 with ``--tiny``) scoring ``--images`` JPEG files on the CPU
  through the runner (``--num-workers`` = workers), response cache off: images/s of the second of two runs.

Settings: torch's default (every core) and one thread, with one worker and with every core as workers, and the
harness's own choice (``auto``). Results: ``benchmarks/results/cpu-threads.json``.

    python benchmarks/cpu_threads.py --output benchmarks/results/cpu-threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def prepare_rate(threads: str, workers: int, n: int, source: str = "pil") -> float:
    """Images/s of the transforms alone, of a PIL image or a uint8 tensor (``decode=torchvision``'s input)
    (runs in this process: call it in a fresh one)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch
    from PIL import Image

    from harness.plugins.detectors import IMAGENET_MEAN, IMAGENET_STD, ImagePipeline

    if threads != "default":
        torch.set_num_threads(int(threads))
    pipeline = ImagePipeline(224, IMAGENET_MEAN, IMAGENET_STD, resize=256)
    pixels = np.random.default_rng(0).integers(0, 255, (768, 1024, 3), dtype=np.uint8)
    image = Image.fromarray(pixels) if source == "pil" else torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    for _ in range(4):
        pipeline(image)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda _: pipeline(image), range(n)))
    return n / (time.perf_counter() - start)


def end_to_end_rate(threads: str, workers: int, manifest: Path, checkpoint: Path, arch: str) -> float:
    """Images/s of CNNSpot through the runner (in this process: call it in a fresh one)."""
    sys.path.insert(0, str(HERE))
    from bench_data import list_task_plugins, timed_evaluation

    if threads != "auto":
        os.environ["HARNESS_TORCH_THREADS"] = "keep" if threads == "default" else threads
    plugins = list_task_plugins(manifest)
    args = {"checkpoint": str(checkpoint), "arch": arch}
    for _ in range(2):  # the second run is kept: imports and allocator growth are not per-image cost
        outcome, seconds, _ = timed_evaluation(
            plugins, "cnnspot", args, batch_size=16, num_workers=workers, device="cpu"
        )
    return outcome.n_samples / seconds


def child(argv: list[str]) -> None:
    """One measurement in this (fresh) process; prints its images/s as JSON."""
    kind, threads, workers = argv[0], argv[1], int(argv[2])
    if kind.startswith("prepare"):
        rate = prepare_rate(threads, workers, int(argv[3]), "tensor" if kind == "prepare-tensor" else "pil")
    else:
        rate = end_to_end_rate(threads, workers, Path(argv[3]), Path(argv[4]), argv[5])
    print(json.dumps({"images_per_s": rate}))


def measure(*argv: str) -> float:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *argv], capture_output=True, text=True, check=True
    )
    return float(json.loads(result.stdout.strip().splitlines()[-1])["images_per_s"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--images", type=int, default=96, help="JPEGs for the end-to-end rows")
    parser.add_argument("--prepare-n", type=int, default=200, help="images for the prepare rows")
    parser.add_argument("--tiny", action="store_true", help="ResNet-18, one setting each (the test suite)")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0

    import torch
    from tabulate import tabulate

    from harness.plugins.detectors import build_resnet
    from harness.results import write_benchmark
    from harness.threads import available_cores, plan_threads

    sys.path.insert(0, str(HERE))
    from bench_data import write_jpegs

    cores = available_cores()
    arch = "resnet18" if args.tiny else "resnet50"
    settings = [("default", 1), ("default", cores), ("1", cores), ("1", 1)]
    kinds = ("prepare", "prepare-tensor")
    if args.tiny:  # the test suite: one setting of each measurement, that the script runs
        settings, kinds = [("1", cores)], ("prepare",)
    rows = []
    for kind in kinds:
        for threads, workers in settings:
            rows.append(
                {
                    "measure": {"prepare": "prepare (PIL image)", "prepare-tensor": "prepare (uint8 tensor)"}[kind],
                    "torch_threads": threads if threads != "default" else f"default ({cores})",
                    "workers": workers,
                    "images_per_s": round(measure(kind, threads, str(workers), str(args.prepare_n)), 1),
                }
            )
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "cnnspot.pth"
        torch.save({"model": build_resnet(arch).state_dict()}, checkpoint)
        manifest = write_jpegs(Path(tmp) / "jpegs", args.images)
        auto = plan_threads("cpu", cores)
        for threads, workers in settings[1:] + [("auto", cores)] if args.tiny else settings + [("auto", cores)]:
            label = {"default": f"default ({cores})", "auto": f"auto -> {auto.torch_threads}"}.get(threads, threads)
            rate = measure("e2e", threads, str(workers), str(manifest), str(checkpoint), arch)
            rows.append(
                {"measure": f"end to end, {arch}", "torch_threads": label, "workers": workers,
                 "images_per_s": round(rate, 1)}
            )  # fmt: skip
    print(tabulate(rows, headers="keys"))
    write_benchmark(args.output, {"benchmark": "cpu_threads", "cores": cores, "arch": arch, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
