"""Benchmarks through Hugging Face `datasets` (issue #17): every task reads `--data-root hf:SOURCE`, every local
benchmark exports, and export -> reload gives identical results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_replicas import SHARED, folder_tree, synthwildx_root
from conftest import run_cli
from PIL import Image
from toy_components import ToyPlugin

from harness.hf_data import export_task, hub_samples
from harness.plugin_manager import HarnessPlugins
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig, build_task


def plugins() -> HarnessPlugins:
    return HarnessPlugins(load_entrypoints=False, extra_plugins=(ToyPlugin,))


def evaluate(task: str, root: str, out: Path, model: str = "mean-model", limit: int | None = None):
    config = RunConfig(
        model=model, tasks=task, data_root=root, output_dir=out, progress=False, bootstrap=0, audit=False,
        num_workers=2, limit=limit,
    )  # fmt: skip
    [outcome] = Evaluator(config, plugins()).run()
    assert outcome.status == "done", outcome.reason
    return json.loads(outcome.results_path.read_text()), read_samples(outcome.results_path)


def replica(task: str, tmp_path: Path, cache_dir: Path) -> str:
    if task == "aigi-mini":
        from harness.tasks.aigi_mini import ensure_built

        return str(ensure_built(cache_dir / "aigi-mini-v1", progress=False))
    if task == "wildrf":
        spec = {"val/0_real": 3, "val/1_fake": 3, "test/reddit/0_real@jpg": 4, "test/reddit/1_fake": 4,
                "test/twitter/0_real": 3, "test/twitter/1_fake": 3}  # fmt: skip
        return str(folder_tree(tmp_path / "WildRF", spec))
    if task == "antifakeprompt":
        spec = {"test/0_real/COCO@JPEG": 4, "test/0_real/Flickr": 3, "test/1_fake/SDXL": 3, "test/1_fake/lama": 2}
        return str(folder_tree(tmp_path / "afp", spec))
    if task == "fakeclass":
        if not (SHARED / "fakebench" / "FakeClass.json").is_file():
            pytest.skip(f"{SHARED}/fakebench absent: the real upstream query files are needed")
        from benchmark_replicas import fakebench_root

        root = tmp_path / "fakebench"
        (root / "Evaluation").mkdir(parents=True)
        (root / "Evaluation" / "FakeClass.json").write_bytes((SHARED / "fakebench" / "FakeClass.json").read_bytes())
        return str(fakebench_root(root, skip=3))
    if task == "synthwildx":
        if not (SHARED / "synthwildx" / "list.csv").is_file():
            pytest.skip(f"{SHARED}/synthwildx/list.csv absent: the real upstream list is needed")
        return str(synthwildx_root(tmp_path / "swx", skip_every=7))
    raise AssertionError(task)


@pytest.mark.parametrize(
    "task",
    [
        "wildrf",
        "antifakeprompt",
        pytest.param("aigi-mini", marks=pytest.mark.slow),
        pytest.param("synthwildx", marks=pytest.mark.slow),
        pytest.param("fakeclass", marks=pytest.mark.slow),  # generate mode: the questions travel in metadata
    ],
)
def test_export_then_reload_gives_identical_results(task, tmp_path, cache_dir):
    root = replica(task, tmp_path, cache_dir)
    model = "noop" if task == "fakeclass" else "mean-model"
    limit = 500 if task == "fakeclass" else None  # the same seeded, stratified 500 of 5,997 both times
    original, original_records = evaluate(task, root, tmp_path / "a", model, limit)
    folder = build_task(plugins(), task, root)
    splits = [folder.default_split] + ([folder.calibration_split] if folder.calibration_split else [])
    counts = export_task(folder, splits, tmp_path / "export", progress=False)
    assert counts[folder.default_split] == original["counts"]["n_available"]
    again, again_records = evaluate(task, f"hf:{tmp_path / 'export'}", tmp_path / "b", model, limit)
    assert again["metrics"] == original["metrics"]
    assert [(r.sample_id, r.subset, r.label, r.score, r.text, r.prompt) for r in again_records] == [
        (r.sample_id, r.subset, r.label, r.score, r.text, r.prompt) for r in original_records
    ]
    assert again["counts"]["n_calibration"] == original["counts"]["n_calibration"]
    # the exported images are the original files' bytes, not re-encodings
    by_id = {s.id: s for s in hub_samples(str(tmp_path / "export"), folder.default_split)}
    for record in original_records:  # each record names the file it scored
        assert by_id[record.sample_id].image == Path(record.image).read_bytes()


def test_the_export_command_writes_a_card_and_shards(tmp_path, cache_dir):
    """Issue #26 item 15: every split by default (train too), an Image feature that decodes, a ClassLabel, the
    plain metadata as typed columns; --push-to-hub uploads the folder as written."""
    result = run_cli("data", "export", "aigi-mini", "--to", str(tmp_path / "x"),
                     env={"HARNESS_CACHE_DIR": str(cache_dir)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    card = (tmp_path / "x" / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "path: data/test-*.parquet" in card
    for split in ("train", "val", "test"):
        assert list((tmp_path / "x" / "data").glob(f"{split}-00000-of-00001.parquet")), split
    import datasets

    test = datasets.load_dataset(str(tmp_path / "x"), split="test")
    assert test.num_rows == int(result.stdout.split("val, ")[1].split()[0])
    assert isinstance(test.features["image"], datasets.Image) and test.features["image"].decode
    assert test.features["label"].names == ["real", "fake"] and test.features["width"].dtype == "int64"
    row = test[0]
    assert row["image"].size == (row["width"], row["height"]) and row["format"] == "PNG"


def test_push_to_hub_uploads_the_export_as_written(tmp_path, monkeypatch):
    import huggingface_hub

    from harness.hf_data import push_export

    calls = []

    class Api:
        def create_repo(self, repo, **kwargs):
            calls.append(("create", repo, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload", kwargs["repo_id"], kwargs))

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    (tmp_path / "x").mkdir()
    assert push_export(tmp_path / "x", "lab/aigi-mini", private=True) == "https://huggingface.co/datasets/lab/aigi-mini"
    assert calls[0] == ("create", "lab/aigi-mini", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls[1][2]["folder_path"] == str(tmp_path / "x") and calls[1][2]["repo_type"] == "dataset"


def test_any_task_reads_an_imagefolder(tmp_path):
    """A plain `datasets` imagefolder (split / generator / class folders): labels from the class folders,
    subsets from the generator folders, scores on the right pixels."""
    root = tmp_path / "imagefolder"
    rng = np.random.default_rng(0)
    truth = {}
    for generator in ("ADM", "SDXL"):
        for label, name in ((0, "0_real"), (1, "1_fake")):
            folder = root / "test" / generator / name
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 120 + 100 * label, (24, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
                truth[f"test/{generator}/{name}/{i}.png"] = (label, generator, pixels.mean() / 255)
    results, records = evaluate("toy-task", f"hf:{root}", tmp_path / "out")
    assert len(records) == 16
    for record in records:
        label, generator, mean = truth[record.sample_id]
        assert (record.label, record.subset) == (label, generator)
        assert record.score == pytest.approx(mean, abs=1e-12)
    from sklearn.metrics import roc_auc_score

    ordered = sorted(truth.values())
    assert results["metrics"]["all"]["auc"]["value"] == pytest.approx(
        roc_auc_score([t[0] for t in ordered], [t[2] for t in ordered])
    )
