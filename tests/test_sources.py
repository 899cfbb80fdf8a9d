"""Sources for every benchmark and checkpoint (issue #17): in the registry, in `data check`, in the README."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import run_cli

REPO = Path(__file__).resolve().parent.parent
FIELDS_TASK = {"paper", "repository", "licence", "size", "layout", "check"}
FIELDS_MODEL = {"paper", "repository", "weights", "format"}


def test_every_builtin_benchmark_and_checkpoint_adapter_has_its_sources():
    tasks = json.loads(run_cli("ls", "tasks", "--json").stdout)
    assert tasks and all(set(m["sources"]) >= FIELDS_TASK for m in tasks), [m["name"] for m in tasks]
    models = {m["name"]: m for m in json.loads(run_cli("ls", "models", "--json").stdout)}
    for name in ("fakescope-llava", "fakescope-owl2", "cnnspot", "univfd", "fredect", "fredect-resnet"):
        assert set(models[name]["sources"]) >= FIELDS_MODEL, name
    assert "unreleased" in models["fakescope-owl2"]["sources"]["weights"]


def test_the_readme_table_says_what_the_files_say():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Data and weights") :]
    for path, section in ((REPO / "tasks" / "sources.yaml", "tasks"), (REPO / "plugins" / "sources.yaml", "models")):
        for name, entry in yaml.safe_load(path.read_text())[section].items():
            row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
            for key in ("repository", "licence", "weights", "hub"):
                if key in entry:
                    assert str(entry[key]).replace("|", "\\|") in row, (name, key)


def test_data_check_prints_where_the_data_comes_from(tmp_path):
    out = run_cli("data", "check", "synthwildx", "--data-root", str(tmp_path)).stdout
    assert "grip-unina/ClipBased-SyntheticImageDetection" in out and "layout:" in out
