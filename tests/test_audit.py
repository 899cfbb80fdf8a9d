"""The format-shortcut audit reported with every task's results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from harness.audit import format_shortcut_audit
from harness.records import Sample


def leaky_samples(root: Path, n: int = 40) -> list[Sample]:
    """Reals saved as JPEG, fakes as PNG (the GenImage / FakeClass pattern)."""
    import skimage.data

    photo = skimage.data.coffee()
    samples = []
    for i in range(n):
        crop = photo[i * 5 : i * 5 + 32, i * 7 : i * 7 + 32]
        label = i % 2
        path = root / (f"{i}.png" if label else f"{i}.jpg")
        Image.fromarray(crop).save(path, **({} if label else {"quality": 75}))
        samples.append(Sample(id=str(i), image=str(path), label=label))
    return samples


def test_audit_exposes_a_format_leak(tmp_path: Path):
    audit = format_shortcut_audit(leaky_samples(tmp_path))
    assert audit["cv_accuracy"] == 1.0 and audit["majority_rate"] == 0.5 and audit["n"] == 40
    assert audit["token_counts"]["real"][0][0] == ["format=JPEG", "width=32"]


def test_audit_is_at_chance_on_aigi_mini(aigi_mini: Path):
    from harness.tasks.aigi_mini import AigiMini

    audit = format_shortcut_audit(list(AigiMini().samples("test")))
    assert abs(audit["cv_accuracy"] - 0.5) < 0.02


def test_audit_counts_unreadable_and_handles_one_class(tmp_path: Path):
    samples = leaky_samples(tmp_path, 10)
    (tmp_path / "0.jpg").write_bytes(b"")
    audit = format_shortcut_audit(samples)
    assert audit["n_unreadable"] == 1 and audit["cv_accuracy"] is None and "at least 5" in audit["note"]


def test_results_carry_the_audit_ci_and_groups(fredect_checkpoint: Path, tmp_path: Path):
    from harness.plugin_manager import HarnessPlugins
    from harness.runner import Evaluator, RunConfig

    config = RunConfig(
        model="fredect",
        model_args={"checkpoint": str(fredect_checkpoint)},
        tasks="aigi-mini",
        output_dir=tmp_path,
        progress=False,
        bootstrap=200,
    )
    [outcome] = Evaluator(config, HarnessPlugins(load_entrypoints=False)).run()
    results = json.loads(outcome.results_path.read_text())
    assert abs(results["audit"]["format_shortcut"]["cv_accuracy"] - 0.5) < 0.02
    auc = results["metrics"]["all"]["auc"]
    assert auc["ci"][0] <= auc["value"] <= auc["ci"][1]
    assert results["counts"]["n_calibration"] == 300
    assert 0 < results["metrics"]["all"]["acc_val_threshold"]["data"]["threshold"] < 1
    assert results["seen_generators"] == ["diffusion-resynth", "gan-upsample", "latent-decoder"]
    assert set(results["metrics"]["groups"]) >= {"mean_over_generators", "seen", "seen_generators"}
    assert np.isfinite(results["metrics"]["all"]["eer"]["value"])


def test_audit_reuses_headers_the_listing_already_read(tmp_path):
    """Samples whose metadata carries every storage field are audited without opening their files."""
    from harness.audit import format_shortcut_audit
    from harness.records import Sample

    samples = [
        Sample(
            id=f"s{i}",
            image=str(tmp_path / f"absent{i}.png"),
            label=i % 2,
            metadata={
                "format": "PNG" if i % 2 else "JPEG",
                "width": 64,
                "height": 64,
                "mode": "RGB",
                "jpeg_quality": None if i % 2 else 90,
            },
        )
        for i in range(20)
    ]
    audit = format_shortcut_audit(samples)
    assert audit["n"] == 20 and audit["n_unreadable"] == 0 and audit["cv_accuracy"] == 1.0
    broken = Sample(id="b", image="x.png", label=1, metadata={"header_error": "x.png: empty file (0 bytes)"})
    assert format_shortcut_audit(samples + [broken])["n_unreadable"] == 1
