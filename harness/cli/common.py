"""Options several commands share, spelled the same everywhere (with lm-eval's underscore forms too)."""

from __future__ import annotations

import argparse
import os

#: a parser or one of its argument groups: what the helpers below add options to
Options = argparse.ArgumentParser | argparse._ArgumentGroup

INCLUDE_PATH_HELP = (
    "a folder of folder-benchmark specs (*.yaml) to register as tasks (repeatable; also HARNESS_INCLUDE_PATH); "
    "see docs/tasks.md"
)


def add_include_path(parser: Options) -> None:
    """``--include-path DIR`` (repeatable): read before the plugins load, see :func:`take_include_paths`."""
    parser.add_argument(
        "--include-path", "--include_path", action="append", default=[], metavar="DIR", help=INCLUDE_PATH_HELP
    )


def add_data_options(parser: Options) -> None:
    """``--data-root`` and ``--task-args``: where a task's data lies and the task's own options."""
    parser.add_argument("--data-root", "--data_root", default=None, help="root folder of the task's data")
    parser.add_argument(
        "--task-args",
        "--task_args",
        default="",
        metavar="K=V,...",
        help="task options, e.g. references=FILE for FakeClue/FakeQA, list_csv=FILE for SynthWildX",
    )


def add_quiet(parser: Options) -> None:
    """``--quiet``: no progress bars (see :func:`apply_quiet`)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def apply_quiet(args: argparse.Namespace) -> None:
    """Turn every tqdm bar off for this process when ``--quiet`` was given."""
    if getattr(args, "quiet", False):
        os.environ["TQDM_DISABLE"] = "1"
