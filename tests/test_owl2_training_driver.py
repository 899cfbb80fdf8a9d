"""`harness train fakescope --backbone mplug-owl2` drives the training script in the worker environment (its run
against the real upstream code is conformance/check_owl2_training.py, recorded in conformance/results/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.trainers.fakescope import FakeScopeTrainer

STAND_IN = """import json, os, sys
from pathlib import Path
argv = sys.argv[2:]
get = lambda flag: argv[argv.index(flag) + 1]
out = Path(get("--out")); out.mkdir(parents=True, exist_ok=True)
(out / "argv.json").write_text(json.dumps(sys.argv[1:]))
frozen = {"vision_encoder_unchanged": not os.environ.get("STAND_IN_CHANGES_ENCODER")}
(out / "harness_training.json").write_text(json.dumps({"losses": [2.0, 1.5], "frozen": frozen}))
"""


def test_the_worker_run_gets_every_setting_and_its_record_is_checked(tmp_path):
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\n{STAND_IN}")
    python.chmod(0o755)
    data = tmp_path / "fi.json"
    data.write_text("[]")
    trainer = FakeScopeTrainer(data=str(data), base="/models/owl2", backbone="mplug-owl2", python=str(python),
                               max_steps=6, batch_size=4, lr=1e-3, gradient_checkpointing=True,
                               deepspeed="trainers/deepspeed/zero2.json")  # fmt: skip
    summary = trainer.train([], [], tmp_path / "out", task_name="")
    assert summary["first_loss"] == 2.0 and summary["last_loss"] == 1.5 and summary["backbone"] == "mplug-owl2"
    argv = json.loads((tmp_path / "out" / "argv.json").read_text())
    assert Path(argv[0]).name == "owl2_train.py"
    settings = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert settings["--base"] == "/models/owl2" and settings["--max-steps"] == "6" and settings["--lr"] == "0.001"
    assert settings["--deepspeed"].endswith("trainers/deepspeed/zero2.json") and "--gradient-checkpointing" in argv


def test_a_changed_encoder_or_a_missing_environment_is_an_error(tmp_path, monkeypatch):
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\n{STAND_IN}")
    python.chmod(0o755)
    (tmp_path / "fi.json").write_text("[]")
    trainer = FakeScopeTrainer(data=str(tmp_path / "fi.json"), base="b", backbone="mplug-owl2", python=str(python))
    monkeypatch.setenv("STAND_IN_CHANGES_ENCODER", "1")
    with pytest.raises(RuntimeError, match="frozen vision encoder changed"):
        trainer.train([], [], tmp_path / "out", task_name="")
    with pytest.raises(ValueError, match="python=ENV/bin/python"):
        FakeScopeTrainer(data="d", base="b", backbone="mplug-owl2")
    with pytest.raises(ValueError, match="backbone must be one of"):
        FakeScopeTrainer(data="d", base="b", backbone="owl3")
    from harness.interfaces import ModelLoadError

    with pytest.raises(ModelLoadError, match="harness env create mplug-owl2"):
        FakeScopeTrainer(data="d", base="b", backbone="mplug-owl2", python=str(tmp_path / "nope")).train(
            [], [], tmp_path / "o", task_name=""
        )
