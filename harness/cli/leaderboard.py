"""``harness leaderboard``: results as markdown tables (quick or paper-style) and plots."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from harness.plugin_manager import HarnessPlugins


def alpha(text: str) -> float:
    """A test's significance level: a number strictly between 0 and 1 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"the test's alpha is a number between 0 and 1, not {text!r}")
    return value


def add_parser(sub: Any, plugins: HarnessPlugins) -> None:
    """Add ``leaderboard`` to the sub-commands."""
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
        "--significance",
        type=alpha,
        nargs="?",
        const=0.05,
        default=None,
        metavar="ALPHA",
        help="mark (ns) the AUC/AP/Acc cells not significantly different from their column's best on the same "
        "samples: DeLong for AUC, paired bootstrap for AP/Acc, Holm-corrected across the column (default α 0.05)",
    )
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
        held = {name for r in results for name in r.metrics.all}
        if results and args.metric not in held:
            print(f"error: no results file holds metric {args.metric!r} (they hold: {', '.join(sorted(held))})",
                  file=sys.stderr)  # fmt: skip
            return 2
    spec = BoardSpec.load(args.board) if args.board else quick_spec(results, args.metric)
    if args.board and results and not {r.task.name for r in results} & set(spec.tasks):
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
    if args.significance is not None:
        spec.significance = args.significance
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
            figures.metrics = [args.metric or (results[0].task.main_metric if results else "auc")]
        drawn = render_plots(figures, results, args.plots, "figure")
        print(f"{len(drawn)} plots written to {args.plots}", file=sys.stderr)
        if args.output:  # the figures belong to this board: linked from it, relative to where it is written
            plots += drawn
    if plots:
        base = (args.output.parent if args.output else Path(".")).resolve()
        links = [f"![{p.stem}]({os.path.relpath(p.resolve(), base)})" for p in plots]
        markdown += "\n" + "\n".join(links) + "\n"
    if args.output:
        from harness.storage import atomic_write

        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.output, markdown)  # a kill mid-write leaves the earlier board, never a truncated one
        print(f"leaderboard written to {args.output}")
    else:
        print(markdown)
    return 0
