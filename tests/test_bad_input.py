"""Files a real benchmark folder holds: none aborts a run, each bad one is that sample's error naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import toy_components
from benchmark_replicas import folder_tree
from test_images import bomb_png

from harness.plugin_manager import HarnessPlugins
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig


def run(root: Path, out: Path):
    """``mean-model`` (decodes every image) on the folder as AIGCDetectBenchmark."""
    config = RunConfig(model="mean-model", tasks="aigcdetect", data_root=str(root), output_dir=out, progress=False,
                       bootstrap=0, audit=False, device="cpu")
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyPlugin,))
    [outcome] = Evaluator(config, plugins).run()
    return outcome


def test_non_utf8_names_and_a_bomb_fail_or_score_per_sample_and_resume(tmp_path):
    root = folder_tree(tmp_path / "aigc" / "test", {"gen/0_real": 3, "gen/1_fake": 3})
    fake = root / "gen" / "1_fake"
    good_latin1 = os.fsdecode(os.fsencode(str(fake)) + b"/caf\xe9.png")  # a Latin-1 name on a UTF-8 system
    Path(good_latin1).write_bytes((fake / "img000.png").read_bytes())
    broken_latin1 = os.fsdecode(os.fsencode(str(fake)) + b"/na\xefve.png")
    Path(broken_latin1).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (fake / "bomb.png").write_bytes(bomb_png())
    outcome = run(tmp_path / "aigc", tmp_path / "out")
    assert outcome.status == "done" and outcome.n_samples == 9 and outcome.n_failed == 2
    records = {r.sample_id: r for r in read_samples(outcome.results_path)}
    assert records["gen/1_fake/caf\\xe9.png"].score is not None  # scored, and named recognisably
    assert "na\\xefve.png" in records["gen/1_fake/na\\xefve.png"].error
    assert "image too large" in records["gen/1_fake/bomb.png"].error
    results = json.loads(outcome.results_path.read_text(encoding="utf-8"))
    assert results["counts"]["n_failed"] == 2
    again = run(tmp_path / "aigc", tmp_path / "out")  # resume: everything answered is served from the cache
    assert again.n_cached == 7 and again.n_failed == 2
