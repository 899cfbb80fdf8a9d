"""At home in the ecosystem (issue #17): lm-eval's spellings, the Python API, what a plugin author imports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from toy_components import MeanModel, ToyPlugin, write_toy_data

import harness
from harness.cli_args import parse_kv
from harness.plugin_manager import HarnessPlugins
from harness.runner import Evaluator, RunConfig, RunError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("eco") / "data", n_good=20, bad=False)


def test_model_args_as_json_or_key_values():
    assert parse_kv('{"pretrained": "x/y", "batch": 8, "flag": true}') == {
        "pretrained": "x/y",
        "batch": 8,
        "flag": True,
    }
    assert parse_kv("pretrained=x/y,batch=8") == {"pretrained": "x/y", "batch": 8}
    with pytest.raises(ValueError, match="JSON"):
        parse_kv('{"unterminated": ')


def test_lm_eval_spellings_run_unchanged(data, tmp_path):
    """An lm-eval user's command line, underscores and all, against the toy plugin."""
    cache = tmp_path / "mycache.sqlite"
    out = tmp_path / "out"
    site = str(Path(__file__).resolve().parent)
    env = {"PYTHONPATH": site, "HARNESS_LOAD_PLUGINS": None}
    code = (
        "import sys; from toy_components import ToyPlugin; from harness.plugin_manager import HarnessPlugins; "
        "import harness.cli as cli; cli.get_plugins = lambda: HarnessPlugins(extra_plugins=(ToyPlugin,)); "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    argv = [
        "run", "--model", "mean-model", "--model_args", '{"sleep": 0}', "--tasks", "toy-task",
        "--data_root", str(data), "--batch_size", "auto:8", "--output_path", str(out), "--log_samples",
        "--use_cache", str(cache), "--num_workers", "1", "--quiet",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, env=_env(env)
    )
    assert result.returncode == 0, result.stderr
    [results] = list(out.glob("*/toy-task/results.json"))
    assert cache.is_file() and not (out / ".cache" / "responses.sqlite").exists(), "--use_cache names the file"
    assert json.loads(results.read_text())["provenance"]["batch_size_found"] == 8
    listing = subprocess.run(
        [sys.executable, "-c", code, "run", "--model", "mean-model", "--tasks", "list"],
        capture_output=True, text=True, timeout=120, env=_env(env),
    )  # fmt: skip
    assert listing.returncode == 0 and "toy-task" in listing.stdout


def _env(overrides: dict[str, str | None]) -> dict[str, str]:
    import os

    env = dict(os.environ)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_help_names_the_lm_eval_spellings():
    text = run_cli("run", "--help").stdout
    for flag in ("--model_args", "--batch_size", "--output_path", "--gen_kwargs", "--use_cache", "--log_samples"):
        assert flag in text, flag


class MemoryBoundModel(MeanModel):
    """Runs out of memory on batches of more than 6, like a GPU would."""

    batches: list[int] = []

    def score_batch(self, inputs: Sequence[Any]) -> list[float]:
        MemoryBoundModel.batches.append(len(inputs))
        if len(inputs) > 6:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().score_batch(inputs)


class MemoryPlugin(ToyPlugin):
    @staticmethod
    @harness.hookimpl
    def register_models(register):
        register("memory-bound", "test_ecosystem:MemoryBoundModel")


def test_batch_size_auto_halves_until_it_fits(data, tmp_path):
    MemoryBoundModel.batches = []
    config = RunConfig(
        model="memory-bound", tasks="toy-task", data_root=str(data), output_dir=tmp_path, progress=False,
        bootstrap=0, audit=False, batch_size="auto:32", num_workers=2,
    )  # fmt: skip
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False, extra_plugins=(MemoryPlugin,))).run()
    assert outcome.status == "done" and outcome.n_failed == 0, "no sample pays for the search"
    assert MemoryBoundModel.batches[:3] == [20, 10, 5] and set(MemoryBoundModel.batches[2:]) == {5}
    assert json.loads(outcome.results_path.read_text())["provenance"]["batch_size_found"] == 5
    fixed = RunConfig(
        model="memory-bound", tasks="toy-task", data_root=str(data), output_dir=tmp_path / "fixed", progress=False,
        bootstrap=0, audit=False, batch_size=32, use_cache=False,
    )  # fmt: skip
    [plain] = Evaluator(fixed, HarnessPlugins(load_entrypoints=False, extra_plugins=(MemoryPlugin,))).run()
    assert plain.n_failed == 0, "a fixed batch size that fails falls back to one item at a time, as before"


SEEN: list[Any] = []


class Recorder(MeanModel):
    """Answers every question 'It is fake.' and records the decoding settings it was asked with."""

    request_kinds = frozenset({"generate"})

    def prepare(self, request):
        SEEN.append(request.generation)
        return request.sample.id

    def generate_batch(self, inputs):
        return ["It is fake."] * len(inputs)


def test_gen_kwargs_override_the_tasks_decoding_and_key_the_cache(data, tmp_path):
    from toy_components import ToyLmmPlugin

    class Plugin(ToyLmmPlugin):
        @staticmethod
        @harness.hookimpl
        def register_models(register):
            register("recorder", "test_ecosystem:Recorder")

    def run(**kwargs):
        config = RunConfig(
            model="recorder", tasks="toy-questions", data_root=str(data), output_dir=tmp_path, progress=False,
            bootstrap=0, audit=False, **kwargs,
        )  # fmt: skip
        return Evaluator(config, HarnessPlugins(load_entrypoints=False, extra_plugins=(Plugin,))).run()[0]

    SEEN.clear()
    run()
    assert {g.max_new_tokens for g in SEEN} == {8}  # the task's own
    SEEN.clear()
    changed = run(gen_kwargs={"max_new_tokens": 3, "temperature": 0.7})
    assert changed.n_cached == 0 and {(g.max_new_tokens, g.temperature) for g in SEEN} == {(3, 0.7)}
    with pytest.raises(RunError, match="unknown beams"):
        run(gen_kwargs={"beams": 4})


def test_python_api_round_trip(data, tmp_path):
    """harness.evaluate gives the numbers the CLI writes, from the same cache."""
    run = harness.evaluate(
        model="mean-model", tasks=["toy-task"], data_root=str(data), output_dir=tmp_path, plugins=[ToyPlugin],
        progress=False, bootstrap=0,
    )  # fmt: skip
    assert run.ok and run.model == "mean-model"
    auc = run.metrics("toy-task")["auc"].value
    # the same number from the images and scikit-learn alone
    import numpy as np
    from PIL import Image
    from sklearn.metrics import roc_auc_score

    lines = [line.split() for line in (data / "labels.txt").read_text().splitlines()]
    means = [np.asarray(Image.open(data / name).convert("RGB"), dtype=np.float64).mean() / 255 for name, _, _ in lines]
    assert auc == pytest.approx(roc_auc_score([int(label) for _, label, _ in lines], means), abs=1e-12)
    again = harness.evaluate(
        model="mean-model", tasks="toy-task", data_root=str(data), output_dir=tmp_path, plugins=[ToyPlugin],
        progress=False, bootstrap=0,
    )  # fmt: skip
    assert again.outcomes[0].n_cached == 20 and again.metrics("toy-task")["auc"].value == auc
    with pytest.raises(KeyError, match="no results for task 'nope'"):
        run.metrics("nope")


def test_plugin_authors_import_from_harness_itself():
    for name in ("ModelAdapter", "Task", "Metric", "Sample", "Request", "Prediction", "hookimpl", "evaluate"):
        assert hasattr(harness, name), name
    code = (
        "import sys, harness; heavy = [m for m in ('torch', 'numpy', 'PIL', 'sklearn') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", "importing harness stays cheap"


def test_a_rerun_keeps_the_earlier_results_and_the_board_shows_the_latest(data, tmp_path):
    from harness.boards import quick_spec, select_results
    from harness.results import find_results, load_results, read_samples

    def run(out, limit=None):
        return harness.evaluate(
            model="mean-model", tasks="toy-task", data_root=str(data), output_dir=out, plugins=[ToyPlugin],
            progress=False, bootstrap=0, limit=limit,
        )  # fmt: skip

    first = run(tmp_path / "a")
    second = run(tmp_path / "a")
    folder = Path(second.outcomes[0].results_path).parent
    stamped = sorted(folder.glob("results_*.json"))
    assert len(stamped) == 2 and len(sorted(folder.glob("samples_*.jsonl"))) == 2, "nothing overwritten"
    latest = json.loads((folder / "results.json").read_text())
    assert latest["latest"] is True and latest["run_file"] == stamped[-1].name
    assert json.loads(stamped[0].read_text())["created"] == first.results["toy-task"].created
    assert len(read_samples(stamped[0])) == 20 and all(r.cached for r in read_samples(stamped[1]))
    # an older run in another folder loses to the newer one of the same model and task
    newest = run(tmp_path / "b", limit=10)
    results = [load_results(p) for p in find_results([tmp_path / "a", tmp_path / "b"])]
    chosen = select_results(results, quick_spec(results, None))
    assert list(chosen) == [("mean-model", "toy-task")]
    assert chosen[("mean-model", "toy-task")].created == newest.results["toy-task"].created
    assert chosen[("mean-model", "toy-task")].counts.limit == 10


def test_served_models_are_named_by_what_they_serve(data, tmp_path, monkeypatch):
    from harness.boards import quick_spec, render_board
    from harness.results import find_results, load_results
    from harness.testkit.standin_engine import StandinEngine

    monkeypatch.setenv("HARNESS_API_KEY", "EMPTY")
    with StandinEngine(served_model_name="fakescope-llava", logprobs_mode="processed_logprobs") as engine:
        run = harness.evaluate(
            model="openai-api", model_args={"model": "fakescope-llava", "base_url": engine.base_url},
            tasks="toy-task", data_root=str(data), output_dir=tmp_path, plugins=[ToyPlugin], progress=False,
            bootstrap=0,
        )  # fmt: skip
    path = Path(run.outcomes[0].results_path)
    assert path.parent.parent.name.startswith("openai-api-fakescope-llava-")
    results = [load_results(p) for p in find_results([tmp_path])]
    board = render_board(quick_spec(results, None), results)
    assert "fakescope-llava" in board and "openai-api" not in board


def test_one_checkpoint_argument_name_across_adapters(tmp_path):
    import torch

    from harness.plugins.detectors import CNNSpot, build_resnet
    from harness.plugins.lmm import LlavaAdapter

    weights = tmp_path / "cnnspot.pth"
    torch.save({"model": build_resnet("resnet18").state_dict()}, weights)
    by_checkpoint = CNNSpot(checkpoint=str(weights), arch="resnet18")
    by_path = CNNSpot(path=str(weights), arch="resnet18")
    assert by_path.fingerprint() == by_checkpoint.fingerprint(), "one model, one cache key, whichever name"
    assert LlavaAdapter(checkpoint="/models/x").path == LlavaAdapter(path="/models/x").path == "/models/x"
    with pytest.raises(ValueError, match="name different things"):
        CNNSpot(checkpoint=str(weights), path="/elsewhere", arch="resnet18")


def test_records_name_their_image_file(data, tmp_path):
    from harness.results import read_samples

    run = harness.evaluate(
        model="mean-model", tasks="toy-task", data_root=str(data), output_dir=tmp_path, plugins=[ToyPlugin],
        progress=False, bootstrap=0,
    )  # fmt: skip
    records = read_samples(run.outcomes[0].results_path)
    assert all(Path(r.image) == data / r.sample_id for r in records)


def test_synthwildx_from_its_list_alone(tmp_path):
    """--task-args list_csv=FILE without --data-root: the images lie beside the list (upstream's layout)."""
    from benchmark_replicas import SHARED, synthwildx_root

    if not (SHARED / "synthwildx" / "list.csv").is_file():
        pytest.skip(f"{SHARED}/synthwildx/list.csv absent: the real upstream list is needed")
    from harness.tasks.synthwildx import SynthWildX

    root = synthwildx_root(tmp_path / "swx")
    task = SynthWildX(list_csv=str(root / "list.csv"))
    assert task.available() == (True, "")
    assert sum(1 for _ in task.samples()) == len((root / "list.csv").read_text().splitlines()) - 1


def test_pictures_from_any_results_folder(data, tmp_path):
    """ROC curves (overall and per generator) and the per-generator bars, with no board spec."""
    from PIL import Image

    from harness.cli import main

    for model in ("mean-model", "noop"):
        harness.evaluate(
            model=model, tasks="toy-task", data_root=str(data), output_dir=tmp_path / "results", plugins=[ToyPlugin],
            progress=False, bootstrap=0,
        )  # fmt: skip
    assert main(["leaderboard", str(tmp_path / "results"), "--plots", str(tmp_path / "figs")]) == 0
    roc, bars = tmp_path / "figs" / "figure-toy-task-roc.png", tmp_path / "figs" / "figure-toy-task-subsets.png"
    assert Image.open(roc).size[0] > 300 and Image.open(bars).size[0] > 300
    assert not list(Path.cwd().glob("figure-*.png")), "never into the working folder"


def test_lm_evals_own_make_table_reads_a_run(tmp_path, aigi_mini):
    """Issue #26 item 17: each run writes lm_eval_<time>.json in lm-eval's schema; lm-eval's own table reads it."""
    make_table = pytest.importorskip("lm_eval.utils", reason="lm-eval is not installed here").make_table
    config = RunConfig(model="noop", tasks="aigi-mini", limit=60, output_dir=tmp_path, progress=False, bootstrap=100)
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False)).run()
    [written] = list(outcome.results_path.parent.glob("lm_eval_*.json"))
    data = json.loads(written.read_text())
    table = make_table(data)
    auc = outcome.metrics["auc"]["value"]
    assert "aigi-mini" in table and f"{auc:.4f}" in table and "±" in table
    assert data["n-samples"]["aigi-mini"] == {"original": 440, "effective": 60}
    assert data["higher_is_better"]["aigi-mini"]["eer"] is False


def test_lm_eval_flags_work_or_say_why(tmp_path, aigi_mini):
    """Issue #26 item 18: lm-eval's flags are accepted where they mean something here and refused, with the
    reason, where they do not."""
    listing = run_cli("run", "--tasks", "list")
    assert listing.returncode == 0 and "aigi-mini" in listing.stdout, "no --model needed to list tasks"
    assert "needs --model" in run_cli("run", "--tasks", "aigi-mini").stderr
    config = tmp_path / "run.yaml"
    config.write_text("model: noop\ntasks: aigi-mini\nlimit: 0.05\nbootstrap: 0\n")
    ran = run_cli("run", "--config", str(config), "-o", str(tmp_path / "out"), "--show_config",
                  "--seed", "0,1234,1234,1234", "--quiet")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert '"limit": 0.05' in ran.stdout and '"seed": 0' in ran.stdout
    [results] = list((tmp_path / "out").rglob("results.json"))
    assert json.loads(results.read_text())["counts"]["n_samples"] == 22  # 5 % of 440
    spaced = run_cli("run", "-m", "noop", "-t", "aigi-mini", "aigi-mini", "-L", "10", "-o", str(tmp_path / "b"),
                     "--bootstrap", "0", "--quiet")  # fmt: skip
    assert spaced.returncode == 0, spaced.stderr
    refusals = [
        (["--num_fewshot", "5"], "zero-shot"),
        (["--write_out"], "samples.jsonl"),
        (["--predict_only"], "always computes"),
        (["--wandb_args", "project=x"], "Weights & Biases"),
    ]
    for flags, why in refusals:
        refused = run_cli("run", "-m", "noop", *flags)
        assert refused.returncode == 2 and why in refused.stderr, (flags, refused.stderr)
