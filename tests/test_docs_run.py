"""Every shell command the README and the docs show runs as written (issue #26): each line of each ``bash`` block,
in page order, in one working folder (so a page's `harness train ... --out ckpt/fredect` feeds its `harness run
... checkpoint=ckpt/fredect`), on the built-in data. Synopsis notation runs in its plainest form (``[optional]``
parts left out, the first of ``a|b`` alternatives). The commands that need model weights, a GPU, a benchmark on
disk, a worker environment or the network are listed in SKIPS with the reason, which the test prints."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))] + [
    REPO / d / "README.md" for d in ("leaderboards", "trainers") if (REPO / d / "README.md").is_file()
]

#: (pattern in the command, why it is not run here): the first that matches wins
SKIPS: list[tuple[str, str]] = [
    (
        r"^make ",
        "a make target: `make test` is this suite; `make demo` / `make leaderboards` are rehearsed from a "
        "fresh clone before a release",
    ),
    (r"^git clone ", "needs the network (GitHub)"),
    (r"^(pip install|vllm serve|CUDA_VISIBLE_DEVICES=)", "a vLLM server on a GPU machine"),
    (r"^deepspeed ", "DeepSpeed's multi-GPU launcher"),
    (r"^export HARNESS_API_KEY|openai-api|model=gpt-", "a paid API: needs the network and a key"),
    (r"env create ", "builds a worker environment with old pins (minutes of downloads; conformance/ rehearses it)"),
    (r"/models/", "needs model weights on disk"),
    (r"/data/", "needs a benchmark downloaded under /data"),
    (r"envs/\S+/bin/python", "needs a worker environment (harness env create)"),
    (r"--model (llava-1.5|instructblip|idefics|qwen|mplug|internlm)", "needs base weights in the local HF cache"),
    (r"runs/fakescope", "needs a trained FakeScope checkpoint (a GPU training run)"),
    (r"fakechain\.jsonl", "needs FakeChain records, which a multimodal LLM writes"),
    (r"base_url=http://127\.0\.0\.1", "needs the vLLM server the page starts on a GPU machine"),
]


def plain_form(line: str) -> str:
    """A synopsis line in its plainest form: ``[optional]`` parts dropped, the first of ``a|b|c``."""
    line = re.sub(r"\s*\[[^\]]*\]", "", line)
    return re.sub(r"\b([\w.-]+)(\|[\w.-]+)+\b", r"\1", line)


def shell_lines() -> list[tuple[str, str]]:
    """(``page:line``, command) of every command line of every ``bash`` block, continuations joined."""
    found = []
    for page in PAGES:
        in_block, pending, start = False, "", 0
        for number, raw in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if raw.startswith("```"):
                in_block, pending = raw.strip() in ("```bash", "```sh"), ""
                continue
            text = (pending + " " + raw.strip()) if pending else raw.strip()
            if not in_block or not text or text.startswith("#"):
                continue
            start = number if not pending else start
            if text.endswith("\\"):
                pending = text[:-1].rstrip()
                continue
            pending = ""
            found.append((f"{page.relative_to(REPO)}:{start}", text))
    return found


LINES = shell_lines()


def skip_reason(command: str) -> str | None:
    """Why ``command`` is not run here, or ``None``."""
    return next((why for pattern, why in SKIPS if re.search(pattern, command)), None)


def named_files() -> dict[str, str]:
    """The files the pages tell the reader to write: a ``yaml`` block whose first line is ``# <path>``."""
    files = {}
    for page in PAGES:
        for block in re.findall(r"```ya?ml\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
            first = block.splitlines()[0].strip() if block.strip() else ""
            if re.fullmatch(r"#\s*[\w./-]+\.ya?ml", first):
                files[first.lstrip("#").strip()] = block
    return files


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, aigi_mini) -> Path:
    """One folder for every page's commands, with the repository's leaderboards/ and trainers/ beside them and
    the files the pages say to write."""
    folder = tmp_path_factory.mktemp("docs-run")
    for name in ("leaderboards", "trainers"):
        (folder / name).symlink_to(REPO / name)
    for name, text in named_files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_the_pages_hold_commands_and_most_run():
    runnable = [c for _, c in LINES if skip_reason(c) is None]
    assert len(LINES) > 30 and len(runnable) >= 15, (len(LINES), len(runnable))
    assert "my-specs/lab-bench.yaml" in named_files()


@pytest.mark.slow
@pytest.mark.parametrize("where,command", LINES, ids=[w for w, _ in LINES])
def test_a_documented_command_runs_as_written(where, command, workspace):
    reason = skip_reason(command)
    if reason:
        pytest.skip(f"{where}: {reason}")
    plain = plain_form(command)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(["bash", "-c", plain], cwd=workspace, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, (
        f"{where}: `{plain}` exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )
    words = shlex.split(plain, comments=True)
    for flag in ("-o", "--out", "--to"):  # what the command says it writes is there
        if flag in words:
            assert (workspace / words[words.index(flag) + 1]).exists(), f"{where}: {flag} output missing"
