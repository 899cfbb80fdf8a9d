"""The direction of the house: plugins, tasks and trainers import the core, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "harness"
OUTSIDE = ("harness.plugins", "harness.tasks", "harness.trainers")


def imported_modules(path: Path, root: Path = CORE.parent) -> list[tuple[int, str]]:
    """(line, module) of every import statement in a file, relative imports resolved within the package."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.extend((node.lineno, f"{base}.{alias.name}" if base else alias.name) for alias in node.names)
    return found


def test_the_core_imports_nothing_from_plugins_tasks_or_trainers():
    arrows = [
        f"{path.relative_to(CORE.parent)}:{line} imports {module}"
        for path in sorted(CORE.rglob("*.py"))
        for line, module in imported_modules(path)
        if module.startswith(OUTSIDE)
    ]
    assert arrows == []


def test_nothing_but_tests_benchmarks_and_the_kit_itself_imports_the_test_kit():
    """Issue #27 item 5: the stand-in servers and test components live in harness.testkit, which no module of the
    harness (core, plugins, tasks, trainers) imports; the noop model is registered by name, loaded on use."""
    kit = CORE / "testkit"
    arrows = [
        f"{path.relative_to(CORE.parent)}:{line} imports {module}"
        for folder in (CORE, CORE.parent / "plugins", CORE.parent / "tasks", CORE.parent / "trainers")
        for path in sorted(folder.rglob("*.py"))
        if kit not in path.parents
        for line, module in imported_modules(path)
        if module.startswith("harness.testkit")
    ]
    assert arrows == []
    assert not (CORE / "standin_engine.py").exists() and not (CORE / "testing.py").exists()
    assert not (CORE.parent / "tests" / "fake_openai_server.py").exists(), "one stand-in server, not two"


def test_the_checker_sees_an_arrow(tmp_path):
    """The rule above is live: a core-style module importing a plugin, absolutely or relatively, is found."""
    bad = tmp_path / "harness" / "probe.py"
    bad.parent.mkdir()
    bad.write_text(
        "from harness.plugins.judge_metrics import JudgeMetric\nimport harness.tasks.builtin\n"
        "from .trainers import fakescope\n"
    )
    found = [m for _, m in imported_modules(bad, tmp_path) if m.startswith(OUTSIDE)]
    assert found == ["harness.plugins.judge_metrics.JudgeMetric", "harness.tasks.builtin", "harness.trainers.fakescope"]


def test_lmm_backends_are_standalone():
    """The worker runs the backends in environments without the harness: they import no harness module
    (their siblings are relative imports: the folder is a package in-process and in the worker)."""
    backends = CORE.parent / "plugins" / "lmm" / "backends"
    found = [
        f"{path.name}:{line} imports {module}"
        for path in sorted(backends.glob("*.py"))
        for line, module in imported_modules(path, CORE.parent)
        if module.split(".")[0] == "harness"
    ]
    assert found == []
