"""LMM throughput: soft-scoring and answers on a random-weight LLaVA-1.5 of the 7B shape (no download).

Modes (``--modes``, default all):

- ``ceiling``: the card's dense matmul rate (bf16 on CUDA, fp32 on the CPU), measured first; with
  the FLOPs of one image (2 x parameters x tokens per tower, plus attention) it gives the
  images/s ceiling every other row is compared with.
- ``score``: the forward pass alone on device-resident inputs, logits at the last position only,
  per batch size (``--batch-sizes``).
- ``score-e2e``: end to end from JPEG files (1024x768) through the harness itself: the runner, the
  ``fakescope-llava`` adapter's fast path (decode + pad + CLIP preprocessing in the runner's worker
  threads while the GPU runs the previous batch, pinned memory, non-blocking copies), the response
  cache off. Optional ``--compile`` (torch.compile of the forward pass) for a second row.
- ``score-e2e-device``: the same with ``preprocess=device``: the worker threads only read the JPEG bytes; decode
  (nvJPEG on CUDA), padding and the image processor run on the model's device. The row records the largest
  score difference from a CPU-path scoring of the same files.
- ``generate``: padded ``generate()`` of ``--new-tokens`` answers with images, per batch size.
- ``generate-static``: the same with a static KV cache (``cache_implementation=static``, the harness's
  ``--model-args cache_implementation=static``), with which transformers compiles the decoding step on CUDA;
  warmed up at the full length so the compilation is not timed.
- ``generate-cb``: the text side alone (Llama-2-7B shape, prompts as long as an image prompt):
  padded ``generate()`` against transformers' continuous batching (``generate_batch``, run under
  ``no_grad``: under ``inference_mode`` transformers 5.17 failed every request). Only answers that carry
  tokens count; a row with a failed request is ``status: failed`` and the script exits 1.

Prints a table (img/s, ratio to the ceiling, peak memory) and writes the rows and the machine
to ``--output``. ``--shape tiny`` runs small configurations so the test suite exercises the
script on the CPU; its numbers say nothing about a GPU.

    python benchmarks/lmm_throughput.py --device cuda --output benchmarks/results/lmm-h100.json
    python benchmarks/lmm_throughput.py --shape tiny --output benchmarks/results/lmm-cpu-tiny.json
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_data import list_task_plugins, timed_evaluation, write_jpegs

from harness.plugins.lmm import LlavaAdapter

# LLaVA-1.5's conversation preamble (conv_vicuna_v1): with it the scoring prompt is as long as
# the real one (576 image tokens + ~47 text tokens = 623 per image on the real tokenizer)
PREAMBLE = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the human's questions."
)
SHAPES = {
    "7b": {
        "vision": dict(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
        ),
        "text": dict(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
            vocab_size=32064,
        ),
        "image_size": 336,
    },
    "tiny": {
        "vision": dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=224,
            patch_size=32,
            projection_dim=32,
        ),
        "text": dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=2048,
            vocab_size=512,
        ),
        "image_size": 224,
    },
}
BENCH_BACKEND: Any = None  # the in-memory backend the benchmark adapter serves (set before a run)


# -- building blocks -------------------------------------------------------------------------------
def tokenizer_for(vocab_size: int):
    """A word-level tokenizer over the prompt words, with LLaVA's special tokens (ids < vocab_size)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = f"{PREAMBLE} USER: ASSISTANT: What is the authenticity of this image? This image is fake Fake real Real"
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(
        [words], trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>", "<image>"])
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    assert len(tokenizer) <= vocab_size
    return tokenizer


def build_llava(shape: str, device: str, dtype: Any):
    """Random-weight LLaVA-1.5 of the given shape, built directly on the device, and its processor."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    spec = SHAPES[shape]
    tokenizer = tokenizer_for(spec["text"]["vocab_size"])
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**spec["vision"]),
        text_config=LlamaConfig(
            **spec["text"],
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(config).eval()
    finally:
        torch.set_default_dtype(previous)
    size = spec["image_size"]
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tokenizer,
        patch_size=spec["vision"]["patch_size"],
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return model, processor


def flops_per_image(model: Any, tokens: int) -> float:
    """2 x parameters x tokens for each tower (embeddings excluded, logits at one position) + attention."""
    vision = model.config.vision_config
    text = model.config.text_config
    patches = (vision.image_size // vision.patch_size) ** 2 + 1
    n_vision = sum(p.numel() for p in model.model.vision_tower.parameters())
    n_projector = sum(p.numel() for p in model.model.multi_modal_projector.parameters())
    n_text = sum(p.numel() for p in model.model.language_model.parameters()) - text.vocab_size * text.hidden_size
    attention = 4 * tokens * tokens * text.hidden_size * text.num_hidden_layers
    attention += 4 * patches * patches * vision.hidden_size * vision.num_hidden_layers
    return (
        2.0 * (n_vision * patches + n_projector * (patches - 1) + n_text * tokens)
        + attention
        + 2.0 * text.hidden_size * text.vocab_size
    )


def measure_matmul_tflops(device: str, dtype: Any, seconds: float = 2.0) -> float:
    """Dense square matmul rate in TFLOP/s (8192 on CUDA, 1024 on the CPU)."""
    import torch

    n = 8192 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            a @ b
        count += 10
        sync(device)
    return 2.0 * n**3 * count / (time.perf_counter() - start) / 1e12


def sync(device: str) -> None:
    """Wait for the device."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    """Start a new peak-memory window."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float:
    """Peak device memory in this window (GPU), or the process's peak RSS (CPU), in GiB."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# -- the adapter the runner drives (the real fakescope-llava adapter over an in-memory backend) -----
class InMemoryLlava(LlavaAdapter):
    """``fakescope-llava`` over :data:`BENCH_BACKEND` (random weights built by this script)."""

    def __init__(self, **args: Any) -> None:
        super().__init__(path="in-memory", **args)

    def fingerprint(self) -> dict[str, Any]:
        return {"class": "bench-llava", "args": self.args}

    def check(self) -> None:
        """Nothing on disk to check: the weights are built in memory."""

    def setup(self, device: str = "cpu") -> None:
        self.device, self.engine.backend = device, BENCH_BACKEND  # an in-process engine over the built backend
        self.info = self.engine.info = BENCH_BACKEND.info()


# -- modes -------------------------------------------------------------------------------------------
def bench_score(backend: Any, batch_sizes: list[int], repeats: int | None, device: str) -> list[dict[str, Any]]:
    """Forward pass only, inputs already on the device; ``repeats`` per batch size, or enough for ~256 images."""
    import torch

    rows = []
    size = backend.processor.image_processor.crop_size["height"]
    for batch in batch_sizes:
        times = repeats or max(2, 256 // batch)
        pixels = torch.randn(batch, 3, size, size)
        inputs = backend._scoring_inputs(pixels)
        reset_peak(device)
        with torch.inference_mode():
            backend.model(**inputs, logits_to_keep=1)  # warm-up
            sync(device)
            start = time.perf_counter()
            for _ in range(times):
                backend.model(**inputs, logits_to_keep=1)
            sync(device)
        seconds = time.perf_counter() - start
        rows.append(
            {"mode": "score", "batch": batch, "images_per_s": batch * times / seconds, "peak_gib": peak_gib(device)}
        )
    return rows


def bench_score_e2e(manifest: Path, batch: int, workers: int, device: str, label: str) -> dict[str, Any]:
    """From JPEG files through the runner and the adapter's fast path."""
    plugins = list_task_plugins(manifest, models={"bench-llava": f"{__name__}:InMemoryLlava"})
    reset_peak(device)
    outcome, seconds, _ = timed_evaluation(plugins, "bench-llava", batch_size=batch, num_workers=workers, device=device)
    return {
        "mode": label,
        "batch": batch,
        "workers": workers,
        "images": outcome.n_samples,
        "images_per_s": outcome.n_samples / seconds,
        "peak_gib": peak_gib(device),
    }


def bench_generate(
    backend: Any, batch_sizes: list[int], new_tokens: int, device: str, cache: str = "dynamic"
) -> list[dict[str, Any]]:
    """Padded generate() of exactly ``new_tokens`` tokens per answer, with images; ``cache="static"``: with a
    static KV cache (``cache_implementation=static``: transformers compiles the decoding step on CUDA), warmed up
    at the full length so that the compilation is not timed."""
    import torch
    from PIL import Image

    rows = []
    for batch in batch_sizes:
        images = [Image.new("RGB", (640, 480), (20 * i % 255, 90, 160)) for i in range(batch)]
        prompts = [backend.chat_template.format(prompt=f"{PREAMBLE} Is this image real or fake? Explain.")] * batch
        inputs = backend._inputs(backend._images(images), prompts)
        kwargs = {
            "max_new_tokens": new_tokens,
            "min_new_tokens": new_tokens,
            "do_sample": False,
            "pad_token_id": backend.tokenizer.pad_token_id,
        }
        warm_up = {**kwargs, "max_new_tokens": 2, "min_new_tokens": 2}
        if cache != "dynamic":
            kwargs["cache_implementation"] = cache
            warm_up = kwargs  # a static cache's compiled step is specialised to the full length
        reset_peak(device)
        with torch.inference_mode():
            backend.model.generate(**inputs, **warm_up)
            sync(device)
            start = time.perf_counter()
            backend.model.generate(**inputs, **kwargs)
            sync(device)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "mode": "generate" if cache == "dynamic" else f"generate {cache}-cache",
                "batch": batch,
                "new_tokens": new_tokens,
                "images_per_s": batch / seconds,
                "peak_gib": peak_gib(device),
            }
        )
    return rows


def bench_generate_cb(
    shape: str,
    device: str,
    dtype: Any,
    prompt_tokens: int,
    new_tokens: int,
    padded_batch: int,
    n_requests: int,
    num_blocks: int | None,
) -> list[dict[str, Any]]:
    """Text side alone: padded generate() vs continuous batching (generate_batch)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    spec = SHAPES[shape]["text"]
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(LlamaConfig(**spec, pad_token_id=0, bos_token_id=1, eos_token_id=2)).eval()
    finally:
        torch.set_default_dtype(previous)
    generator = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(3, spec["vocab_size"], (prompt_tokens,), generator=generator).tolist() for _ in range(n_requests)
    ]
    config = GenerationConfig(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=2
    )
    rows = []
    reset_peak(device)
    with torch.inference_mode():
        ids = torch.tensor(prompts[:padded_batch], device=device)
        model.generate(ids, generation_config=config, max_new_tokens=2, min_new_tokens=2)  # warm-up
        sync(device)
        start = time.perf_counter()
        for first in range(0, n_requests, padded_batch):
            ids = torch.tensor(prompts[first : first + padded_batch], device=device)
            model.generate(ids, generation_config=config)
        sync(device)
    rows.append(
        {
            "mode": "generate-padded-text",
            "batch": padded_batch,
            "new_tokens": new_tokens,
            "answers_per_s": n_requests / (time.perf_counter() - start),
            "peak_gib": peak_gib(device),
        }
    )
    reset_peak(device)
    # not under inference_mode: generate_batch's generation thread updates its paged cache in place, which
    # transformers 5.17 refused for inference tensors ("Inplace update to inference tensor outside InferenceMode")
    with torch.no_grad():
        start = time.perf_counter()
        # the paged KV cache sizes itself from free GPU memory; on the CPU it is given a small block count
        paging = {}
        if num_blocks:
            from transformers.generation.configuration_utils import ContinuousBatchingConfig

            paging = {"continuous_batching_config": ContinuousBatchingConfig(num_blocks=num_blocks)}
        out = model.generate_batch(prompts, generation_config=config, progress_bar=False, **paging)
        sync(device)
    rows.append(
        {**continuous_row(out, n_requests, time.perf_counter() - start), "new_tokens": new_tokens,
         "peak_gib": peak_gib(device)}
    )  # fmt: skip
    del model
    return rows


def continuous_row(outputs: dict[str, Any], n_requests: int, seconds: float) -> dict[str, Any]:
    """The continuous-batching row, honestly: only answers that carry tokens and no error count; a row with any
    failed or missing request is ``status: failed`` with how many and the first error (and says so on stderr),
    never a rate of failures."""
    answered = [o for o in outputs.values() if getattr(o, "error", None) is None and len(o.generated_tokens) > 0]
    failed = n_requests - len(answered)
    row: dict[str, Any] = {
        "mode": "generate-batch-text (continuous)",
        "batch": n_requests,
        "answers_per_s": len(answered) / seconds,
        "tokens_generated": sum(len(o.generated_tokens) for o in answered),
        "status": "ok" if failed == 0 else "failed",
    }
    if failed:
        errors = [str(o.error) for o in outputs.values() if getattr(o, "error", None) is not None]
        row.update(failed_requests=failed, first_error=errors[0] if errors else "no output")
        print(f"FAILED: continuous batching answered {len(answered)} of {n_requests} requests; first error: "
              f"{row['first_error']}", file=sys.stderr)  # fmt: skip
    return row


# -- driver ------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    """The benchmark's options (defaults depend on the device: see :func:`settings`)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (default)")
    parser.add_argument(
        "--modes", default="ceiling,score,score-e2e,score-e2e-device,generate,generate-static,generate-cb"
    )
    parser.add_argument("--batch-sizes", default=None, help="comma list (default 1,8,32,64 on CUDA, 1,4 on CPU)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--e2e-images", type=int, default=None, help="JPEG files for score-e2e")
    parser.add_argument("--e2e-batch", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None, help="runner preparation threads")
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument("--generate-batch-sizes", default=None)
    parser.add_argument("--cb-requests", type=int, default=None)
    parser.add_argument(
        "--compile", action="store_true", help="also time score-e2e with torch.compile (mode score-e2e-compiled)"
    )
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend of the compiled mode")
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args()


def settings(args: argparse.Namespace) -> argparse.Namespace:
    """The run's settings: the options given, the rest from the device (a GPU's sizes, or a CPU's small ones)."""
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.startswith("cuda")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.compile and "score-e2e-compiled" not in modes:
        modes.append("score-e2e-compiled")
    return argparse.Namespace(
        device=device,
        gpu=gpu,
        dtype=torch.bfloat16 if gpu else torch.float32,
        modes=modes,
        batch_sizes=[int(b) for b in (args.batch_sizes or ("1,8,32,64" if gpu else "1,4")).split(",")],
        repeats=args.repeats or (None if gpu else 2),
        new_tokens=args.new_tokens or (128 if gpu else 8),
        gen_batches=[int(b) for b in (args.generate_batch_sizes or ("1,16" if gpu else "1,2")).split(",")],
        workers=args.workers or (16 if gpu else 2),
        e2e_batch=args.e2e_batch or (32 if gpu else 4),
        e2e_images=args.e2e_images or (1024 if gpu else 32),
        cb_requests=args.cb_requests or (128 if gpu else 4),
    )


def device_path_difference(cpu_path: Any, device_path: Any, n: int = 16) -> float:
    """The largest Eq. 2 score difference between the CPU preprocessing path and the device one on ``n`` of the
    benchmark's JPEGs (the same weights)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp) / "compare", n)
        files = sorted((Path(tmp) / "compare").glob("*.jpg"))
        expected = cpu_path.score([cpu_path.prepare_pixels(str(f)) for f in files])
        found = device_path.score([device_path.encoded(f.read_bytes(), str(f)) for f in files])
    return max(abs(a - b) for a, b in zip(expected, found, strict=True))


def e2e_row(run: argparse.Namespace, label: str, backend: Any) -> dict[str, Any]:
    """Scoring through the harness's runner on JPEG files, after a warm-up run (one-time imports, allocator growth
    and compilation are not per-image cost)."""
    global BENCH_BACKEND
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_jpegs(Path(tmp) / "main", run.e2e_images)
        BENCH_BACKEND = backend
        bench_score_e2e(write_jpegs(Path(tmp) / "warm-up", 2 * run.e2e_batch), run.e2e_batch, run.workers, run.device,
                        "warm-up")  # fmt: skip
        return bench_score_e2e(manifest, run.e2e_batch, run.workers, run.device, label)


def main() -> int:
    """Measure the modes asked for, writing the results file after each (a later one may run out of time)."""
    args = parse_args()
    import torch

    from harness.plugins.lmm.backends.llava import LlavaBackend
    from harness.results import write_benchmark

    global BENCH_BACKEND
    run = settings(args)
    device, gpu, dtype, modes = run.device, run.gpu, run.dtype, run.modes
    result: dict[str, Any] = {
        "benchmark": "lmm_throughput",
        "shape": args.shape,
        "device": device,
        "dtype": str(dtype),
        "rows": [],
    }
    if gpu:
        result["card"] = torch.cuda.get_device_name(0)

    model, processor = build_llava(args.shape, device, dtype)
    backend = LlavaBackend.from_components(
        model,
        processor,
        device=device,
        score_prompt=f"{PREAMBLE} USER: <image> What is the authenticity of this image? ASSISTANT: This image is",
        compile=False,  # the eager rows; score-e2e-compiled is the compiled one
    )
    tokens = int(backend._scoring_inputs(torch.zeros(1, 3, 8, 8))["input_ids"].shape[1])
    per_image = flops_per_image(model, tokens)
    result.update(tokens_per_image=tokens, tflop_per_image=per_image / 1e12)
    ceiling = None
    if "ceiling" in modes:
        tflops = measure_matmul_tflops(device, dtype)
        ceiling = tflops * 1e12 / per_image
        result.update(matmul_tflops=tflops, ceiling_images_per_s=ceiling)
    if "score" in modes:
        result["rows"] += bench_score(backend, run.batch_sizes, run.repeats, device)
        write_benchmark(args.output, result)
    if "score-e2e" in modes:
        result["rows"].append(e2e_row(run, "score-e2e", backend))
        write_benchmark(args.output, result)
    if "generate" in modes:
        result["rows"] += bench_generate(backend, run.gen_batches, run.new_tokens, device)
        write_benchmark(args.output, result)
    if "generate-static" in modes:
        result["rows"] += bench_generate(backend, run.gen_batches, run.new_tokens, device, cache="static")
        write_benchmark(args.output, result)
    if "score-e2e-compiled" in modes:
        # a backend of its own: only its scoring call is compiled, the model object stays eager
        compiled = LlavaBackend.from_components(
            model, processor, device=device, score_prompt=backend.score_prompt, compile=args.compile_backend
        )
        result["rows"].append(e2e_row(run, "score-e2e compiled", compiled))
        write_benchmark(args.output, result)
    if "score-e2e-device" in modes:
        on_device = LlavaBackend.from_components(model, processor, device=device, score_prompt=backend.score_prompt,
                                                 compile=False, preprocess="device")  # fmt: skip
        result["rows"].append(e2e_row(run, "score-e2e preprocess=device", on_device))
        result["rows"][-1]["max_abs_score_diff_vs_cpu_path"] = device_path_difference(backend, on_device)
        write_benchmark(args.output, result)
    if "generate-cb" in modes:
        del backend, model
        BENCH_BACKEND = None
        gc.collect()
        if gpu:
            torch.cuda.empty_cache()
        result["rows"] += bench_generate_cb(
            args.shape,
            device,
            dtype,
            tokens,
            run.new_tokens,
            padded_batch=32 if gpu else 2,
            n_requests=run.cb_requests,
            num_blocks=None if gpu else 8,
        )
    for row in result["rows"]:
        if ceiling and "images_per_s" in row and row["mode"].startswith("score"):
            row["ratio_to_ceiling"] = row["images_per_s"] / ceiling
    print_table(result)
    write_benchmark(args.output, result)
    return 1 if any(row.get("status") == "failed" for row in result["rows"]) else 0


def print_table(result: dict[str, Any]) -> None:
    """The rows as a plain table."""
    from tabulate import tabulate

    head = (
        f"{result['shape']} shape on {result.get('card', result['device'])}, {result['dtype']}, "
        f"{result['tokens_per_image']} tokens/image = {result['tflop_per_image']:.3f} TFLOP"
    )
    if "matmul_tflops" in result:
        head += f"; matmul {result['matmul_tflops']:.1f} TFLOP/s -> ceiling {result['ceiling_images_per_s']:.1f} img/s"
    print(head)
    table = [
        [
            r["mode"],
            r.get("batch"),
            r.get("images_per_s", r.get("answers_per_s")),
            r.get("ratio_to_ceiling"),
            r["peak_gib"],
        ]
        for r in result["rows"]
    ]
    print(tabulate(table, headers=["mode", "batch", "img or answers/s", "x ceiling", "peak GiB"], floatfmt=".3f"))


if __name__ == "__main__":
    sys.exit(main())
