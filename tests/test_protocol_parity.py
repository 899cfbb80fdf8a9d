"""Protocol parity: each benchmark's own evaluation protocol, re-implemented here from its description
(``../shared/reference/benchmarks.md``, ``detectors.md``; written for this module, not copied), run on the
same scores as the harness, on generated layouts with ties, scores exactly at the threshold, nested and flat
folders, listed-but-missing files and unequal class counts. Every number both report must agree to 1e-9.

The scores come from a lookup model that returns a fixed P(fake) per file, so the comparison is about the
protocols, not about a network. What the harness reports differently *on purpose* is in ``docs/protocols.md``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmark_replicas import SHARED, folder_tree, synthwildx_root
from sklearn.metrics import accuracy_score, average_precision_score, balanced_accuracy_score, roc_auc_score

from harness import hookimpl
from harness.interfaces import ModelAdapter
from harness.plugin_manager import HarnessPlugins
from harness.runner import Evaluator, RunConfig

#: scores drawn from a small set: many ties, and 0.5 itself (upstream counts ``> 0.5`` as fake)
SCORE_VALUES = (0.05, 0.2, 0.35, 0.5, 0.5, 0.65, 0.8, 0.95)


def planted_score(name: str, label: int) -> float:
    """A deterministic P(fake) for a file: informative (fakes drawn from the upper values) but overlapping."""
    digest = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    values = SCORE_VALUES[2:] if label == 1 else SCORE_VALUES[:-2]
    return values[digest % len(values)]


class LookupModel(ModelAdapter):
    """P(fake) = :func:`planted_score` of the sample's id and label (what a detector would have output)."""

    def prepare(self, request):
        return request.sample

    def score_batch(self, inputs: Sequence[Any]) -> list[float]:
        return [planted_score(sample.id, sample.label) for sample in inputs]


class LookupPlugin:
    @staticmethod
    @hookimpl
    def register_models(register):
        register("lookup", "test_protocol_parity:LookupModel")


def harness_run(task: str, root: Path, out: Path, extra_metrics: Sequence[str] = ()) -> dict[str, Any]:
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(LookupPlugin,))
    config = RunConfig(
        model="lookup",
        tasks=task,
        data_root=str(root),
        output_dir=out,
        progress=False,
        bootstrap=0,
        audit=False,
        device="cpu",
        use_cache=False,
        extra_metrics=list(extra_metrics),
    )
    [outcome] = Evaluator(config, plugins).run()
    assert outcome.status == "done", outcome.reason
    return json.loads(outcome.results_path.read_text())


def value(results: dict, subset: str | None, metric: str) -> float:
    block = results["metrics"]["all"] if subset is None else results["metrics"]["subsets"][subset]
    return block[metric]["value"]


# -- CNNDetection / AIGCDetectBenchmark (eval.py / eval_all.py) --------------------------------------------------
def cnndetection_protocol(root: Path) -> dict[str, dict[str, float]]:
    """Per generator folder (its object categories pooled, as the multiclass sets are): y_pred > 0.5 is fake;
    acc = accuracy_score, r_acc / f_acc = accuracy on each class, ap = average_precision_score."""
    per_generator: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for path in sorted((root / "test").rglob("*")):
        if not path.is_file() or path.parent.name not in ("0_real", "1_fake"):
            continue
        generator = path.relative_to(root / "test").parts[0]
        label = 1 if path.parent.name == "1_fake" else 0
        per_generator[generator][0].append(label)
        per_generator[generator][1].append(planted_score(path.relative_to(root / "test").as_posix(), label))
    out = {}
    for generator, (y, p) in per_generator.items():
        y, p = np.array(y), np.array(p)
        out[generator] = {
            "acc": accuracy_score(y, p > 0.5),
            "real_acc": accuracy_score(y[y == 0], p[y == 0] > 0.5),
            "fake_acc": accuracy_score(y[y == 1], p[y == 1] > 0.5),
            "ap": average_precision_score(y, p),
        }
    return out


def univfd_oracle(y: np.ndarray, p: np.ndarray) -> float:
    """UnivFD ``validate.py``: reals first; separable -> the midpoint; else try every prediction as a threshold
    with ``>=``, keep the last best; report accuracy with ``>`` at it."""
    order = np.argsort(y, kind="stable")
    y, p = y[order], p[order]
    if p[y == 0].max() <= p[y == 1].min():
        threshold = (p[y == 0].max() + p[y == 1].min()) / 2
    else:
        best_acc, threshold = 0.0, 0.0
        for t in p:
            acc = ((p >= t).astype(int) == y).sum() / len(y)
            if acc >= best_acc:
                best_acc, threshold = acc, t
    return accuracy_score(y, p > threshold)


@pytest.fixture(scope="module")
def aigc_root(tmp_path_factory) -> Path:
    """Nested (progan/<category>/...) and flat generators, unequal class counts, upper-case extensions."""
    root = tmp_path_factory.mktemp("aigc")
    folder_tree(
        root / "test",
        {
            "progan/car/0_real": 5,
            "progan/car/1_fake": 3,
            "progan/cat/0_real": 2,
            "progan/cat/1_fake": 6,
            "DALLE2/0_real@jpg": 7,
            "DALLE2/1_fake": 4,
            "Glide/0_real@JPEG": 3,
            "Glide/1_fake@JPEG": 9,
        },
    )
    return root


def test_aigcdetectbenchmark_matches_cnndetections_protocol(aigc_root, tmp_path):
    results = harness_run("aigcdetect", aigc_root, tmp_path / "out", extra_metrics=["acc_oracle_univfd"])
    expected = cnndetection_protocol(aigc_root)
    assert set(results["metrics"]["subsets"]) == set(expected)
    for generator, metrics in expected.items():
        for name, number in metrics.items():
            assert value(results, generator, name) == pytest.approx(number, abs=1e-9), (generator, name)
    mean_ap = np.mean([m["ap"] for m in expected.values()])  # the benchmark's average over generators
    assert results["metrics"]["groups"]["mean_over_generators"]["ap"]["value"] == pytest.approx(mean_ap, abs=1e-9)


def test_univfd_oracle_accuracy_matches_its_protocol(aigc_root, tmp_path):
    results = harness_run("aigcdetect", aigc_root, tmp_path / "out", extra_metrics=["acc_oracle_univfd"])
    by_generator: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for path in sorted((aigc_root / "test").rglob("*.*")):
        label = 1 if path.parent.name == "1_fake" else 0
        generator = path.relative_to(aigc_root / "test").parts[0]
        by_generator[generator][0].append(label)
        by_generator[generator][1].append(planted_score(path.relative_to(aigc_root / "test").as_posix(), label))
    for generator, (y, p) in by_generator.items():
        oracle = univfd_oracle(np.array(y), np.array(p))
        assert value(results, generator, "acc_oracle_univfd") == pytest.approx(oracle, abs=1e-9), generator
        assert oracle >= value(results, generator, "acc") - 1e-12  # an oracle is never below the 0.5 threshold
    assert "acc_oracle_univfd" not in harness_run("aigcdetect", aigc_root, tmp_path / "plain")["metrics"]["all"]


def test_univfd_oracle_handles_separable_scores_and_ties_like_upstream():
    from harness.plugins.detection_metrics import UnivFDOracleAccuracy

    metric = UnivFDOracleAccuracy()
    cases = [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]),  # separable: midpoint, accuracy 1
        ([0, 0, 0, 1, 1], [0.5, 0.5, 0.2, 0.5, 0.9]),  # ties at the threshold: >= to search, > to count
        ([1, 0, 1, 0, 1, 1], [0.3, 0.3, 0.6, 0.7, 0.7, 0.2]),
    ]  # interleaved order, unequal counts
    for y, p in cases:
        y, p = np.array(y), np.array(p)
        assert metric.from_arrays(y, p) == pytest.approx(univfd_oracle(y, p), abs=1e-12)


# -- SynthWildX (compute_metrics.py) -----------------------------------------------------------------------------
needs_shared = pytest.mark.skipif(
    not (SHARED / "synthwildx" / "list.csv").exists(),
    reason=f"upstream list.csv not found at {SHARED} (../shared/data)",
)


def synthwildx_protocol(list_csv: Path, scores_csv: Path, column: str) -> dict[str, dict[str, float]]:
    """Merge on filename; per fake typ, the rows with typ in {real, typ}: AUC = roc_auc_score(label, score),
    acc = balanced_accuracy_score(label, score > 0) (scores are LLRs); AVG = the mean over generators."""
    listed = {row["filename"]: row["typ"] for row in csv.DictReader(Path(list_csv).read_text().splitlines())}
    scores = {row["filename"]: float(row[column]) for row in csv.DictReader(Path(scores_csv).read_text().splitlines())}
    merged = [(listed[f], s) for f, s in scores.items() if f in listed]
    out = {}
    for typ in sorted({t for t, _ in merged} - {"real"}):
        rows = [(t, s) for t, s in merged if t in ("real", typ)]
        y = np.array([int(t != "real") for t, _ in rows])
        s = np.array([s for _, s in rows])
        out[typ] = {"auc": roc_auc_score(y, s), "balanced_acc": balanced_accuracy_score(y, s > 0)}
    out["AVG"] = {k: float(np.mean([out[t][k] for t in out])) for k in ("auc", "balanced_acc")}
    return out


@pytest.mark.slow
@needs_shared
def test_synthwildx_llr_export_gives_upstreams_numbers(tmp_path):
    root = synthwildx_root(tmp_path / "swx", skip_every=37)  # listed-but-missing files, unequal counts
    results = harness_run("synthwildx", root, tmp_path / "out")
    [scores_csv] = list((tmp_path / "out").rglob("upstream_scores.csv"))
    expected = synthwildx_protocol(root / "list.csv", scores_csv, "harness")
    for typ in ("dalle3", "firefly", "midjourney_v5"):
        for name in ("auc", "balanced_acc"):
            assert value(results, typ, name) == pytest.approx(expected[typ][name], abs=1e-9), (typ, name)
    groups = results["metrics"]["groups"]["mean_over_generators"]
    assert groups["auc"]["value"] == pytest.approx(expected["AVG"]["auc"], abs=1e-9)
    assert groups["balanced_acc"]["value"] == pytest.approx(expected["AVG"]["balanced_acc"], abs=1e-9)
    # fed the probabilities instead, upstream's threshold at 0 calls everything synthetic: 0.5 everywhere
    prob_csv = tmp_path / "probabilities.csv"
    with open(prob_csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "typ", "harness"])
        for row in csv.DictReader(Path(scores_csv).read_text().splitlines()):
            writer.writerow([row["filename"], row["typ"], 1 / (1 + math.exp(-float(row["harness"])))])
    wrong = synthwildx_protocol(root / "list.csv", prob_csv, "harness")
    assert all(wrong[t]["balanced_acc"] == 0.5 for t in ("dalle3", "firefly", "midjourney_v5"))


# -- AntifakePrompt (one test run per folder) ----------------------------------------------------------------------
def test_antifakeprompt_matches_its_per_folder_protocol(tmp_path):
    root = folder_tree(
        tmp_path / "afp",
        {
            "test/0_real/COCO@JPEG": 6,
            "test/0_real/Flickr": 3,
            "test/1_fake/SDXL": 5,
            "test/1_fake/lama": 2,
            "test/1_fake/IF": 7,
        },
    )
    results = harness_run("antifakeprompt", root, tmp_path / "out")
    per_folder = {}
    for folder in sorted((root / "test").glob("*/*")):
        label = 1 if folder.parent.name == "1_fake" else 0
        predicted = [planted_score(p.relative_to(root).as_posix(), label) > 0.5 for p in sorted(folder.iterdir())]
        per_folder[folder.name] = float(np.mean([int(x) == label for x in predicted]))  # the folder's accuracy
    for folder, accuracy in per_folder.items():
        assert value(results, folder, "acc") == pytest.approx(accuracy, abs=1e-9), folder
    average = results["metrics"]["groups"]["mean_over_subsets"]["acc"]["value"]
    assert average == pytest.approx(np.mean(list(per_folder.values())), abs=1e-9)  # the paper's "Avg"
