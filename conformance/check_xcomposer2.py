"""Conformance of ``internlm-xcomposer2-vl`` with the real InternLM-XComposer2-VL repository code (remote code).

    python conformance/check_xcomposer2.py --source PATH/TO/internlm [--env envs/internlm-xcomposer2-vl]

``--source`` is a git snapshot (a bare repository as fetched, or a checkout) or a folder holding the model
repository's five code files (``modeling_internlm_xcomposer2.py``,
``modeling_internlm2.py``, ``configuration_internlm_xcomposer2.py``, ``build_mlp.py``,
``tokenization_internlm_xcomposer2.py``): a copy of ``internlm/internlm-xcomposer2-vl-7b``, or of
``src/ChEF/models/internlm/`` in OpenGVLab/LAMM, which holds them as upstream wrote them.

1. builds the worker environment from the harness's recipe (``harness env create internlm-xcomposer2-vl``)
   unless ``--env`` already holds one;
2. builds a tiny random XComposer2-VL with the repository's classes (``upstream_xcomposer2.py build``: the fixed
   widths, one layer each, a small vocabulary trained there) and a tiny CLIP vision tower placed in a local hub
   cache under ``openai/clip-vit-large-patch14-336``, the id the repository's code loads at build time;
3. runs ``harness run --model internlm-xcomposer2-vl`` (score and generate, ``--device auto``) with that hub
   cache as ``HF_HOME``, offline, in fp32 and bf16, and once more with ``repetition_penalty=1.0`` (plain greedy);
4. computes the same numbers with the repository's code alone (``upstream_xcomposer2.py reference``) and
   compares: Eq. 2 scores at most ``--tolerance`` apart, answers identical.

Results are appended to ``conformance/results/internlm-xcomposer2-vl.json``. Without the source (or the
FakeClass query file) the script prints why and exits 0.
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
CODE = ("modeling_internlm_xcomposer2.py", "modeling_internlm2.py", "configuration_internlm_xcomposer2.py",
        "build_mlp.py", "tokenization_internlm_xcomposer2.py")  # fmt: skip


def parse_args() -> argparse.Namespace:
    """The script's options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.repository_arguments(
        parser,
        "XCOMPOSER2_SRC",
        "a git snapshot holding the repository's five code files (e.g. OpenGVLab/LAMM, as fetched), or a folder "
        "holding them",
        "OpenGVLab/LAMM src/ChEF/models/internlm (internlm/internlm-xcomposer2-vl-7b's code files)",
        "internlm-xcomposer2-vl",
    )
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "internlm-xcomposer2-vl.json")
    return parser.parse_args()


def compare_run(
    args: argparse.Namespace, python: Path, ckpt: Path, root: Path, work: Path, dtype: str, penalty: float
) -> dict:
    """The harness's scores and answers in one dtype and repetition penalty against the repository's code."""
    label = f"{dtype}-rp{penalty:g}"
    model_args = {
        "path": ckpt,
        "python": python,
        "trust_remote_code": "true",
        "dtype": dtype,
        "max_new_tokens": args.max_new_tokens,
        "repetition_penalty": penalty,
    }
    got, info = common.harness_answers("internlm-xcomposer2-vl", model_args, root, f"queries={args.queries}", work,
                                       label)  # fmt: skip
    items = common.reference_items(got, args.max_new_tokens, work / f"items-{label}.json")
    command = [str(python), str(HERE / "upstream_xcomposer2.py"), "reference", str(ckpt), str(items),
               str(work / f"ref-{label}.json"), "--dtype", dtype, "--repetition-penalty", str(penalty)]  # fmt: skip
    subprocess.run(command, check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    reference = json.loads((work / f"ref-{label}.json").read_text())
    comparison = common.compare(got, {r["image"]: r for r in reference["results"]})
    verdict = common.passed(comparison, args.tolerance)
    common.say_verdict(label, comparison, verdict)
    return {
        "dtype": dtype,
        "repetition_penalty": penalty,
        "passed": verdict,
        "harness_info": {
            k: info.get(k)
            for k in ("device", "dtype", "requested_dtype", "anchors", "repetition_penalty", "scored_turn")
        },  # fmt: skip
        "upstream_anchor_ids": reference["anchors"],
        "upstream_dtype": reference["dtype"],
        **comparison,
    }


def main() -> int:
    """Run the comparison; exit 1 when the harness and the repository's code disagree."""
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="conformance-xcomposer2-"))
    found = common.repository_prerequisites(
        args, CODE, "internlm-xcomposer2-vl", work,
        f"no folder or git snapshot with the repository's code files ({', '.join(CODE)}): pass --source PATH or "
        "set XCOMPOSER2_SRC (e.g. a fetched snapshot of OpenGVLab/LAMM)",
    )  # fmt: skip
    if found is None:
        return 1
    given, source, python = found
    hf_home = work / "hf-home"  # the tiny CLIP tower under the hub id the repository's code loads
    os.environ["HF_HOME"] = str(hf_home)
    root, present = common.fakeclass_root(work / "FakeBench", args.queries)
    ckpt = work / "internlm-xcomposer2-vl-tiny"
    build = [str(python), str(HERE / "upstream_xcomposer2.py"), "build", str(source), str(ckpt), str(hf_home)]
    subprocess.run(build, check=True)
    plan = [(dtype, 1.005) for dtype in args.dtypes.split(",")] + [("fp32", 1.0)]
    runs = [compare_run(args, python, ckpt, root, work, dtype, penalty) for dtype, penalty in plan]
    upstream = {
        "repository": args.source_name,
        "commit": common.upstream_commit(given, args.source_commit),
        "folder": str(source.relative_to(work / "upstream")) if source.is_relative_to(work) else str(source),
    }
    return common.record_family(args.output, "internlm-xcomposer2-vl", ["internlm-xcomposer2-vl"], upstream, python,
                                args.tolerance, present, runs)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
