"""Every `harness ...` command line in the docs parses: its sub-command and every flag it uses exist (issue #17:
docs named a `--workers` flag that did not exist). Commands are parsed by the real parser, not run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.plugin_manager import HarnessPlugins

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md")]
    + [REPO / d / "README.md" for d in ("benchmarks", "leaderboards", "trainers", "conformance") if (REPO / d).is_dir()]
)


def doc_commands() -> list[tuple[str, list[str]]]:
    """(where, argv after `harness`) of every command line in the docs' fenced code blocks."""
    found = []
    for path in DOCS:
        if not path.is_file():
            continue
        in_block, pending, start = False, "", 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_block, pending = not in_block, ""
                continue
            if not in_block:
                continue
            text = (pending + " " + line.strip()) if pending else line.strip()
            if not pending:
                start = number
            if text.endswith("\\"):
                pending = text[:-1]
                continue
            pending = ""
            if not re.match(r"^([A-Z_][A-Z0-9_]*=\S+\s+)*harness\s", text):
                continue
            # synopsis notation: [optional] parts count, a|b alternatives take the first
            words = [w.strip("[]") for w in shlex.split(text, comments=True)]
            words = [w.split("|")[0] if re.fullmatch(r"[\w.-]+(\|[\w.-]+)+", w) else w for w in words if w]
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value harness ...
                words = words[1:]
            if words and words[0] == "harness" and len(words) > 1:
                found.append((f"{path.relative_to(REPO)}:{start}", words[1:]))
    return found


COMMANDS = doc_commands()


def test_the_docs_hold_commands():
    assert len(COMMANDS) > 20


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_a_documented_command_parses(where, argv, capsys):
    parser = build_parser(HarnessPlugins())
    try:
        parser.parse_args(argv)
    except SystemExit as exit_:
        assert exit_.code == 0, f"{where}: `harness {shlex.join(argv)}` does not parse: {capsys.readouterr().err}"


def documented_model_args() -> list[tuple[str, str, list[str]]]:
    """(where, model, --model-args keys) of every documented `harness run` that names both."""
    from harness.cli_args import merged_kv

    parser = build_parser(HarnessPlugins())
    found = []
    for where, argv in COMMANDS:
        if argv[:1] != ["run"]:
            continue
        args = parser.parse_args(argv)
        if args.model and args.model_args and not any("{" in spec or "…" in spec for spec in args.model_args):
            found.append((where, args.model, sorted(merged_kv(args.model_args, "--model-args"))))
    return found


MODEL_ARGS = documented_model_args()


@pytest.mark.parametrize(("where", "model", "keys"), MODEL_ARGS, ids=[w for w, _, _ in MODEL_ARGS])
def test_a_documented_model_argument_is_one_the_adapter_takes(where, model, keys):
    """Issue #26 item 12 / #27: --model-args are checked against what the adapter declares; every documented one
    must be among them (a renamed option would otherwise leave the docs running into an error)."""
    plugins = HarnessPlugins()
    manifest = plugins.get("model", model)
    known = manifest.load().options()
    assert set(keys) <= set(known), f"{where}: {model} takes no {sorted(set(keys) - set(known))}"


def test_model_argument_checking_names_the_closest_option():
    from harness.plugins.fredect import FreDect

    with pytest.raises(ValueError, match=r"takes no argument 'chekpoint' \(did you mean checkpoint\?\)"):
        FreDect.check_options({"chekpoint": "x"}, "fredect")
    FreDect.check_options({"checkpoint": "x", "path": "y"}, "fredect")
    assert len(MODEL_ARGS) > 5
