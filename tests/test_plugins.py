"""Plugin discovery, isolation of broken plugins, blocking, and the example third-party package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, fake_distribution, run_cli

from harness import hookimpl
from harness.plugin_manager import BUILTIN_PLUGINS, HarnessPlugins

GOOD_PLUGIN = """
from harness import hookimpl

@hookimpl
def register_models(register):
    register("good-detector", "harness.plugins.fredect:FreDect", description="from good plugin")
"""

BROKEN_AT_IMPORT = "raise RuntimeError('this plugin is broken on purpose')\n"

BROKEN_HOOK = """
from harness import hookimpl

@hookimpl
def register_models(register):
    register("half-registered", "x:Y")
    raise ValueError("hook exploded")

@hookimpl
def register_tasks(register):
    register("badhook-task", "harness.tasks.aigi_mini:AigiMini")
"""


def test_builtins_register_through_the_same_hooks(plugins):
    names = {info.name for info in plugins.infos}
    assert set(BUILTIN_PLUGINS) <= names
    assert "fredect" in plugins.registry.names("model")
    assert "aigi-mini" in plugins.registry.names("task")
    assert {"acc", "ap", "auc"} <= set(plugins.registry.names("metric"))
    assert not plugins.failed()


def test_inline_plugin_object_registers():
    class Inline:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            register("inline-metric", "harness.plugins.detection_metrics:Accuracy")

    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(Inline,))
    assert "inline-metric" in plugins.registry.names("metric")


@pytest.fixture()
def plugin_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    fake_distribution(site, "harness-good", "good", "harness_good_plugin", GOOD_PLUGIN, version="1.2.3")
    fake_distribution(site, "harness-broken", "broken", "harness_broken_plugin", BROKEN_AT_IMPORT)
    fake_distribution(site, "harness-badhook", "badhook", "harness_badhook_plugin", BROKEN_HOOK)
    return site


def test_broken_plugins_are_reported_and_skipped(plugin_site: Path):
    env = {"PYTHONPATH": str(plugin_site), "HARNESS_LOAD_PLUGINS": None}
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    infos = {info["name"]: info for info in json.loads(result.stdout)}
    assert infos["good"]["error"] is None and infos["good"]["version"] == "1.2.3"
    assert infos["good"]["hooks"] == ["register_models"]
    assert "this plugin is broken on purpose" in infos["broken"]["error"]
    assert infos["badhook"]["error"] is None  # it loaded; one hook raised
    assert "hook exploded" in infos["badhook"]["failed_hooks"]["register_models"]
    # every other command still works, and the broken hook registered nothing
    listing = run_cli("ls", "models", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    names = {m["name"] for m in json.loads(listing.stdout)}
    assert "good-detector" in names and "fredect" in names and "half-registered" not in names
    tasks = {m["name"] for m in json.loads(run_cli("ls", "tasks", "--json", env=env).stdout)}
    assert "badhook-task" in tasks  # the plugin's working hook still registered
    assert "plugin broken failed to load" in listing.stderr
    assert (
        "plugin badhook: register_models raised ValueError: hook exploded (what that hook registered is "
        "skipped; its register_tasks work)" in listing.stderr
    )
    table = run_cli("plugins", env=env)
    assert "ERROR: RuntimeError: this plugin is broken on purpose" in table.stdout


@pytest.mark.parametrize(
    "variable,value,expect_good",
    [
        ("HARNESS_LOAD_PLUGINS", "", False),
        ("HARNESS_LOAD_PLUGINS", "good", True),
        ("HARNESS_LOAD_PLUGINS", "harness-good", True),
        ("HARNESS_DISABLE_PLUGINS", "*", False),
        ("HARNESS_DISABLE_PLUGINS", "good", False),
        ("HARNESS_DISABLE_PLUGINS", "broken", True),
    ],
)
def test_environment_blocks_external_plugins(plugin_site: Path, variable: str, value: str, expect_good: bool):
    env = {"PYTHONPATH": str(plugin_site), "HARNESS_LOAD_PLUGINS": None, variable: value}
    result = run_cli("ls", "models", "--json", env=env)
    assert result.returncode == 0, result.stderr
    names = {m["name"] for m in json.loads(result.stdout)}
    assert ("good-detector" in names) is expect_good
    assert "fredect" in names  # built-ins are never blocked


def test_an_allow_list_that_hides_a_plugin_says_so_when_its_model_is_asked_for(plugin_site: Path):
    env = {"PYTHONPATH": str(plugin_site), "HARNESS_LOAD_PLUGINS": ""}
    result = run_cli("run", "--model", "good-detector", env=env)
    assert result.returncode == 2 and "Unknown model 'good-detector'" in result.stderr
    assert "an external-plugin filter is in force (HARNESS_LOAD_PLUGINS=''" in result.stderr
    assert "not loaded: " in result.stderr and "good" in result.stderr.split("not loaded: ")[1]


def test_provenance_names_a_plugin_whose_other_hooks_ran(plugin_site: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.delenv("HARNESS_LOAD_PLUGINS", raising=False)
    plugins = HarnessPlugins()
    assert "badhook" in plugins.versions() and "broken" not in plugins.versions()
    assert {i.name for i in plugins.failed()} >= {"badhook", "broken"}


@pytest.mark.slow
def test_example_plugin_package_installs_and_is_evaluated(tmp_path: Path, aigi_mini: Path):
    """pip-install examples/harness-example-detector into a private folder, then evaluate its detector."""
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(REPO / "examples" / "harness-example-detector"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = {"PYTHONPATH": str(site), "HARNESS_LOAD_PLUGINS": None}
    plugins = json.loads(run_cli("plugins", "--json", env=env).stdout)
    example = next(p for p in plugins if p["name"] == "example_detector")
    assert example["version"] == "0.1.0" and example["error"] is None
    out = tmp_path / "results"
    result = run_cli(
        "run",
        "--model",
        "example-highpass",
        "--tasks",
        "aigi-mini",
        "--limit",
        "60",
        "--output-dir",
        str(out),
        "--quiet",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    [path] = list(out.glob("example-highpass-*/aigi-mini/results.json"))
    results = json.loads(path.read_text())
    assert results["counts"]["n_samples"] == 60 and results["counts"]["n_failed"] == 0
    assert results["provenance"]["plugins"]["example_detector"] == "0.1.0"
    assert results["model"]["preprocessing"]["feature"].startswith("log mean")


@pytest.mark.parametrize("kind", ["model", "task", "metric", "trainer", "judge"])
def test_every_builtin_manifest_imports(plugins, kind):
    """A registered target that does not import would only fail when a user picks it: catch it here."""
    manifests = plugins.registry.manifests(kind)
    assert manifests, f"no built-in {kind}"
    for manifest in manifests:
        assert callable(manifest.load()), manifest.name


def test_builtin_metrics_cover_the_paper_measures(plugins):
    names = set(plugins.registry.names("metric"))
    assert {
        "acc",
        "ap",
        "auc",
        "eer",
        "balanced_acc",
        "real_acc",
        "fake_acc",
        "acc_val_threshold",
        "acc_curve",
        "qual_acc",
        "bleu1",
        "bleu2",
        "rouge_l",
        "bertscore",
        "judge_completeness",
        "judge_preciseness",
        "judge_relevance",
        "avr",
    } <= names
