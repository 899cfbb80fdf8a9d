"""``harness compare A B``: is model A's difference from model B on the same samples real? (issue #30)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.plugin_manager import HarnessPlugins


def add_parser(sub: Any, plugins: HarnessPlugins) -> None:
    """Add ``compare`` to the sub-commands."""
    compare = sub.add_parser(
        "compare",
        help="paired significance of two runs on the same samples (DeLong for AUC, paired bootstrap for AP, Acc)",
        description="Compare two runs of one task on the same samples: A − B for AUC (DeLong's test), AP and "
        "accuracy (a paired, label-stratified bootstrap), each with a 95%% interval and a two-sided p-value. "
        "Runs over different samples are refused.",
    )
    compare.add_argument("a", type=Path, help="run A: a results file, or a task folder holding results.json")
    compare.add_argument("b", type=Path, help="run B: the same")
    compare.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    compare.set_defaults(func=cmd_compare)


def paired_scores(path_a: Path, path_b: Path) -> tuple[Any, Any, list[str], Any, Any, Any]:
    """Both runs' results, the shared sample ids, and labels and scores aligned on them; refuses runs of other
    tasks or over other samples, saying which."""
    import numpy as np

    from harness.results import load_results, read_samples

    files = [p / "results.json" if p.is_dir() else p for p in (path_a, path_b)]
    results = [load_results(f) for f in files]
    if results[0].task.name != results[1].task.name:
        raise ValueError(f"{files[0]} is a run of {results[0].task.name!r}, {files[1]} of {results[1].task.name!r}")
    scored = [
        {r.sample_id: r for r in read_samples(f) if r.error is None and r.score is not None and r.label is not None}
        for f in files
    ]
    only = [sorted(set(scored[i]) - set(scored[1 - i])) for i in (0, 1)]
    if only[0] or only[1]:
        raise ValueError(
            f"the runs were not scored on the same samples: {len(only[0])} only in A (e.g. {only[0][:2]}), "
            f"{len(only[1])} only in B (e.g. {only[1][:2]}); a paired test needs both runs on one sample set"
        )
    ids = sorted(scored[0])
    labels = np.array([scored[0][i].label for i in ids])
    scores_a, scores_b = (np.array([s[i].score for i in ids]) for s in scored)
    return results[0], results[1], ids, labels, scores_a, scores_b


def cmd_compare(args: argparse.Namespace, plugins: HarnessPlugins) -> int:
    """``harness compare A B``."""
    from tabulate import tabulate

    from harness.significance import compare_scores

    a, b, ids, labels, scores_a, scores_b = paired_scores(args.a, args.b)
    found = compare_scores(labels, scores_a, scores_b, args.resamples, args.seed)
    names = (a.model.shown_name, b.model.shown_name)
    if args.json:
        print(json.dumps({"task": a.task.name, "a": names[0], "b": names[1], "n": len(ids),
                          "differences": [vars(d) for d in found]}, indent=2))  # fmt: skip
        return 0
    print(f"{a.task.name}: A = {names[0]}, B = {names[1]}, {len(ids)} samples scored by both")
    rows = [
        (d.metric, f"{d.a:.4f}", f"{d.b:.4f}", f"{d.delta:+.4f}",
         f"[{d.ci[0]:+.4f}, {d.ci[1]:+.4f}]" if d.ci else "–", f"{d.p:.3g}" if d.p > 0 else "< 1e-300", d.test)
        for d in found
    ]  # fmt: skip
    print(tabulate(rows, headers=["metric", "A", "B", "A − B", "95% interval", "p", "test"]))
    if any(d.p < 0.05 for d in found):
        print("p < 0.05: " + ", ".join(d.metric for d in found if d.p < 0.05), file=sys.stderr)
    return 0
