"""FakeBench (Yixuan423/FakeBench): FakeClass, FakeClue and FakeQA (paper Tables III and IV).

Data: the query files ``FakeClass.json``, ``FakeClue.json`` and ``FakeQA.json``
(at ``<root>``, ``<root>/Evaluation`` or ``queries=DIR``) and the 6,000 images,
found anywhere below ``<root>`` by file name (upstream ships them as
``FakeBench_images/{fake_images,real_images}`` and tells users to switch the two
folders by hand; indexing by name makes that irrelevant). Listed images that are
absent are counted in ``results.json`` (``data``), not evaluated.

Labels: FakeClass's ``authenticity`` is 0 = fake, 1 = real upstream; the harness's
label is the opposite (1 = fake). Upstream withholds the FakeClue / FakeQA
references: pass ``references=FILE`` when you have them, and every run writes the
predictions in upstream's submission format (``submission.json``) for the authors.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.records import FAKE, REAL, GenerationParams, Request, Sample, SampleRecord
from harness.tasks.common import BenchmarkTask, DataReport, header_metadata, is_image_name, make_sample
from harness.verdicts import parse_verdict

GENERATORS = ("FuseDream", "Glide", "proGAN", "VQDM", "sd", "dalle3", "cogview2", "midjourney", "dalle2", "styleGAN")
FAKEQA_DIMENSIONS = (
    "texture",
    "edge",
    "clarity",
    "light & shadow",
    "layout",
    "symmetry",
    "reflection",
    "perspective",
    "shape",
    "theme",
    "content deficiency",
    "distortion",
    "unrealistic aspect",
    "overall tone",
)
#: Keywords of upstream ``eval_FakeQA.py`` (sentence filter).
FAKEQA_KEYWORDS = (
    "texture",
    "edge",
    "clarity",
    "light",
    "shadow",
    "layout",
    "symmetry",
    "reflection",
    "perspective",
    "shape",
    "theme",
    "deficiency",
    "distortion",
    "unrealistic",
    "color",
    "tone",
)
FAKEQA_PREFIX = "Answer this question without itemizing: "
#: Table IV's columns per ability (the board's transparency layout; Overall = the mean of the abilities' Avr.)
TRANSPARENCY_MEASURES = [
    "bleu1",
    "bleu2",
    "rouge_l",
    "bertscore",
    "judge_completeness",
    "judge_preciseness",
    "judge_relevance",
    "avr",
]


def real_source(image_id: str) -> str:
    """ImageNet (``nXXXXXXXX_N.JPEG``), COCO (``000000NNNNNN.jpg``) or DIV2K (``NNNNx4.png``)."""
    if re.match(r"^n\d{8}_\d+\.", image_id):
        return "ImageNet"
    if re.match(r"^\d{12}\.", image_id):
        return "COCO"
    if re.match(r"^\d{4}x\d\.", image_id):
        return "DIV2K"
    return "unknown"


def generator_of(image_id: str) -> str | None:
    """The generator prefix of a fake image id (``Glide-01370.jpg`` -> ``Glide``), else ``None``."""
    prefix = image_id.split("-", 1)[0]
    return prefix if prefix in GENERATORS else None


def question_type(question: str) -> str:
    """``what`` (fake or real?), ``yes/no (fake)`` or ``yes/no (real)``: FakeClass's three templates."""
    q = question.lower()
    if q.startswith("is this a fake"):
        return "yes/no (fake)"
    if q.startswith("is this a real"):
        return "yes/no (real)"
    return "what"


def fakeqa_prompt(question: str) -> str:
    """The FakeQA prompt as upstream's script means it: the prefix, the question up to its "?", and
    " regarding the image authenticity?" only when the question does not already say so (upstream
    appends it unconditionally, duplicating the phrase in most questions)."""
    q = question.strip()
    head = q[: q.index("?")] if "?" in q else q
    if "authenticity" in head.lower():
        return FAKEQA_PREFIX + head + "?"
    return FAKEQA_PREFIX + head + " regarding the image authenticity?"


def fakeqa_filter(question: str, answer: str) -> str:
    """Upstream's answer post-processing, done right.

    Keep the sentences (split on ". ") that contain a word starting with one of the
    keywords found in the question; if none does, keep the whole answer. Upstream's
    loop instead overwrote the kept sentences with the raw answer whenever a later
    sentence did not match (and crashed before that, calling ``append`` on a dict).
    """
    keywords = [k for k in FAKEQA_KEYWORDS if re.search(rf"\b{k}", question, re.IGNORECASE)]
    if not keywords:
        return answer
    sentences = answer.split(". ")
    kept = [s for s in sentences if any(re.search(rf"\b{k}", s, re.IGNORECASE) for k in keywords)]
    return ". ".join(kept) if kept else answer


def fakeqa_dimension(question: str, index: int) -> str:
    """The canonical dimension a FakeQA question asks about (by keyword; by position as a fallback)."""
    q = question.lower()
    for dimension in sorted(FAKEQA_DIMENSIONS, key=len, reverse=True):
        words = dimension.replace("&", " ").split()
        if all(w in q for w in words):
            return dimension
    return FAKEQA_DIMENSIONS[index - 1] if 1 <= index <= len(FAKEQA_DIMENSIONS) else "unknown"


def with_judge(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """Add the LLM-judge measures and Avr. when a judge is configured (``HARNESS_JUDGE[_MODEL]``)."""
    if os.environ.get("HARNESS_JUDGE_MODEL") or os.environ.get("HARNESS_JUDGE"):
        return metrics + ("judge_completeness", "judge_preciseness", "judge_relevance", "avr", "avr_halves")
    return metrics


class _FakeBench(BenchmarkTask):
    env_var = "HARNESS_DATA_FAKEBENCH"
    default_name = "FakeBench"
    query_file = ""

    def __init__(
        self, data_root: str | None = None, queries: str | None = None, references: str | None = None, **options: Any
    ) -> None:
        super().__init__(data_root=data_root, queries=queries, references=references, **options)
        self.queries = Path(queries) if queries else None
        self.references_path = Path(references) if references else None
        self.n_listed = 0
        self.absent: list[str] = []
        self._index: dict[str, Path] | None = None

    def query_path(self) -> Path | None:
        """Where the query JSON is."""
        candidates = [self.queries / self.query_file] if self.queries else []
        if self.root:
            candidates += [self.root / self.query_file, self.root / "Evaluation" / self.query_file]
        return next((c for c in candidates if c.is_file()), None)

    def layout_ok(self) -> tuple[bool, str]:
        """The query file is found."""
        if self.query_path() is None:
            return False, f"{self.query_file} not found under {self.root} (or queries=DIR)"
        return True, ""

    def entries(self) -> list[dict[str, Any]]:
        """The query file's entries."""
        path = self.query_path()
        if path is None:
            raise FileNotFoundError(f"{self.query_file} not found under {self.root} (or queries=DIR)")
        return json.loads(path.read_text(encoding="utf-8"))

    def image_index(self) -> dict[str, Path]:
        """Image file name -> path, for every image below the root."""
        if self._index is None:
            self._index = {}
            for folder, _, files in os.walk(self.root):
                for name in files:
                    if is_image_name(Path(name)):
                        self._index.setdefault(name, Path(folder) / name)
        return self._index

    def references(self) -> dict[str, dict[str, str]]:
        """Reference texts from ``references=FILE``: a list of ``{"image_id", <field>: text}`` objects or a
        dict ``image_id -> {<field>: text}``; empty without a file."""
        if self.references_path is None:
            return {}
        data = json.loads(self.references_path.read_text(encoding="utf-8"))
        if isinstance(data, list):
            data = {row["image_id"]: row for row in data}
        return data

    def present(self, image_ids: Sequence[str]) -> dict[str, Path]:
        """The listed images found on disk; the absent ones are counted."""
        index = self.image_index()
        found = {i: index[i] for i in image_ids if i in index}
        self.n_listed = len(set(image_ids))
        self.absent = sorted(set(image_ids) - set(found))
        return found

    def listing(self, split: str | None) -> tuple[str, list[dict[str, Any]], dict[str, Path], dict[str, Any]]:
        """(split, query entries, image id -> path of the present images, header metadata by path)."""
        split = self._check_split(split)
        entries = self.entries()
        found = self.present([e["image_id"] for e in entries if e.get("image_id")])
        return split, entries, found, header_metadata(str(p) for p in found.values())

    def data_notes(self) -> dict[str, Any]:
        """Listed and absent images."""
        return {"listed_images": self.n_listed, "absent_images": len(self.absent), "absent_examples": self.absent[:10]}

    def check(self) -> DataReport:
        """Counts per subset and label; absent images listed."""
        report = super().check()
        report.missing.extend(self.absent)
        return report


class FakeClass(_FakeBench):
    """FakeClass: 6,000 images, one of three questions each (paper Table III; Fig. 6 by soft-scoring)."""

    name = "fakeclass"
    version = "1"
    query_file = "FakeClass.json"
    modes = ("generate", "score")
    main_metric = "qual_acc"
    breakdown_keys = ("question_type", "authenticity", "generator")
    #: Table III: Fake = mean of the generator columns (the paper's caption), Real, the question types (yes/no
    #: weighted by count), each generator, Overall
    board_columns = {
        "qualitative": [
            {"header": "Fake", "mean_of": "generator", "except": ["real"]},
            {"header": "Real", "breakdown": "authenticity", "keys": ["real"]},
            {"header": "What", "breakdown": "question_type", "keys": ["what"]},
            {"header": "Yes/No", "breakdown": "question_type", "keys": ["yes/no", "yes/no (fake)", "yes/no (real)"]},
            {"each_of": "generator", "except": ["real"]},
            {"header": "Overall", "all": True},
        ]
    }
    description = "FakeBench FakeClass: qualitative accuracy by question type / generator; soft-score AUC."

    def metrics_for(self, mode: str) -> tuple[str, ...]:
        """Qualitative accuracy for answers; detection metrics for soft scores."""
        if mode == "generate":
            return ("qual_acc", "unknown_rate")
        return ("acc", "ap", "auc", "real_acc", "fake_acc", "balanced_acc", "eer", "acc_curve")

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """One sample per query; subset = generator (fakes) or ``real``."""
        split, entries, found, metas = self.listing(split)
        for entry in entries:
            image_id = entry["image_id"]
            if image_id not in found:
                continue
            label = FAKE if int(entry["authenticity"]) == 0 else REAL
            if label == FAKE:
                subset = source = generator_of(image_id) or "unknown"
            else:
                subset, source = "real", real_source(image_id)
            yield make_sample(
                image_id,
                found[image_id],
                label,
                subset,
                split,
                source=source,
                meta=metas[str(found[image_id])],
                question=entry["question"],
                question_type=question_type(entry["question"]),
                reference_answer=entry["answer"],
                authenticity="fake" if label == FAKE else "real",
                generator=subset,
            )

    def request(self, sample: Sample, mode: str) -> Request:
        """Generate: the sample's question, greedy; score: the soft-scoring prompt."""
        if mode == "score":
            return Request(sample=sample, kind="score")
        return Request(
            sample=sample,
            kind="generate",
            prompt=sample.metadata["question"],
            generation=GenerationParams(max_new_tokens=64),
        )

    def parse_verdict(self, sample: Sample, text: str) -> int | None:
        """Read the answer against the question's polarity."""
        return parse_verdict(text, sample.metadata["question"])

    def export(self, records: Sequence[SampleRecord]) -> dict[str, Any]:
        """Upstream's response format: ``[{"image_id", "answer"}]``."""
        if not records or records[0].mode != "generate":
            return {}
        return {
            "submission.json": [
                {"image_id": r.sample_id, "answer": r.extra.get("raw_text", r.text)}
                for r in records
                if r.text is not None
            ]
        }


class FakeClue(_FakeBench):
    """FakeClue: fault-finding (interpreting) and inference (reasoning) answers on 3,000 fakes."""

    name = "fakeclue"
    version = "1"
    query_file = "FakeClue.json"
    modes = ("generate",)
    main_metric = "rouge_l"
    breakdown_keys = ("ability",)
    board_columns = {"transparency": [{"each_of": "ability", "metrics": TRANSPARENCY_MEASURES}, {"summary": "avr"}]}
    description = "FakeBench FakeClue: interpreting and reasoning answers (references via references=FILE)."
    MODES = {"faultfinding_mode": "interpreting", "inference_mode": "reasoning"}

    def metrics_for(self, mode: str) -> tuple[str, ...]:
        """Word-level metrics, the verdict of the reasoning answers (``qual_acc`` / ``unknown_rate`` count the
        reasoning questions only: fault-finding prompts presuppose "fake"), and the judge when configured."""
        return with_judge(("bleu1", "bleu2", "rouge_l", "bertscore", "qual_acc", "unknown_rate"))

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """Two samples per image: ``<id>#faultfinding_mode`` and ``<id>#inference_mode``."""
        split, entries, found, metas = self.listing(split)
        references = self.references()
        for entry in entries:
            image_id = entry["image_id"]
            if image_id not in found:
                continue
            for field, ability in self.MODES.items():
                ref = references.get(image_id, {})
                reference = ref.get(field) or ref.get(field.replace("_mode", "")) or None
                yield make_sample(
                    f"{image_id}#{field}",
                    found[image_id],
                    FAKE,
                    entry["generation_model"],
                    split,
                    source=entry["generation_model"],
                    meta=metas[str(found[image_id])],
                    question=entry[field],
                    ability=ability,
                    reference=reference,
                    caption=entry.get("image_caption"),
                    image_id=image_id,
                    asks_verdict=ability == "reasoning",
                )

    def request(self, sample: Sample, mode: str) -> Request:
        """The entry's prompt for this ability, greedy."""
        return Request(
            sample=sample,
            kind="generate",
            prompt=sample.metadata["question"],
            generation=GenerationParams(max_new_tokens=512),
        )

    def parse_verdict(self, sample: Sample, text: str) -> int | None:
        """Reasoning answers end with a fake / real judgement; fault-finding answers presuppose fake."""
        return parse_verdict(text, None) if sample.metadata["ability"] == "reasoning" else None

    def export(self, records: Sequence[SampleRecord]) -> dict[str, Any]:
        """Upstream's format: ``[{"image_id", "faultfinding_mode", "inference_mode"}]``."""
        rows: dict[str, dict[str, Any]] = {}
        for r in records:
            image_id, _, field = r.sample_id.partition("#")
            rows.setdefault(image_id, {"image_id": image_id})[field] = r.text
        return {"submission.json": list(rows.values())}


class FakeQA(_FakeBench):
    """FakeQA: 14 fine-grained questions per fake image (paper Table IV, fine-grained analyzing)."""

    name = "fakeqa"
    version = "1"
    query_file = "FakeQA.json"
    modes = ("generate",)
    main_metric = "rouge_l"
    breakdown_keys = ("dimension",)
    board_columns = {"transparency": [{"all": True, "metrics": TRANSPARENCY_MEASURES}, {"summary": "avr"}]}
    description = "FakeBench FakeQA: 14 forgery dimensions, upstream's answer filter done right."

    def metrics_for(self, mode: str) -> tuple[str, ...]:
        """Word-level metrics, and the judge when one is configured."""
        return with_judge(("bleu1", "bleu2", "rouge_l", "bertscore"))

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """One sample per (image, question): ``<id>#Q<i>``; Q13/Q14 absent in some entries upstream."""
        split, entries, found, metas = self.listing(split)
        references = self.references()
        for entry in entries:
            image_id = entry.get("image_id")
            if image_id not in found:
                continue
            for index in range(1, 15):
                question = entry.get(f"Q{index}")
                if not question:
                    continue
                ref = references.get(image_id, {}).get(f"A{index}") or None
                yield make_sample(
                    f"{image_id}#Q{index}",
                    found[image_id],
                    FAKE,
                    generator_of(image_id) or "unknown",
                    split,
                    source=image_id,
                    meta=metas[str(found[image_id])],
                    question=question,
                    prompt=fakeqa_prompt(question),
                    dimension=fakeqa_dimension(question, index),
                    reference=ref,
                    image_id=image_id,
                    index=index,
                )

    def request(self, sample: Sample, mode: str) -> Request:
        """The corrected FakeQA prompt, greedy."""
        return Request(
            sample=sample,
            kind="generate",
            prompt=sample.metadata["prompt"],
            generation=GenerationParams(max_new_tokens=256),
        )

    def postprocess(self, sample: Sample, text: str) -> str:
        """Upstream's keyword sentence filter, fixed (see :func:`fakeqa_filter`)."""
        return fakeqa_filter(sample.metadata["question"], text)

    def export(self, records: Sequence[SampleRecord]) -> dict[str, Any]:
        """Upstream's format: ``{image_id, A1.., A1_org..}`` per image."""
        rows: dict[str, dict[str, Any]] = {}
        for r in records:
            image_id, _, q = r.sample_id.partition("#")
            index = q[1:]
            row = rows.setdefault(image_id, {"image_id": image_id})
            row[f"A{index}"] = r.text
            row[f"A{index}_org"] = r.extra.get("raw_text", r.text)
        return {"submission.json": list(rows.values())}
