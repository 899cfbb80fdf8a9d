"""Hostile names and files (issue #25): a name never writes outside the output folder or over another model's
results, never injects cells or live HTML into a board, and a hand-edited results file is refused with one line
naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from toy_components import ToyLmmPlugin, write_toy_data

from harness import hookimpl
from harness.boards import quick_spec, render_board
from harness.plugin_manager import HarnessPlugins
from harness.results import load_results
from harness.runner import Evaluator, RunConfig
from harness.testkit.standin_engine import StandinEngine

HOSTILE_MODEL = "gpt</td><img src=x onerror=alert(1)> | **pwn**"
HOSTILE_SUBSET = "<img/src=x/onerror=alert(3)>|pwn"


def test_a_task_spec_named_to_escape_is_refused_and_writes_nothing(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    for index, name in enumerate(("../../../escaped-task", "../fredect-f7c32747/aigi-mini")):
        (specs / f"evil{index}.yaml").write_text(f"name: '{name}'\nlayout: class/subset\nsplits: [test]\n")
    out = tmp_path / "deep" / "er" / "out"
    listing = run_cli("ls", "tasks", "--include-path", str(specs), "--json")
    assert listing.returncode == 0
    assert not any(".." in m["name"] for m in json.loads(listing.stdout))
    assert "is not allowed" in listing.stderr and "evil0.yaml" in listing.stderr
    result = run_cli("run", "--model", "noop", "--tasks", "../../../escaped-task", "--include-path", str(specs),
                     "--output-dir", str(out), "--quiet")  # fmt: skip
    assert result.returncode == 2 and "Unknown task" in result.stderr
    assert not (tmp_path / "escaped-task").exists() and not list(tmp_path.rglob("escaped-task"))


class EvilPlugin:
    @staticmethod
    @hookimpl
    def register_tasks(register):
        register("../fredect-f7c32747/aigi-mini", "harness.tasks.aigi_mini:AigiMini")
        register("fine-name", "harness.tasks.aigi_mini:AigiMini", aliases=["../sneaky"])
        register("kept", "harness.tasks.aigi_mini:AigiMini")


def test_a_plugin_name_that_would_be_a_path_is_dropped_alone_with_a_warning():
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(EvilPlugin,))
    names = plugins.registry.names("task")
    assert "kept" in names and "aigi-mini" in names
    assert not any("/" in n or ".." in n for n in names) and "fine-name" not in names
    assert sum("ignored: a name may hold" in w for w in plugins.registry.warnings) == 2


def test_results_folders_follow_the_registered_name(tmp_path, aigi_mini):
    class TwoNames:
        @staticmethod
        @hookimpl
        def register_tasks(register):
            register("mini-a", "harness.tasks.aigi_mini:AigiMini")
            register("mini-b", "harness.tasks.aigi_mini:AigiMini")

    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(TwoNames,))
    for name in ("mini-a", "mini-b"):
        config = RunConfig(model="noop", tasks=name, limit=8, output_dir=tmp_path, progress=False, bootstrap=0)
        [outcome] = Evaluator(config, plugins).run()
        assert outcome.results_path.parent.name == name
        assert json.loads(outcome.results_path.read_text())["task"]["name"] == name


# -- boards -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory):
    """A served model and a generator folder with hostile names, run for real through the stand-in engine."""
    root = tmp_path_factory.mktemp("hostile")
    data = write_toy_data(root / "data", n_good=8, bad=False)
    labels = (data / "labels.txt").read_text().replace(" gen\n", f" {HOSTILE_SUBSET}\n")
    (data / "labels.txt").write_text(labels)
    import os

    os.environ.setdefault("HARNESS_API_KEY", "EMPTY")
    with StandinEngine(served_model_name=HOSTILE_MODEL, max_logprobs=200) as engine:
        config = RunConfig(
            model="openai-api",
            model_args={
                "model": HOSTILE_MODEL,
                "base_url": engine.base_url,
                "score_method": "topk",
                "top_logprobs": 200,
            },  # fmt: skip
            tasks="toy-task",
            data_root=str(data),
            output_dir=root / "out",
            progress=False,
            bootstrap=0,
            audit=False,
        )
        [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False, extra_plugins=(ToyLmmPlugin,))).run()
    assert outcome.status == "done" and outcome.n_failed == 0
    assert root / "out" in outcome.results_path.parents, "the served name became a plain folder inside --output-dir"
    return [load_results(outcome.results_path)]


def _table_rows(html: str) -> list[list[str]]:
    from html.parser import HTMLParser

    rows: list[list[str]] = []

    class Cells(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                rows.append([])
            elif tag in ("td", "th"):
                rows[-1].append(tag)

    Cells().feed(html)
    return rows


@pytest.mark.parametrize("metric", [None, "auc"])
def test_hostile_names_are_escaped_on_the_board(hostile_results, metric):
    from markdown_it import MarkdownIt

    spec = quick_spec(hostile_results, metric)
    spec.layout = "per_subset" if metric else spec.layout
    markdown = render_board(spec, hostile_results)
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<img" not in html and "<td><img" not in html
    assert "&lt;img" in html, "the names are shown, escaped"
    rows = _table_rows(html)
    assert rows and len({len(r) for r in rows}) == 1, f"every row has the header's cells: {rows}"


# -- hand-edited results ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit,expected",
    [
        (lambda text, data: text[:-20], "not a valid results file"),
        (lambda text, data: json.dumps({k: v for k, v in data.items() if k != "counts"}), "counts: missing"),
        (
            lambda text, data: json.dumps({**data, "counts": {**data["counts"], "n_samples": "many"}}),
            "counts.n_samples: expected int, found str",
        ),  # fmt: skip
        (
            lambda text, data: text.replace(f'"value": {data["metrics"]["all"]["auc"]["value"]}', '"value": 1.7', 1),
            "metrics.all.auc.value: 1.7 is outside [0, 1]",
        ),  # fmt: skip
        (
            lambda text, data: text.replace(f'"value": {data["metrics"]["all"]["auc"]["value"]}', '"value": NaN', 1),
            "metrics.all.auc.value: nan is not a finite number",
        ),  # fmt: skip
    ],
)
def test_a_hand_edited_results_file_is_one_line_naming_the_file_and_field(tmp_path, aigi_mini, edit, expected):
    config = RunConfig(model="noop", tasks="aigi-mini", limit=20, output_dir=tmp_path / "out", progress=False,
                       bootstrap=0)  # fmt: skip
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False)).run()
    path: Path = outcome.results_path
    text = path.read_text()
    path.write_text(edit(text, json.loads(text)))
    result = run_cli("leaderboard", str(tmp_path / "out"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert str(path) in lines[0] and expected in lines[0], lines[0]
