"""Conformance of ``fakescope-owl2`` / ``mplug-owl2`` with the real upstream mPLUG-Owl2 code.

    python conformance/check_mplug_owl2.py --upstream PATH/TO/mPLUG-Owl [--env envs/mplug-owl2]

1. builds the worker environment from the harness's recipe, offline, from the local upstream copy
   (``harness env create mplug-owl2 --source PATH``) unless ``--env`` already holds one;
2. builds a tiny random mPLUG-Owl2 with upstream's own classes, once per ``image_aspect_ratio``
   (pad, resize, none) since the checkpoint's config decides the preprocessing;
3. runs ``harness run --model fakescope-owl2 --model-args path=CKPT,python=ENV/bin/python --tasks fakeclass``
   with ``--device auto`` in score and in generate mode on square and non-square photographs;
4. computes the same numbers with upstream code alone (``upstream_mplug_owl2.py reference``) and compares:
   Eq. 2 scores at most ``--tolerance`` apart, greedy answers identical.

Results are appended to ``conformance/results/mplug-owl2.json``. The upstream source is never copied into
this repository; without it (or without the FakeClass query file) the script prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Run the comparison; exit 1 when the harness and upstream disagree."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.owl2_arguments(parser)
    parser.add_argument("--aspects", default="pad,resize,none", help="image_aspect_ratio values to test")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "mplug-owl2.json")
    args = parser.parse_args()

    found = common.owl2_prerequisites(args)
    if found is None:
        return 1
    source, python = found
    work = Path(tempfile.mkdtemp(prefix="conformance-owl2-"))
    root, present = common.fakeclass_root(work / "FakeBench", args.queries)
    task_args = f"queries={args.queries}"
    runs = []
    for aspect in args.aspects.split(","):
        ckpt = work / f"fakescope-owl2-tiny-{aspect}"  # no 'mplug_owl2' in the name: upstream's name check
        subprocess.run(
            [str(python), str(HERE / "upstream_mplug_owl2.py"), "build", str(ckpt), "--aspect", aspect], check=True
        )
        model_args = {"path": ckpt, "python": python, "max_new_tokens": args.max_new_tokens}
        got, info = common.harness_answers("fakescope-owl2", model_args, root, task_args, work, aspect)
        items = common.reference_items(got, args.max_new_tokens, work / "items.json")
        subprocess.run(
            [
                str(python),
                str(HERE / "upstream_mplug_owl2.py"),
                "reference",
                str(ckpt),
                str(items),
                str(work / f"ref-{aspect}.json"),
            ],
            check=True,
        )
        reference = json.loads((work / f"ref-{aspect}.json").read_text())
        comparison = common.compare(got, {r["image"]: r for r in reference["results"]})
        verdict = common.passed(comparison, args.tolerance)
        runs.append(
            {
                "image_aspect_ratio": aspect,
                "passed": verdict,
                "harness_info": {
                    k: info.get(k) for k in ("device", "dtype", "upstream_loader_dtype", "preprocessing", "anchors")
                },
                "upstream_anchor_ids": reference["anchors"],
                **comparison,
            }
        )
        common.say_verdict(aspect, comparison, verdict)
    upstream = {
        "repository": "X-PLUG/mPLUG-Owl (mPLUG-Owl2/)",
        "commit": common.upstream_commit(source, args.upstream_commit),
    }
    return common.record_family(args.output, "mplug-owl2", ["fakescope-owl2", "mplug-owl2"], upstream, python,
                                args.tolerance, present, runs)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
