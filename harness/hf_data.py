"""Benchmarks as Hugging Face ``datasets``: any task reads ``--data-root hf:SOURCE``, any local benchmark exports.

``SOURCE`` is what ``datasets.load_dataset`` takes: a Hub id (downloaded and cached by ``datasets`` when the
network allows, read from its cache offline), a local folder of parquet files with a dataset card (what
``harness data export`` writes), or a local ``imagefolder`` (class folders: ``0_real`` / ``real`` -> 0,
``1_fake`` / ``fake`` -> 1, optionally under split folders and a generator folder). Columns read:

- ``image`` (an ``Image`` feature; its original encoded bytes are used, never re-encoded: format and JPEG quality
  are part of what a detector sees);
- ``label`` (0 real / 1 fake, or a class label whose name says real or fake);
- ``subset`` or ``generator`` (else the generator folder of an imagefolder, else ``all``);
- ``id`` (else the image's path within the dataset, else the row number);
- ``metadata`` (a JSON object: the task's per-sample fields, e.g. FakeBench's question), other columns join it.

A task keeps everything else of its own (requests, prompts, metrics, exports): only where its samples come
from changes, so a benchmark exported and read back gives identical results.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.records import Sample

PREFIX = "hf:"
#: rows per parquet shard of an export
SHARD_ROWS = 2000


def is_hf_source(data_root: str | None) -> bool:
    """Whether ``--data-root`` names a ``datasets`` dataset (``hf:...``)."""
    return bool(data_root) and str(data_root).startswith(PREFIX)


def label_of(value: Any, names: list[str] | None = None) -> int | None:
    """0 / 1 from a label value: a number, a class-label index into ``names``, or a name saying real or fake."""
    if value is None:
        return None
    if names is not None and isinstance(value, int) and 0 <= value < len(names):
        value = names[value]
    if isinstance(value, str):
        word = value.lower()
        if word.startswith("0") or "real" in word:
            return 0
        if word.startswith("1") or "fake" in word:
            return 1
        raise ValueError(f"label {value!r} says neither real nor fake")
    return int(value)


CLASS_FOLDER = re.compile(r"(0_)?real|(1_)?fake", re.IGNORECASE)
SPLIT_FOLDERS = ("train", "test", "val", "validation")


def class_folder(path: str | Path) -> tuple[int | None, str | None] | None:
    """(label, generator) of an image inside a class folder: ``.../ADM/1_fake/x.png`` -> (1, "ADM"); the folder
    above the class folder names the generator unless it is a split folder or there is none. ``None`` when no
    folder of the path is a class folder."""
    parts = Path(path).parts
    for index in range(len(parts) - 2, -1, -1):
        if CLASS_FOLDER.fullmatch(parts[index]):
            above = parts[index - 1] if index > 0 else None
            return label_of(parts[index]), (None if above in SPLIT_FOLDERS else above)
    return None


def hub_samples(source: str, split: str) -> Iterator[Sample]:
    """The samples of ``split`` of the dataset ``source`` (without the ``hf:`` prefix)."""
    import datasets

    local = Path(source).expanduser()
    shards = sorted(local.glob(f"data/{split}-*.parquet")) if local.is_dir() else []
    if shards:  # an export's parquet shards, read as they are
        import pyarrow as pa
        import pyarrow.parquet as pq

        dataset = datasets.Dataset(pa.concat_tables([pq.read_table(str(shard)) for shard in shards]))
    elif local.exists():
        # any other local folder (an imagefolder, parquet of another layout) is read afresh into memory:
        # `datasets`' prepared copy of a local folder in its shared cache served an earlier folder's rows and
        # split sizes for a new folder of the same name (seen in the tests)
        with tempfile.TemporaryDirectory() as cache:
            dataset = datasets.load_dataset(str(local), split=split, cache_dir=cache, keep_in_memory=True)
    else:
        dataset = datasets.load_dataset(source, split=split)  # a Hub id: its cached revision
    label_feature = dataset.features.get("label")
    names = list(label_feature.names) if isinstance(label_feature, datasets.ClassLabel) else None
    image_column = (
        "image"
        if "image" in dataset.column_names
        else next((c for c, f in dataset.features.items() if isinstance(f, datasets.Image)), None)
    )
    if image_column is None:
        raise ValueError(f"dataset {source!r} has no image column (columns: {dataset.column_names})")
    dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    known = {image_column, "label", "subset", "generator", "id", "metadata"}
    for index, row in enumerate(dataset):
        image = row[image_column] or {}
        raw = image.get("bytes")
        path = image.get("path")
        if raw is None and path:
            raw = Path(path).read_bytes()
        if raw is None:
            raise ValueError(f"dataset {source!r}, row {index}: the image has neither bytes nor a path")
        metadata = (
            json.loads(row["metadata"]) if isinstance(row.get("metadata"), str) else dict(row.get("metadata") or {})
        )
        # an export's typed metadata columns (a sample without that key has None there), any other plain column
        metadata.update({k: v for k, v in row.items() if k not in known and _plain(v) and v is not None})
        metadata.setdefault("source", f"{PREFIX}{source}")
        found = class_folder(path) if path else None
        subset = row.get("subset") or row.get("generator") or (found[1] if found else None) or "all"
        sample_id = row.get("id") or (_relative(path, local) if path else None) or f"{index:07d}"
        yield Sample(
            id=str(sample_id),
            image=bytes(raw),
            label=label_of(row.get("label"), names),
            subset=str(subset),
            split=split,
            metadata=metadata,
        )


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def serve_from_hub(task: Any, source: str) -> Any:
    """Make ``task`` read its samples from the dataset ``source``; everything else stays the task's own."""
    task.hf_source = source

    def available() -> tuple[bool, str]:
        return True, ""

    def samples(split: str | None = None) -> Iterator[Sample]:
        return hub_samples(source, split or task.default_split)

    task.available = available
    task.samples = samples
    return task


#: the columns the export writes or the reader reads as something else (``generator``: a subset); a metadata key
#: of these names stays in the ``metadata`` JSON column
EXPORT_COLUMNS = ("id", "image", "label", "subset", "metadata", "generator")
LABEL_NAMES = ["real", "fake"]


def metadata_columns(samples: list[Sample]) -> dict[str, type]:
    """The metadata keys written as columns of their own: those whose every value (where present) is one plain
    type (str, int, float or bool), name -> type; the rest stays in the ``metadata`` JSON column."""
    kinds: dict[str, set[type]] = {}
    for sample in samples:
        for key, value in (sample.metadata or {}).items():
            kinds.setdefault(key, set()).add(type(value))
    plain = (str, int, float, bool)
    return {
        k: next(iter(t)) for k, t in kinds.items() if len(t) == 1 and next(iter(t)) in plain and k not in EXPORT_COLUMNS
    }


def export_features(columns: dict[str, type]) -> Any:
    """The export's ``datasets`` features: the image (decoded to PIL on load), the label as a ``ClassLabel``
    (real / fake; -1 where withheld), the subset, each plain metadata key typed, the rest as JSON."""
    import datasets

    dtype = {str: "string", int: "int64", float: "float64", bool: "bool"}
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=LABEL_NAMES),
            "subset": datasets.Value("string"),
            **{key: datasets.Value(dtype[kind]) for key, kind in sorted(columns.items())},
            "metadata": datasets.Value("string"),
        }
    )


def export_task(task: Any, splits: list[str], out_dir: Path, progress: bool = True) -> dict[str, int]:
    """Write ``task``'s samples of ``splits`` as a ``datasets`` dataset in ``out_dir``: parquet shards
    (``data/<split>-NNNNN-of-NNNNN.parquet``, the original image bytes) and a ``README.md`` dataset card that
    ``datasets.load_dataset(out_dir)`` and the Hub read (features: :func:`export_features`). Returns the rows per
    split."""
    import datasets

    from harness.images import read_image_bytes
    from harness.progress import progress_bar

    listed = {split: list(task.samples(split)) for split in splits}
    columns = metadata_columns([s for samples in listed.values() for s in samples])
    features = export_features(columns)
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for split, samples in listed.items():
        shards = max(1, -(-len(samples) // SHARD_ROWS))
        bar = progress_bar(total=len(samples), desc=f"export {task.name}/{split}", unit="img", enabled=progress)
        for shard in range(shards):
            rows: dict[str, list[Any]] = {name: [] for name in features}
            for sample in samples[shard * SHARD_ROWS : (shard + 1) * SHARD_ROWS]:
                name = Path(sample.image).name if isinstance(sample.image, str) else f"{sample.id}.bin"
                metadata = dict(sample.metadata or {})
                rows["id"].append(sample.id)
                rows["image"].append({"bytes": read_image_bytes(sample), "path": name})
                rows["label"].append(-1 if sample.label is None else sample.label)
                rows["subset"].append(sample.subset)
                for key in columns:
                    rows[key].append(metadata.pop(key, None))
                rows["metadata"].append(json.dumps(metadata, ensure_ascii=False, default=str))
                bar.update(1)
            part = datasets.Dataset.from_dict(rows, features=features)
            part.to_parquet(str(out_dir / "data" / f"{split}-{shard:05d}-of-{shards:05d}.parquet"))
        bar.close()
        counts[split] = len(samples)
    (out_dir / "README.md").write_text(_card(task, counts), encoding="utf-8")
    return counts


def push_export(folder: Path, repo: str, private: bool = False) -> str:
    """Upload an export folder (its parquet shards and card, as written) to the Hub as dataset ``repo``; returns
    its address. The only command here that uses the network, and only when asked."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset", commit_message="harness data export")
    return f"https://huggingface.co/datasets/{repo}"


def _card(task: Any, counts: dict[str, int]) -> str:
    files = "\n".join(f"  - split: {split}\n    path: data/{split}-*.parquet" for split in counts)
    rows = "\n".join(f"| {split} | {n} |" for split, n in counts.items())
    return f"""---
configs:
- config_name: default
  data_files:
{files}
---
# {task.name}

{getattr(task, "description", "") or task.name}

Exported by `harness data export {task.name}` (aigi-harness). Each row: `id`, `image` (the original file's bytes,
not re-encoded), `label` (0 real, 1 fake, -1 unknown), `subset` (the generator or source), `metadata` (JSON: the
task's per-sample fields). Read it back with `harness run --tasks {task.name} --data-root hf:<this folder or its
Hub id>`; the results equal those from the original layout.

| split | images |
|---|---|
{rows}

The images keep the licence of the benchmark they come from; see where it is published before pushing a copy.
"""
