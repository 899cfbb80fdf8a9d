"""The ``harness`` command line: one module per command, composed here.

Importing this package is cheap (argparse, pluggy and the registry): commands import what they need when they run,
so ``harness ls models`` never imports torch. Plugins add commands through the ``register_commands`` hook and
trainers their own ``harness train`` flags at registration (see :mod:`harness.hookspecs`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.cli import compare, leaderboard, ls, run, show_plugins, train
from harness.interfaces import ModelLoadError
from harness.plugin_manager import HarnessPlugins, get_plugins
from harness.registry import RegistryError, UnknownNameError
from harness.run_lock import RunLockedError
from harness.storage import StorageError

#: the built-in commands, in ``--help`` order: each module's ``add_parser(subparsers, plugins)`` adds its own
COMMANDS = (run, ls, show_plugins, train, leaderboard, compare)

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
    """The full argument parser: the built-in commands, then those plugins add."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Evaluate AI-generated-image detectors and forensic LMMs on benchmarks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aigi-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub, plugins)
    plugins.add_cli_commands(sub)
    return parser


def take_include_paths(argv: Sequence[str]) -> None:
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


def print_blocked_note(plugins: HarnessPlugins) -> None:
    """After an unknown name: say so when an external-plugin filter left installed plugins out."""
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


def run_command(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; every known failure is one line on stderr and an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    take_include_paths(argv)
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
        print_blocked_note(plugins)
        return 2
    except (RegistryError, ValueError, FileNotFoundError, ModelLoadError, StorageError, RunLockedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("HARNESS_DEBUG"):
            raise
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished samples are cached; rerun the same command to resume", file=sys.stderr)
        return 130
