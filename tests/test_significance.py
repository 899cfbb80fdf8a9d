"""Paired significance (issue #30): DeLong's test against its O(m·n) definition and against MLstatkit, the paired
bootstrap against its definition, and `harness compare` on two real runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli
from scipy.stats import norm

from harness.bootstrap import stratified_resamples
from harness.significance import accuracy, delong, paired_bootstrap


def delong_by_definition(labels, scores_a, scores_b):
    """DeLong, DeLong & Clarke-Pearson (1988) written out: placement values from every (fake, real) pair (ties
    1/2), their covariance over fakes and over reals, the variance of the difference, a two-sided normal p."""
    labels = np.asarray(labels)
    v10, v01, aucs = [], [], []
    for scores in (np.asarray(scores_a, float), np.asarray(scores_b, float)):
        x, y = scores[labels == 1], scores[labels == 0]
        psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    m, n = len(v10[0]), len(v01[0])
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    delta = aucs[0] - aucs[1]
    return aucs[0], aucs[1], 2 * norm.sf(abs(delta) / np.sqrt(variance))


@pytest.mark.parametrize("ties", [False, True], ids=["untied", "tied"])
def test_fast_delong_equals_its_definition(ties):
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], [70, 50])
    a = rng.normal(labels * 1.0, 1.0)
    b = 0.6 * a + rng.normal(labels * 0.5, 1.0)
    if ties:
        a, b = np.round(a, 1), np.round(b, 0)  # many tied scores, within and across the classes
    found = delong(labels, a, b)
    auc_a, auc_b, p = delong_by_definition(labels, a, b)
    assert found.a == pytest.approx(auc_a, abs=1e-12) and found.b == pytest.approx(auc_b, abs=1e-12)
    assert found.p == pytest.approx(p, rel=1e-9, abs=1e-12)
    assert found.ci[0] < found.delta < found.ci[1]


@pytest.mark.parametrize("ties", [False, True], ids=["untied", "tied"])
def test_delong_matches_mlstatkit(ties):
    """An independent implementation (MLstatkit, aligned with R pROC's roc.test) to 1e-6 on the p-value."""
    mlstatkit = pytest.importorskip("MLstatkit", reason="MLstatkit (a dev extra) is not installed")
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 300)
    a = rng.normal(labels * 0.9, 1.0)
    b = rng.normal(labels * 0.6, 1.0)
    if ties:
        a, b = np.round(a * 2) / 2, np.round(b * 2) / 2
    z, p = mlstatkit.Delong_test(labels, a, b, return_ci=False, return_auc=False)
    found = delong(labels, a, b)
    assert found.p == pytest.approx(p, abs=1e-6)
    assert np.sign(z) == -np.sign(found.delta), "MLstatkit signs z as B - A"


def test_the_paired_bootstrap_is_its_definition():
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1], [40, 60])
    a, b = rng.uniform(size=100), rng.uniform(size=100)
    found = paired_bootstrap("acc", accuracy, labels, a, b, n_resamples=300, seed=7)
    deltas = np.array([accuracy(labels[i], a[i]) - accuracy(labels[i], b[i])
                       for i in stratified_resamples(labels, 300, 7)])  # fmt: skip
    assert found.delta == pytest.approx(accuracy(labels, a) - accuracy(labels, b))
    extreme = min((deltas <= 0).sum(), (deltas >= 0).sum())
    assert found.p == pytest.approx(min(1.0, 2 * (extreme + 1) / 301))
    assert found.ci == pytest.approx(list(np.percentile(deltas, [2.5, 97.5])))
    same = paired_bootstrap("acc", accuracy, labels, a, a, n_resamples=50, seed=0)
    assert same.delta == 0 and same.p == 1.0


def test_compare_two_runs_and_refuse_other_samples(tmp_path, fredect_checkpoint, aigi_mini):
    """The demo's detectors on aigi-mini: FreDect against the noop model is a significant difference; runs over
    different samples are refused with a message saying so."""
    common = ["--tasks", "aigi-mini", "--bootstrap", "0", "--no-audit", "--quiet"]
    for name, args, out in (("fredect", ["--model-args", f"checkpoint={fredect_checkpoint}"], "f"),
                            ("noop", [], "n"), ("noop", ["--limit", "100"], "l")):  # fmt: skip
        done = run_cli("run", "--model", name, *args, *common, "--output-dir", str(tmp_path / out))
        assert done.returncode == 0, done.stderr
    folder = {k: next((tmp_path / k).glob("*/aigi-mini")) for k in "fnl"}
    result = run_cli("compare", str(folder["f"]), str(folder["n"]), "--json", "--resamples", "200")
    assert result.returncode == 0, result.stderr
    found = {d["metric"]: d for d in json.loads(result.stdout)["differences"]}
    assert found["auc"]["delta"] > 0.3 and found["auc"]["p"] < 1e-6 and found["ap"]["p"] < 0.05
    refused = run_cli("compare", str(folder["f"]), str(folder["l"]))
    assert refused.returncode == 2 and "not scored on the same samples" in refused.stderr
