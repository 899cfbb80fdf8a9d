"""The command line: help, listing without heavy imports, run, train, leaderboard, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli


def test_help_explains_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("run", "ls", "plugins", "train", "leaderboard", "HARNESS_LOAD_PLUGINS"):
        assert word in result.stdout
    run_help = run_cli("run", "--help").stdout
    assert "--model-args" in run_help and "resumes" in run_help


def test_listing_imports_no_heavy_library():
    code = (
        "import sys; from harness.cli import main; main(['ls', 'models']); main(['ls', 'tasks']); "
        "main(['ls', 'metrics']); main(['plugins']); "
        "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'scipy', 'numpy', 'PIL') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_ls_json_lists_manifests():
    models = json.loads(run_cli("ls", "models", "--json").stdout)
    fredect = next(m for m in models if m["name"] == "fredect")
    assert fredect["target"] == "harness.plugins.fredect:FreDect" and "fredect-dct" in fredect["aliases"]


def test_unknown_model_gets_did_you_mean_and_exit_2():
    result = run_cli("run", "--model", "fredetc", "--tasks", "aigi-mini")
    assert result.returncode == 2
    assert "Unknown model 'fredetc'. Did you mean: fredect" in result.stderr


def test_model_without_checkpoint_is_a_clear_error():
    result = run_cli("run", "--model", "fredect", "--tasks", "aigi-mini")
    assert result.returncode == 2 and "harness train fredect" in result.stderr


@pytest.mark.slow
def test_train_run_leaderboard_end_to_end(aigi_mini: Path, tmp_path: Path):
    ckpt, out, board = tmp_path / "fredect", tmp_path / "results", tmp_path / "board.md"
    train = run_cli("train", "fredect", "--task", "aigi-mini", "--out", str(ckpt), "--quiet")
    assert train.returncode == 0, train.stderr
    assert "validation:" in train.stdout and (ckpt / "weights.safetensors").exists()
    run = run_cli(
        "run",
        "--model",
        "fredect",
        "--model-args",
        f"checkpoint={ckpt}",
        "--tasks",
        "aigi-mini",
        "--output-dir",
        str(out),
        "--quiet",
        "--strict",
    )
    assert run.returncode == 0, run.stderr
    assert "aigi-mini" in run.stdout and "auc=" in run.stdout
    fs_ckpt = tmp_path / "fs"
    assert run_cli("train", "format-shortcut", "--task", "aigi-mini", "--out", str(fs_ckpt), "--quiet").returncode == 0
    assert (
        run_cli(
            "run",
            "--model",
            "format-shortcut",
            "--model-args",
            f"checkpoint={fs_ckpt}",
            "--output-dir",
            str(out),
            "--quiet",
        ).returncode
        == 0
    )
    result = run_cli("leaderboard", str(out), "-o", str(board))
    assert result.returncode == 0, result.stderr
    text = board.read_text()
    lines = [line for line in text.splitlines() if line.startswith("| fredect") or line.startswith("| format")]
    assert len(lines) == 2
    fredect_line = next(line for line in lines if line.startswith("| fredect"))
    assert "**" in fredect_line  # fredect is best on aigi-mini
    assert "| format-shortcut" in text and "50.00" in text


@pytest.mark.slow
def test_strict_turns_failed_samples_into_nonzero_exit(tmp_path: Path, fredect_checkpoint: Path):
    data = tmp_path / "mini"
    import shutil

    from harness.tasks.aigi_mini import ensure_built

    shutil.copytree(ensure_built(), data)
    first = json.loads((data / "manifest.jsonl").read_text().splitlines()[0])
    (data / first["path"]).write_bytes(b"garbage")
    args = [
        "run",
        "--model",
        "fredect",
        "--model-args",
        f"checkpoint={fredect_checkpoint}",
        "--tasks",
        "aigi-mini",
        "--split",
        first["split"],
        "--data-root",
        str(data),
        "--output-dir",
        str(tmp_path / "out"),
        "--quiet",
    ]
    relaxed = run_cli(*args)
    assert relaxed.returncode == 0, relaxed.stderr
    strict = run_cli(*args, "--strict")
    assert strict.returncode == 1 and "--strict" in strict.stderr


def test_tasks_all_reports_skips_and_runs_the_rest(tmp_path: Path, fredect_checkpoint: Path, aigi_mini: Path):
    result = run_cli(
        "run",
        "--model",
        "fredect",
        "--model-args",
        f"checkpoint={fredect_checkpoint}",
        "--tasks",
        "all",
        "--limit",
        "20",
        "--output-dir",
        str(tmp_path / "out"),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert "aigi-mini" in result.stdout and "done" in result.stdout


def test_env_create_dry_run_and_unknown_recipe(tmp_path: Path):
    result = run_cli("env", "create", "mplug-owl2", "--dir", str(tmp_path / "owl2"), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "-m venv" in result.stdout and "mplug-owl2.txt" in result.stdout and "torch==2.0.1" in result.stdout
    assert f"python={tmp_path / 'owl2' / 'bin' / 'python'}" in result.stdout
    assert "trust_remote_code" not in result.stdout
    assert "--source DIR" in result.stderr  # the git line needs a network; offline there is a way
    qwen = run_cli("env", "create", "qwen-vl-chat", "--dir", str(tmp_path / "qwen"), "--dry-run")
    assert qwen.returncode == 0 and "transformers==4.32.0" in qwen.stdout
    assert qwen.stdout.rstrip().endswith(",trust_remote_code=true")  # remote-code recipes say so
    bad = run_cli("env", "create", "nope", "--dry-run")
    assert bad.returncode == 2
    assert "available: internlm-xcomposer2-vl, mplug-owl2, qwen-vl-chat" in bad.stderr


def test_env_create_from_a_local_upstream_copy_installs_it_without_git(tmp_path: Path):
    upstream = tmp_path / "mPLUG-Owl"
    (upstream / "mPLUG-Owl2").mkdir(parents=True)
    (upstream / "mPLUG-Owl2" / "pyproject.toml").write_text("[project]\nname = 'mplug_owl2'\n")
    result = run_cli(
        "env", "create", "mplug-owl2", "--dir", str(tmp_path / "env"), "--source", str(upstream), "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "git+" not in result.stdout and "--source DIR" not in result.stderr
    assert f"pip install --no-deps {upstream / 'mPLUG-Owl2'}" in result.stdout
    wrong = run_cli(
        "env", "create", "mplug-owl2", "--dir", str(tmp_path / "env"), "--source", str(tmp_path), "--dry-run"
    )
    assert wrong.returncode == 2 and "no Python project at" in wrong.stderr


def test_a_failed_env_build_removes_what_it_made_and_prints_the_manual_recipe(tmp_path: Path):
    """E.g. pip cannot reach the git server: nothing half-built is left to be picked up by a later run."""
    fake_python = tmp_path / "python3"
    fake_python.write_text(
        '#!/bin/sh\n# "-m venv TARGET": make the folder, then fail like a broken step\nmkdir -p "$3/bin"; exit 3\n'
    )
    fake_python.chmod(0o755)
    target = tmp_path / "env"
    result = run_cli("env", "create", "mplug-owl2", "--dir", str(target), "--python", str(fake_python))
    assert result.returncode == 3
    assert "step failed with exit code 3" in result.stderr and "removed the half-built environment" in result.stderr
    assert "to build the mplug-owl2 environment by hand" in result.stderr and "--no-deps" in result.stderr
    assert not target.exists()


@pytest.mark.slow
def test_leaderboard_writes_plots_into_a_new_output_folder_and_never_into_the_cwd(tmp_path: Path):
    board = tmp_path / "board.yaml"
    table_vi = Path(__file__).resolve().parent.parent / "leaderboards" / "reported" / "fakescope-table-vi.yaml"
    board.write_text(
        f"layout: per_subset\ntasks: [aigcdetect]\nmetrics: [ap]\nplots: [subset_bars]\nreported: [{table_vi}]\n"
    )
    (tmp_path / "empty").mkdir()
    out = tmp_path / "new" / "deeper" / "board.md"
    written = run_cli("leaderboard", "--board", str(board), "--results", str(tmp_path / "empty"), "-o", str(out))
    assert written.returncode == 0, written.stderr
    assert out.exists() and (out.parent / "board-aigcdetect-subsets.png").exists()
    assert "![board-aigcdetect-subsets](board-aigcdetect-subsets.png)" in out.read_text()
    figures = tmp_path / "figures"  # --plots figures are linked from the board too, relative to it (#26 item 4)
    written = run_cli("leaderboard", "--board", str(board), "--results", str(tmp_path / "empty"), "-o", str(out),
                      "--plots", str(figures))  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert "](../../figures/figure-aigcdetect-subsets.png)" in out.read_text()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    shown = run_cli("leaderboard", "--board", str(board), "--results", str(tmp_path / "empty"), cwd=cwd)
    assert shown.returncode == 0 and "CNNSpot [paper]" in shown.stdout
    assert "pass -o FILE.md" in shown.stderr and not list(cwd.iterdir())


def test_first_hour_cli_papercuts(tmp_path):
    """Issue #26 items 13-14: `harness ls` alone lists every kind; a reader that leaves a pipe early is no error;
    a .json --output-path is refused with what to pass instead; the summary prints four decimals everywhere."""
    import subprocess
    import sys

    from harness.runner import TaskOutcome
    from harness.summary import format_run_summary

    listing = run_cli("ls")
    assert listing.returncode == 0 and all(f"\n{kind}s\n" in listing.stdout for kind in ("model", "task", "metric"))
    piped = subprocess.run(
        f"{sys.executable} -m harness.cli ls models --json | {sys.executable} -c 'import sys; sys.stdin.read(5)'",
        shell=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "BrokenPipeError" not in piped.stderr and "Traceback" not in piped.stderr
    refused = run_cli("run", "--model", "noop", "--tasks", "aigi-mini", "--output_path", str(tmp_path / "out.json"))
    assert refused.returncode == 2 and "names a file" in refused.stderr and not (tmp_path / "out.json").exists()
    metrics = {"auc": {"value": 1}, "acc": {"value": 0.95}}
    outcome = TaskOutcome("t", "done", results_path=tmp_path, main_metric="auc", n_samples=2, metrics=metrics,
                          audit=0.79, audit_majority=0.79)  # fmt: skip
    table = format_run_summary("m", [outcome])
    assert "auc=1.0000" in table and "0.9500" in table and "0.7900 / 0.7900" in table


def test_more_first_hour_papercuts(tmp_path, monkeypatch):
    """Issue #26 items 10 and 12: a missing optional package names the extra that installs it; a second
    --model-args adds to the first (a key twice is an error); a dead endpoint fails at once, in one line."""
    import importlib

    from harness.registry import Manifest, TargetImportError

    real_import = importlib.import_module

    def no_torch(name, *args):
        if name == "needs_torch":
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_torch)
    with pytest.raises(TargetImportError, match=r"pip install 'aigi-harness\[torch\]'"):
        Manifest(kind="model", name="x", target="needs_torch:X", plugin="p").load()
    monkeypatch.undo()

    twice = run_cli("run", "--model", "noop", "--model-args", "a=1", "--model-args", "a=2", "--tasks", "aigi-mini",
                    "--output-dir", str(tmp_path / "a"))  # fmt: skip
    assert twice.returncode == 2 and "a given twice" in twice.stderr
    dead = run_cli("run", "--model", "openai-api", "--model-args", "model=m,base_url=http://127.0.0.1:9/v1",
                   "--tasks", "aigi-mini", "--limit", "2", "--output-dir", str(tmp_path / "b"),
                   env={"HARNESS_API_KEY": "x"}, timeout=60)  # fmt: skip
    assert dead.returncode == 2 and "no endpoint accepts connections" in dead.stderr
    assert dead.stderr.strip().splitlines()[-1].startswith("error: openai-api: no endpoint accepts connections")


def test_device_cuda_without_a_gpu_is_an_error(tmp_path):
    """Issue #26 item 12: --device cuda on a machine without one says so instead of running on the CPU."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = run_cli("run", "-m", "noop", "--device", "cuda", "-o", str(tmp_path))
    assert result.returncode == 2 and "sees no CUDA device" in result.stderr


class GainTrainer:
    """A third-party trainer declaring its own ``harness train`` flag (below); records what it was given."""

    requires_task = False
    given: dict = {}

    def __init__(self, **args):
        GainTrainer.given = dict(args)

    def train(self, train, val, out_dir, task_name, resume=True):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return {"gain": GainTrainer.given.get("gain")}

    def evaluation_command(self, out_dir, task_name):
        return f"harness run --model gain --model-args checkpoint={out_dir}"


class GainPlugin:
    @staticmethod
    @__import__("harness").hookimpl
    def register_trainers(register):
        register("gain", f"{__name__}:GainTrainer", flags={"--gain": "how much gain", "--out": "clashes"})


def test_trainers_declare_their_own_flags_and_the_core_names_none(tmp_path):
    """Issue #27 item 4: `harness train` offers the flags trainers declared at registration (the core names no
    trainer), passes them as keyword arguments, refuses another trainer's flag, and leaves out a clashing one."""
    from harness.cli import build_parser, run_command
    from harness.plugin_manager import HarnessPlugins

    cli = Path(__file__).parents[1] / "harness" / "cli"
    cli_source = "".join((cli / name).read_text() for name in ("__init__.py", "common.py", "run.py", "train.py"))
    for trainer_word in ("fakescope", "--backbone", "--deepspeed", "owl2", "mplug"):
        assert trainer_word not in cli_source
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(GainPlugin,))
    train_help = build_parser(plugins)._subparsers._group_actions[0].choices["train"].format_help()
    assert "--gain GAIN" in train_help and "how much gain (gain)" in train_help and "--data DATA" in train_help
    assert any("--out of gain left out" in w for w in plugins.registry.warnings)

    import harness.cli

    original = harness.cli.get_plugins
    harness.cli.get_plugins = lambda: plugins
    try:
        assert run_command(["train", "gain", "--gain", "3", "--out", str(tmp_path / "g"), "--quiet"]) == 0
        assert GainTrainer.given == {"gain": "3"}
        assert json.loads((tmp_path / "g" / "train_summary.json").read_text()) == {"gain": "3"}
        args = build_parser(plugins).parse_args(["train", "gain", "--data", "x.json", "--out", str(tmp_path)])
        with pytest.raises(ValueError, match=r"--data is not an option of trainer 'gain' \(trainer 'fakescope' takes"):
            args.func(args, plugins)
    finally:
        harness.cli.get_plugins = original


def test_shared_options_are_spelled_the_same_on_every_command():
    """Issue #27 item 4: --data-root, --task-args and --include-path take both spellings wherever they appear."""
    from harness.cli import build_parser
    from harness.plugin_manager import HarnessPlugins

    parser = build_parser(HarnessPlugins(load_entrypoints=False))

    def walk(p, path=()):
        for action in p._actions:
            if isinstance(action, type(p._subparsers._group_actions[0])) if p._subparsers else False:
                for name, child in action.choices.items():
                    yield from walk(child, (*path, name))
        yield path, {s for a in p._actions for s in a.option_strings}

    seen = 0
    for path, flags in walk(parser):
        for dashed in ("--data-root", "--task-args", "--include-path", "--val-split"):
            if dashed in flags:
                seen += 1
                assert dashed.replace("-", "_").replace("__", "--") in flags, (path, dashed)
    assert seen >= 8  # run, train, data check, data export, ls, build-fakeinstruct ...
