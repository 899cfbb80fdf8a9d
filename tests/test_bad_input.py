"""Files a real benchmark folder holds: none aborts a run, each bad one is that sample's error naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import toy_components
from benchmark_replicas import folder_tree
from test_images import bomb_png

from harness.plugin_manager import HarnessPlugins
from harness.results import read_samples
from harness.runner import Evaluator, RunConfig


def run(root: Path, out: Path):
    """``mean-model`` (decodes every image) on the folder as AIGCDetectBenchmark."""
    config = RunConfig(
        model="mean-model",
        tasks="aigcdetect",
        data_root=str(root),
        output_dir=out,
        progress=False,
        bootstrap=0,
        audit=False,
        device="cpu",
    )
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyPlugin,))
    [outcome] = Evaluator(config, plugins).run()
    return outcome


def test_non_utf8_names_and_a_bomb_fail_or_score_per_sample_and_resume(tmp_path):
    root = folder_tree(tmp_path / "aigc" / "test", {"gen/0_real": 3, "gen/1_fake": 3})
    fake = root / "gen" / "1_fake"
    good_latin1 = os.fsdecode(os.fsencode(str(fake)) + b"/caf\xe9.png")  # a Latin-1 name on a UTF-8 system
    Path(good_latin1).write_bytes((fake / "img000.png").read_bytes())
    broken_latin1 = os.fsdecode(os.fsencode(str(fake)) + b"/na\xefve.png")
    Path(broken_latin1).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (fake / "bomb.png").write_bytes(bomb_png())
    outcome = run(tmp_path / "aigc", tmp_path / "out")
    assert outcome.status == "done" and outcome.n_samples == 9 and outcome.n_failed == 2
    records = {r.sample_id: r for r in read_samples(outcome.results_path)}
    assert records["gen/1_fake/caf\\xe9.png"].score is not None  # scored, and named recognisably
    assert "na\\xefve.png" in records["gen/1_fake/na\\xefve.png"].error
    assert "image too large" in records["gen/1_fake/bomb.png"].error
    results = json.loads(outcome.results_path.read_text(encoding="utf-8"))
    assert results["counts"]["n_failed"] == 2
    again = run(tmp_path / "aigc", tmp_path / "out")  # resume: everything answered is served from the cache
    assert again.n_cached == 7 and again.n_failed == 2


# -- the standing corpus: every kind of file a scraped benchmark folder holds ---------------------------------------
def corpus(root: Path) -> dict[str, tuple[str, object]]:
    """Write the corpus; returns name -> ("score", expected P(fake) = mean pixel / 255 on correct pixels) or
    ("error", words the sample's error must contain)."""
    import io

    import numpy as np
    import skimage.data
    from PIL import Image
    from test_images import _roundtrip, bomb_png

    photo = skimage.data.astronaut()[:32, :32]
    expect: dict[str, tuple[str, object]] = {}

    def save(name: str, image: Image.Image, fmt: str, reference: np.ndarray, **kwargs) -> None:
        image.save(root / name, format=fmt, **kwargs)
        expect[name] = ("score", float(np.asarray(reference, dtype=np.float64).mean() / 255))

    rgb = Image.fromarray(photo)
    save("rgb.png", rgb, "PNG", photo)
    save("one-pixel.png", Image.new("RGB", (1, 1), (10, 200, 30)), "PNG", np.array([[[10, 200, 30]]]))
    grey = np.asarray(rgb.convert("L"))
    save("grey.png", Image.fromarray(grey), "PNG", grey)
    sixteen = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    save("sixteen-bit.png", Image.fromarray(sixteen), "PNG", np.round(sixteen / 65535 * 255))
    rgba = np.dstack([photo, np.full((32, 32), 90, np.uint8)])
    save("rgba.png", Image.fromarray(rgba, mode="RGBA"), "PNG", photo)  # alpha dropped, as upstream loaders
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    save("palette.png", palette, "PNG", np.asarray(palette.convert("RGB")))
    frames = [Image.new("RGB", (8, 8), (200, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 200))]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:], duration=50)
    expect["animated.gif"] = (
        "score",
        float(np.asarray(Image.open(root / "animated.gif").convert("RGB")).mean() / 255),
    )  # the first frame
    save(
        "photo.webp",
        rgb,
        "WEBP",
        np.asarray(Image.open(io.BytesIO(_roundtrip(rgb, "WEBP", lossless=True))).convert("RGB")),
        lossless=True,
    )
    save("photo.tiff", rgb, "TIFF", photo)
    cmyk = rgb.convert("CMYK")
    cmyk.save(root / "cmyk.jpg", format="JPEG", quality=95)
    expect["cmyk.jpg"] = (
        "score",
        float(np.asarray(Image.open(root / "cmyk.jpg").convert("RGB"), dtype=np.float64).mean() / 255),
    )
    exif = Image.Exif()
    exif[0x0112] = 9  # orientation out of range
    save("bad-orientation.png", rgb, "PNG", photo, exif=exif.tobytes())
    save("corrupt-exif.png", rgb, "PNG", photo, exif=b"Exif\x00\x00not-a-tiff-header")
    jpeg = _roundtrip(rgb, "JPEG", quality=90)
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    expect["truncated.jpg"] = ("error", "truncated.jpg: corrupt or truncated")
    png = (root / "rgb.png").read_bytes()
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    expect["truncated.png"] = ("error", "truncated.png: corrupt or truncated")
    (root / "zero.png").write_bytes(b"")
    expect["zero.png"] = ("error", "zero.png: empty file")
    (root / "random.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    expect["random.jpg"] = ("error", "random.jpg: not a readable image")
    (root / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    expect["notes.jpg"] = ("error", "notes.jpg: not a readable image")
    (root / "page.png").write_text("<html><body>404 Not Found</body></html>\n")
    expect["page.png"] = ("error", "page.png: not a readable image")
    (root / "bomb.png").write_bytes(bomb_png())
    expect["bomb.png"] = ("error", "bomb.png: image too large")
    os.symlink(root / "no-such-target.png", root / "dangling.png")
    expect["dangling.png"] = ("error", "dangling.png: cannot read file (No such file or directory)")
    (root / "folder.png").mkdir()
    expect["folder.png"] = ("error", "folder.png: cannot read file (Is a directory)")
    if os.geteuid() != 0:
        (root / "locked.png").write_bytes(png)
        (root / "locked.png").chmod(0)
        expect["locked.png"] = ("error", "locked.png")
    else:
        print("corpus: no unreadable-file case: running as root, which reads any file")
    (root / "labels.txt").write_text("".join(f"{name} 1 corpus\n" for name in expect))
    return expect


def test_the_bad_input_corpus_runs_to_the_end_with_exact_counts(tmp_path):
    import resource

    import pytest

    root = tmp_path / "corpus"
    root.mkdir()
    expect = corpus(root)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    plugins = HarnessPlugins(load_entrypoints=False, extra_plugins=(toy_components.ToyPlugin,))
    config = RunConfig(
        model="mean-model",
        tasks="toy-task",
        data_root=str(root),
        output_dir=tmp_path / "out",
        progress=False,
        bootstrap=0,
        audit=True,
        device="cpu",
        batch_size=4,
    )
    [outcome] = Evaluator(config, plugins).run()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert outcome.status == "done"
    records = {r.sample_id: r for r in read_samples(outcome.results_path)}
    errors = {name for name, (kind, _) in expect.items() if kind == "error"}
    assert outcome.n_samples == len(expect) and outcome.n_failed == len(errors)
    for name, (kind, value) in expect.items():
        record = records[name]
        if kind == "score":
            assert record.error is None, (name, record.error)
            assert record.score == pytest.approx(value, abs=1e-6), name  # scored on correct pixels
        else:
            assert record.error and str(value) in record.error, (name, record.error)
    assert json.loads(outcome.results_path.read_text())["counts"]["n_failed"] == len(errors)
    assert grown_mib < 500  # the bomb header never allocated its 10^10 pixels
