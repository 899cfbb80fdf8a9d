"""Do the GPU paths score what the CPU path scores? (issue #28 item 5): the same ``harness run`` on ``--device cpu``
and on ``--device cuda``, per model, max |score difference| over the same JPEG files.

- ``fakescope-llava``: a tiny random LLaVA-1.5 saved to disk (the benchmark's ``tiny`` shape), through the real
  adapter and its fast path, in fp32 and in bf16 (bf16 on the GPU against fp32 on the CPU);
- ``cnnspot``: a random ResNet-50 checkpoint in CNNDetection's format, its default ``decode=auto`` (on the GPU the
  device decoder where its inputs equal PIL's).

On a machine without CUDA the second device is the CPU again (a rehearsal: the fp32 pairs must then differ by
0; bf16 against fp32 still differs by its rounding).
Writes one JSON file; exits 1 when a pair differs by more than its tolerance.

    python benchmarks/device_agreement.py --output benchmarks/results/device-agreement-h200.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import list_task_plugins, write_jpegs  # noqa: E402

#: the largest |score difference| accepted between the devices, per comparison (bf16 rounds the activations)
TOLERANCE = {"fp32": 1e-3, "bf16": 2e-2}


def scores(plugins: Any, model: str, model_args: dict[str, Any], device: str, out: Path) -> dict[str, float]:
    """Per sample id, the score of one ``harness run`` of ``model`` on the JPEG task."""
    from harness.results import read_samples
    from harness.runner import Evaluator, RunConfig

    config = RunConfig(model=model, model_args=model_args, tasks="bench-jpegs", output_dir=out, progress=False,
                       bootstrap=0, audit=False, device=device, batch_size=4, use_cache=False)  # fmt: skip
    [outcome] = Evaluator(config, plugins).run()
    if outcome.status != "done" or outcome.n_failed:
        raise SystemExit(f"{model} on {device}: {outcome.status} ({outcome.reason})")
    return {r.sample_id: float(r.score) for r in read_samples(outcome.results_path) if r.score is not None}


def llava_checkpoint(folder: Path) -> Path:
    """The tiny random LLaVA-1.5 of the throughput benchmark, saved with its processor."""
    import torch
    from lmm_throughput import build_llava

    model, processor = build_llava("tiny", "cpu", torch.float32)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def cnnspot_checkpoint(path: Path) -> Path:
    """A random ResNet-50 in CNNDetection's checkpoint format ({"model": state_dict})."""
    import torch

    from harness.plugins.detectors import build_resnet

    torch.manual_seed(0)
    torch.save({"model": build_resnet("resnet50").state_dict()}, path)
    return path


def compare(first: dict[str, float], second: dict[str, float]) -> dict[str, Any]:
    """Max and mean |difference| over the samples both scored (they must be the same samples)."""
    if set(first) != set(second):
        raise SystemExit("the two devices scored different samples")
    diffs = [abs(first[k] - second[k]) for k in first]
    return {"samples": len(diffs), "max_abs_diff": max(diffs), "mean_abs_diff": sum(diffs) / len(diffs)}


def main() -> int:
    """Score on both devices, compare, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    import torch

    from harness.results import write_benchmark

    other = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(tempfile.mkdtemp(prefix="device-agreement-"))
    manifest = write_jpegs(work / "jpegs", args.images, size=(320, 240))
    plugins = list_task_plugins(manifest)
    llava = llava_checkpoint(work / "llava")
    cnnspot = cnnspot_checkpoint(work / "cnnspot.pth")
    rows = []
    for model, model_args, precision in (
        # the eager forward: compile=auto's own check compares it with the compiled one at run time, and compiling
        # twice would not fit the step's time limit
        ("fakescope-llava", {"path": str(llava), "dtype": "fp32", "compile": False}, "fp32"),
        ("fakescope-llava", {"path": str(llava), "dtype": "bf16", "compile": False}, "bf16"),
        ("cnnspot", {"checkpoint": str(cnnspot), "arch": "resnet50"}, "fp32"),
    ):
        reference = scores(plugins, model, {**model_args, "dtype": "fp32"} if "dtype" in model_args else model_args,
                           "cpu", work / f"{model}-{precision}-cpu")  # fmt: skip
        found = scores(plugins, model, model_args, other, work / f"{model}-{precision}-{other}")
        row = {"model": model, "precision_on_" + other: precision, "devices": f"cpu fp32 vs {other}",
               **compare(reference, found), "tolerance": TOLERANCE[precision]}  # fmt: skip
        row["passed"] = row["max_abs_diff"] <= row["tolerance"]
        rows.append(row)
        print(json.dumps(row))
    result = {"benchmark": "device_agreement", "device": other, "rows": rows}
    if other == "cuda":
        result["card"] = torch.cuda.get_device_name(0)
    write_benchmark(args.output, result)
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
