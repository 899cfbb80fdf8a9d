"""Golden results: what a run writes stays the same through refactors of the runner (issue #27).

A fixed run (the toy mean-brightness model on aigi-mini, seeded bootstrap) is compared with the files in
``tests/golden/`` written before the plan/execute/report and typed-results refactors, modulo what differs from
run to run (timestamps, durations, machine, command line, package versions, the results folder). A change to
the results schema is made on purpose: regenerate with ``HARNESS_UPDATE_GOLDEN=1 pytest tests/test_golden_results.py``
and say why in the commit.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

GOLDEN = Path(__file__).parent / "golden"
#: keys whose values differ between two identical runs (time, machine, paths), dropped before comparing
VOLATILE = {"created", "run_file", "samples_file", "seconds", "date", "results_file"}
KEPT_PROVENANCE = {"harness_version", "config", "seed", "plugins"}
MACHINE_CONFIG = {"num_workers", "output_dir"}


def normalised(results: dict[str, Any]) -> dict[str, Any]:
    """The results without what varies between identical runs."""
    data = {k: v for k, v in results.items() if k not in VOLATILE}
    if "provenance" in data:
        data["provenance"] = {k: v for k, v in data["provenance"].items() if k in KEPT_PROVENANCE}
        config = data["provenance"].get("config") or {}
        data["provenance"]["config"] = {k: v for k, v in config.items() if k not in MACHINE_CONFIG}
    if "harness" in data:
        data["harness"] = {k: v for k, v in data["harness"].items() if k not in VOLATILE}
    return data


def assert_same(found: Any, expected: Any, where: str = "") -> None:
    """Equal structure and values; floats to 1e-9 relative (the last bits of a sum may differ by machine)."""
    if isinstance(expected, dict):
        assert isinstance(found, dict), where
        assert sorted(found) == sorted(expected), f"{where}: keys {sorted(set(found) ^ set(expected))} differ"
        for key in expected:
            assert_same(found[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(found, list) and len(found) == len(expected), f"{where}: {found!r} vs {expected!r}"
        for i, (a, b) in enumerate(zip(found, expected, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(found, bool) and isinstance(found, (int, float)):
        assert math.isclose(found, expected, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {found!r} != {expected!r}"
    else:
        assert found == expected, f"{where}: {found!r} != {expected!r}"


def test_a_fixed_run_writes_the_golden_results(aigi_mini, tmp_path, monkeypatch):
    """mean-model on aigi-mini: results.json and lm_eval_<time>.json as the golden files hold them."""
    import toy_components

    from harness.plugin_manager import HarnessPlugins
    from harness.results_model import Results
    from harness.runner import Evaluator, RunConfig

    monkeypatch.chdir(tmp_path)
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyPlugin,))
    config = RunConfig(model="mean-model", tasks="aigi-mini", output_dir=Path("out"), progress=False,
                       bootstrap=200, num_workers=1, device="cpu")  # fmt: skip
    [outcome] = Evaluator(config, plugins, command=["harness", "run"]).run()
    assert outcome.status == "done", outcome.reason
    folder = outcome.results_path.parent
    raw = json.loads((folder / "results.json").read_text())
    assert Results.from_json(raw).to_json() == raw, "the typed model reads back exactly what was written"
    assert outcome.results is not None and outcome.results.to_json() == raw, "the run returns what it wrote"
    written = {
        "results.json": json.loads((folder / "results.json").read_text()),
        "lm_eval.json": json.loads(next(folder.glob("lm_eval_*.json")).read_text()),
    }
    for name, data in written.items():
        golden = GOLDEN / f"mean-model-aigi-mini.{name}"
        if os.environ.get("HARNESS_UPDATE_GOLDEN"):
            golden.write_text(json.dumps(normalised(data), indent=2, sort_keys=True) + "\n")
            continue
        if not golden.exists():
            pytest.fail(f"{golden} is missing: write it with HARNESS_UPDATE_GOLDEN=1")
        assert_same(normalised(data), json.loads(golden.read_text()), name)
