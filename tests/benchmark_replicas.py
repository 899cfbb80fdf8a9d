"""Miniature replicas of the benchmarks' published layouts, built from real photographs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def photo_bytes(index: int, fmt: str, size: int = 16) -> bytes:
    """A small crop of a real photograph (scikit-image), encoded as ``fmt`` (JPEG or PNG)."""
    from PIL import Image

    photo = _photo()
    y, x = (index * 37) % (photo.shape[0] - size), (index * 53) % (photo.shape[1] - size)
    buffer = io.BytesIO()
    Image.fromarray(photo[y : y + size, x : x + size]).save(
        buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {})
    )
    return buffer.getvalue()


_PHOTO = None


def _photo() -> np.ndarray:
    global _PHOTO
    if _PHOTO is None:
        import skimage.data

        _PHOTO = skimage.data.astronaut()
    return _PHOTO


def write_image(path: Path, index: int) -> None:
    """A stand-in image whose encoding follows its extension (any case)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    path.write_bytes(photo_bytes(index, fmt))


def fakebench_root(root: Path, skip: int = 0) -> Path:
    """Stand-ins for every image FakeBench's query files list (upstream folder names), minus the first ``skip``."""
    ids = {e["image_id"]: e["authenticity"] for e in json.loads((SHARED / "fakebench" / "FakeClass.json").read_text())}
    for e in json.loads((SHARED / "fakebench" / "FakeClue.json").read_text()):
        ids.setdefault(e["image_id"], 0)
    for index, (image_id, authenticity) in enumerate(sorted(ids.items())):
        if index < skip:
            continue
        folder = "fake_images" if authenticity == 0 else "real_images"
        write_image(root / "FakeBench_images" / folder / image_id, index)
    return root


def synthwildx_root(root: Path, skip_every: int = 0) -> Path:
    """list.csv (copied into the replica, as a user's download has it) and stand-ins for its files."""
    root.mkdir(parents=True, exist_ok=True)
    rows = list(csv.DictReader((SHARED / "synthwildx" / "list.csv").read_text().splitlines()))
    (root / "list.csv").write_bytes((SHARED / "synthwildx" / "list.csv").read_bytes())
    for index, row in enumerate(rows):
        if skip_every and index % skip_every == 0:
            continue
        write_image(root / row["filename"], index)
    return root


def folder_tree(root: Path, spec: dict[str, int], start: int = 0) -> Path:
    """Write ``spec`` = {relative/dir: n images} (extension from the dir name's suffix or .png)."""
    index = start
    for rel, count in spec.items():
        ext = ".JPEG" if rel.endswith("@JPEG") else ".jpg" if rel.endswith("@jpg") else ".png"
        folder = root / rel.split("@")[0]
        for i in range(count):
            write_image(folder / f"img{i:03d}{ext}", index)
            index += 1
    return root
