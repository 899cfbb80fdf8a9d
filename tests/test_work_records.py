"""RecordMaker turns answers into records, fresh or from the cache, field by field (it builds them positionally
for speed, issue #31: pinned here against SampleRecord's own field order and a keyword construction)."""

from __future__ import annotations

from harness.records import Prediction, Request, Sample, SampleRecord
from harness.testkit.components import ListTask
from harness.work import RecordMaker, WorkItem

FIELDS = ["sample_id", "subset", "split", "label", "mode", "image", "score", "text", "verdict", "error", "seconds",
          "cached", "key", "prompt", "metadata", "metrics", "extra"]  # fmt: skip


class Verdicts(ListTask):
    def postprocess(self, sample, text):
        return text.upper()

    def parse_verdict(self, sample, text):
        return 1 if "FAKE" in text else 0


def test_records_carry_every_field_in_place():
    assert list(SampleRecord.__dataclass_fields__) == FIELDS, "work.RecordMaker._make builds records positionally"
    sample = Sample(
        id="a/1.png", image="/data/a/1.png", label=1, subset="gen", split="test", metadata={"format": "PNG"}
    )
    request = Request(sample=sample, kind="generate", prompt="Real or fake?")
    made = RecordMaker(Verdicts(), "generate", True).record(
        request, Prediction(text="it is fake", extra={"usage": 3}), "k1", 0.1234567, cached=False
    )
    expected = SampleRecord(sample_id="a/1.png", subset="gen", split="test", label=1, mode="generate",
                            image="/data/a/1.png", score=None, text="IT IS FAKE", verdict=1, error=None,
                            seconds=0.123457, cached=False, key="k1", prompt="Real or fake?",
                            metadata={"format": "PNG"}, extra={"usage": 3, "raw_text": "it is fake"})  # fmt: skip
    assert made == expected


def test_a_cached_answer_and_a_kept_failure():
    sample = Sample(id="b.png", image=b"bytes", label=0, subset="real", split="test")
    item = WorkItem(0, Request(sample=sample, kind="score"))
    item.key = "k2"
    maker = RecordMaker(Verdicts(), "score", True)
    payload = {"score": 0.25, "text": None, "extra": {"logprobs": 2}, "seconds": 0.5}
    record = maker.from_cache(item, payload, cached=True)
    assert (record.score, record.cached, record.key, record.image, record.extra) == (0.25, True, "k2", None,
                                                                                   {"logprobs": 2})  # fmt: skip
    assert record.extra is not payload["extra"], "the record owns its extra"
    failed = maker.from_cache(item, {"error": "no log-probabilities", "extra": {}, "seconds": 0.0}, cached=True)
    assert failed.error == "no log-probabilities" and failed.extra == {"failure_cached": True}
