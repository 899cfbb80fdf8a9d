"""The ``harness`` command line.

Importing this module is cheap (argparse, pluggy and the registry): commands
import what they need when they run, so ``harness ls models`` never imports torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.cli_args import merged_kv, parse_kv
from harness.interfaces import ModelLoadError
from harness.plugin_manager import HarnessPlugins, get_plugins
from harness.registry import RegistryError, UnknownNameError
from harness.run_lock import RunLockedError
from harness.storage import StorageError

EPILOG = """examples:
  harness ls tasks
  harness train fredect --task aigi-mini --out checkpoints/fredect
  harness run --model fredect --model-args checkpoint=checkpoints/fredect --tasks aigi-mini
  harness leaderboard results -o leaderboard.md

environment:
  HARNESS_CACHE_DIR        where built data (aigi-mini) is kept (default ~/.cache/aigi-harness)
  HARNESS_LOAD_PLUGINS     comma-separated allow-list of external plugins ('' = none)
  HARNESS_DISABLE_PLUGINS  comma-separated block-list of external plugins ('*' = all)
  HARNESS_INCLUDE_PATH     folders of folder-benchmark specs (*.yaml), joined by ':' (see docs/tasks.md)
  HARNESS_MAX_IMAGE_PIXELS the decompression-bomb limit (pixels; 0 = none); larger images fail per sample
"""


def build_parser(plugins: HarnessPlugins) -> argparse.ArgumentParser:
    """The full argument parser, including sub-commands added by plugins."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Evaluate AI-generated-image detectors and forensic LMMs on benchmarks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aigi-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="evaluate a model on tasks",
        description="Evaluate one model on one or more tasks. Finished samples are cached, so "
        "rerunning the same command after an interruption resumes where it stopped. lm-evaluation-harness "
        "spellings work too (--model_args, --batch_size auto, --output_path, --gen_kwargs, --use_cache, "
        "--log_samples, --tasks list).",
    )
    run.add_argument("-m", "--model", default=None, help="model name (see `harness ls models`); required to run")
    run.add_argument(
        "-a",
        "--model-args",
        "--model_args",
        action="append",
        default=[],
        metavar="K=V,...",
        help="adapter arguments, e.g. checkpoint=DIR,batch=8 (values parsed as JSON when possible), or one JSON "
        "object; given twice, both apply (a key given twice is an error)",
    )
    run.add_argument(
        "-t",
        "--tasks",
        nargs="+",
        default=["aigi-mini"],
        help="task names, tags or globs, comma- or space-separated, or 'all' (default: aigi-mini); 'list' lists them",
    )
    run.add_argument(
        "-L",
        "--limit",
        type=limit_arg,
        default=None,
        help="a quick look: N samples of each task (or a fraction below 1, as lm-eval's --limit 0.1), "
        "label-stratified and seeded (--seed), and at most as many of a validation split scored for thresholds; "
        "the plan is printed before the first call",
    )
    run.add_argument(
        "-b",
        "--batch-size",
        "--batch_size",
        type=batch_size_arg,
        default=32,
        help="samples per model call (default 32); 'auto' starts at 512 and halves on out-of-memory "
        "('auto:N' starts at N). API models keep their own concurrency instead",
    )
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... or auto (default)")
    run.add_argument(
        "-o",
        "--output-dir",
        "--output_dir",
        "--output_path",
        type=Path,
        default=Path("results"),
        help="the results folder (default: ./results)",
    )
    run.add_argument("--split", default=None, help="task split (default: the task's own, usually test)")
    run.add_argument(
        "--mode",
        default=None,
        choices=["score", "generate"],
        help="request kind (default: the task's first mode the model serves)",
    )
    run.add_argument("--data-root", "--data_root", default=None, help="root folder of the task's data")
    run.add_argument(
        "--include-path",
        "--include_path",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of folder-benchmark specs (*.yaml) to register as tasks (repeatable; also "
        "HARNESS_INCLUDE_PATH); see docs/tasks.md",
    )
    run.add_argument(
        "--task-args",
        "--task_args",
        default="",
        metavar="K=V,...",
        help="task options, e.g. references=FILE for FakeClue/FakeQA, list_csv=FILE for SynthWildX",
    )
    run.add_argument(
        "--seed",
        type=seed_arg,
        default=0,
        help="seed for Python, NumPy, torch and the bootstrap resampling (default 0); lm-eval's list form "
        "'0,1234,1234,1234' is taken as its first value, since one seed serves all here",
    )
    run.add_argument(
        "--num-fewshot",
        "--num_fewshot",
        "-f",
        type=int,
        default=0,
        help="accepted as 0 only: the benchmarks here are zero-shot, as the FakeScope paper evaluates them",
    )
    run.add_argument(
        "--show-config",
        "--show_config",
        action="store_true",
        help="print the resolved run configuration before running",
    )
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="a YAML file of run options (keys as the long flags, e.g. model, model_args, tasks, limit); flags "
        "given on the command line win",
    )
    for flag, why in (
        ("--predict-only", "the harness always computes its metrics; every answer is in samples.jsonl anyway"),
        ("--write-out", "every prompt and answer is written to samples.jsonl; there is nothing more to print"),
        ("--wandb-args", "no Weights & Biases logging here: log lm_eval_<time>.json with lm-eval's own tools"),
        ("--hf-hub-log-args", "no Hub logging here: push lm_eval_<time>.json or `harness data export` yourself"),
    ):
        run.add_argument(flag, flag.replace("-", "_").replace("__", "--"), nargs="?", action=Refused, help=why)
    run.add_argument(
        "--num-workers",
        "--num_workers",
        type=int,
        default=None,
        help="threads for image decoding and preprocessing (default: CPUs, at most 8)",
    )
    run.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    run.add_argument(
        "--use-cache",
        "--use_cache",
        type=Path,
        default=None,
        metavar="PATH",
        help="the response cache's SQLite file (default: OUTPUT_DIR/.cache/responses.sqlite)",
    )
    run.add_argument(
        "--gen-kwargs",
        "--gen_kwargs",
        default="",
        metavar="K=V,...",
        help="decoding settings for generate requests, over each task's own: max_new_tokens, temperature, "
        "top_p, do_sample (part of the cache key)",
    )
    run.add_argument(
        "--log-samples",
        "--log_samples",
        action="store_true",
        help="accepted for lm-eval habits: per-sample records (samples.jsonl) are always written",
    )
    run.add_argument(
        "--rehash",
        action="store_true",
        help="read every image and checkpoint file again to hash it: the cache knows a file by its content hash, "
        "memoised by path, size and modification time; a file rewritten with the same size and time would "
        "otherwise reuse its old answers",
    )
    run.add_argument(
        "--label",
        default=None,
        metavar="NAME",
        help="the name boards show for this run's model (default: the model's name, with its fingerprint where two "
        "runs of one model differ)",
    )
    run.add_argument(
        "--retry-failed",
        "--retry_failed",
        action="store_true",
        help="ask again the failures the cache kept because asking again would repeat them (an endpoint's "
        "answer without log-probabilities, a judge request refused as too long); transient failures "
        "(timeouts, 5xx) are never kept and are always asked again",
    )
    run.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for 95%% confidence intervals of overall metrics (0 = off)",
    )
    run.add_argument(
        "--seen",
        default=None,
        metavar="GEN,...",
        help="generators seen in training, for Seen/Unseen averages (default: from the checkpoint)",
    )
    run.add_argument(
        "--verdict-judge",
        "--verdict_judge",
        default=None,
        metavar="JUDGE",
        help="ask this LLM judge (see `harness ls judges`) for verdicts the rule-based parser "
        "leaves unknown; off by default",
    )
    run.add_argument(
        "--extra-metrics",
        "--extra_metrics",
        default="",
        metavar="NAME,...",
        help="metrics added to each task's own, e.g. acc_oracle_univfd (UnivFD's published accuracy "
        "at a threshold searched on the test labels; see `harness ls metrics`)",
    )
    run.add_argument(
        "--no-audit",
        "--no_audit",
        action="store_true",
        help="skip the format-shortcut audit (storage-only classifier accuracy per task)",
    )
    run.add_argument("--strict", action="store_true", help="exit non-zero if any sample or task failed")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)

    ls = sub.add_parser("ls", help="list registered models, tasks, metrics or trainers")
    ls.add_argument(
        "kind",
        nargs="?",
        choices=["models", "tasks", "metrics", "trainers", "judges"],
        help="which registry to list (default: every one)",
    )
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument(
        "--include-path",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of folder-benchmark specs (*.yaml) to register as tasks (repeatable)",
    )
    ls.set_defaults(func=cmd_ls)

    plug = sub.add_parser("plugins", help="show loaded plugins, their versions, hooks and errors")
    plug.add_argument("--json", action="store_true", help="machine-readable output")
    plug.set_defaults(func=cmd_plugins)

    train = sub.add_parser(
        "train",
        help="train a detector on a task's training split",
        description="Train a detector and write a checkpoint folder that the model "
        "adapter of the same name loads with --model-args checkpoint=DIR.",
    )
    train.add_argument("trainer", help="trainer name (see `harness ls trainers`)")
    train.add_argument("--task", default=None, help="task whose splits to train on (detectors)")
    train.add_argument("--data", default=None, help="instruction data JSON (fakescope)")
    train.add_argument("--base", default=None, help="base checkpoint folder (fakescope)")
    train.add_argument("--deepspeed", default=None, help="DeepSpeed config JSON, e.g. trainers/deepspeed/zero2.json")
    train.add_argument(
        "--backbone",
        default=None,
        help="fakescope: llava (default) or mplug-owl2 (trains in its worker environment: --args python=...)",
    )
    train.add_argument("--split", default="train", help="training split (default: train)")
    train.add_argument("--val-split", default="val", help="validation split, '' for none (default: val)")
    train.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    train.add_argument("--args", default="", metavar="K=V,...", help="trainer arguments")
    train.add_argument("--data-root", default=None, help="root folder of the task's data")
    train.add_argument("--task-args", default="", metavar="K=V,...", help="task options")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    board = sub.add_parser(
        "leaderboard",
        help="render results as markdown leaderboards",
        description="Without --board: one table, models x tasks, each task's main metric. "
        "With --board SPEC.yaml: a paper-style board (see leaderboards/README.md).",
    )
    board.add_argument(
        "results",
        nargs="*",
        help="folders of results (each task folder's latest run, results.json; the latest run per model and "
        "task wins) or results files (an earlier run's results_<time>.json, named on purpose)",
    )
    board.add_argument(
        "--results",
        dest="results_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="results folder (repeatable; same as the positional form)",
    )
    board.add_argument("--board", type=Path, default=None, help="a board spec (YAML)")
    board.add_argument("-o", "--output", type=Path, default=None, help="write markdown here (default: stdout)")
    board.add_argument("--metric", default=None, help="metric to show (default: each task's main metric)")
    board.add_argument("--allow-limit", action="store_true", help="admit --limit runs (marked)")
    board.add_argument("--allow-failed", action="store_true", help="admit runs with failed samples (marked)")
    board.add_argument("--no-plots", action="store_true", help="skip the spec's PNG plots")
    board.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="also draw, from any results (no spec needed), each task's ROC curves (overall and per generator, "
        "from samples.jsonl) and a per-generator bar chart of its main metric (paper Fig. 6 style) into DIR",
    )
    board.add_argument(
        "--reported",
        action="append",
        default=[],
        metavar="FILE",
        help="a paper's printed rows to show beside the runs, marked R (repeatable; e.g. "
        "leaderboards/reported/fakescope-table-vi.yaml)",
    )
    board.set_defaults(func=cmd_leaderboard)

    plugins.add_cli_commands(sub)
    return parser


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


def cmd_run(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness run``."""
    from harness.runner import Evaluator, RunConfig, default_workers
    from harness.summary import format_run_summary

    if args.config:  # the defaults come from a second parser: built only when a file needs them
        apply_run_config_file(args, parser_defaults=build_parser(plugins))
    args.tasks = ",".join(args.tasks) if isinstance(args.tasks, list) else str(args.tasks)
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"
    if args.tasks.strip() == "list":  # lm-eval's `--tasks list`
        return cmd_ls(argparse.Namespace(kind="tasks", json=False), plugins)
    if not args.model:
        raise ValueError("harness run needs --model NAME (see `harness ls models`)")
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

    config = RunConfig(
        model=args.model,
        model_args=merged_kv(args.model_args, "--model-args"),
        tasks=args.tasks,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        output_dir=args.output_dir,
        strict=args.strict,
        seed=args.seed,
        split=args.split,
        mode=args.mode,
        data_root=args.data_root,
        num_workers=args.num_workers or default_workers(),
        use_cache=not args.no_cache,
        progress=not args.quiet,
        bootstrap=args.bootstrap,
        seen=[g for g in args.seen.split(",") if g] if args.seen is not None else None,
        audit=not args.no_audit,
        verdict_judge=args.verdict_judge,
        task_args=parse_kv(args.task_args),
        extra_metrics=[m for m in args.extra_metrics.split(",") if m],
        rehash=args.rehash,
        retry_failed=args.retry_failed,
        label=args.label,
        gen_kwargs=parse_kv(args.gen_kwargs),
        cache_path=args.use_cache,
    )
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


def cmd_ls(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness ls [KIND]``: manifests only, nothing imported; every kind when none is named."""
    from tabulate import tabulate

    kinds = [args.kind[:-1]] if args.kind else ["model", "task", "metric", "trainer", "judge"]
    if args.json:
        print(json.dumps([m.as_dict() for kind in kinds for m in plugins.registry.manifests(kind)], indent=2))
        return 0
    for kind in kinds:
        manifests = plugins.registry.manifests(kind)
        rows = [(m.name, ", ".join(m.aliases), m.plugin.replace("harness.", ""), m.description) for m in manifests]
        if len(kinds) > 1:
            print(f"\n{kind}s")
        print(
            tabulate(
                rows,
                headers=["name", "aliases", "plugin", "description"],
                tablefmt="simple",
                maxcolwidths=[None, 20, 24, 70],
            )
        )
    for warning in plugins.registry.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_plugins(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness plugins``: name, version, hooks and error of every plugin."""
    from tabulate import tabulate

    if args.json:
        print(json.dumps([info.as_dict() for info in plugins.infos], indent=2))
        return 0
    rows = []
    for info in plugins.infos:
        status = (
            "blocked"
            if info.blocked
            else (
                "ERROR: " + info.error if info.error else (f"PARTLY: {info.problem()}" if info.failed_hooks else "ok")
            )
        )
        rows.append(
            (info.name, info.version or "", "builtin" if info.builtin else "external", ", ".join(info.hooks), status)
        )
    print(tabulate(rows, headers=["plugin", "version", "kind", "hooks", "status"], maxcolwidths=[34, 10, 8, 40, 60]))
    return 0


def cmd_train(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness train``."""
    from harness.runner import build_task

    manifest = plugins.get("trainer", args.trainer)
    trainer_args = parse_kv(args.args)
    for key in ("data", "base", "deepspeed", "backbone"):
        if getattr(args, key):
            trainer_args[key] = getattr(args, key)
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"
    trainer_cls = manifest.load()
    trainer = trainer_cls(**trainer_args)
    if not getattr(trainer_cls, "requires_task", True):
        summary = trainer.train([], [], args.out, task_name=args.task or "")
        (args.out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        model_name = "fakescope-owl2" if getattr(trainer, "backbone", "") == "mplug-owl2" else trainer.model_name
        python = f",python={trainer.python}" if getattr(trainer, "python", None) else ""
        print(
            f"model written to {args.out}  (evaluate with: harness run --model {model_name} "
            f"--model-args path={args.out}{python} --tasks aigi-mini)"
        )
        return 0
    if not args.task:
        print(f"error: trainer {manifest.name!r} needs --task", file=sys.stderr)
        return 2
    task = build_task(plugins, args.task, args.data_root, parse_kv(args.task_args))
    ok, reason = task.available()
    if not ok:
        print(f"error: task {task.name!r} has no data: {reason}", file=sys.stderr)
        return 1
    train = list(task.samples(args.split))
    val = list(task.samples(args.val_split)) if args.val_split else []
    print(
        f"training {manifest.name} on {task.name}/{args.split} ({len(train)} samples"
        f"{f', validating on {len(val)} from {args.val_split}' if val else ''})"
    )
    summary = trainer.train(train, val, args.out, task_name=task.name)
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    skipped = summary.get("train_skipped") or []
    if skipped:
        print(f"warning: {len(skipped)} training samples could not be read, e.g. {skipped[0]}", file=sys.stderr)
    if summary.get("val"):
        print(
            "validation: "
            + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary["val"].items())
        )
    print(
        f"checkpoint written to {args.out}  (evaluate with: harness run --model {trainer.model_name or args.trainer}"
        f" --model-args checkpoint={args.out} --tasks {task.name})"
    )
    return 0


def cmd_leaderboard(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness leaderboard``."""
    from harness.boards import BoardError, BoardSpec, quick_spec, render_board, render_plots
    from harness.results import find_results, load_results

    sources = list(args.results) + list(args.results_dirs)
    if not sources:
        print("error: give results files or folders (positional or --results DIR)", file=sys.stderr)
        return 2
    results = [load_results(p) for p in find_results(sources)]
    if args.metric:  # a metric no results file holds would make a table of dashes
        held = {name for r in results for name in (r["metrics"].get("all") or {})}
        if results and args.metric not in held:
            print(f"error: no results file holds metric {args.metric!r} (they hold: {', '.join(sorted(held))})",
                  file=sys.stderr)  # fmt: skip
            return 2
    spec = BoardSpec.load(args.board) if args.board else quick_spec(results, args.metric)
    if args.board and results and not {r["task"]["name"] for r in results} & set(spec.tasks):
        print(
            f"warning: none of the {len(results)} results files is of the board's tasks ({', '.join(spec.tasks)}): "
            "the table shows only what the board's reported files print",
            file=sys.stderr,
        )
    if not results and not (args.reported or spec.reported):
        print("error: no results.json found under " + ", ".join(sources), file=sys.stderr)
        return 1
    spec.allow_limit = spec.allow_limit or args.allow_limit
    spec.allow_failed = spec.allow_failed or args.allow_failed
    spec.reported += [str(Path(p).resolve()) for p in args.reported]
    if spec.plots and not args.no_plots and not args.output:
        print("note: the spec's plots are written beside the markdown: pass -o FILE.md to get them", file=sys.stderr)
    try:
        markdown = render_board(spec, results)
        plots = []
        if spec.plots and not args.no_plots and args.output:
            args.output.parent.mkdir(parents=True, exist_ok=True)  # the plots go there before the markdown
            plots = render_plots(spec, results, args.output.parent, args.output.stem)
    except BoardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        figures = dataclasses.replace(spec, plots=["roc", "subset_bars"])
        if not figures.metrics:
            figures.metrics = [args.metric or (results[0]["task"]["main_metric"] if results else "auc")]
        drawn = render_plots(figures, results, args.plots, "figure")
        print(f"{len(drawn)} plots written to {args.plots}", file=sys.stderr)
    if plots:
        markdown += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots) + "\n"
    if args.output:
        from harness.storage import atomic_write

        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.output, markdown)  # a kill mid-write leaves the earlier board, never a truncated one
        print(f"leaderboard written to {args.output}")
    else:
        print(markdown)
    return 0


def _take_include_paths(argv: Sequence[str]) -> None:
    """``--include-path DIR`` (any command that takes it) joins ``HARNESS_INCLUDE_PATH`` before the plugins load,
    so the folder's task specs are registered like the built-in ones."""
    flags = ("--include-path", "--include_path")
    found = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in flags]
    found += [arg.split("=", 1)[1] for arg in argv if arg.split("=", 1)[0] in flags and "=" in arg]
    if found:
        current = [p for p in os.environ.get("HARNESS_INCLUDE_PATH", "").split(os.pathsep) if p]
        os.environ["HARNESS_INCLUDE_PATH"] = os.pathsep.join(current + [str(Path(p).resolve()) for p in found])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``harness`` console script: :func:`run_command`, then an exit that a late Ctrl-C cannot
    turn into a death by signal (the work is done and written by then: the exit code stays the command's)."""
    try:
        code = run_command(argv)
        sys.stdout.flush()
    except BrokenPipeError:  # `harness ls --json | head`: the reader left; that is no error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    if argv is None and threading_main():
        import signal

        def _exit_now(signum: int, frame: object) -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

        signal.signal(signal.SIGINT, _exit_now)
    return code


def threading_main() -> bool:
    """Whether this is the main thread (only it may set signal handlers)."""
    import threading

    return threading.current_thread() is threading.main_thread()


def run_command(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; every known failure is one line on stderr and an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _take_include_paths(argv)
    plugins = get_plugins() if not os.environ.get("HARNESS_INCLUDE_PATH") else HarnessPlugins()
    parser = build_parser(plugins)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    for info in plugins.failed():
        print(f"warning: {info.problem()}", file=sys.stderr)
    try:
        return int(args.func(args, plugins) or 0)
    except UnknownNameError as exc:
        print(f"error: {exc}", file=sys.stderr)
        blocked = plugins.blocked()
        if blocked:
            rules = ", ".join(
                f"{v}={os.environ[v]!r}" for v in ("HARNESS_LOAD_PLUGINS", "HARNESS_DISABLE_PLUGINS") if v in os.environ
            )
            print(
                f"note: an external-plugin filter is in force ({rules}; '' loads none): not loaded: "
                f"{', '.join(i.name for i in blocked)}. Unset it to use them.",
                file=sys.stderr,
            )
        return 2
    except (RegistryError, ValueError, FileNotFoundError, ModelLoadError, StorageError, RunLockedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("HARNESS_DEBUG"):
            raise
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished samples are cached; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
