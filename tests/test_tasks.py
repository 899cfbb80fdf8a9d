"""The benchmark tasks on the real upstream query files and on miniature replicas of every layout."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from benchmark_replicas import SHARED, fakebench_root, folder_tree, synthwildx_root
from conftest import run_cli

from harness.plugin_manager import HarnessPlugins
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig, build_task
from harness.tasks.fakebench import FakeClass, FakeClue, FakeQA, fakeqa_dimension, fakeqa_filter, fakeqa_prompt
from harness.tasks.folder_benchmarks import AIGCDetectBenchmark
from harness.tasks.synthwildx import SynthWildX

needs_shared = pytest.mark.skipif(
    not (SHARED / "fakebench" / "FakeClass.json").exists(),
    reason=f"upstream query files not found at {SHARED} (../shared/data)",
)


def evaluate(task: str, root: Path, out: Path, mode: str | None = None, model_args=None, **kwargs):
    config = RunConfig(
        model="noop",
        model_args=model_args or {},
        tasks=task,
        data_root=str(root),
        output_dir=out,
        progress=False,
        bootstrap=0,
        mode=mode,
        **kwargs,
    )
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False)).run()
    assert outcome.status == "done", outcome.reason
    return outcome, json.loads(outcome.results_path.read_text())


# -- FakeBench on the real query files ------------------------------------------------------------
@pytest.fixture(scope="module")
def fakebench(tmp_path_factory):
    if not (SHARED / "fakebench" / "FakeClass.json").exists():
        pytest.skip(f"upstream query files not found at {SHARED}")
    root = tmp_path_factory.mktemp("fakebench")
    (root / "Evaluation").mkdir()
    for name in ("FakeClass.json", "FakeClue.json", "FakeQA.json"):
        (root / "Evaluation" / name).write_bytes((SHARED / "fakebench" / name).read_bytes())
    return fakebench_root(root, skip=3)


@pytest.mark.slow
@needs_shared
def test_fakeclass_parses_all_entries_with_upstream_counts(fakebench):
    samples = list(FakeClass(data_root=str(fakebench)).samples())
    task = FakeClass(data_root=str(fakebench))
    assert len(samples) == 5997 and task.entries() and len(task.entries()) == 6000
    full = {s.id: s for s in samples}
    types = Counter(s.metadata["question_type"] for s in samples)
    all_types = Counter(t for t in map(lambda e: e["question"], task.entries()))
    assert all_types["What is the authenticity of this image, fake or real?"] == 3000
    assert all_types["Is this a fake image, yes or no?"] == 1501
    assert all_types["Is this a real image, yes or no?"] == 1499
    assert sum(types.values()) == 5997
    fakes = Counter(s.subset for s in samples if s.label == 1)
    assert (
        len(fakes) == 10
        and all(n >= 297 for n in fakes.values())
        and sum(fakes.values()) + sum(1 for s in samples if s.label == 0) == 5997
    )
    sources = Counter(s.metadata["source"] for s in samples if s.label == 0)
    assert sources["DIV2K"] == 20 and sources["ImageNet"] + sources["COCO"] + 20 == sum(sources.values())
    first = json.loads((SHARED / "fakebench" / "FakeClass.json").read_text())[0]
    if first["image_id"] in full:  # authenticity 0 = fake upstream -> label 1 here
        assert full[first["image_id"]].label == (1 if first["authenticity"] == 0 else 0)


@pytest.mark.slow
@needs_shared
def test_fakeclass_qualitative_run_breakdowns_export_and_format_audit(fakebench, tmp_path):
    outcome, results = evaluate("fakeclass", fakebench, tmp_path, task_args={})
    assert results["task"]["mode"] == "generate" and outcome.n_samples == 5997
    assert set(results["metrics"]["breakdowns"]["question_type"]) == {"what", "yes/no (fake)", "yes/no (real)"}
    assert results["metrics"]["all"]["unknown_rate"]["value"] == 0.0  # "This image is fake/real." always parses
    assert results["data"]["absent_images"] == 3
    submission = json.loads((outcome.results_path.parent / "submission.json").read_text())
    assert len(submission) == 5997 and set(submission[0]) == {"image_id", "answer"}
    # FakeClass leaks labels through file format: the audit finds it (about 72%, reference notes 1.3)
    assert 0.70 < results["audit"]["format_shortcut"]["cv_accuracy"] < 0.75
    scored, score_results = evaluate("fakeclass", fakebench, tmp_path / "score", mode="score")
    assert "auc" in score_results["metrics"]["all"] and "qual_acc" not in score_results["metrics"]["all"]


@pytest.mark.slow
@needs_shared
def test_fakeclue_samples_references_and_submission(fakebench, tmp_path):
    refs = tmp_path / "refs.json"
    entry = json.loads((SHARED / "fakebench" / "FakeClue.json").read_text())[5]
    refs.write_text(
        json.dumps(
            [
                {
                    "image_id": entry["image_id"],
                    "faultfinding_mode": "fused fingers and garbled text",
                    "inference_mode": "melting background; fake",
                }
            ]
        )
    )
    task = FakeClue(data_root=str(fakebench), references=str(refs))
    samples = list(task.samples())
    assert len(samples) == 2 * (3000 - 3) or len(samples) == 2 * 3000 - 2 * sum(1 for i in task.absent)
    by_id = {s.id: s for s in samples}
    ref = by_id[f"{entry['image_id']}#faultfinding_mode"]
    assert ref.metadata["reference"] == "fused fingers and garbled text" and ref.label == 1
    assert ref.metadata["question"].startswith("This is a fake image generated by AI, explain why.")
    outcome, results = evaluate("fakeclue", fakebench, tmp_path / "out", limit=40, task_args={"references": str(refs)})
    submission = json.loads((outcome.results_path.parent / "submission.json").read_text())
    assert set().union(*submission) == {"image_id", "faultfinding_mode", "inference_mode"}
    assert all("image_id" in row and len(row) >= 2 for row in submission)
    assert set(results["metrics"]["breakdowns"]["ability"]) == {"interpreting", "reasoning"}
    # the headline accuracy counts the questions that ask for a verdict (reasoning) only: fault-finding
    # prompts presuppose "fake" and their explanations are neither right nor unknown verdicts
    overall, by_ability = results["metrics"]["all"], results["metrics"]["breakdowns"]["ability"]
    for name in ("qual_acc", "unknown_rate"):
        assert overall[name]["value"] == by_ability["reasoning"][name]["value"]
        n_reasoning = sum(1 for r in read_samples(outcome.results_path) if r.sample_id.endswith("#inference_mode"))
        assert overall[name]["n"] == by_ability["reasoning"][name]["n"] == n_reasoning > 0
        assert by_ability["interpreting"][name]["value"] is None


@pytest.mark.slow
@needs_shared
def test_fakeqa_prompts_filter_and_counts(fakebench):
    task = FakeQA(data_root=str(fakebench))
    samples = list(task.samples())
    entries = task.entries()
    n_questions = sum(1 for e in entries for i in range(1, 15) if e.get(f"Q{i}"))
    assert n_questions == 3000 * 14 - 2 - 27
    assert len(samples) == n_questions - sum(
        1 for e in entries if e["image_id"] in task.absent for i in range(1, 15) if e.get(f"Q{i}")
    )
    dims = Counter(s.metadata["dimension"] for s in samples)
    assert set(dims) <= set(__import__("harness.tasks.fakebench", fromlist=["x"]).FAKEQA_DIMENSIONS)
    assert "regarding the authenticity of this image regarding" not in samples[0].metadata["prompt"]


def test_fakeqa_prompt_and_filter_fix_upstream_bugs():
    question = "How are the edges regarding the authenticity of this image? "
    assert fakeqa_prompt(question) == (
        "Answer this question without itemizing: How are the edges regarding the authenticity of this image?"
    )
    assert fakeqa_prompt("How is the texture?").endswith("How is the texture regarding the image authenticity?")
    answer = "The edges are jagged. The sky is blue. Edge halos appear near the hair. Overall it looks fake."
    assert fakeqa_filter(question, answer) == "The edges are jagged. Edge halos appear near the hair"
    # upstream overwrote the kept sentences with the raw answer when a later sentence did not match
    assert fakeqa_filter("How is the symmetry?", "Nothing relevant here. At all.") == "Nothing relevant here. At all."
    assert fakeqa_dimension("Is there any distortion in the image?", 1) == "distortion"
    assert fakeqa_dimension("How are light and shadow?", 2) == "light & shadow"


# -- SynthWildX on the real list.csv ---------------------------------------------------------------
@pytest.mark.slow
@needs_shared
def test_synthwildx_counts_missing_and_pairs_with_real_pool(tmp_path):
    root = synthwildx_root(tmp_path / "swx", skip_every=100)
    task = SynthWildX(data_root=str(root))
    samples = list(task.samples())
    assert len(samples) == 1980 and task.data_notes()["missing"] == 20 and task.data_notes()["listed"] == 2000
    assert Counter(s.subset for s in samples) == {"dalle3": 495, "firefly": 495, "midjourney_v5": 495, "real": 495}
    outcome, results = evaluate("synthwildx", root, tmp_path / "out")
    assert set(results["metrics"]["pairing"]) == {"dalle3", "firefly", "midjourney_v5"}
    assert "495 reals" in results["metrics"]["pairing"]["dalle3"]
    assert results["metrics"]["groups"]["mean_over_generators"]["auc"]["data"]["generators"] == [
        "dalle3",
        "firefly",
        "midjourney_v5",
    ]
    assert results["data"]["missing"] == 20
    check = run_cli("data", "check", "synthwildx", "--data-root", str(root))
    assert check.returncode == 1 and "missing (20)" in check.stdout and "dalle3" in check.stdout


# -- folder layouts ------------------------------------------------------------------------------------
def test_aigcdetect_flat_nested_uppercase_corrupt_stray_and_missing(tmp_path):
    root = folder_tree(
        tmp_path / "aigc" / "test",
        {
            "progan/car/0_real": 3,
            "progan/car/1_fake": 3,
            "progan/cat/0_real": 2,
            "progan/cat/1_fake": 2,
            "DALLE2/0_real@jpg": 4,
            "DALLE2/1_fake": 4,
            "Glide/0_real@JPEG": 2,
            "Glide/1_fake@JPEG": 2,
        },
    )
    (root / "DALLE2" / "0_real" / "000000097792.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "Glide" / "1_fake" / "readme.txt").write_text("stray")
    task = AIGCDetectBenchmark(data_root=str(tmp_path / "aigc"))
    samples = list(task.samples())
    counts = Counter((s.subset, s.label) for s in samples)
    assert counts == {
        ("progan", 0): 5,
        ("progan", 1): 5,
        ("DALLE2", 0): 5,
        ("DALLE2", 1): 4,
        ("Glide", 0): 2,
        ("Glide", 1): 2,
    }
    assert {s.metadata.get("object_class") for s in samples if s.subset == "progan"} == {"car", "cat"}
    report = task.check()
    assert any("readme.txt" in u for u in report.unexpected)
    assert any("000000097792.jpg" in u for u in report.unreadable)
    assert "generator folder stylegan" in report.missing
    outcome, results = evaluate("aigcdetect", tmp_path / "aigc", tmp_path / "out", model_args={"decode": True})
    records = {r.sample_id: r for r in read_samples(outcome.results_path)}
    assert outcome.n_failed == 1 and "000000097792.jpg" in records["DALLE2/0_real/000000097792.jpg"].error
    assert set(results["metrics"]["subsets"]) == {"progan", "DALLE2", "Glide"}


def test_aigcdetect_from_a_local_hf_parquet_mirror(tmp_path):
    import datasets
    from benchmark_replicas import photo_bytes

    rows = {
        "image": [{"bytes": photo_bytes(i, "PNG"), "path": None} for i in range(6)],
        "label": [0, 1, 0, 1, 0, 1],
        "generator": ["Real", "ADM", "Real", "SDXL", "Real", "ADM"],
    }
    ds = datasets.Dataset.from_dict(
        rows,
        features=datasets.Features(
            {"image": datasets.Image(), "label": datasets.Value("int64"), "generator": datasets.Value("string")}
        ),
    )
    (tmp_path / "mirror" / "data").mkdir(parents=True)
    ds.to_parquet(str(tmp_path / "mirror" / "data" / "test-00000-of-00001.parquet"))
    task = AIGCDetectBenchmark(data_root=f"hf:{tmp_path / 'mirror'}")
    samples = list(task.samples())
    assert Counter(s.subset for s in samples) == {"real": 3, "ADM": 2, "SDXL": 1}
    assert isinstance(samples[0].image, bytes)
    outcome, results = evaluate("aigcdetect", f"hf:{tmp_path / 'mirror'}", tmp_path / "out")
    assert outcome.n_failed == 0 and results["metrics"]["pairing"]["ADM"].startswith("2 fakes of ADM")


def test_wildrf_platforms_splits_and_missing_platform(tmp_path):
    root = folder_tree(
        tmp_path / "WildRF",
        {
            "train/0_real@jpg": 3,
            "train/1_fake": 3,
            "val/0_real": 2,
            "val/1_fake": 2,
            "test/reddit/0_real@jpg": 3,
            "test/reddit/1_fake": 3,
            "test/twitter/0_real": 2,
            "test/twitter/1_fake": 2,
        },
    )
    task = build_task(HarnessPlugins(load_entrypoints=False), "wildrf", str(root))  # tasks/specs/wildrf.yaml
    assert Counter(s.subset for s in task.samples("test")) == {"reddit": 6, "twitter": 4}
    assert len(list(task.samples("train"))) == 6
    assert "test/facebook" in task.check().missing
    outcome, results = evaluate("wildrf", root, tmp_path / "out")
    assert results["counts"]["n_calibration"] == 4  # val split chooses the threshold
    assert set(results["metrics"]["subsets"]) == {"reddit", "twitter"}


def test_antifakeprompt_single_class_subsets(tmp_path):
    root = folder_tree(
        tmp_path / "afp",
        {"test/0_real/COCO@JPEG": 4, "test/0_real/Flickr": 3, "test/1_fake/SDXL": 3, "test/1_fake/lama": 2},
    )
    task = build_task(HarnessPlugins(load_entrypoints=False), "antifakeprompt", str(root))  # specs/*.yaml
    assert Counter(s.subset for s in task.samples()) == {"COCO": 4, "Flickr": 3, "SDXL": 3, "lama": 2}
    outcome, results = evaluate("antifakeprompt", root, tmp_path / "out")
    assert set(results["metrics"]["pairing"]) == {"SDXL", "lama"}
    assert "7 reals from COCO, Flickr" in results["metrics"]["pairing"]["SDXL"]
    assert results["metrics"]["subsets"]["COCO"]["auc"]["value"] is None
    assert results["metrics"]["groups"]["mean_over_subsets"]["acc"]["data"]["generators"] == [
        "COCO",
        "Flickr",
        "SDXL",
        "lama",
    ]
    assert results["metrics"]["groups"]["average"]["group"] == "mean_over_subsets"
    subsets = results["metrics"]["subsets"]
    for name in ("SDXL", "lama"):  # upstream runs once per folder: a fake folder's accuracy is its fake recall
        assert subsets[name]["acc"]["value"] == subsets[name]["fake_acc"]["value"]
        assert subsets[name]["acc"]["n"] == subsets[name]["fake_acc"]["n"] < subsets[name]["auc"]["n"]
    for name in ("COCO", "Flickr"):
        assert subsets[name]["acc"]["value"] == subsets[name]["real_acc"]["value"]
    per_folder = [subsets[s]["acc"]["value"] for s in ("COCO", "Flickr", "SDXL", "lama")]
    assert results["metrics"]["groups"]["mean_over_subsets"]["acc"]["value"] == pytest.approx(np.mean(per_folder))


def test_tasks_all_runs_what_is_present_and_says_why_others_are_skipped(tmp_path, aigi_mini):
    root = folder_tree(tmp_path / "WildRF", {"test/reddit/0_real": 2, "test/reddit/1_fake": 2})
    result = run_cli(
        "run",
        "--model",
        "noop",
        "--tasks",
        "all",
        "--output-dir",
        str(tmp_path / "out"),
        "--quiet",
        "--limit",
        "10",
        "--bootstrap",
        "0",
        env={"HARNESS_DATA_WILDRF": str(root), "HARNESS_DATA_FAKEBENCH": str(tmp_path / "nope")},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "wildrf: " in out and "aigi-mini: " in out
    assert "fakeclass: skipped: " in out and "not found" in out
    assert "synthwildx: skipped: no data: pass --data-root or set HARNESS_DATA_SYNTHWILDX" in out


def test_a_new_folder_benchmark_is_a_yaml_file_alone(tmp_path):
    """No Python: a spec in a folder passed with --include-path becomes a task that runs, checks and caches."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "my-bench.yaml").write_text(
        "name: my-bench\ndescription: 'a lab benchmark'\nlayout: class/subset\nsplits: [test]\n"
        "metrics: [acc, ap, auc]\nmain_metric: ap\naverage_over: subsets\n"
        "expected_subsets: {test: [0_real/COCO, 1_fake/SDXL, 1_fake/IF]}\n"
    )
    (specs / "broken.yaml").write_text("name: broken\nlayout: sideways\n")
    root = folder_tree(tmp_path / "data", {"test/0_real/COCO": 4, "test/1_fake/SDXL": 3})
    listing = run_cli("ls", "tasks", "--include-path", str(specs), "--json")
    assert listing.returncode == 0 and "my-bench" in {m["name"] for m in json.loads(listing.stdout)}
    assert "task spec skipped" in listing.stderr and "broken.yaml" in listing.stderr  # one bad file, named
    result = run_cli(
        "run",
        "--model",
        "noop",
        "--tasks",
        "my-bench",
        "--include-path",
        str(specs),
        "--data-root",
        str(root),
        "--output-dir",
        str(tmp_path / "out"),
        "--quiet",
        "--bootstrap",
        "0",
    )
    assert result.returncode == 0, result.stderr
    [path] = list((tmp_path / "out").rglob("results.json"))
    results = json.loads(path.read_text())
    assert set(results["metrics"]["subsets"]) == {"COCO", "SDXL"} and results["task"]["main_metric"] == "ap"
    assert results["metrics"]["groups"]["average"]["group"] == "mean_over_subsets"
    assert results["task"]["fingerprint"]["config"]["spec"]["layout"] == "class/subset"
    check = run_cli("data", "check", "my-bench", "--include-path", str(specs), "--data-root", str(root))
    assert check.returncode == 1 and "test/1_fake/IF" in check.stdout


def test_listing_reads_each_header_once_and_again_only_when_the_file_changes(tmp_path, monkeypatch):
    """Issue #31: headers memoised by (path, size, mtime); the scandir walk orders files as sorted(rglob) does."""
    import os

    from PIL import Image

    import harness.images as images
    from harness.tasks.common import files_below, header_metadata

    for rel in ("a/b/c.png", "a/B.png", "Z.png", "a b/y.png", "a-b/z.png", "aa.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / rel)
    expected = [p.relative_to(tmp_path).parts for p in sorted(tmp_path.rglob("*")) if p.is_file()]
    assert files_below(tmp_path) == expected
    reads = []
    real = images.file_metadata
    monkeypatch.setattr(images, "file_metadata", lambda path: reads.append(path) or real(path))
    paths = [str(tmp_path.joinpath(*parts)) for parts in expected]
    first = header_metadata(paths)
    assert len(reads) == 6 and first[paths[0]]["width"] == 4
    assert header_metadata(paths) == first and len(reads) == 6, "a rerun reads no header"
    Image.new("RGB", (8, 8)).save(paths[0])
    os.utime(paths[0], ns=(1, 1))
    assert header_metadata(paths)[paths[0]]["width"] == 8 and len(reads) == 7


def test_the_header_memo_follows_the_cache_folder_and_a_forked_process(tmp_path, monkeypatch):
    """The process keeps its memo connection between listings; another HARNESS_CACHE_DIR is another memo file,
    and a forked child opens its own connection instead of using its parent's."""
    import multiprocessing

    from PIL import Image

    import harness.file_memo as file_memo
    import harness.images as images
    from harness.tasks.common import header_metadata

    image = tmp_path / "data" / "x.png"
    image.parent.mkdir()
    Image.new("RGB", (4, 4)).save(image)
    reads = []
    real = images.file_metadata
    monkeypatch.setattr(images, "file_metadata", lambda path: reads.append(path) or real(path))
    for folder in ("one", "two", "one"):
        monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / folder))
        assert header_metadata([str(image)])[str(image)]["width"] == 4
        assert (tmp_path / folder / "file-memo.sqlite").exists()
    assert len(reads) == 2, "each memo file read the header once; back in the first, it was kept"
    if "fork" not in multiprocessing.get_all_start_methods():
        return
    parent = file_memo._kept
    with multiprocessing.get_context("fork").Pool(1) as pool:
        [child] = pool.map(_memo_in_child, [str(image)])
    assert child[0] == 4 and child[1] != parent[0], "the child used a connection of its own"
    assert file_memo._kept is parent


def _memo_in_child(path: str) -> tuple[int, int]:
    from harness import file_memo
    from harness.tasks.common import header_metadata

    width = header_metadata([path])[path]["width"]
    return width, file_memo._kept[0]
