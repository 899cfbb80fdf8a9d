"""Throughput of the binary detectors: preprocessing and forward pass, random weights, no download.

For each detector: images/s of the model's forward pass on a batch (224 px, batch 32
by default) and of its per-image CPU preprocessing (decode + transforms of a 1024x768
JPEG), measured separately, so the bottleneck is visible. With ``--e2e N``, CNNSpot also runs
end to end from N 1024x768 JPEG files through the harness (runner, worker threads,
response cache off), once per decoder: ``decode=pil`` (PIL in the worker threads),
``decode=torchvision`` (batched ``decode_jpeg`` on the model's device; nvJPEG on
CUDA) and ``decode=auto`` (the default: the fast path where its inputs equal PIL's); each row records the
decoder that ran, how ``auto`` chose, and the largest score difference from the PIL run on the same files.
Full-size backbones by default (ResNet-50, CLIP ViT-L/14); ``--tiny`` uses
small configurations so the test suite can exercise the script quickly.

    python benchmarks/detector_throughput.py --output benchmarks/results/detectors-cpu.json
    python benchmarks/detector_throughput.py --device cuda --e2e 4096 --batch-size 128 --workers 16
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def end_to_end(
    checkpoint: Path, arch: str, manifest: Path, decode: str, device: str, batch: int, workers: int, warm_up: bool
) -> tuple[dict, dict[str, float]]:
    """CNNSpot from JPEG files through the runner: images/s of the whole run (after a warm-up run unless the
    decoders it may use were warmed up already), the decoder that ran and how it was chosen; and the scores by
    sample."""
    from bench_data import list_task_plugins, timed_evaluation

    plugins = list_task_plugins(manifest)
    args = {"checkpoint": str(checkpoint), "arch": arch, "decode": decode}
    for _ in range(2 if warm_up else 1):  # a first run pays one-time imports and cuDNN autotuning
        outcome, seconds, results = timed_evaluation(
            plugins, "cnnspot", args, batch_size=batch, num_workers=workers, device=device
        )
    preprocessing = results["model"]["preprocessing"]
    row = {
        "detector": f"cnnspot ({arch})",
        "stage": f"end to end, {outcome.n_samples} JPEGs, decode={decode}, batch {batch}, {workers} threads",
        "images_per_s": round(outcome.n_samples / seconds, 1),
        "decoder_used": preprocessing.get("decoder"),
        "decoder_choice": preprocessing.get("decoder_choice"),
    }
    return row, results["scores_by_sample"]


def parse_args() -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="small backbones (CI)")
    parser.add_argument("--e2e", type=int, default=0, help="JPEG files for the end-to-end CNNSpot rows (0: skip)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="runner threads (end to end)")
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args()


def clip_config(tiny: bool, size: int) -> dict:
    """UnivFD's CLIP ViT-L/14 vision tower (or a tiny one for CI)."""
    if tiny:
        return dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1, patch_size=16,
                    image_size=size, projection_dim=32)  # fmt: skip
    return dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14,
                image_size=224, projection_dim=768, hidden_act="quick_gelu")  # fmt: skip


def forward_rows(args: argparse.Namespace, size: int, device) -> list[dict]:
    """Images/s of each detector's network on a random batch."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from harness.plugins.detectors import build_resnet

    batch = torch.randn(args.batch_size, 3, size, size, device=device)
    resnet = build_resnet("resnet18" if args.tiny else "resnet50").to(device).eval()
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_config(args.tiny, size))).to(device).eval()
    head = torch.nn.Linear(clip.config.projection_dim, 1).to(device)
    forward = {
        "cnnspot (ResNet-50)" if not args.tiny else "cnnspot (ResNet-18, tiny)": lambda: resnet(batch),
        "fredect-resnet (ResNet-50 on log-DCT)" if not args.tiny else "fredect-resnet (tiny)": lambda: resnet(batch),
        "univfd (CLIP ViT-L/14 + linear)" if not args.tiny else "univfd (tiny ViT)": lambda: head(
            clip(pixel_values=batch).image_embeds
        ),
    }
    stage = f"forward, batch {args.batch_size}, {size} px"
    return [
        {"detector": name, "stage": stage, "images_per_s": round(args.batch_size / _time(fn, args.repeats), 1)}
        for name, fn in forward.items()
    ]


def preprocessing_rows(args: argparse.Namespace, size: int) -> list[dict]:
    """Images/s of each detector's decode and transforms on one 1024x768 JPEG, one thread."""
    import numpy as np
    from PIL import Image

    from harness.plugins.detectors import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, FreDectResNet, ImagePipeline

    rng = np.random.default_rng(0)
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (768, 1024, 3), dtype=np.uint8)).save(jpeg, format="JPEG", quality=90)
    with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as handle:
        handle.write(jpeg.getvalue())
        jpeg_path = handle.name
    pipelines = {
        "cnnspot": ImagePipeline(size, IMAGENET_MEAN, IMAGENET_STD),
        "univfd": ImagePipeline(size, CLIP_MEAN, CLIP_STD),
    }
    dct = FreDectResNet.__new__(FreDectResNet)
    dct.size, dct.resize = size, 256 if not args.tiny else 80
    dct.dct_mean, dct.dct_std = np.zeros((size, size, 3)), np.ones((size, size, 3))
    decode = lambda: Image.open(jpeg_path).convert("RGB")  # noqa: E731
    rows = []
    for name, pipeline in pipelines.items():
        seconds = _time(lambda p=pipeline: p(decode()), args.repeats * 4)
        rows.append({"detector": name, "stage": "decode 1024x768 JPEG + transforms, 1 thread",
                     "images_per_s": round(1.0 / seconds, 1)})  # fmt: skip
    seconds = _time(lambda: dct.dct_input(decode()), args.repeats * 4)
    rows.append({"detector": "fredect-resnet", "stage": "decode + resize + crop + 3-channel DCT, 1 thread",
                 "images_per_s": round(1.0 / seconds, 1)})  # fmt: skip
    os.unlink(jpeg_path)
    return rows


def end_to_end_rows(args: argparse.Namespace, save: Any) -> list[dict]:
    """CNNSpot through the harness's runner on ``--e2e`` JPEG files, with each decoder; ``save(rows)`` after
    each, so a run stopped by its time limit keeps what it measured."""
    import torch
    from bench_data import write_jpegs

    from harness.plugins.detectors import build_resnet

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        arch = "resnet18" if args.tiny else "resnet50"
        checkpoint = Path(tmp) / "cnnspot.pth"
        torch.save({"model": build_resnet(arch).state_dict()}, checkpoint)
        manifest = write_jpegs(Path(tmp) / "jpegs", args.e2e)
        scores = {}
        for decoder in ("pil", "torchvision", "auto"):  # auto uses one of the two warmed up before it
            row, scores[decoder] = end_to_end(
                checkpoint, arch, manifest, decoder, args.device, args.batch_size, args.workers, decoder != "auto"
            )
            row["max_abs_score_diff_vs_pil"] = max(abs(s - scores["pil"][k]) for k, s in scores[decoder].items())
            rows.append(row)
            save(rows)
    return rows


def main() -> int:
    """Measure, print, and write the results file."""
    args = parse_args()
    import torch

    from harness.results import write_benchmark

    torch.set_grad_enabled(False)
    device = torch.device(args.device)
    size = 64 if args.tiny else args.size

    def save(rows: list[dict]) -> None:
        write_benchmark(
            args.output,
            {
                "benchmark": "detector_throughput",
                "device": str(device),
                "torch": torch.__version__,
                "tiny": args.tiny,
                "threads": torch.get_num_threads(),
                "rows": rows,
                "date": time.strftime("%Y-%m-%d"),
            },
        )

    rows = forward_rows(args, size, device) + preprocessing_rows(args, size)
    save(rows)
    if args.e2e:
        rows += end_to_end_rows(args, lambda e2e: save(rows + e2e))
    width = max(len(r["detector"]) for r in rows)
    for row in rows:
        print(f"{row['detector']:<{width}}  {row['stage']:<64}  {row['images_per_s']:>9.1f} img/s")
    save(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
