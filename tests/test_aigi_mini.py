"""aigi-mini: deterministic, no storage shortcut, disjoint sources, learnable by FreDect."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harness.fingerprint import hash_file
from harness.images import file_metadata
from harness.plugin_manager import HarnessPlugins
from harness.runner import Evaluator, RunConfig
from harness.tasks.aigi_mini import SPLIT_SIZES, SPLITS, AigiMini, build


@pytest.mark.slow
def test_build_is_deterministic(aigi_mini: Path, tmp_path: Path):
    again = build(tmp_path / "again", progress=False)
    assert (again / "manifest.jsonl").read_bytes() == (aigi_mini / "manifest.jsonl").read_bytes()
    entries = [json.loads(line) for line in (aigi_mini / "manifest.jsonl").read_text().splitlines()]
    for entry in entries[::37]:
        assert hash_file(again / entry["path"]) == hash_file(aigi_mini / entry["path"])


def test_counts_labels_and_subsets(aigi_mini: Path):
    task = AigiMini()
    for split, size in SPLIT_SIZES.items():
        samples = list(task.samples(split))
        assert len(samples) == size
        labels = Counter(s.label for s in samples)
        assert labels[0] == size // 2 and labels[1] == size - size // 2
        subsets = Counter(s.subset for s in samples if s.label == 1)
        assert set(subsets) == {"gan-upsample", "latent-decoder", "diffusion-resynth"}
        assert max(subsets.values()) - min(subsets.values()) <= 1
        assert {s.subset for s in samples if s.label == 0} == {"real"}


def test_source_photos_are_disjoint_across_splits(aigi_mini: Path):
    task = AigiMini()
    sources = {split: {s.metadata["source"] for s in task.samples(split)} for split in SPLITS}
    assert sources["train"].isdisjoint(sources["val"])
    assert sources["train"].isdisjoint(sources["test"])
    assert sources["val"].isdisjoint(sources["test"])


def test_real_and_fake_are_stored_identically(aigi_mini: Path):
    """Same container for both classes, read from the files themselves: no format or size shortcut."""
    storage = Counter()
    for sample in AigiMini().samples("all"):
        meta = file_metadata(sample.image)
        storage[(sample.label, meta["format"], meta["width"], meta["height"], meta["mode"], meta["jpeg_quality"])] += 1
    assert {key[1:] for key in storage} == {("PNG", 64, 64, "RGB", None)}


def test_unknown_split_is_a_clear_error(aigi_mini: Path):
    with pytest.raises(ValueError, match="aigi-mini has splits train, val, test"):
        list(AigiMini().samples("dev"))


def _evaluate(model: str, checkpoint: Path, out: Path) -> dict:
    plugins = HarnessPlugins(load_entrypoints=False)
    config = RunConfig(
        model=model, model_args={"checkpoint": str(checkpoint)}, tasks="aigi-mini", output_dir=out, progress=False
    )
    [outcome] = Evaluator(config, plugins).run()
    assert outcome.status == "done" and outcome.n_failed == 0
    return json.loads(outcome.results_path.read_text())


def test_format_shortcut_sits_at_chance(aigi_mini: Path, tmp_path: Path):
    from harness.trainers.format_shortcut import FormatShortcutTrainer

    task = AigiMini()
    FormatShortcutTrainer(progress=False).train(list(task.samples("train")), [], tmp_path / "ckpt", "aigi-mini")
    results = _evaluate("format-shortcut", tmp_path / "ckpt", tmp_path / "out")
    assert results["metrics"]["all"]["auc"]["value"] == pytest.approx(0.5)
    assert results["metrics"]["all"]["balanced_acc"]["value"] == pytest.approx(0.5)


def test_fredect_is_well_above_chance_on_test(fredect_checkpoint: Path, tmp_path: Path):
    results = _evaluate("fredect", fredect_checkpoint, tmp_path / "out")
    overall = results["metrics"]["all"]
    assert overall["auc"]["value"] > 0.9 and overall["acc"]["value"] > 0.8
    for generator in ("gan-upsample", "latent-decoder", "diffusion-resynth"):
        assert results["metrics"]["subsets"][generator]["auc"]["value"] > 0.8
        assert "shared real pool" in results["metrics"]["pairing"][generator]
    config = json.loads((fredect_checkpoint / "config.json").read_text())
    assert config["size"] == 64 and config["trained_on"]["seen_generators"] == [
        "diffusion-resynth",
        "gan-upsample",
        "latent-decoder",
    ]
    assert np.isfinite(config["validation"]["auc"])


def test_the_demos_two_models_differ_significantly(aigi_mini: Path, fredect_checkpoint: Path, tmp_path: Path):
    """`make demo`'s FreDect and format-shortcut auditor, compared as the demo does (issue #30): the difference in
    AUC is significant by DeLong's test, and the board marks nobody as indistinguishable from FreDect."""
    from conftest import run_cli

    from harness.trainers.format_shortcut import FormatShortcutTrainer

    FormatShortcutTrainer(progress=False).train(list(AigiMini().samples("train")), [], tmp_path / "ckpt", "aigi-mini")
    shortcut = _evaluate("format-shortcut", tmp_path / "ckpt", tmp_path / "out")
    fredect = _evaluate("fredect", fredect_checkpoint, tmp_path / "out")
    folders = [str(next((tmp_path / "out").glob(f"{name}-*/aigi-mini"))) for name in ("fredect", "format-shortcut")]
    done = run_cli("compare", *folders, "--json", "--resamples", "200")
    assert done.returncode == 0, done.stderr
    auc = next(d for d in json.loads(done.stdout)["differences"] if d["metric"] == "auc")
    assert auc["a"] == pytest.approx(fredect["metrics"]["all"]["auc"]["value"])
    assert auc["b"] == pytest.approx(shortcut["metrics"]["all"]["auc"]["value"]) and auc["p"] < 1e-6
    board = run_cli("leaderboard", str(tmp_path / "out"), "--significance")
    assert board.returncode == 0 and "tested in 1 of 1" in board.stdout
    rows = [line for line in board.stdout.splitlines() if line.startswith("| format-shortcut")]
    assert len(rows) == 1 and "<sup>ns</sup>" not in rows[0]
