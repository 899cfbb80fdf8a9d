"""SynthWildX (grip-unina/ClipBased-SyntheticImageDetection): 500 real + 3 x 500 synthetic images from X.

The data is ``list.csv`` (``url,filename,typ``; typ in real, dalle3, firefly,
midjourney_v5) plus the images the user downloaded beside it, at
``<root>/<filename>``. Upstream's downloader skips deleted posts silently, so the
number of listed-but-missing images is recorded in ``results.json`` (``data``).
Protocol (upstream ``compute_metrics.py``): per generator, AUC on that generator
against the shared real pool (``metrics.pairing``), balanced accuracy at the
decision threshold, and the mean over generators; AP is added.

Score scale: the harness's scores are P(fake) in [0, 1], thresholded at 0.5.
Upstream's ``compute_metrics.py`` reads log-likelihood ratios and thresholds them
at 0, so fed probabilities it reports a balanced accuracy of 0.5 everywhere.
Every run therefore also writes ``upstream_scores.csv`` (``filename,typ,harness``)
with the LLR ``log(p / (1 - p))`` (p clipped to [1e-7, 1 - 1e-7]), which upstream's
script reads as it reads its own detectors' output: same AUC, and its balanced
accuracy at LLR > 0 equals the harness's at p > 0.5.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.records import FAKE, REAL, Sample, SampleRecord
from harness.tasks.common import BenchmarkTask, DataReport, header_metadata, make_sample

EXPECTED = {"real": 500, "dalle3": 500, "firefly": 500, "midjourney_v5": 500}
EPS = 1e-7


def llr(p_fake: float) -> float:
    """The log-likelihood ratio ``log(p / (1 - p))`` of a P(fake), p clipped to [EPS, 1 - EPS]."""
    p = min(max(float(p_fake), EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


class SynthWildX(BenchmarkTask):
    """SynthWildX from ``list.csv`` and the downloaded images."""

    name = "synthwildx"
    version = "1"
    env_var = "HARNESS_DATA_SYNTHWILDX"
    default_name = "synthwildx"
    default_metrics = ("auc", "ap", "balanced_acc", "acc", "real_acc", "fake_acc", "eer")
    main_metric = "auc"
    description = "SynthWildX: DALL-E 3 / Firefly / Midjourney v5 vs real, all X-served JPEGs."

    def __init__(self, data_root: str | None = None, list_csv: str | None = None, **options: Any) -> None:
        super().__init__(data_root=data_root, **options)
        root: Path | None = getattr(self, "root", None)
        if list_csv and root is None:
            # --task-args list_csv=FILE alone: the images lie beside the list, as in upstream's data/synthwildx/
            root = self.root = Path(list_csv).expanduser().resolve().parent
        self.list_csv = Path(list_csv) if list_csv else (root / "list.csv" if root else None)
        self.listed = 0
        self.missing: list[str] = []

    def layout_ok(self) -> tuple[bool, str]:
        """``list.csv`` present."""
        if self.list_csv is None or not self.list_csv.is_file():
            return False, f"{self.list_csv}: list.csv not found (upstream data/synthwildx/list.csv)"
        return True, ""

    def rows(self) -> list[dict[str, str]]:
        """The rows of ``list.csv``."""
        if self.list_csv is None:
            raise FileNotFoundError("SynthWildX needs list.csv: --data-root DIR or --task-args list_csv=FILE")
        with open(self.list_csv, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """The listed images that are present; the missing ones are counted."""
        split = self._check_split(split)
        rows = self.rows()
        self.listed, self.missing = len(rows), []
        present = []
        for row in rows:
            path = self.root / row["filename"]
            if path.exists():
                present.append((row, path))
            else:
                self.missing.append(row["filename"])
        metas = header_metadata(str(p) for _, p in present)
        for row, path in present:
            typ = row["typ"]
            yield make_sample(
                row["filename"],
                path,
                REAL if typ == "real" else FAKE,
                typ,
                split,
                source=row["url"],
                meta=metas[str(path)],
            )

    def export(self, records: Sequence[SampleRecord]) -> dict[str, Any]:
        """``upstream_scores.csv``: each scored image's LLR in the column ``harness``, for upstream's
        ``compute_metrics.py`` (which thresholds at 0)."""
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["filename", "typ", "harness"])
        for record in records:
            if record.score is not None and record.error is None:
                writer.writerow([record.sample_id, record.subset, repr(llr(record.score))])
        return {"upstream_scores.csv": buffer.getvalue()}

    def data_notes(self) -> dict[str, Any]:
        """Listed, present and missing counts."""
        return {"listed": self.listed, "missing": len(self.missing), "missing_examples": self.missing[:10]}

    def check(self) -> DataReport:
        """Counts per generator against 500 each; missing files listed."""
        report = super().check()
        report.expected = {(typ, REAL if typ == "real" else FAKE): n for typ, n in EXPECTED.items()}
        listed = Counter(row["typ"] for row in self.rows()) if self.layout_ok()[0] else Counter()
        report.notes.append(f"list.csv rows per type: {dict(sorted(listed.items()))}")
        report.missing.extend(self.missing)
        return report
