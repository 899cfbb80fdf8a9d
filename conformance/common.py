"""Shared steps of the conformance drivers: test images in a FakeBench layout, harness runs through the CLI,
worker-environment facts, comparison and the results file.

The drivers run in the harness's own environment; the upstream side runs in the model's worker
environment from scripts that import upstream code only.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED_QUERIES = REPO.parent / "shared" / "data" / "fakebench"
#: FakeClass image ids (fake and real) and the sizes their stand-in photographs get: square and non-square
IMAGES = (
    ("Glide-01493.jpg", (56, 56)),
    ("FuseDream-00019.jpg", (90, 50)),
    ("000000430231.jpg", (48, 80)),
    ("n01534433_4223.JPEG", (64, 64)),
    ("sd-02303.png", (77, 41)),
    ("0394x4.png", (40, 40)),
)


def skip(reason: str) -> None:
    """Print why the conformance run cannot happen here and exit 0 (nothing was compared)."""
    print(f"SKIPPED: {reason}")
    sys.exit(0)


def fakeclass_root(root: Path, queries: Path) -> tuple[Path, list[str]]:
    """A FakeBench root holding a few real photographs named like FakeClass images (ids that exist in
    ``queries/FakeClass.json``); returns the root and the ids present."""
    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    listed = {e["image_id"] for e in json.loads((queries / "FakeClass.json").read_text())}
    photos = [
        skdata.astronaut(),
        skdata.chelsea(),
        skdata.coffee(),
        skdata.rocket(),
        skdata.hubble_deep_field(),
        skdata.immunohistochemistry(),
    ]
    folder = root / "FakeBench_images"
    folder.mkdir(parents=True, exist_ok=True)
    present = []
    for (image_id, size), photo in zip(IMAGES, photos, strict=False):
        if image_id not in listed:
            continue
        image = Image.fromarray(np.asarray(photo)).convert("RGB").resize(size)
        image.save(folder / image_id, quality=95) if image_id.lower().endswith((".jpg", ".jpeg")) else image.save(
            folder / image_id
        )
        present.append(image_id)
    return root, present


def ensure_env(python: Path, recipe: str, env_dir: str, source: Path | None = None) -> bool:
    """The worker environment: kept when ``python`` exists, else built with ``harness env create`` (offline from
    ``source`` when the recipe installs upstream code). False, with a message, when the build fails."""
    if python.exists():
        return True
    command = [sys.executable, "-m", "harness.cli", "env", "create", recipe, "--dir", env_dir]
    if source is not None:
        command += ["--source", str(source)]
    if subprocess.run(command).returncode != 0:
        print("error: could not build the worker environment", file=sys.stderr)
        return False
    return True


def harness_run(
    model: str,
    model_args: dict[str, Any],
    task: str,
    mode: str,
    out: Path,
    data_root: Path,
    task_args: str = "",
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """``harness run`` in a subprocess (the CLI a user runs), no cache, no audit, no bootstrap."""
    args = ",".join(f"{k}={v}" for k, v in model_args.items())
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--model",
        model,
        "--model-args",
        args,
        "--tasks",
        task,
        "--mode",
        mode,
        "--data-root",
        str(data_root),
        "--output-dir",
        str(out),
        "--device",
        "auto",
        "--no-cache",
        "--no-audit",
        "--bootstrap",
        "0",
        "--quiet",
        "--batch-size",
        "4",
        *extra,
    ]
    if task_args:
        command += ["--task-args", task_args]
    print("+ " + " ".join(command), flush=True)
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))


def harness_answers(
    model: str, model_args: dict[str, Any], data_root: Path, task_args: str, work: Path, label: str
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Score and generate with the harness on FakeClass; per image path: score, answer, prompt, error; and the
    model's recorded preprocessing. ``None`` when a run failed (its output is printed)."""
    got: dict[str, dict[str, Any]] = {}
    info: dict[str, Any] = {}
    for mode in ("score", "generate"):
        out = work / f"out-{label}-{mode}"
        result = harness_run(model, model_args, "fakeclass", mode, out, data_root, task_args)
        print(result.stdout[-1500:], result.stderr[-1500:], sep="\n")
        if result.returncode != 0:
            raise SystemExit(f"error: harness run failed (exit {result.returncode})")
        results, samples = records(out)
        info = results["model"]["preprocessing"]
        for sample in samples:
            entry = got.setdefault(str(data_root / "FakeBench_images" / sample["sample_id"]), {"prompt": None})
            entry["error"] = entry.get("error") or sample.get("error")
            if mode == "score":
                entry["score"] = sample["score"]
            else:
                entry["text"] = sample["extra"].get("raw_text", sample["text"])
                entry["prompt"] = sample["prompt"]
    return got, info


def reference_items(got: dict[str, dict[str, Any]], max_new_tokens: int, path: Path) -> Path:
    """The (image, prompt) pairs the harness answered, for the upstream-only side."""
    path.write_text(
        json.dumps(
            [{"image": image, "prompt": v["prompt"], "max_new_tokens": max_new_tokens} for image, v in got.items()]
        )
    )
    return path


def passed(comparison: dict[str, Any], tolerance: float) -> bool:
    """Every score within ``tolerance`` and every answer identical."""
    diff = comparison["max_abs_score_diff"]
    return diff is not None and diff <= tolerance and comparison["answers_identical"] == comparison["images"]


def records(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The single results.json under ``out`` and its samples."""
    [results] = list(out.rglob("results.json"))
    samples = [json.loads(line) for line in (results.parent / "samples.jsonl").read_text().splitlines() if line]
    return json.loads(results.read_text()), samples


def env_facts(python: str) -> dict[str, Any]:
    """Python, torch and transformers versions of a worker environment."""
    code = (
        "import json, sys, torch, transformers; print(json.dumps({'python': sys.version.split()[0], "
        "'torch': torch.__version__, 'transformers': transformers.__version__}))"
    )
    result = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else {"error": result.stderr}


def harness_facts() -> dict[str, Any]:
    """The harness's own commit and library versions."""
    import torch
    import transformers

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return {
        "commit": commit.stdout.strip() or None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }


def git_dir(source: Path) -> Path | None:
    """The git directory of ``source``: a bare repository as the snapshot tool fetches it (``HEAD``, ``objects``),
    or a checkout's ``.git``; ``None`` for a plain folder."""
    if (source / "HEAD").is_file() and (source / "objects").is_dir():
        return source
    return source / ".git" if (source / ".git").exists() else None


def upstream_folder(source: Path, needed: Sequence[str], work: Path) -> Path | None:
    """A folder holding the ``needed`` files (paths relative to it): ``source`` itself when it holds them, else,
    for a git snapshot (bare, as fetched, or a checkout), the shallowest folder of its HEAD that holds them all,
    extracted with ``git archive`` under ``work`` (large files the snapshot lacks stay absent); ``None`` if none."""
    if all((source / name).is_file() for name in needed):
        return source
    repo = git_dir(source)
    if repo is None:
        return None
    listed = subprocess.run(
        ["git", f"--git-dir={repo}", "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True, text=True
    ).stdout.splitlines()
    present = set(listed)
    first = needed[0]
    folders = sorted({p[: -len(first)].rstrip("/") or "." for p in listed if p == first or p.endswith("/" + first)},
                     key=len)  # fmt: skip
    for folder in folders:
        prefix = "" if folder == "." else folder + "/"
        if all(prefix + name in present for name in needed):
            work.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(
                ["git", f"--git-dir={repo}", "archive", "--format=tar", "HEAD", *([folder] if prefix else [])],
                capture_output=True,
                check=True,
            )
            import io
            import tarfile

            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(work, filter="data")
            print(f"upstream files: {repo} at HEAD, folder {folder!r}, extracted to {work}", flush=True)
            return work / folder
    return None


def upstream_commit(source: Path, given: str | None) -> str | None:
    """``--upstream-commit``, else the source folder's git HEAD, else ``None``."""
    if given:
        return given
    result = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or None


def compare(harness: dict[str, dict[str, Any]], reference: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per image: score difference and whether the answers are identical."""
    rows = []
    for image, ref in sorted(reference.items()):
        got = harness.get(image, {})
        diff = abs(got["score"] - ref["score"]) if got.get("score") is not None else None
        rows.append(
            {
                "image": Path(image).name,
                "harness_score": got.get("score"),
                "upstream_score": ref["score"],
                "abs_diff": diff,
                "answers_identical": got.get("text") == ref["text"],
                "harness_answer": got.get("text"),
                "upstream_answer": ref["text"],
                "harness_error": got.get("error"),
            }
        )
    diffs = [r["abs_diff"] for r in rows if r["abs_diff"] is not None]
    return {
        "images": len(rows),
        "max_abs_score_diff": max(diffs) if len(diffs) == len(rows) and diffs else None,
        "answers_identical": sum(r["answers_identical"] for r in rows),
        "rows": rows,
    }


def record_family(
    path: Path,
    family: str,
    models: list[str],
    upstream: dict[str, Any],
    python: Path,
    tolerance: float,
    images: list[str],
    runs: list[dict[str, Any]],
) -> int:
    """Append a family's comparison runs to its results file with the facts every record carries (upstream,
    worker environment, harness, tolerance, images); the script's exit code: 0 when every run passed."""
    ok = all(run["passed"] for run in runs)
    write_result(
        path,
        {
            "family": family,
            "models": models,
            "passed": ok,
            "upstream": upstream,
            "worker_env": env_facts(str(python)),
            "harness": harness_facts(),
            "tolerance": tolerance,
            "images": images,
            "runs": runs,
        },
    )
    return 0 if ok else 1


def write_result(path: Path, payload: dict[str, Any]) -> None:
    """Append this run to the results file (a JSON list, newest last)."""
    runs = json.loads(path.read_text()) if path.exists() else []
    payload = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **payload}
    runs.append(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=2) + "\n")
    print(f"recorded in {path}")


def say_verdict(label: str, comparison: dict[str, Any], verdict: bool) -> None:
    """One line per compared run: the largest score difference, the identical answers, PASS or FAIL."""
    print(
        f"{label}: max |score diff| {comparison['max_abs_score_diff']}, answers identical "
        f"{comparison['answers_identical']}/{comparison['images']} -> {'PASS' if verdict else 'FAIL'}"
    )


def repository_arguments(parser: Any, variable: str, source_help: str, source_name: str, recipe: str) -> None:
    """The options of the scripts that check a model repository's own code (Qwen-VL, XComposer2): where its copy
    is (``variable`` in the environment), where it comes from and its commit (recorded), the worker env, the
    FakeClass queries, the dtypes and the tolerance."""
    parser.add_argument("--source", default=os.environ.get(variable), help=f"{source_help}; env {variable}")
    parser.add_argument("--source-name", default=source_name, help="where the copy comes from (recorded)")
    parser.add_argument("--source-commit", default=None, help="the copy's commit, when it is not a git checkout")
    parser.add_argument("--env", default=f"envs/{recipe}", help="worker environment (built here if absent)")
    parser.add_argument("--queries", type=Path, default=SHARED_QUERIES, help="folder with FakeClass.json")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--tolerance", type=float, default=1e-5)


def repository_prerequisites(
    args: Any, needed: Sequence[str], recipe: str, work: Path, missing: str
) -> tuple[Path, Path, Path] | None:
    """(the given copy, the folder holding the ``needed`` files, the worker Python) once all are there (a git
    snapshot's folder extracted under ``work``, the env built from ``recipe`` if absent); skips with ``missing``
    or the queries' absence as the reason; ``None`` when the env cannot be built."""
    given = Path(args.source).expanduser().resolve() if args.source else None
    source = upstream_folder(given, needed, work / "upstream") if given and given.exists() else None
    if given is None or source is None:
        skip(missing)
    if not (args.queries / "FakeClass.json").is_file():
        skip(f"no FakeClass.json under {args.queries} (pass --queries DIR)")
    python = Path(args.env).resolve() / "bin" / "python"
    return (given, source, python) if ensure_env(python, recipe, args.env) else None


def owl2_arguments(parser: Any) -> None:
    """The options both mPLUG-Owl2 scripts take: where upstream's copy, its commit, the worker env and the
    FakeClass queries are."""
    parser.add_argument(
        "--upstream",
        default=os.environ.get("MPLUG_OWL_SRC"),
        help="local copy of X-PLUG/mPLUG-Owl (or its mPLUG-Owl2 folder); env MPLUG_OWL_SRC",
    )
    parser.add_argument("--upstream-commit", default=None, help="the copy's commit, when it is not a git checkout")
    parser.add_argument("--env", default="envs/mplug-owl2", help="worker environment (built here if absent)")
    parser.add_argument("--queries", type=Path, default=SHARED_QUERIES, help="folder with FakeClass.json")


def given_work(given: Path) -> Path:
    """A fresh folder to extract a git snapshot's files into."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="conformance-upstream-"))


def owl2_prerequisites(args: Any) -> tuple[Path, Path] | None:
    """(upstream source, worker Python) once both are there (the env built from the recipe if absent); skips
    with the reason without upstream code or queries; ``None`` when the env cannot be built."""
    given = Path(args.upstream).expanduser().resolve() if args.upstream else None
    found = None
    if given is not None and given.is_dir():
        found = (
            given
            if (given / "mplug_owl2").is_dir() or (given / "mPLUG-Owl2" / "mplug_owl2").is_dir()
            else upstream_folder(given, ("mplug_owl2/__init__.py", "pyproject.toml"), given_work(given))
        )
    if found is None:
        skip("no upstream source: pass --upstream PATH (a checkout, a copy or a fetched git snapshot of "
             "X-PLUG/mPLUG-Owl) or set MPLUG_OWL_SRC")  # fmt: skip
    if not (args.queries / "FakeClass.json").is_file():
        skip(f"no FakeClass.json under {args.queries} (pass --queries DIR)")
    if args.upstream_commit is None and git_dir(given) is not None:
        args.upstream_commit = upstream_commit(given, None)  # the snapshot's, not the extracted folder's
    source = found
    python = Path(args.env).resolve() / "bin" / "python"
    return (source, python) if ensure_env(python, "mplug-owl2", args.env, source) else None
