"""Built-in CLI commands added through the ``register_commands`` hook (as a third-party plugin would)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from harness import hookimpl


def recipes() -> dict[str, Path]:
    """Environment recipes shipped in ``plugins/lmm/backends/envs``: name -> requirements file."""
    folder = Path(str(resources.files("harness.plugins.lmm.backends") / "envs"))
    return {p.stem: p for p in sorted(folder.glob("*.txt"))}


def split_recipe(text: str, source: str | None) -> tuple[list[str], list[str]]:
    """A recipe's requirement lines and the local sources to install with ``--no-deps``.

    A line ``NAME @ git+URL#subdirectory=SUB`` (upstream code that is not on PyPI) is replaced by
    ``source/SUB`` (or ``source`` itself when it is that folder already) when ``source`` is given, so the
    environment builds offline from a local copy of the upstream repository; its dependencies are the
    recipe's other, pinned lines."""
    requirements, local = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if " @ git+" in stripped and source:
            sub = stripped.partition("#subdirectory=")[2]
            root = Path(source).expanduser().resolve()
            candidate = root / sub if sub and (root / sub).is_dir() else root
            if not ((candidate / "pyproject.toml").is_file() or (candidate / "setup.py").is_file()):
                raise FileNotFoundError(
                    f"--source {source}: no Python project at {candidate} "
                    f"(expected the upstream repository or its {sub or 'package'} folder)"
                )
            local.append(str(candidate))
            continue
        requirements.append(stripped)
    return requirements, local


def env_create(args: argparse.Namespace, plugins: Any) -> int:
    """``harness env create NAME --dir DIR [--source DIR]``: build a worker environment from its recipe.

    A failed build removes what it created and prints the manual recipe."""
    import shutil
    import tempfile

    available = recipes()
    if args.name not in available:
        print(f"error: no environment recipe {args.name!r}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    recipe = available[args.name].read_text()
    requirements, local = split_recipe(recipe, args.source)
    if any(" @ git+" in r for r in requirements):
        print(
            f"note: {args.name} installs upstream code from a git repository, which needs network access; "
            "offline, pass --source DIR (a local copy of that repository)",
            file=sys.stderr,
        )
    target = Path(args.dir or f"envs/{args.name}").resolve()
    existed = target.exists()
    python = target / "bin" / "python"
    print(
        f"# {args.name}: requirements of {available[args.name]}"
        + (f", upstream code from {', '.join(local)}" if local else "")
    )
    for line in requirements:
        print(f"#   {line}")
    handle, req_file = tempfile.mkstemp(prefix=f"harness-env-{args.name}-", suffix=".txt")
    with open(handle, "w") as out:
        out.write("\n".join(requirements) + "\n")
    steps = [
        ([args.python, "-m", "venv", str(target)], True),
        ([str(python), "-m", "pip", "install", "--upgrade", "pip"], False),
        ([str(python), "-m", "pip", "install", "-r", req_file], True),
    ]
    steps += [([str(python), "-m", "pip", "install", "--no-deps", path], True) for path in local]
    try:
        for step, required in steps:
            print("+ " + " ".join(step))
            if args.dry_run:
                continue
            result = subprocess.run(step)
            if result.returncode != 0 and required:
                print(f"error: step failed with exit code {result.returncode}: {' '.join(step)}", file=sys.stderr)
                if not existed and target.exists():
                    shutil.rmtree(target, ignore_errors=True)
                    print(f"removed the half-built environment {target}", file=sys.stderr)
                print(manual_recipe(args.name, available[args.name], target, args.source), file=sys.stderr)
                return result.returncode
            if result.returncode != 0:
                print(f"warning: optional step failed (exit {result.returncode}); continuing", file=sys.stderr)
    finally:
        Path(req_file).unlink(missing_ok=True)
    remote = "remote code" in recipe.splitlines()[0]
    hint = ",trust_remote_code=true" if remote else ""
    print(f"\nuse it with:  --model-args path=CHECKPOINT,python={python}{hint}")
    return 0


def manual_recipe(name: str, recipe: Path, target: Path, source: str | None) -> str:
    """The steps to build the environment by hand (printed when a build fails)."""
    lines = [
        f"to build the {name} environment by hand:",
        f"  python3 -m venv {target}",
        f"  {target}/bin/pip install -r {recipe}"
        + ("   # minus the 'git+' line" if " @ git+" in recipe.read_text() else ""),
    ]
    if " @ git+" in recipe.read_text():
        lines.append(f"  {target}/bin/pip install --no-deps {source or 'UPSTREAM_REPOSITORY/SUBFOLDER'}")
    lines.append("(offline: point pip at a wheelhouse with --no-index --find-links DIR)")
    return "\n".join(lines)


def env_list(args: argparse.Namespace, plugins: Any) -> int:
    """``harness env list``."""
    for name, path in recipes().items():
        print(f"{name:20s} {path}")
    return 0


def data_check(args: argparse.Namespace, plugins: Any) -> int:
    """``harness data check TASK``: counts per subset and label against expectations, and every defect."""
    from tabulate import tabulate

    from harness.cli_args import parse_kv
    from harness.runner import build_task

    sources = plugins.get("task", args.task).sources
    if sources:  # where the data comes from and what is expected, before what was found
        width = max(len(k) for k in sources)
        print("\n".join(f"{key:>{width}}: {value}" for key, value in sources.items()) + "\n")
    task = build_task(plugins, args.task, args.data_root, parse_kv(args.task_args))
    if not hasattr(task, "check"):
        print(f"error: task {task.name!r} has no data check", file=sys.stderr)
        return 2
    report = task.check()
    print(f"{report.task}: {report.root}")
    keys = sorted(set(report.counts) | set(report.expected), key=lambda k: (str(k[0]), k[1]))
    rows = [
        (
            subset,
            "fake" if label == 1 else "real",
            report.counts.get((subset, label), 0),
            report.expected.get((subset, label), ""),
        )
        for subset, label in keys
    ]
    if rows:
        print(tabulate(rows, headers=["subset", "label", "found", "expected"]))
    for title, items in (
        ("missing", report.missing),
        ("unreadable", report.unreadable),
        ("unexpected", report.unexpected),
        ("note", report.notes),
    ):
        if items:
            print(f"\n{title} ({len(items)}):")
            for item in items[: args.max_items]:
                print(f"  {item}")
            if len(items) > args.max_items:
                print(f"  ... and {len(items) - args.max_items} more")
    print("\nOK" if report.ok else "\nPROBLEMS FOUND")
    return 0 if report.ok else 1


def data_export(args: argparse.Namespace, plugins: Any) -> int:
    """``harness data export TASK --to DIR``: the task's samples as a ``datasets`` dataset."""
    from harness.cli_args import parse_kv
    from harness.hf_data import export_task
    from harness.runner import build_task

    task = build_task(plugins, args.task, args.data_root, parse_kv(args.task_args))
    ok, reason = task.available()
    if not ok:
        print(f"error: {task.name}: {reason}", file=sys.stderr)
        return 1
    splits = [s for s in (args.splits or "").split(",") if s] or list(
        dict.fromkeys(task.splits or [s for s in (task.default_split, task.calibration_split) if s])
    )
    counts = export_task(task, splits, args.to)
    print(
        f"{task.name}: " + ", ".join(f"{n} {split}" for split, n in counts.items()) + f" images written to {args.to}"
        f" (read back: --data-root hf:{args.to})"
    )
    if args.push_to_hub:
        from harness.hf_data import push_export

        url = push_export(args.to, args.push_to_hub, private=args.private)
        print(f"pushed to {url}")
    return 0


def build_fakeinstruct(args: argparse.Namespace, plugins: Any) -> int:
    """``harness data build-fakeinstruct`` (:mod:`harness.trainers.fakeinstruct_build`)."""
    from harness.trainers.fakeinstruct_build import main

    return main(args, plugins)


@hookimpl
def register_commands(subparsers):
    """``harness env create|list`` (isolated worker environments) and ``harness data check``."""
    from harness.cli.common import add_data_options, add_include_path

    env = subparsers.add_parser("env", help="build isolated worker environments for models with old pins")
    sub = env.add_subparsers(dest="env_command", metavar="ACTION")
    create = sub.add_parser("create", help="create a worker environment from a recipe")
    create.add_argument("name", help="recipe name (see `harness env list`)")
    create.add_argument("--dir", default=None, help="where to create it (default: envs/NAME)")
    create.add_argument("--python", default=sys.executable, help="interpreter for `-m venv` (default: this one)")
    create.add_argument(
        "--source",
        default=None,
        metavar="DIR",
        help="local copy of the upstream repository for recipes that install upstream code from git "
        "(mplug-owl2: a checkout of X-PLUG/mPLUG-Owl); builds without reaching a git server",
    )
    create.add_argument("--dry-run", action="store_true", help="print the steps without running them")
    create.set_defaults(func=env_create)
    listing = sub.add_parser("list", help="list the recipes")
    listing.set_defaults(func=env_list)

    data = subparsers.add_parser("data", help="inspect benchmark data on disk")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    check = data_sub.add_parser(
        "check",
        help="counts per subset and label against expectations; list what is "
        "missing, unreadable or unexpected (exit 1 if anything is)",
    )
    check.add_argument("task", help="task name (see `harness ls tasks`)")
    add_data_options(check)
    add_include_path(check)
    check.add_argument("--max-items", type=int, default=20, help="items listed per category (default 20)")
    check.set_defaults(func=data_check)
    export = data_sub.add_parser(
        "export",
        help="write a local benchmark as a Hugging Face `datasets` dataset (parquet shards + card)",
        description="Write a task's samples (original image bytes, labels, subsets, per-sample metadata) as "
        "parquet shards with a dataset card, which `--data-root hf:DIR` reads back with identical results and "
        "`huggingface-cli upload` can push to the Hub as it is.",
    )
    export.add_argument("task", help="task name (see `harness ls tasks`)")
    export.add_argument("--to", type=Path, required=True, metavar="DIR", help="folder to write")
    add_data_options(export)
    export.add_argument("--splits", default=None, help="comma-separated splits (default: every split the task has)")
    export.add_argument(
        "--push-to-hub",
        default=None,
        metavar="REPO",
        help="then upload the written folder to the Hugging Face Hub as dataset REPO (needs the network and a token: "
        "`hf auth login`); without it nothing leaves the machine",
    )
    export.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    add_include_path(export)
    export.set_defaults(func=data_export)
    instruct = data_sub.add_parser(
        "build-fakeinstruct",
        help="labelled images or FakeChain records -> a FakeInstruct training file (Parts 1-4, ACoTI)",
        description="Build FakeInstruct (paper Sec. IV) for `harness train fakescope`: Part 1 from labels alone, "
        "Parts 2-4 and the textual-contamination filter with a text LLM, ACoTI reasoning with a multimodal "
        "one; every call cached (resumable), the cost printed first, a summary of what was kept and dropped.",
    )
    instruct.set_defaults(func=build_fakeinstruct)
    from harness.trainers.fakeinstruct_build import add_arguments

    add_arguments(instruct)
