"""Folder benchmarks as data: one generic task configured by a small YAML file.

The field's commonest layout, ``{0_real,1_fake}`` class folders, needs no Python. A spec::

    name: my-benchmark              # what users type (harness run --tasks my-benchmark)
    version: "1"
    description: "..."
    layout: subset/class            # <root>/<split>/[<subset>/]{0_real,1_fake}/...   (WildRF, CNNDetection)
                                    # class/subset: <root>/<split>/{0_real,1_fake}/<subset>/...  (AntifakePrompt)
    splits: [test]                  # the first is the default; more: [train, val, test]
    calibration_split: val          # optional: the split acc_val_threshold chooses its threshold on
    expected_subsets: {test: [a, b]}  # optional: `harness data check` lists the missing ones
    metrics: [acc, ap, auc]
    main_metric: auc
    average_over: generators        # or subsets (every folder, real ones included)
    env_var: HARNESS_DATA_MYBENCH   # optional; --data-root always works
    default_name: MyBenchmark       # the folder under HARNESS_DATA_ROOT
    tags: [detection]
    source: {repository: owner/name, paper: "...", licence: "...", size: "..."}

Built-in specs live in ``tasks/specs/``; ``--include-path DIR`` (or ``HARNESS_INCLUDE_PATH``, paths joined
by ``os.pathsep``) adds a folder of your own. The spec's content is part of the task's fingerprint, so an
edited spec never reuses cached answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.names import is_plain_name
from harness.records import REAL, Sample
from harness.tasks.common import CLASS_DIRS, BenchmarkTask, DataReport, folder_samples

LAYOUTS = ("subset/class", "class/subset")
KEYS = {
    "name",
    "version",
    "description",
    "layout",
    "splits",
    "calibration_split",
    "expected_subsets",
    "metrics",
    "main_metric",
    "average_over",
    "env_var",
    "default_name",
    "tags",
    "source",
    "aliases",
}


class SpecError(ValueError):
    """A folder-benchmark spec that cannot be used (the message names the file and the key)."""


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read and check a spec file."""
    import yaml

    path = Path(path)
    try:
        # libyaml's safe loader where PyYAML has it (the built-in specs are read on every run)
        spec = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read the task spec ({exc})") from exc
    unknown = set(spec) - KEYS
    if unknown:
        raise SpecError(f"{path}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(KEYS))})")
    if not spec.get("name"):
        raise SpecError(f"{path}: 'name' is required")
    if not is_plain_name(spec["name"]):
        raise SpecError(
            f"{path}: name {spec['name']!r} is not allowed: letters, digits and . _ + - only (no '..', no '/'), "
            "since it becomes a results folder"
        )
    if spec.get("layout", "subset/class") not in LAYOUTS:
        raise SpecError(f"{path}: layout must be one of {LAYOUTS}, not {spec.get('layout')!r}")
    if spec.get("average_over", "generators") not in ("generators", "subsets"):
        raise SpecError(f"{path}: average_over must be 'generators' or 'subsets'")
    spec["_file"] = str(path)
    return spec


def spec_files(folders: list[str | Path]) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` spec in the folders, sorted."""
    found = []
    for folder in folders:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise SpecError(f"task include path {folder} is not a folder")
        found.extend(sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")))
    return found


def include_paths_from_env() -> list[str]:
    """``HARNESS_INCLUDE_PATH``, split on ``os.pathsep``."""
    return [p for p in os.environ.get("HARNESS_INCLUDE_PATH", "").split(os.pathsep) if p]


def register_specs(register: Any, files: list[Path]) -> None:
    """Register each spec as a task (its manifest carries the spec's path); a spec that cannot be read is
    skipped with a warning naming the file, the others are registered."""
    import sys

    for path in files:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            print(f"warning: task spec skipped: {exc}", file=sys.stderr)
            continue
        register(
            spec["name"],
            "harness.tasks.folder_spec:FolderSpecTask",
            aliases=spec.get("aliases", ()),
            tags=tuple(spec.get("tags", ())),
            description=spec.get("description", f"folder benchmark ({path})"),
            spec=str(path),
        )


class FolderSpecTask(BenchmarkTask):
    """A ``{0_real,1_fake}`` folder benchmark described by a spec file (see the module docstring)."""

    name = "folder-spec"

    def __init__(self, spec: str | dict[str, Any], data_root: str | None = None, **options: Any) -> None:
        self.spec = load_spec(spec) if not isinstance(spec, dict) else spec
        s = self.spec
        self.name, self.version = s["name"], str(s.get("version", "1"))
        self.description = s.get("description", "")
        self.splits = tuple(s.get("splits", ["test"]))
        self.default_split = self.splits[-1] if "test" not in self.splits else "test"
        self.calibration_split = s.get("calibration_split")
        self.default_metrics = tuple(s.get("metrics", ("acc", "ap", "auc")))
        self.main_metric = s.get("main_metric", self.default_metrics[0])
        self.average_over = s.get("average_over", "generators")
        self.env_var = s.get("env_var", "HARNESS_DATA_" + s["name"].upper().replace("-", "_"))
        self.default_name = s.get("default_name", s["name"])
        self.layout = s.get("layout", "subset/class")
        super().__init__(data_root=data_root, **options)

    def config(self) -> dict[str, Any]:
        """Options and the spec's content (an edited spec is another task)."""
        return {"options": self.options, "spec": {k: v for k, v in self.spec.items() if k != "_file"}}

    def layout_ok(self) -> tuple[bool, str]:
        """The default split's folder holds class folders (directly, or in subsets for ``subset/class``)."""
        folder = self.root / self.default_split
        if folder.is_dir() and (
            any((folder / c).is_dir() for c in CLASS_DIRS)
            or any(any((sub / c).is_dir() for c in CLASS_DIRS) for sub in folder.iterdir() if sub.is_dir())
        ):
            return True, ""
        shape = (
            "<split>/[<subset>/]{0_real,1_fake}"
            if self.layout == "subset/class"
            else "<split>/{0_real,1_fake}/<subset>"
        )
        return False, f"{self.root}: expected {shape} with split {self.default_split!r} ({self.spec['_file']})"

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """Subset = the folder above the class folders (``subset/class``; the split's name when the class folders
        sit in the split itself) or the folder inside the class folder (``class/subset``)."""
        split = self._check_split(split)
        folder = self.root / split
        if not folder.is_dir():
            return
        if self.layout == "class/subset":
            yield from folder_samples(
                self, folder, split, lambda label, sub: sub or ("real" if label == REAL else "fake")
            )
            return
        if any((folder / c).is_dir() for c in CLASS_DIRS):
            yield from folder_samples(self, folder, split, lambda label, sub: split)
        for subset in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in CLASS_DIRS):
            yield from folder_samples(self, subset, split, lambda label, sub, s=subset.name: s)

    def check(self) -> DataReport:
        """Counts per subset, and the expected subsets that are missing (``split/subset``)."""
        report = super().check()
        if self.root is not None:
            for split, subsets in (self.spec.get("expected_subsets") or {}).items():
                report.missing.extend(f"{split}/{s}" for s in subsets if not (self.root / split / s).is_dir())
        return report
