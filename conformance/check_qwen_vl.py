"""Conformance of ``qwen-vl-chat`` with the real Qwen-VL-Chat repository code (remote code).

    python conformance/check_qwen_vl.py --source PATH/TO/Qwen-VL-Chat [--env envs/qwen-vl-chat]

1. builds the worker environment from the harness's recipe (``harness env create qwen-vl-chat``) unless
   ``--env`` already holds one;
2. builds a tiny random Qwen-VL-Chat from the repository's files (code, ``qwen.tiktoken``) and classes;
3. runs ``harness run --model qwen-vl-chat --model-args path=CKPT,python=ENV/bin/python,trust_remote_code=true,
   dtype=D --tasks fakeclass`` with ``--device auto``, in fp32 and bf16, score and generate mode, on
   photographs stored under a folder so deep that every path is over the repository's 256-byte limit;
4. computes the same numbers with the repository's code alone (``upstream_qwen_vl.py reference``, on short
   copies of the same files) and compares: Eq. 2 scores at most ``--tolerance`` apart, answers identical.

Results are appended to ``conformance/results/qwen-vl-chat.json``. Without the source (or the FakeClass query
file) the script prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HERE = Path(__file__).resolve().parent
#: what a copy of the model repository must hold for the tiny checkpoint to be built from it
REPOSITORY_FILES = ("modeling_qwen.py", "config.json", "qwen.tiktoken")


def parse_args() -> argparse.Namespace:
    """The script's options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.repository_arguments(
        parser,
        "QWEN_VL_SRC",
        "a git snapshot (as fetched) or a copy of the Qwen-VL-Chat model repository (code + qwen.tiktoken)",
        "Qwen/Qwen-VL-Chat",
        "qwen-vl-chat",
    )
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "qwen-vl-chat.json")
    return parser.parse_args()


def compare_dtype(args: argparse.Namespace, python: Path, ckpt: Path, root: Path, work: Path, dtype: str) -> dict:
    """The harness's scores and answers in one dtype against the repository's code on the same images (copied to
    short paths for upstream, whose tokenizer limits an image path to 256 bytes)."""
    short = work / "short"
    short.mkdir(exist_ok=True)
    model_args = {
        "path": ckpt,
        "python": python,
        "trust_remote_code": "true",
        "dtype": dtype,
        "max_new_tokens": args.max_new_tokens,
    }
    got, info = common.harness_answers("qwen-vl-chat", model_args, root, f"queries={args.queries}", work, dtype)
    aliases = {}
    for number, image in enumerate(sorted(got)):
        aliases[image] = str(short / f"{number}{Path(image).suffix}")
        shutil.copyfile(image, aliases[image])
    items = common.reference_items({aliases[k]: v for k, v in got.items()}, args.max_new_tokens, work / "items.json")
    subprocess.run(
        [
            str(python),
            str(HERE / "upstream_qwen_vl.py"),
            "reference",
            str(ckpt),
            str(items),
            str(work / f"ref-{dtype}.json"),
            "--dtype",
            dtype,
        ],
        check=True,
        cwd=ckpt,  # where the repository's tokenizer looks for SimSun.ttf (as the harness loads it)
    )
    reference = json.loads((work / f"ref-{dtype}.json").read_text())
    back = {v: k for k, v in aliases.items()}
    comparison = common.compare(got, {back[r["image"]]: r for r in reference["results"]})
    verdict = common.passed(comparison, args.tolerance)
    run = {
        "dtype": dtype,
        "passed": verdict,
        "longest_image_path_bytes": max(len(os.fsencode(p)) for p in got),
        "harness_info": {
            k: info.get(k) for k in ("device", "dtype", "requested_dtype", "anchors", "context", "answers")
        },
        "upstream_anchor_ids": reference["anchors"],
        "upstream_dtype": reference["dtype"],
        **comparison,
    }
    common.say_verdict(dtype, comparison, verdict)
    return run


def main() -> int:
    """Run the comparison; exit 1 when the harness and the repository's code disagree."""
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="conformance-qwen-"))
    found = common.repository_prerequisites(
        args, REPOSITORY_FILES, "qwen-vl-chat", work,
        "no Qwen-VL-Chat repository (a git snapshot as fetched, or a copy) with modeling_qwen.py, config.json and "
        "qwen.tiktoken: pass --source PATH or set QWEN_VL_SRC",
    )  # fmt: skip
    if found is None:
        return 1
    given, source, python = found
    deep = work.joinpath(*[f"a-folder-with-a-long-name-{i:02d}" for i in range(8)])  # > 256 bytes per image path
    root, present = common.fakeclass_root(deep / "FakeBench", args.queries)
    ckpt = work / "qwen-vl-chat-tiny"
    ckpt.mkdir(parents=True)
    build = [str(python), str(HERE / "upstream_qwen_vl.py"), "build", str(source), str(ckpt)]
    subprocess.run(build, check=True, cwd=ckpt)  # newer revisions look for SimSun.ttf in the current folder
    runs = [compare_dtype(args, python, ckpt, root, work, dtype) for dtype in args.dtypes.split(",")]
    upstream = {"repository": args.source_name, "commit": common.upstream_commit(given, args.source_commit)}
    return common.record_family(args.output, "qwen-vl-chat", ["qwen-vl-chat"], upstream, python, args.tolerance,
                                present, runs)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
