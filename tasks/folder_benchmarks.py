"""AIGCDetectBenchmark, the ``{0_real,1_fake}`` folder benchmark that needs code (a local HF parquet mirror,
upstream's generator list, its known corrupt file). WildRF and AntifakePrompt are data only:
``tasks/specs/*.yaml`` (:mod:`harness.tasks.folder_spec`).

Layouts and protocols: ``../shared/reference/benchmarks.md`` sections 2-4.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.records import Sample
from harness.tasks.common import BenchmarkTask, DataReport, folder_samples

AIGC_GENERATORS = (
    "progan",
    "stylegan",
    "biggan",
    "cyclegan",
    "stargan",
    "gaugan",
    "stylegan2",
    "whichfaceisreal",
    "ADM",
    "Glide",
    "Midjourney",
    "stable_diffusion_v_1_4",
    "stable_diffusion_v_1_5",
    "VQDM",
    "wukong",
    "DALLE2",
)
"""The 16 generator folders of upstream ``eval_config.py:vals`` (SDXL is read too when present)."""


class AIGCDetectBenchmark(BenchmarkTask):
    """AIGCDetectBenchmark test set (Ekko-zn/AIGCDetectBenchmark).

    ``<root>/<generator>/{0_real,1_fake}`` or the nested ForenSynths layout
    ``<root>/<generator>/<class>/{0_real,1_fake}`` (upstream ``loadpathslist``); the
    root may also be the folder above ``test/``. Subsets are generators; metrics as
    upstream ``validate.py`` (acc, AP, r_acc, f_acc at 0.5) plus AUC. Upstream's
    corrupt ``DALLE2/0_real/000000097792.jpg`` (issue #8) is a per-sample error, not
    a crash. A local Hugging Face mirror (parquet with ``image``, ``label``,
    ``generator``, e.g. TheKernel01/AIGC-Detection-Benchmark) is read with
    ``--data-root hf:<dataset folder or cached id>``.
    """

    name = "aigcdetect"
    version = "1"
    #: reads ``hf:`` itself (the parquet mirror's ``generator`` column and row ids)
    reads_hf_source = True
    env_var = "HARNESS_DATA_AIGCDETECT"
    default_name = "AIGCDetectBenchmark"
    default_metrics = ("acc", "ap", "auc", "real_acc", "fake_acc", "balanced_acc", "eer")
    main_metric = "ap"
    description = "AIGCDetectBenchmark: 16 generators (+SDXL), flat or nested 0_real/1_fake."

    def __init__(self, data_root: str | None = None, **options: Any) -> None:
        self.hf_source = data_root[3:] if data_root and data_root.startswith("hf:") else None
        super().__init__(data_root=None if self.hf_source else data_root, **options)

    def available(self) -> tuple[bool, str]:
        """A folder with generator subfolders, or a loadable local dataset."""
        if self.hf_source:
            return True, ""
        return super().available()

    def test_root(self) -> Path:
        """The folder holding the generator folders (``<root>/test`` when present)."""
        assert self.root is not None
        return (
            self.root / "test" if (self.root / "test").is_dir() and not (self.root / "progan").is_dir() else self.root
        )

    def layout_ok(self) -> tuple[bool, str]:
        """At least one generator folder."""
        generators = [d for d in self.test_root().iterdir() if d.is_dir()]
        return (True, "") if generators else (False, f"{self.test_root()}: no generator folders")

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """Every image of every generator folder, generator by generator."""
        split = self._check_split(split)
        if self.hf_source:
            yield from self._hf_samples(split)
            return
        root = self.test_root()
        for generator in sorted(d.name for d in root.iterdir() if d.is_dir()):
            folder = root / generator
            if (folder / "0_real").is_dir() or (folder / "1_fake").is_dir():
                yield from folder_samples(self, folder, split, lambda label, sub, g=generator: g, id_base=root)
                continue
            for object_class in sorted(d.name for d in folder.iterdir() if d.is_dir()):  # nested layout
                for sample in folder_samples(
                    self, folder / object_class, split, lambda label, sub, g=generator: g, id_base=root
                ):
                    sample.metadata["object_class"] = object_class
                    yield sample

    def _hf_samples(self, split: str) -> Iterator[Sample]:
        import datasets

        dataset = datasets.load_dataset(self.hf_source, split=split)
        for index, row in enumerate(dataset.cast_column("image", datasets.Image(decode=False))):
            image = row["image"]
            raw = image.get("bytes") if isinstance(image, dict) else None
            if raw is None:
                raw = Path(image["path"]).read_bytes()
            generator = str(row.get("generator", "all"))
            label = int(row["label"])
            yield Sample(
                id=f"{generator}/{index:07d}",
                image=raw,
                label=label,
                subset=generator if generator.lower() != "real" else "real",
                split=split,
                metadata={"source": f"hf:{self.hf_source}", "hf_index": index},
            )

    def check(self) -> DataReport:
        """Counts per generator; lists the upstream generators that are missing."""
        report = super().check()
        if self.root is not None and self.root.exists() and not self.hf_source:
            present = {d.name for d in self.test_root().iterdir() if d.is_dir()}
            report.missing.extend(f"generator folder {g}" for g in AIGC_GENERATORS if g not in present)
            extra = sorted(present - set(AIGC_GENERATORS) - {"SDXL", "sdxl"})
            if extra:
                report.notes.append(f"folders not in upstream's list, read as generators: {', '.join(extra)}")
        return report
