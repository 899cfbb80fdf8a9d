"""Shared fixtures: an isolated data cache, aigi-mini built once, helpers to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide HARNESS_CACHE_DIR so tests never touch the user's cache."""
    path = tmp_path_factory.mktemp("harness-cache")
    os.environ["HARNESS_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(autouse=True)
def _isolated_env(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test: the session cache, no external plugins unless a test opts in, offline hubs."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def aigi_mini(cache_dir: Path) -> Path:
    """aigi-mini, built once per test session."""
    from harness.tasks.aigi_mini import ensure_built

    return ensure_built(cache_dir / "aigi-mini-v1", progress=False)


@pytest.fixture(scope="session")
def plugins():
    """Built-in plugins only (no entry points)."""
    from harness.plugin_manager import HarnessPlugins

    return HarnessPlugins(load_entrypoints=False)


@pytest.fixture(scope="session")
def fredect_checkpoint(aigi_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FreDect trained on aigi-mini/train (with val), once per session."""
    from harness.tasks.aigi_mini import AigiMini
    from harness.trainers.fredect import FreDectTrainer

    task = AigiMini()
    out = tmp_path_factory.mktemp("fredect-ckpt")
    FreDectTrainer(progress=False).train(list(task.samples("train")), list(task.samples("val")), out, "aigi-mini")
    return out


def run_cli(
    *args: str, env: dict[str, str | None] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``python -m harness.cli ARGS`` in a subprocess with the test environment.

    ``env`` values override the current environment; a ``None`` value removes the variable.
    """
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


def fake_distribution(site: Path, dist: str, entry_name: str, module: str, source: str, version: str = "0.1.0") -> Path:
    """Write a minimal installed distribution (dist-info + module) with a ``harness`` entry point."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[harness]\n{entry_name} = {module}\n", encoding="utf-8")
    return site
