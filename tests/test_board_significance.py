"""Boards mark the models not significantly different from a column's best (issue #30 item 3): the marks against
an independent computation (MLstatkit's DeLong test and statsmodels' Holm correction, both test-only dev extras),
on tied and untied scores, from real runs on aigi-mini."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from conftest import run_cli

from harness import hookimpl
from harness.board_significance import SampleScores, holm
from harness.boards import BoardSpec, render_board
from harness.interfaces import ModelAdapter
from harness.plugin_manager import HarnessPlugins
from harness.records import Request
from harness.results import load_results, read_samples
from harness.runner import Evaluator, RunConfig

#: model -> (how far apart its real and fake scores are, its own noise's weight)
MODELS = {"strong": (2.0, 0.3), "close": (1.9, 0.3), "medium": (1.2, 0.6), "weak": (0.3, 1.0)}


def _noise(sample_id: str, salt: str) -> float:
    """A standard-normal-ish number fixed by the id (and salt), without a shared random state."""
    digest = hashlib.blake2b(f"{salt}/{sample_id}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest[:4], "big") + 0.5) / 2**32, (int.from_bytes(digest[4:], "big") + 0.5) / 2**32
    return float(np.sqrt(-2 * np.log(u[0])) * np.cos(2 * np.pi * u[1]))


class SeparationModel(ModelAdapter):
    """Scores that separate the classes by ``gap`` (it reads the label: a test fixture, not a detector), with a
    noise shared by all models plus ``own`` of its own, so that models' scores are correlated as real ones are;
    ``ties`` rounds them to one decimal."""

    request_kinds = frozenset({"score"})

    def __init__(self, gap: float = 1.0, own: float = 0.5, ties: bool = False, **args: Any) -> None:
        super().__init__(gap=gap, own=own, ties=ties, **args)
        self.gap, self.own, self.ties = float(gap), float(own), bool(ties)

    def prepare(self, request: Request) -> tuple[str, int]:
        """The id and label."""
        return request.sample.id, int(request.sample.label)

    def score_batch(self, inputs: Sequence[tuple[str, int]]) -> list[float]:
        """A logistic of gap·(±1/2) + shared noise + own noise."""
        out = []
        for sample_id, label in inputs:
            z = self.gap * (label - 0.5) + _noise(sample_id, "shared") + self.own * _noise(sample_id, f"{self.gap}")
            score = 1 / (1 + np.exp(-z))
            out.append(round(score, 1) if self.ties else float(score))
        return out


class SeparationPlugin:
    @staticmethod
    @hookimpl
    def register_models(register):
        register("separation", "test_board_significance:SeparationModel")


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def four_runs(request, aigi_mini, tmp_path_factory):
    """Four models on aigi-mini's 440 images; their results, named as the board shows them."""
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, (gap, own) in MODELS.items():
        config = RunConfig(
            model="separation", model_args={"gap": gap, "own": own, "ties": request.param}, tasks="aigi-mini",
            output_dir=out / name, progress=False, bootstrap=0, audit=False, label=name,
        )  # fmt: skip
        [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False, extra_plugins=(SeparationPlugin,))).run()
        assert outcome.status == "done", outcome.reason
        runs[name] = load_results(outcome.results_path)
    return request.param, runs


def _expected(runs: dict, metric: str) -> tuple[str, dict[str, float]]:
    """The column's best and each other model's Holm-adjusted p-value, computed independently: MLstatkit's DeLong
    test for AUC, statsmodels' Holm correction."""
    mlstatkit = pytest.importorskip("MLstatkit", reason="MLstatkit (a dev extra) is not installed")
    multitest = pytest.importorskip("statsmodels.stats.multitest", reason="statsmodels (a dev extra) is not installed")
    scored = {}
    for name, result in runs.items():
        records = sorted(read_samples(result.path), key=lambda r: r.sample_id)
        scored[name] = (np.array([r.label for r in records]), np.array([r.score for r in records]))
    best = max(runs, key=lambda n: runs[n].metrics.all[metric].value)
    others = [n for n in runs if n != best]
    raw = [mlstatkit.Delong_test(scored[best][0], scored[best][1], scored[n][1], return_ci=False,
                                 return_auc=False)[1] for n in others]  # fmt: skip
    adjusted = multitest.multipletests(raw, alpha=0.05, method="holm")[1]
    return best, dict(zip(others, adjusted, strict=True))


def test_auc_marks_match_delong_and_holm_computed_independently(four_runs):
    ties, runs = four_runs
    best, adjusted = _expected(runs, "auc")
    assert best in ("strong", "close")
    spec = BoardSpec(title="t", layout="metrics", tasks=["aigi-mini"], metrics=["auc"], significance=0.05)
    from harness.board_significance import ColumnInput, column_verdict

    values = {n: r.metrics.all["auc"].value for n, r in runs.items()}
    verdict = column_verdict(ColumnInput("auc", None, values, dict(runs), [best]), SampleScores())
    assert verdict is not None and verdict.best == best
    for name, p in adjusted.items():
        assert verdict.adjusted[name] == pytest.approx(p, abs=1e-6), name
    not_different = {n for n, p in adjusted.items() if p >= 0.05}
    assert "weak" not in not_different and "medium" not in not_different  # a real gap is found
    assert ("close" in not_different) or best == "close", "two near-identical models are not told apart"
    board = render_board(spec, list(runs.values()))
    rows = {line.split("|")[1].strip(): line for line in board.splitlines() if line.startswith("| ")}
    for name in runs:
        assert ("<sup>ns</sup>" in rows[name]) == (name in not_different), rows[name]
    assert "tested in 1 of 1 AUC/AP/Acc columns" in board and "α = 0.05" in board


def test_ap_and_acc_columns_are_tested_by_the_paired_bootstrap(four_runs):
    _, runs = four_runs
    spec = BoardSpec(title="t", layout="metrics", tasks=["aigi-mini"], metrics=["ap", "acc"], significance=0.05)
    board = render_board(spec, list(runs.values()))
    assert "tested in 2 of 2 AUC/AP/Acc columns" in board
    weak = next(line for line in board.splitlines() if line.startswith("| weak"))
    assert "<sup>ns</sup>" not in weak  # AP and accuracy at chance against the best: significant
    off = render_board(BoardSpec(title="t", layout="metrics", tasks=["aigi-mini"], metrics=["ap"]), list(runs.values()))
    assert "<sup>ns</sup>" not in off and "Holm" not in off, "off unless asked for"


def test_holm_is_statsmodels_holm():
    multitest = pytest.importorskip("statsmodels.stats.multitest", reason="statsmodels (a dev extra) is not installed")
    rng = np.random.default_rng(2)
    for size in (1, 2, 5, 12):
        p = rng.uniform(0, 0.2, size).tolist() + [0.03, 0.03]  # ties among the p-values too
        assert holm(p) == pytest.approx(multitest.multipletests(p, method="holm")[1].tolist(), abs=1e-12)


def test_a_column_of_other_samples_or_printed_values_is_not_tested(four_runs, tmp_path):
    _, runs = four_runs
    changed = dict(runs)
    values = {n: r.metrics.all["auc"].value for n, r in runs.items()}
    values["weak"] = 0.99  # not what its samples give: the test would not be of the number shown
    from harness.board_significance import ColumnInput, column_verdict

    verdict = column_verdict(ColumnInput("auc", None, values, changed, ["strong"]), SampleScores())
    assert verdict is not None and "weak" not in verdict.p
    assert column_verdict(ColumnInput("eer", None, values, changed, ["strong"]), SampleScores()) is None


def test_leaderboard_significance_flag(four_runs):
    _, runs = four_runs
    folders = [str(r.path.parent) for r in runs.values()]
    done = run_cli("leaderboard", *folders, "--metric", "auc", "--significance")
    assert done.returncode == 0, done.stderr
    assert "<sup>ns</sup>" in done.stdout and "α = 0.05" in done.stdout
    bad = run_cli("leaderboard", *folders, "--significance", "5")
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr


def test_per_generator_columns_are_tested_on_their_samples_with_the_real_pool(four_runs):
    """A generator's AUC pairs its fakes with every real image (as the column's value does); the average over
    generators is no one sample set's value and is not tested."""
    _, runs = four_runs
    spec = BoardSpec(title="t", layout="per_subset", tasks=["aigi-mini"], metrics=["auc"], significance=0.05)
    board = render_board(spec, list(runs.values()))
    assert "tested in 3 of 4 AUC/AP/Acc columns" in board
    weak = next(line for line in board.splitlines() if line.startswith("| weak"))
    assert "<sup>ns</sup>" not in weak


def test_compare_refuses_runs_of_different_tasks(four_runs, tmp_path):
    import json
    import shutil

    _, runs = four_runs
    source = runs["strong"].path
    other = tmp_path / "other"
    shutil.copytree(source.parent, other)
    data = json.loads((other / "results.json").read_text())
    data["task"]["name"] = "aigi-mini+jpeg-q50"
    (other / "results.json").write_text(json.dumps(data))
    refused = run_cli("compare", str(source.parent), str(other))
    assert (
        refused.returncode == 2
        and "is a run of 'aigi-mini'" in refused.stderr
        and "'aigi-mini+jpeg-q50'" in refused.stderr
    )
