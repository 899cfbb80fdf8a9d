"""What a run works on: one :class:`WorkItem` per sample, and the turning of answers into records.

A work item carries a sample's request, its response-cache key (``None`` when the file cannot be read) and,
once known, its :class:`~harness.records.SampleRecord`. :class:`RecordMaker` turns a model's answer, fresh or
read from the cache, into that record (the task's post-processing and verdict parsing for generated text) and
says what the cache keeps of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.interfaces import Task
from harness.records import Prediction, Request, SampleRecord, printable


@dataclass
class WorkItem:
    """One sample's way through a run: its request, its response-cache key (``None`` when the file cannot be
    read) and, once known, its record."""

    index: int
    request: Request
    key: str | None = None
    record: SampleRecord | None = None


class RecordMaker:
    """Records of one task in one mode, and what the response cache keeps of each answer."""

    def __init__(self, task: Task, mode: str, use_cache: bool) -> None:
        self.task, self.mode, self.use_cache = task, mode, use_cache

    def keeps(self, prediction: Prediction) -> bool:
        """Whether the cache keeps this answer: every answer, and the failures that asking again would repeat."""
        return self.use_cache and (prediction.ok or prediction.deterministic)

    @staticmethod
    def payload(prediction: Prediction, seconds: float) -> dict[str, Any]:
        """What the response cache keeps of an answer (or of a deterministic failure)."""
        payload = {"score": prediction.score, "text": prediction.text, "extra": prediction.extra, "seconds": seconds}
        if prediction.error is not None:
            payload["error"] = prediction.error
        return payload

    def from_cache(self, item: WorkItem, payload: dict[str, Any], cached: bool) -> SampleRecord:
        """The record of an answer read from the response cache (a kept failure is marked ``failure_cached``)."""
        error = payload.get("error")
        extra = payload.get("extra") or {}
        if error is not None:
            extra = {**extra, "failure_cached": True}  # a deterministic failure kept by an earlier run
        # straight to the record, no answer object in between: this runs once per sample of a cached rerun
        return self._make(item.request, payload.get("score"), payload.get("text"), error, extra, item.key or "",
                          payload.get("seconds", 0.0), cached)  # fmt: skip

    def failure(self, request: Request, error: str, seconds: float = 0.0) -> SampleRecord:
        """The record of a sample that failed before or outside the model."""
        return self.record(request, Prediction(error=error), "", seconds)

    def record(
        self, request: Request, prediction: Prediction, key: str, seconds: float, cached: bool = False
    ) -> SampleRecord:
        """The record of one answer: generated text post-processed and its verdict parsed by the task."""
        return self._make(request, prediction.score, prediction.text, prediction.error, prediction.extra, key, seconds,
                          cached)  # fmt: skip

    def _make(
        self,
        request: Request,
        score: float | None,
        answer: str | None,
        error: str | None,
        extra: dict[str, Any],
        key: str,
        seconds: float,
        cached: bool,
    ) -> SampleRecord:
        sample = request.sample
        verdict, text = None, answer
        if error is None and answer is not None and self.mode != "score":
            text = self.task.postprocess(sample, answer)
            if text != answer:
                extra = {**extra, "raw_text": answer}
            verdict = self.task.parse_verdict(sample, text)
        image = sample.image
        # positional, in SampleRecord's field order (2.5x faster than keywords; a run makes one per sample):
        # sample_id, subset, split, label, mode, image, score, text, verdict, error, seconds, cached, key, prompt,
        # metadata, metrics, extra
        return SampleRecord(
            sample.id, sample.subset, sample.split, sample.label, self.mode,
            printable(image) if isinstance(image, str) else None, score, text, verdict, error, round(seconds, 6),
            cached, key, request.prompt, sample.metadata, {}, dict(extra),
        )  # fmt: skip
