"""docs/plugins.md runs: its code blocks, concatenated, are one plugin module, and every kind is used here; and
every hook in harness/hookspecs.py is documented there (a meta-test in the style of datasette's)."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import hookspecs
from harness.plugin_manager import HarnessPlugins

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def doc_blocks() -> str:
    return "\n\n".join(re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S))


@pytest.fixture
def my_plugin(tmp_path, monkeypatch):
    (tmp_path / "my_plugin.py").write_text(doc_blocks(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_plugin", None)
    module = importlib.import_module("my_plugin")
    yield module
    sys.modules.pop("my_plugin", None)


@pytest.fixture
def folder_pairs(tmp_path) -> Path:
    """Reals dark, fakes bright: the documented toy detector separates them perfectly."""
    rng = np.random.default_rng(0)
    for _label, folder, level in ((0, "0_real", 60), (1, "1_fake", 190)):
        (tmp_path / "pairs" / folder).mkdir(parents=True)
        for i in range(4):
            pixels = np.clip(rng.normal(level, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pairs" / folder / f"{i}.png")
    return tmp_path / "pairs"


def test_every_hook_is_documented_and_in_the_example():
    hooks = [name for name, value in vars(hookspecs).items() if name.startswith("register_") and callable(value)]
    text = DOC.read_text(encoding="utf-8")
    assert sorted(hooks) == sorted(
        [
            "register_models",
            "register_tasks",
            "register_metrics",
            "register_trainers",
            "register_judges",
            "register_commands",
        ]
    )
    defined = {node.name for node in ast.parse(doc_blocks()).body if isinstance(node, ast.FunctionDef)}
    for hook in hooks:
        assert f"## {hook}" in text, f"{hook} has no section in docs/plugins.md"
        assert hook in defined, f"the example in docs/plugins.md does not implement {hook}"


def test_the_documented_plugin_works_kind_by_kind(my_plugin, folder_pairs, tmp_path, capsys):
    from harness.cli import build_parser
    from harness.judging import build_judge
    from harness.runner import Evaluator, RunConfig, build_task

    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(my_plugin,))
    assert not [i for i in plugins.infos if i.error]
    # model + task + metric through a run
    config = RunConfig(
        model="brightness",
        model_args={"gain": 1.0},
        tasks="folder-pairs",
        data_root=str(folder_pairs),
        output_dir=tmp_path / "out",
        progress=False,
        bootstrap=0,
        audit=False,
        device="cpu",
    )
    [outcome] = Evaluator(config, plugins).run()
    assert outcome.status == "done" and outcome.n_samples == 8
    assert outcome.metrics["acc"]["value"] == 1.0 and outcome.metrics["auc"]["value"] == 1.0
    gap = outcome.metrics["brightness_gap"]["value"]
    assert gap == pytest.approx((190 - 60) / 255, abs=0.02)
    # judge
    judge = build_judge(plugins, "keyword", {})
    assert judge.complete("the hands show artefacts") == "fake" and judge.complete("a dog") == "real"
    # trainer
    task = build_task(plugins, "folder-pairs", str(folder_pairs))
    trainer = plugins.get("trainer", "brightness-gain").load()()
    summary = trainer.train(list(task.samples()), [], tmp_path / "ckpt", task_name="folder-pairs")
    assert summary["n_train"] == 8 and summary["gain"] == pytest.approx(0.5 / (125 / 255), rel=0.05)
    trained = plugins.get("model", "brightness").load()(checkpoint=str(tmp_path / "ckpt"))
    assert trained.gain == pytest.approx(summary["gain"]), "the model reads what the trainer wrote"
    # the trainer's own flag, declared at registration, reaches it through `harness train`
    args = build_parser(plugins).parse_args(["train", "brightness-gain", "--task", "folder-pairs", "--data-root",
                                             str(folder_pairs), "--target-mean", "0.25", "--out", str(tmp_path / "c2"),
                                             "--quiet"])  # fmt: skip
    assert args.func(args, plugins) == 0
    gain = json.loads((tmp_path / "c2" / "train_summary.json").read_text())["gain"]
    assert gain == pytest.approx(summary["gain"] / 2), "--target-mean 0.25 halves the gain"
    # command
    parser = build_parser(plugins)
    args = parser.parse_args(["count", "folder-pairs", "--data-root", str(folder_pairs)])
    assert args.func(args, plugins) == 0
    assert "folder-pairs: 8 samples" in capsys.readouterr().out


@pytest.mark.slow
def test_the_documented_package_builds_installs_and_registers(tmp_path):
    """The page's pyproject block and module, as written, make a package that pip installs (offline) and whose entry
    point the harness finds."""
    import subprocess

    text = DOC.read_text(encoding="utf-8")
    [pyproject] = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    package = tmp_path / "package"
    package.mkdir()
    (package / "pyproject.toml").write_text(
        pyproject + '\n[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        '\n[tool.setuptools]\npy-modules = ["my_plugin"]\n'
    )
    (package / "my_plugin.py").write_text(doc_blocks(), encoding="utf-8")
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(package)],  # fmt: skip
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    listing = subprocess.run(
        [sys.executable, "-m", "harness.cli", "ls", "models"],
        capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(site), "HARNESS_LOAD_PLUGINS": "my_plugin"},
    )  # fmt: skip
    assert listing.returncode == 0 and "brightness" in listing.stdout, listing.stderr


def test_every_optional_ability_is_declared_and_documented():
    """Issue #27 item 3: abilities are protocols or attributes in interfaces.py, each in docs/plugins.md's table,
    and the core reads none of them with getattr."""
    from typing import Protocol

    from harness import interfaces

    protocols = [
        name
        for name, value in vars(interfaces).items()
        if isinstance(value, type) and value.__module__ == interfaces.__name__ and Protocol in value.__mro__
    ]
    assert {"ArrayMetric", "FastArrayMetric", "WeightedMetric", "ReportsCalls", "Thresholded"} <= set(protocols)
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("### Optional abilities") :]
    for name in [*protocols, "mean_of_per_sample", "reads_hf_source", "requires_task", "extra_options", "flags="]:
        assert name in table, f"{name} is not in docs/plugins.md's table of abilities"
    core = Path(interfaces.__file__).parent
    words = ("from_arrays", "from_weights", "judge_usage", "mean_of_per_sample", "reads_hf_source", "requires_task",
             "threshold")  # fmt: skip
    for path in core.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        for word in words:
            assert f'"{word}"' not in source or "getattr" not in source.split(f'"{word}"')[0][-40:], (path, word)


def test_ls_models_options_lists_each_adapters_arguments():
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "ls", "models", "--options", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)
    assert options["fredect"]["options"] == {"checkpoint": None, "path": None}
    assert options["cnnspot"]["options"]["crop"] == 224 and "python" in options["fakescope-llava"]["options"]
    assert options["llava-1.5"]["options"]["path"] == "llava-hf/llava-1.5-7b-hf", "the manifest's default shows"
