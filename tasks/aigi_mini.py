"""aigi-mini: a small, deterministic, offline benchmark built from real photographs.

**A simulated smoke benchmark, not a measure of real-world detection.** Real
images are 64x64 patches of the real colour photographs that ship inside
scikit-image, scikit-learn and matplotlib; fake images are other patches of the
same photographs passed through one of three simulated generator pipelines
(:mod:`harness.tasks.aigi_mini_generators`), one subset each. It exists so that
every part of the harness (runner, trainers, metrics, leaderboards) runs end to
end on a fresh machine with no download.

Properties the tests pin:

- Real and fake are stored identically: 64x64 RGB PNG, same encoder settings, so
  neither file format nor image size tells them apart.
- train / val / test patches come from disjoint photographs (scenes).
- Built deterministically: the same files, byte for byte, on every build.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.interfaces import Task
from harness.paths import cache_dir
from harness.records import FAKE, REAL, Sample

BUILD_VERSION = "1"
PATCH = 64
STRIDE = 32
SCALES = (0.9, 0.65, 0.45)  # every photo is resampled, so no real patch keeps its JPEG 8x8 grid
SEED = 20240917
#: Photographs per split; scenes never cross splits (the two motorcycle views are one scene).
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "coffee", "china", "motorcycle_left", "motorcycle_right"),
    "val": ("rocket", "grace_hopper"),
    "test": ("chelsea", "flower"),
}
#: Images per split (half real, the other half shared equally by the generators).
SPLIT_SIZES = {"train": 900, "val": 300, "test": 440}


def _photo_loaders() -> dict[str, Callable[[], np.ndarray]]:
    def skimage_photo(name: str) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            import skimage.data

            return getattr(skimage.data, name)()

        return load

    def motorcycle(index: int) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            import skimage.data

            return skimage.data.stereo_motorcycle()[index]

        return load

    def sklearn_photo(name: str) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            from sklearn.datasets import load_sample_image

            return load_sample_image(name)

        return load

    def grace_hopper() -> np.ndarray:
        import matplotlib.cbook
        from PIL import Image

        sample: Any = matplotlib.cbook.get_sample_data("grace_hopper.jpg")  # an open file (numpy files: arrays)
        with sample as handle:
            return np.asarray(Image.open(handle).convert("RGB"))

    return {
        "astronaut": skimage_photo("astronaut"),
        "chelsea": skimage_photo("chelsea"),
        "coffee": skimage_photo("coffee"),
        "rocket": skimage_photo("rocket"),
        "motorcycle_left": motorcycle(0),
        "motorcycle_right": motorcycle(1),
        "china": sklearn_photo("china.jpg"),
        "flower": sklearn_photo("flower.jpg"),
        "grace_hopper": grace_hopper,
    }


@dataclass(frozen=True)
class _Patch:
    photo: str
    scale: float
    y: int
    x: int
    pixels: np.ndarray


def _patches(photo: str, image: np.ndarray) -> list[_Patch]:
    from PIL import Image

    out = []
    base = Image.fromarray(image[..., :3].astype(np.uint8))
    for scale in SCALES:
        size = (round(base.width * scale), round(base.height * scale))
        resized = np.asarray(base.resize(size, Image.Resampling.LANCZOS), dtype=np.float64) / 255.0
        h, w, _ = resized.shape
        for y in range(0, h - PATCH + 1, STRIDE):
            for x in range(0, w - PATCH + 1, STRIDE):
                out.append(_Patch(photo, scale, y, x, resized[y : y + PATCH, x : x + PATCH]))
    return out


def _to_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    array = np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(array).save(path, format="PNG", compress_level=6)


def build(root: Path, progress: bool = True) -> Path:
    """Build aigi-mini into ``root`` (atomically: a temporary folder renamed at the end).

    Writes ``<split>/0_real/*.png``, ``<split>/1_fake/<generator>/*.png``,
    ``manifest.jsonl`` (one line per image: id, path, label, subset, split,
    source photo, scale, offset) and ``BUILD_INFO.json``. Deterministic: the
    random generator is seeded per split and per image.
    """
    from harness.progress import progress_bar
    from harness.tasks.aigi_mini_generators import GENERATORS

    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    loaders = _photo_loaders()
    entries: list[dict[str, Any]] = []
    generators = sorted(GENERATORS)
    total = sum(SPLIT_SIZES.values())
    bar = progress_bar(total=total, desc="building aigi-mini", unit="img", enabled=progress, leave=False)
    try:
        for split_index, (split, photos) in enumerate(SPLITS.items()):
            pool = [p for photo in photos for p in _patches(photo, loaders[photo]())]
            if len(pool) < SPLIT_SIZES[split]:
                raise RuntimeError(f"aigi-mini {split}: {len(pool)} patches for {SPLIT_SIZES[split]} images")
            rng = np.random.default_rng([SEED, split_index])
            order = rng.permutation(len(pool))[: SPLIT_SIZES[split]]
            n_real = len(order) // 2
            for rank, index in enumerate(order):
                patch = pool[index]
                if rank < n_real:
                    label, subset, pixels = REAL, "real", patch.pixels
                    rel = Path(split) / "0_real" / f"{split}-real-{rank:04d}.png"
                else:
                    subset = generators[(rank - n_real) % len(generators)]
                    image_rng = np.random.default_rng([SEED, split_index, rank])
                    pixels = GENERATORS[subset](patch.pixels, image_rng)
                    label = FAKE
                    rel = Path(split) / "1_fake" / subset / f"{split}-{subset}-{rank:04d}.png"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                _to_png(pixels, tmp / rel)
                entries.append(
                    {
                        "id": rel.stem,
                        "path": rel.as_posix(),
                        "label": label,
                        "subset": subset,
                        "split": split,
                        "source": patch.photo,
                        "scale": patch.scale,
                        "offset": [patch.y, patch.x],
                        "format": "PNG",
                        "width": PATCH,
                        "height": PATCH,
                        "jpeg_quality": None,
                    }
                )
                bar.update(1)
        with open(tmp / "manifest.jsonl", "w", encoding="utf-8") as handle:
            for entry in entries:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
        info = {
            "name": "aigi-mini",
            "build_version": BUILD_VERSION,
            "n_images": len(entries),
            "patch": PATCH,
            "splits": {k: list(v) for k, v in SPLITS.items()},
            "generators": generators,
            "note": "simulated smoke benchmark, not a measure of real-world detection",
        }
        (tmp / "BUILD_INFO.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    return root


def default_root() -> Path:
    """Where aigi-mini is built by default: ``<cache dir>/aigi-mini-v<BUILD_VERSION>``."""
    return cache_dir() / f"aigi-mini-v{BUILD_VERSION}"


def ensure_built(root: Path | None = None, progress: bool = True) -> Path:
    """The aigi-mini folder, built first if it is missing or incomplete."""
    root = Path(root) if root else default_root()
    info = root / "BUILD_INFO.json"
    if info.exists():
        try:
            if json.loads(info.read_text(encoding="utf-8")).get("build_version") == BUILD_VERSION:
                return root
        except ValueError:
            pass
    return build(root, progress=progress)


class AigiMini(Task):
    """The built-in smoke benchmark (see the module docstring). Built on first use."""

    name = "aigi-mini"
    version = "1"
    modes = ("score",)
    default_metrics = (
        "acc",
        "ap",
        "auc",
        "real_acc",
        "fake_acc",
        "balanced_acc",
        "eer",
        "acc_val_threshold",
        "acc_curve",
    )
    main_metric = "auc"
    default_split = "test"
    calibration_split = "val"
    splits = ("train", "val", "test")
    description = "Simulated smoke benchmark from bundled real photographs (built offline on first use)."

    def __init__(self, data_root: str | None = None, **options: Any) -> None:
        super().__init__(data_root=data_root, **options)
        self.root = Path(data_root).expanduser() if data_root else default_root()

    def config(self) -> dict[str, Any]:
        """Build version and geometry (the data root is not part of the identity)."""
        return {"build_version": BUILD_VERSION, "patch": PATCH, "splits": SPLITS, "sizes": SPLIT_SIZES}

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """Samples of one split, in manifest order; ``split="all"`` gives every split."""
        split = split or self.default_split
        if split != "all" and split not in SPLITS:
            raise ValueError(f"aigi-mini has splits {', '.join(SPLITS)} (or 'all'), not {split!r}")
        root = ensure_built(self.root)
        with open(root / "manifest.jsonl", encoding="utf-8") as handle:
            for line in handle:
                entry = json.loads(line)
                if split != "all" and entry["split"] != split:
                    continue
                metadata = {k: entry[k] for k in ("format", "width", "height", "jpeg_quality", "source")}
                yield Sample(
                    id=entry["id"],
                    image=str(root / entry["path"]),
                    label=entry["label"],
                    subset=entry["subset"],
                    split=entry["split"],
                    metadata=metadata,
                )
