"""Shared pieces of the benchmark tasks: data roots, folder scanning, header metadata, data reports."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.interfaces import Task
from harness.records import FAKE, REAL, Sample, printable

#: Image extensions, compared case-insensitively (upstream AntifakePrompt's case-sensitive
#: filter silently skips ``.JPEG`` files; we do not).
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".jfif", ".ppm", ".pgm", ".gif"}
CLASS_DIRS = {"0_real": REAL, "1_fake": FAKE}


def is_image_name(path: Path) -> bool:
    """Whether a file name has an image extension (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class DataReport:
    """What ``harness data check`` prints: counts against expectations, and every defect found."""

    task: str
    root: str | None
    counts: Counter = field(default_factory=Counter)  # (subset, label) -> n
    expected: dict[tuple[str, int], int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No missing, unreadable or unexpected item and every expected count met."""
        counts_ok = all(self.counts.get(key, 0) == n for key, n in self.expected.items())
        return counts_ok and not (self.missing or self.unreadable or self.unexpected)


def data_root(task: Task, env_var: str, default_name: str) -> Path | None:
    """``--data-root``, else ``$<env_var>``, else ``$HARNESS_DATA_ROOT/<default_name>``."""
    if task.data_root is not None:
        return task.data_root
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser()
    if os.environ.get("HARNESS_DATA_ROOT"):
        return Path(os.environ["HARNESS_DATA_ROOT"]).expanduser() / default_name
    return None


def files_below(base: Path) -> list[tuple[str, ...]]:
    """Every file below ``base`` (recursive, following links to folders as ``rglob`` does), as path parts relative
    to it, sorted as ``sorted(base.rglob("*"))`` sorts paths. ``os.scandir`` knows from the folder listing which
    entries are folders, so no file is ``stat``-ed (``Path.is_dir`` per file was a third of a cached rerun's
    listing at 16,000 files)."""
    found: list[tuple[str, ...]] = []
    pending: list[tuple[str, ...]] = [()]
    while pending:
        relative = pending.pop()
        try:
            entries = os.scandir(base.joinpath(*relative))
        except OSError:
            continue
        with entries:
            for entry in entries:
                parts = (*relative, entry.name)
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                (pending if is_dir else found).append(parts)
    found.sort()
    return found


def header_metadata(paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Format, size and JPEG quality of many files, read from their headers in a plain loop, each file's read
    memoised by (path, size, modification time) (:mod:`harness.file_memo`): a rerun over an unchanged benchmark
    reads no header again.

    Unreadable files map to ``{"error": message}`` (not memoised: read again next time). A header is a few
    hundred bytes: a thread pool made this 4x slower per file (one future per file, the GIL; measured in issue
    #31) and its join could swallow Ctrl-C, so the loop runs on the calling thread, where an interrupt stops it.
    """
    from harness.file_memo import memoised
    from harness.images import ImageLoadError, file_metadata

    def read(path: str) -> tuple[dict[str, Any], bool]:
        try:
            return file_metadata(path), True
        except (ImageLoadError, OSError) as exc:
            return {"error": str(exc)}, False

    return memoised("headers", list(paths), read)


def make_sample(
    sample_id: str,
    path: Path | str,
    label: int | None,
    subset: str,
    split: str,
    source: str,
    meta: dict[str, Any] | None,
    **extra: Any,
) -> Sample:
    """A sample with the standard metadata fields (format, width, height, mode, jpeg_quality, source);
    the format-shortcut audit reuses them instead of reading the header again."""
    meta = meta or {}
    sample_id = printable(sample_id)
    metadata = {
        "format": meta.get("format"),
        "width": meta.get("width"),
        "height": meta.get("height"),
        "mode": meta.get("mode"),
        "jpeg_quality": meta.get("jpeg_quality"),
        "source": source,
        **extra,
    }
    if "error" in meta:
        metadata["header_error"] = meta["error"]
    return Sample(id=sample_id, image=str(path), label=label, subset=subset, split=split, metadata=metadata)


def report_from_samples(report: DataReport, samples: Iterable[Sample]) -> DataReport:
    """Fill counts and unreadable files from listed samples."""
    for sample in samples:
        report.counts[(sample.subset, sample.label)] += 1
        if sample.metadata.get("header_error"):
            report.unreadable.append(sample.metadata["header_error"])
    return report


class BenchmarkTask(Task):
    """A published benchmark read from a local root (``--data-root`` or an environment variable)."""

    env_var: str = ""
    default_name: str = ""
    splits: tuple[str, ...] = ("test",)

    def __init__(self, data_root: str | None = None, **options: Any) -> None:
        super().__init__(data_root=data_root, **options)
        self.root: Path | None = data_root_for(self)
        self.stray: list[str] = []  # non-image files met while scanning (data check lists them)

    def available(self) -> tuple[bool, str]:
        """Present when the root exists and holds the expected layout."""
        if self.root is None:
            return False, f"no data: pass --data-root or set {self.env_var} (or HARNESS_DATA_ROOT)"
        if not self.root.exists():
            return False, f"{self.root} not found (--data-root / {self.env_var})"
        return self.layout_ok()

    def layout_ok(self) -> tuple[bool, str]:
        """Override: check the root holds this benchmark's layout."""
        return True, ""

    def config(self) -> dict[str, Any]:
        """Options only: where the data lives is not part of the task's identity."""
        return {"options": self.options}

    def check(self) -> DataReport:
        """Counts per subset and label for every split, plus defects."""
        report = DataReport(self.name, str(self.root) if self.root else None)
        ok, reason = self.available()
        if not ok:
            report.missing.append(reason)
            return report
        for split in self.splits:
            report_from_samples(report, self.samples(split))
        report.unexpected.extend(sorted(set(self.stray)))
        return report

    def _check_split(self, split: str | None) -> str:
        split = split or self.default_split
        if split not in self.splits:
            raise ValueError(f"{self.name} has splits {', '.join(self.splits)}, not {split!r}")
        return split


def data_root_for(task: BenchmarkTask) -> Path | None:
    """The task's root (see :func:`data_root`)."""
    return data_root(task, task.env_var, task.default_name)


def folder_samples(
    task: BenchmarkTask,
    folder: Path,
    split: str,
    subset_of: Any,
    report: DataReport | None = None,
    id_base: Path | None = None,
) -> list[Sample]:
    """Samples of a ``{0_real,1_fake}`` folder; ``subset_of(label, class_subfolder)`` names each subset. Ids are the
    paths relative to ``id_base`` (default the task's root), in ``sorted(rglob)`` order, built from strings (a
    ``Path`` per file and ``relative_to`` were most of the listing's cost on a cached rerun). Non-image files are
    reported as unexpected (``report``) or kept as the task's strays; the class folder's own subfolder is passed
    to ``subset_of`` ("" when the image sits directly in it)."""
    stray = task.stray if report is None else None
    base = id_base or task.root
    assert base is not None, "a folder benchmark lists samples below its root"
    prefix = folder.relative_to(base).as_posix()
    found: list[tuple[str, str, int, str]] = []  # (path, id, label, class subfolder)
    for class_dir, label in CLASS_DIRS.items():
        root = folder / class_dir
        if not root.is_dir():
            continue
        root_text = str(root)
        for parts in files_below(root):
            path = os.path.join(root_text, *parts)
            if os.path.splitext(parts[-1])[1].lower() not in IMAGE_EXTENSIONS:
                if report is not None:
                    report.unexpected.append(path)
                if stray is not None:
                    stray.append(path)
                continue
            relative = "/".join((class_dir, *parts))
            found.append(
                (path, relative if prefix == "." else f"{prefix}/{relative}", label, parts[0] if len(parts) > 1 else "")
            )
    metas = header_metadata([path for path, _, _, _ in found])
    samples = []
    for path, sample_id, label, sub in found:
        subset = subset_of(label, sub)
        samples.append(
            make_sample(sample_id, path, label, subset, split, source=f"{task.name}/{subset}", meta=metas[path])
        )
    return samples
