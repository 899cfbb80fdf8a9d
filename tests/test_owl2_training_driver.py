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


def fake_upstream(monkeypatch, tmp_path):
    """Stand-ins for what owl2_train.py imports in the worker environment (mplug_owl2's model and data pipeline,
    DeepSpeed, the tokenizer and image processor), small enough to train on the CPU in a second."""
    import importlib.machinery
    import types

    import torch
    import transformers

    class TinyOwl(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.vision_model, self.lm = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
            self.config = types.SimpleNamespace(use_cache=True, image_aspect_ratio="pad")

        @classmethod
        def from_pretrained(cls, base, **kwargs):
            return cls()

        def get_model(self):
            return self

        def forward(self, input_ids, labels, attention_mask, images):
            return types.SimpleNamespace(loss=((self.lm(self.vision_model(images)).squeeze(-1) - labels) ** 2).mean())

        def save_pretrained(self, path, safe_serialization=True):
            torch.save(self.state_dict(), Path(path) / "weights.pt")

    class Dataset(torch.utils.data.Dataset):
        def __init__(self, data_path, tokenizer, data_args):
            self.items = json.loads(Path(data_path).read_text())

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return {"images": torch.full((4,), float(i)), "labels": torch.tensor(float(i % 2))}

    def collate(batch):
        images = torch.stack([b["images"] for b in batch])
        n = len(batch)
        return {"images": images, "labels": torch.stack([b["labels"] for b in batch]),
                "input_ids": torch.zeros(n, 1, dtype=torch.long), "attention_mask": torch.ones(n, 1)}  # fmt: skip

    class Engine:
        def __init__(self, model, params):
            self.module, self.device, self.optimizer = model, "cpu", torch.optim.SGD(params, lr=0.1)

        def __call__(self, **kwargs):
            return self.module(**kwargs)

        def backward(self, loss):
            loss.backward()

        def step(self):
            self.optimizer.step()
            self.optimizer.zero_grad()

        def save_checkpoint(self, folder, client_state):
            Path(folder).mkdir(parents=True, exist_ok=True)
            torch.save({"model": self.module.state_dict(), "client": client_state}, Path(folder) / "state.pt")
            (Path(folder) / "latest").write_text("state")

        def load_checkpoint(self, folder):
            saved = torch.load(Path(folder) / "state.pt", weights_only=False)
            self.module.load_state_dict(saved["model"])
            return None, saved["client"]

    train = types.SimpleNamespace(
        conversation_lib=types.SimpleNamespace(conv_templates={"mplug_owl2": "owl2"}, default_conversation=None),
        DataArguments=lambda **kw: types.SimpleNamespace(**kw),
        LazySupervisedDataset=Dataset,
        DataCollatorForSupervisedDataset=lambda tokenizer: collate,
    )

    def module(name, **attributes):  # a module object with a spec, as importlib's checks want
        made = types.ModuleType(name)
        made.__spec__ = importlib.machinery.ModuleSpec(name, None)
        made.__dict__.update(attributes)
        return made

    train = module("mplug_owl2.train.train", **vars(train))
    modules = {
        "mplug_owl2": module("mplug_owl2", __version__="stand-in"),
        "mplug_owl2.model": module("mplug_owl2.model"),
        "mplug_owl2.model.modeling_mplug_owl2": module("m", MPLUGOwl2LlamaForCausalLM=TinyOwl),
        "mplug_owl2.train": module("mplug_owl2.train", train=train),
        "mplug_owl2.train.train": train,
        "deepspeed": module(
            "deepspeed",
            __version__="stand-in",
            initialize=lambda model, model_parameters, config: (Engine(model, model_parameters), None, None, None),
            zero=types.SimpleNamespace(GatheredParameters=None),
        ),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    saver = types.SimpleNamespace(save_pretrained=lambda path: None)
    tokenizer = types.SimpleNamespace(
        pad_token=None, unk_token="<unk>", model_max_length=0, save_pretrained=lambda p: None
    )
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    monkeypatch.setattr(transformers.CLIPImageProcessor, "from_pretrained", lambda *a, **k: saver)
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_PORT": "29999"}.items():
        monkeypatch.setenv(key, value)
    images = []
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(b"png")
        images.append({"image": f"{i}.png", "authenticity": "fake" if i % 2 else "real", "generator": "sd"})
    data = tmp_path / "fi.json"
    data.write_text(json.dumps(images))
    return data


def test_the_training_script_steps_resumes_and_checks_the_frozen_encoder(tmp_path, monkeypatch, capsys):
    """owl2_train.py's own flow on stand-ins of its upstream imports: the vision encoder frozen (digest unchanged,
    only the rest trained), steps and losses recorded, a checkpoint every --save-steps, a rerun with more steps
    resumes from the last one, and a missing image is an error before anything trains."""
    from harness.plugins.lmm.backends import owl2_train

    data = fake_upstream(monkeypatch, tmp_path)
    out = tmp_path / "out"
    common = ["--base", "b", "--data", str(data), "--out", str(out), "--image-folder", str(tmp_path),
              "--batch-size", "2", "--save-steps", "2", "--bf16", "false"]  # fmt: skip
    assert owl2_train.main([*common, "--max-steps", "3"]) == 0
    record = json.loads((out / "harness_training.json").read_text())
    assert record["steps"] == 3 and len(record["losses"]) == 3 and record["frozen"]["vision_encoder_unchanged"]
    assert record["frozen"]["trainable_parameters"] == 5  # the 4x1 head and its bias; the encoder frozen
    assert record["trained_on"]["seen_generators"] == ["sd"] and record["deepspeed"]["zero_stage"] == 2
    assert owl2_train.main([*common, "--max-steps", "5"]) == 0
    assert "resumed from step 3" in capsys.readouterr().out
    again = json.loads((out / "harness_training.json").read_text())
    assert again["steps"] == 5 and again["losses"][:3] == record["losses"]
    (tmp_path / "4.png").unlink()
    assert owl2_train.main([*common, "--out", str(tmp_path / "other")]) == 2
    assert "image files not found" in capsys.readouterr().err
