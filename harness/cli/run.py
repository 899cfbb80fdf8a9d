"""``harness run``: evaluate one model on tasks (options in groups, the lm-eval spellings beside ours)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.cli.common import add_data_options, add_include_path, add_quiet, apply_quiet
from harness.plugin_manager import HarnessPlugins

DESCRIPTION = (
    "Evaluate one model on one or more tasks. Finished samples are cached, so rerunning the same command after an "
    "interruption resumes where it stopped. lm-evaluation-harness spellings work too (--model_args, --batch_size "
    "auto, --output_path, --gen_kwargs, --use_cache, --log_samples, --tasks list)."
)


def add_parser(sub: Any, plugins: HarnessPlugins) -> None:
    """Add ``run`` to the sub-commands."""
    run = sub.add_parser("run", help="evaluate a model on tasks", description=DESCRIPTION)
    add_model_options(run)
    tasks = add_task_options(run)
    add_data_options(tasks)
    add_include_path(tasks)
    add_cache_options(run)
    add_metric_options(run)
    add_quiet(add_output_options(run))
    add_refused_lm_eval_flags(run)
    run.set_defaults(func=cmd_run)


def add_model_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The model options of ``harness run``."""
    group = parser.add_argument_group("model", "what to evaluate, and how it is called")
    group.add_argument("-m", "--model", default=None, help="model name (see `harness ls models`); required to run")
    group.add_argument(
        "-a",
        "--model-args",
        "--model_args",
        action="append",
        default=[],
        metavar="K=V,...",
        help="adapter arguments, e.g. checkpoint=DIR,decode=torchvision (values parsed as JSON when possible), or one "
        "JSON object; given twice, both apply (a key given twice is an error); `harness ls models --options` lists "
        "what each adapter takes, and any other key is an error",
    )
    group.add_argument(
        "--mode",
        default=None,
        choices=["score", "generate"],
        help="request kind (default: the task's first mode the model serves)",
    )
    group.add_argument(
        "--gen-kwargs",
        "--gen_kwargs",
        default="",
        metavar="K=V,...",
        help="decoding settings for generate requests, over each task's own: max_new_tokens, temperature, "
        "top_p, do_sample (part of the cache key)",
    )
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... or auto (default)")
    group.add_argument(
        "-b",
        "--batch-size",
        "--batch_size",
        type=batch_size_arg,
        default=32,
        help="samples per model call (default 32); 'auto' starts at 512 and halves on out-of-memory "
        "('auto:N' starts at N). API models keep their own concurrency instead",
    )
    group.add_argument(
        "--num-workers",
        "--num_workers",
        type=int,
        default=None,
        help="threads for image decoding and preprocessing (default: CPUs, at most 8)",
    )
    return group


def add_task_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The tasks options of ``harness run``."""
    group = parser.add_argument_group("tasks", "which benchmarks, which samples")
    group.add_argument(
        "--perturb",
        default=None,
        metavar="SWEEP",
        help="a robustness sweep: every image perturbed before the model sees it, one run per level, named "
        "TASK+LEVEL, e.g. jpeg:quality=90,70,50 (PIL; jpeg-cv2: OpenCV), blur:sigma=1,2,3, resize:scale=0.5,0.25 "
        "(down only; resize-back: down and back up), crop:size=224 (centre), noise:sigma=5,10 (seeded per image), "
        "or fixed steps first: blur:sigma=1+jpeg:quality=90,50 (perturbations as UnivFD's and CNNDetection's "
        "code; docs/protocols.md)",
    )
    group.add_argument(
        "-t",
        "--tasks",
        nargs="+",
        default=["aigi-mini"],
        help="task names, tags or globs, comma- or space-separated, or 'all' (default: aigi-mini); 'list' lists them",
    )
    group.add_argument(
        "-L",
        "--limit",
        type=limit_arg,
        default=None,
        help="a quick look: N samples of each task (or a fraction below 1, as lm-eval's --limit 0.1), "
        "label-stratified and seeded (--seed), and at most as many of a validation split scored for thresholds; "
        "the plan is printed before the first call",
    )
    group.add_argument("--split", default=None, help="task split (default: the task's own, usually test)")
    group.add_argument(
        "--seed",
        type=seed_arg,
        default=0,
        help="seed for Python, NumPy, torch and the bootstrap resampling (default 0); lm-eval's list form "
        "'0,1234,1234,1234' is taken as its first value, since one seed serves all here",
    )
    group.add_argument(
        "--num-fewshot",
        "--num_fewshot",
        "-f",
        type=int,
        default=0,
        help="accepted as 0 only: the benchmarks here are zero-shot, as the FakeScope paper evaluates them",
    )
    return group


def add_cache_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The cache and resume options of ``harness run``."""
    group = parser.add_argument_group("cache and resume", "finished answers are cached; a rerun resumes")
    group.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    group.add_argument(
        "--use-cache",
        "--use_cache",
        type=Path,
        default=None,
        metavar="PATH",
        help="the response cache's SQLite file (default: OUTPUT_DIR/.cache/responses.sqlite)",
    )
    group.add_argument(
        "--rehash",
        action="store_true",
        help="read every image and checkpoint file again to hash it: the cache knows a file by its content hash, "
        "memoised by path, size and modification time; a file rewritten with the same size and time would "
        "otherwise reuse its old answers",
    )
    group.add_argument(
        "--retry-failed",
        "--retry_failed",
        action="store_true",
        help="ask again the failures the cache kept because asking again would repeat them (an endpoint's "
        "answer without log-probabilities, a judge request refused as too long); transient failures "
        "(timeouts, 5xx) are never kept and are always asked again",
    )
    return group


def add_metric_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The metrics options of ``harness run``."""
    group = parser.add_argument_group("metrics", "what is computed from the answers")
    group.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for 95%% confidence intervals of overall metrics (0 = off)",
    )
    group.add_argument(
        "--seen",
        default=None,
        metavar="GEN,...",
        help="generators seen in training, for Seen/Unseen averages (default: from the checkpoint)",
    )
    group.add_argument(
        "--verdict-judge",
        "--verdict_judge",
        default=None,
        metavar="JUDGE",
        help="ask this LLM judge (see `harness ls judges`) for verdicts the rule-based parser "
        "leaves unknown; off by default",
    )
    group.add_argument(
        "--extra-metrics",
        "--extra_metrics",
        default="",
        metavar="NAME,...",
        help="metrics added to each task's own, e.g. acc_oracle_univfd (UnivFD's published accuracy "
        "at a threshold searched on the test labels; see `harness ls metrics`)",
    )
    group.add_argument(
        "--no-audit",
        "--no_audit",
        action="store_true",
        help="skip the format-shortcut audit (storage-only classifier accuracy per task)",
    )
    return group


def add_output_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The output options of ``harness run``."""
    group = parser.add_argument_group("output", "where results go and how the run reports")
    group.add_argument(
        "-o",
        "--output-dir",
        "--output_dir",
        "--output_path",
        type=Path,
        default=Path("results"),
        help="the results folder (default: ./results)",
    )
    group.add_argument(
        "--label",
        default=None,
        metavar="NAME",
        help="the name boards show for this run's model (default: the model's name, with its fingerprint where two "
        "runs of one model differ)",
    )
    group.add_argument(
        "--log-samples",
        "--log_samples",
        action="store_true",
        help="accepted for lm-eval habits: per-sample records (samples.jsonl) are always written",
    )
    group.add_argument(
        "--show-config",
        "--show_config",
        action="store_true",
        help="print the resolved run configuration before running",
    )
    group.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="a YAML file of run options (keys as the long flags, e.g. model, model_args, tasks, limit); flags "
        "given on the command line win",
    )
    group.add_argument("--strict", action="store_true", help="exit non-zero if any sample or task failed")
    return group


def add_refused_lm_eval_flags(parser: argparse.ArgumentParser) -> None:
    """lm-eval flags that mean nothing here: each stops the run at once with its reason."""
    group = parser.add_argument_group("lm-eval flags refused", "accepted by lm-eval, meaningless here")
    for flag, why in (
        ("--predict-only", "the harness always computes its metrics; every answer is in samples.jsonl anyway"),
        ("--write-out", "every prompt and answer is written to samples.jsonl; there is nothing more to print"),
        ("--wandb-args", "no Weights & Biases logging here: log lm_eval_<time>.json with lm-eval's own tools"),
        ("--hf-hub-log-args", "no Hub logging here: push lm_eval_<time>.json or `harness data export` yourself"),
    ):
        group.add_argument(flag, flag.replace("-", "_").replace("__", "--"), nargs="?", action=Refused, help=why)


class Refused(argparse.Action):
    """An lm-eval flag that has no meaning here: the run stops at once with the reason (the flag's help)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:  # fmt: skip
        parser.exit(2, f"error: {option_string} is not supported: {self.help}\n")


def check_cuda(device: str) -> None:
    """``--device cuda...`` on a machine where torch sees no CUDA device is an error, whatever the model (one that
    never touches torch would otherwise run on the CPU without a word)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise ValueError(f"--device {device}: torch is not installed (pip install 'aigi-harness[torch]')")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"--device {device}: torch sees no CUDA device here (use --device cpu or auto)")


def limit_arg(text: str) -> int | float:
    """``--limit``: a count, or a fraction of each task below 1 (lm-eval's ``--limit 0.1``)."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    if value < 1:
        return value
    if not value.is_integer():
        raise argparse.ArgumentTypeError("a count (an integer) or a fraction below 1")
    return int(value)


def seed_arg(text: str) -> int:
    """``--seed N`` or lm-eval's ``--seed a,b,c,d`` (its first value: one seed serves everything here)."""
    first = text.split(",")[0].strip()
    try:
        return int(first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer seed: {text!r}") from None


def apply_run_config_file(args: argparse.Namespace, parser_defaults: argparse.ArgumentParser) -> None:
    """``--config FILE``: its keys fill the run options the command line left at their defaults."""
    if not getattr(args, "config", None):
        return
    import yaml

    try:
        options = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"--config {args.config}: cannot read it ({exc})") from None
    if not isinstance(options, dict):
        raise ValueError(f"--config {args.config}: expected a mapping of options")
    defaults = vars(parser_defaults.parse_args(["run"]))
    for key, value in options.items():
        name = str(key).replace("-", "_")
        name = {"output_path": "output_dir"}.get(name, name)
        if name not in defaults:
            raise ValueError(f"--config {args.config}: unknown option {key!r}")
        if getattr(args, name) == defaults[name]:  # the command line wins
            if name == "model_args":
                value = [value if isinstance(value, str) else json.dumps(value)]
            elif name == "tasks":
                value = value if isinstance(value, list) else [str(value)]
            elif name == "output_dir":
                value = Path(value)
            setattr(args, name, value)


def batch_size_arg(text: str) -> int | str:
    """``--batch-size``: a positive number, ``auto`` or ``auto:N`` (lm-eval's spellings)."""
    lowered = text.strip().lower()
    if lowered == "auto" or (lowered.startswith("auto:") and lowered[5:].isdigit() and int(lowered[5:]) > 0):
        return lowered
    try:
        value = int(lowered)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'auto' or 'auto:N', not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the batch size must be at least 1")
    return value


def check_run_args(args: argparse.Namespace) -> None:
    """What argparse cannot check alone: a model named, a CUDA device that exists, zero-shot, a folder."""
    if not args.model:
        raise ValueError("harness run needs --model NAME (see `harness ls models`)")
    if args.perturb:
        from harness.perturbations import parse_sweep

        parse_sweep(args.perturb)  # a bad spec is an error before anything is built
    if str(args.device).startswith("cuda"):
        check_cuda(args.device)
    if args.num_fewshot:
        raise ValueError(f"--num_fewshot {args.num_fewshot}: the benchmarks here are zero-shot (as the FakeScope paper "
                         "evaluates them); leave it at 0")  # fmt: skip
    if args.output_dir.suffix.lower() in (".json", ".jsonl"):
        raise ValueError(
            f"--output-path {args.output_dir} names a file; the harness writes a folder of results per model and "
            f"task (and a response cache) under it: pass a folder, e.g. --output-path {args.output_dir.with_suffix('')}"
        )


def cmd_run(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness run``."""
    from harness.runner import Evaluator, RunConfig
    from harness.summary import format_run_summary

    if args.config:  # the defaults come from a second parser: built only when a file needs them
        from harness.cli import build_parser

        apply_run_config_file(args, parser_defaults=build_parser(plugins))
    args.tasks = ",".join(args.tasks) if isinstance(args.tasks, list) else str(args.tasks)
    apply_quiet(args)
    if args.tasks.strip() == "list":  # lm-eval's `--tasks list`
        from harness.cli.ls import cmd_ls

        return cmd_ls(argparse.Namespace(kind="tasks", json=False), plugins)
    check_run_args(args)
    config = RunConfig.from_namespace(args)
    if args.show_config:
        print(json.dumps(config.as_dict(), indent=2, default=str))
    evaluator = Evaluator(config, plugins, command=["harness", *sys.argv[1:]])
    outcomes = evaluator.run()
    if (
        outcomes
        and all(o.status in ("shard", "skipped") for o in outcomes)
        and any(o.status == "shard" for o in outcomes)
    ):
        print(f"rank {os.environ.get('RANK')}: shard done; rank 0 writes the results")
        return 0
    print(format_run_summary(evaluator.model_name, outcomes))
    if any(o.status == "failed" for o in outcomes):
        return 1
    if not any(o.status == "done" for o in outcomes):
        print("error: no task ran (see the reasons above)", file=sys.stderr)
        return 1
    if args.strict and any(o.n_failed for o in outcomes):
        print("error: --strict and some samples failed (see 'failures' in results.json)", file=sys.stderr)
        return 1
    return 0
