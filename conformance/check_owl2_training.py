"""FakeScope-owl2 training against the real upstream mPLUG-Owl2 code, from images to a scored checkpoint (issue #20).

    python conformance/check_owl2_training.py --upstream PATH/TO/mPLUG-Owl [--env envs/mplug-owl2]

1. the worker environment from the harness's recipe (built offline from the local upstream copy unless ``--env``
   holds one; the recipe includes the DeepSpeed that works beside its torch 2.0.1);
2. a tiny random mPLUG-Owl2 built with upstream's own classes (``upstream_mplug_owl2.py build``);
3. FakeInstruct Part 1 in mPLUG-Owl2's format from aigi-mini: ``harness data build-fakeinstruct``;
4. ``harness train fakescope --backbone mplug-owl2`` with DeepSpeed ZeRO-2 on the CPU, then again with more steps
   (it resumes from the last DeepSpeed checkpoint);
5. the checkpoint scored by ``harness run --model fakescope-owl2`` and by upstream's own loader and code
   (``upstream_mplug_owl2.py reference``): Eq. 2 scores at most ``--tolerance`` apart, answers identical.

Passes when the loss falls, the vision encoder is bit-identical after training, the resume continues from the
saved step, and the two scorings agree. Results are appended to ``conformance/results/mplug-owl2-training.json``;
without the upstream source (or the FakeClass query file) the script prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def harness(*argv: str) -> subprocess.CompletedProcess:
    """The harness CLI in a subprocess, offline, output shown."""
    command = [sys.executable, "-m", "harness.cli", *argv]
    print("+ " + " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"failed: {' '.join(argv[:2])}")
    return result


def main() -> int:
    """Run the story; exit 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.owl2_arguments(parser)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "mplug-owl2-training.json")
    args = parser.parse_args()

    found = common.owl2_prerequisites(args)
    if found is None:
        return 1
    source, python = found
    work = Path(tempfile.mkdtemp(prefix="conformance-owl2-train-"))
    base, out = work / "owl2-tiny-base", work / "fakescope-owl2-tiny"
    subprocess.run(
        [str(python), str(HERE / "upstream_mplug_owl2.py"), "build", str(base), "--aspect", "pad"], check=True
    )
    data = work / "fakeinstruct-owl2.json"
    harness("data", "build-fakeinstruct", "--images", "aigi-mini", "--split", "train", "--parts", "1", "--limit",
            "32", "--backbone", "owl2", "--out", str(data), "--cache", str(work / "fi.sqlite"))  # fmt: skip
    train = ["train", "fakescope", "--backbone", "mplug-owl2", "--data", str(data), "--base", str(base), "--out",
             str(out), "--deepspeed", str(REPO / "trainers" / "deepspeed" / "zero2.json")]  # fmt: skip
    common_args = f"python={python},batch_size=4,lr=0.001"
    harness(*train, "--args", f"{common_args},max_steps={args.steps}")
    first = json.loads((out / "harness_training.json").read_text())
    resumed = harness(*train, "--args", f"{common_args},max_steps={args.steps + 2}")
    meta = json.loads((out / "harness_training.json").read_text())
    losses = meta["losses"]
    checks = {
        "loss_falls": losses[-1] < losses[0],
        "vision_encoder_bit_identical": meta["frozen"]["vision_encoder_unchanged"],
        "resumed_from_saved_step": first["steps"] == args.steps
        and meta["steps"] == args.steps + 2
        and losses[: args.steps] == first["losses"],
    }
    root, present = common.fakeclass_root(work / "FakeBench", args.queries)
    got, info = common.harness_answers(
        "fakescope-owl2", {"path": out, "python": python, "max_new_tokens": 16}, root, f"queries={args.queries}",
        work, "trained",
    )  # fmt: skip
    items = common.reference_items(got, 16, work / "items.json")
    subprocess.run(
        [str(python), str(HERE / "upstream_mplug_owl2.py"), "reference", str(out), str(items), str(work / "ref.json")],
        check=True,
    )
    reference = json.loads((work / "ref.json").read_text())
    comparison = common.compare(got, {r["image"]: r for r in reference["results"]})
    checks["scored_by_harness_equals_upstream"] = common.passed(comparison, args.tolerance)
    ok = all(checks.values())
    for name, value in checks.items():
        print(f"{name}: {'PASS' if value else 'FAIL'}")
    common.write_result(
        args.output,
        {
            "family": "mplug-owl2 training",
            "passed": ok,
            "checks": checks,
            "upstream": {
                "repository": "X-PLUG/mPLUG-Owl (mPLUG-Owl2/)",
                "commit": common.upstream_commit(source, args.upstream_commit),
            },
            "worker_env": common.env_facts(str(python)),
            "harness": common.harness_facts(),
            "training": {
                "instructions": meta["data"]["instructions"],
                "steps": meta["steps"],
                "losses": losses,
                "seconds": meta["seconds"],
                "zero_stage": meta["deepspeed"]["zero_stage"],
                "trainable_parameters": meta["frozen"]["trainable_parameters"],
                "versions": meta["versions"],
                "resume_log": [line for line in resumed.stdout.splitlines() if "resumed" in line][:1],
            },
            "scoring": {"images": present, "device": info.get("device"), **comparison},
            "tolerance": args.tolerance,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
