"""LLM-as-judge metrics: completeness (alpha), preciseness (rho), relevance (kappa) on a 0-2 scale,
and the paper's normalised transparency average ("Avr.", Table IV).

The judge sees the question, the reference and the model's answer through a
versioned prompt file (``prompts/judge_<criterion>.v1.txt``; FakeBench's own
wording is unpublished, so these are ours, in the Q-Bench style the benchmark's
authors use, ending in "Score:"). Replies are parsed robustly
(:func:`parse_judge_score`). The judge is asked once per run, by the runner
while it calls the model, never while metrics are aggregated or bootstrapped
(:attr:`Metric.makes_calls`); each distinct prompt once. Calls run with bounded
concurrency; every successful reply is cached (SQLite under the run's
``.cache``) by judge identity, prompt version and prompt text, so a rerun pays
nothing twice, and so is a request the judge's server refused as such (HTTP 400,
413, 422), as a failure (``--retry-failed`` asks again). A failed call or an
unparseable reply is recorded on the sample (``extra["judge_errors"]``), counted
in the metric's note, and left out: never scored as 0.

Judge selection (metric options, else environment): ``judge`` /
``HARNESS_JUDGE`` (a registered judge name, default ``openai``) and
``judge_args`` / ``HARNESS_JUDGE_ARGS`` (``k=v,...``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from harness.cache import ResponseCache
from harness.fingerprint import hash_obj
from harness.interfaces import Judge, JudgeError, Metric, MetricContext, MetricValue
from harness.judging import build_judge
from harness.plugins.text_metrics import MeanOfPerSample, references_of
from harness.records import SampleRecord

PROMPT_VERSION = "v1"
SYSTEM_PROMPT = "You are a helpful assistant."
MAX_SCORE = 2.0

_SCORE_LABELLED = re.compile(r"score\s*(?:is|of)?\s*\**\s*[:：=]?\s*\**\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)
_OUT_OF = re.compile(r"\b([0-9]+(?:\.[0-9]+)?)\s*(?:/|out of)\s*2\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])([0-9]+(?:\.[0-9]+)?)(?![\w.]*[0-9])")


def parse_judge_score(reply: str) -> float | None:
    """The 0-2 score in a judge's reply, or ``None`` when there is no unambiguous one.

    Accepts ``"Score: 2"``, ``"score：1"`` (full-width colon), ``"**Score:** 1"``,
    ``"1/2"``, ``"1 out of 2"``, a bare ``"2"``, and prose holding exactly one number
    in range. Out-of-range labelled scores (``"Score: 3"``) give ``None``.
    """
    if not reply:
        return None
    for pattern in (_SCORE_LABELLED, _OUT_OF):
        match = pattern.search(reply)
        if match:
            value = float(match.group(1))
            return value if 0.0 <= value <= MAX_SCORE else None
    numbers = {float(n) for n in _NUMBER.findall(reply)}
    in_range = {n for n in numbers if 0.0 <= n <= MAX_SCORE}
    if len(in_range) == 1 and len(numbers) == 1:
        return in_range.pop()
    return None


def load_prompt(criterion: str, version: str = PROMPT_VERSION) -> str:
    """The prompt template of a criterion (placeholders ``{question}``, ``{reference}``, ``{candidate}``)."""
    path = resources.files("harness.plugins") / "prompts" / f"judge_{criterion}.{version}.txt"
    return path.read_text(encoding="utf-8")


class JudgeMetric(MeanOfPerSample):
    """Mean 0-2 judge score of one criterion over the samples with a reference."""

    criterion = "completeness"
    missing_reason = "no reference text, or judge failure"
    makes_calls = True
    value_range = (0.0, MAX_SCORE)

    def __init__(
        self,
        judge: Judge | str | None = None,
        judge_args: dict[str, Any] | str | None = None,
        concurrency: int = 4,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._judge_spec, self._judge_args = judge, judge_args
        self._judge: Judge | None = judge if isinstance(judge, Judge) else None
        self.concurrency = max(1, int(concurrency))
        self.template = load_prompt(self.criterion)

    def judge(self, context: MetricContext | None = None) -> Judge:
        """The judge, built on first use from the run's plugin manager (``context.plugins``; the process-wide
        one when the metric is used on its own)."""
        if self._judge is None:
            plugins = getattr(context, "plugins", None)
            if plugins is None:
                from harness.plugin_manager import get_plugins

                plugins = get_plugins()
            self._judge = build_judge(
                plugins, self._judge_spec if isinstance(self._judge_spec, str) else None, self._judge_args
            )
        return self._judge

    def judge_usage(self) -> dict[str, Any] | None:
        """The calls this metric's judge made (``None`` when it made none)."""
        return dict(self._judge.usage) if self._judge is not None and self._judge.usage.get("requests") else None

    def prompt(self, record: SampleRecord, reference: str) -> str:
        """The filled prompt for one sample."""
        question = record.prompt or record.metadata.get("question") or ""
        return self.template.format(question=question, reference=reference, candidate=record.text or "")

    def per_sample_batch(
        self, records: Sequence[SampleRecord], context: MetricContext | None = None
    ) -> list[float | None]:
        """Judge every record with a reference (cached, concurrent); failures recorded on the record."""
        jobs = [(i, self.prompt(r, refs[0])) for i, r in enumerate(records) if (refs := references_of(r))]
        values: list[float | None] = [None] * len(records)
        if not jobs:
            return values
        judge = self.judge(context)
        identity = hash_obj({"judge": judge.fingerprint(), "system": SYSTEM_PROMPT, "version": PROMPT_VERSION})
        cache_dir = context.cache_dir if context else None
        cache = ResponseCache(cache_dir / "judge.sqlite" if cache_dir else None)
        try:
            keys = {i: hash_obj({"judge": identity, "prompt": prompt}) for i, prompt in jobs}
            cached = cache.get_many(keys.values())
            replies, refused = self._kept(records, jobs, keys, cached, bool(context and context.retry_failed))
            todo: dict[str, list[int]] = {}  # identical prompts (same answer and reference) are asked once
            for i, prompt in jobs:
                if i not in replies and i not in refused:
                    todo.setdefault(prompt, []).append(i)

            asked = list(todo)
            # each reply is kept as it comes (an interrupted run asks only the rest again)
            for position, answer in judge.complete_many(asked, system=SYSTEM_PROMPT, concurrency=self.concurrency):
                prompt = asked[position]
                error = answer if isinstance(answer, JudgeError) else None
                reply = None if error is not None else answer
                for index in todo[prompt]:
                    if error is not None or not reply:
                        self._fail(records[index], str(error) if error else "empty judge reply")
                    else:
                        replies[index] = str(reply)
                if error is None and reply:
                    cache.put_many([(keys[todo[prompt][0]], {"reply": reply})])
                elif error is not None and error.deterministic:  # refused as such: asking again repeats it
                    cache.put_many([(keys[todo[prompt][0]], {"error": str(error)})])
        finally:
            cache.close()
        for index, reply in replies.items():
            score = parse_judge_score(reply)
            if score is None:
                self._fail(records[index], f"unparseable judge reply: {reply[:120]!r}")
            else:
                values[index] = score
        return values

    def _kept(
        self,
        records: Sequence[SampleRecord],
        jobs: list[tuple[int, str]],
        keys: dict[int, str],
        cached: dict[str, dict[str, Any]],
        retry: bool,
    ) -> tuple[dict[int, str], set[int]]:
        """What the judge cache holds for the jobs: replies by record index, and the indices whose request the
        judge refused before (recorded as failures again, not asked; ``retry``: asked again)."""
        replies: dict[int, str] = {}
        refused: set[int] = set()
        for i, _ in jobs:
            kept = cached.get(keys[i])
            if kept is None or (retry and "error" in kept):
                continue
            if "error" in kept:
                self._fail(records[i], kept["error"])
                refused.add(i)
            else:
                replies[i] = kept["reply"]
        return replies, refused

    def _fail(self, record: SampleRecord, message: str) -> None:
        record.extra.setdefault("judge_errors", {})[self.name] = message

    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """Mean score; judge failures counted separately in the note and in ``data``."""
        value = super().aggregate(records, context)
        failures = sum(1 for r in records if self.name in (r.extra.get("judge_errors") or {}))
        value.data = {"judge_failures": failures, "scale": [0, 2], "prompt_version": PROMPT_VERSION}
        if failures:
            value.note = f"{failures} judge failures left out (not scored 0)" + (
                f"; {value.note}" if value.note else ""
            )
        return value


class Completeness(JudgeMetric):
    """alpha: does the answer include the reference's forensic information? (0-2)"""

    name = "judge_completeness"
    criterion = "completeness"


class Preciseness(JudgeMetric):
    """rho: does the answer avoid contradicting the reference? (0-2)"""

    name = "judge_preciseness"
    criterion = "preciseness"


class Relevance(JudgeMetric):
    """kappa: is the answer relevant to the question? (0-2)"""

    name = "judge_relevance"
    criterion = "relevance"


WORD_LEVEL = ("bleu1", "bleu2", "rouge_l", "bertscore")
#: the share of asked samples the judge must have scored for ``avr`` / ``avr_halves`` to be reported
MIN_JUDGE_COVERAGE = 0.5
SEMANTIC_LEVEL = ("judge_completeness", "judge_preciseness", "judge_relevance")


def transparency_average(values: dict[str, float]) -> float:
    """The paper's "Avr." for one ability (Table IV), as its text defines it: "the measures are then
    normalized and averaged", i.e. the plain mean of the seven normalised measures

    ``Avr = mean(BLEU-1, BLEU-2, ROUGE-L, BERTScore, alpha/2, rho/2, kappa/2)``

    (judge scores scaled from 0-2 to [0, 1]). This reproduces all six published FakeScope cells
    (both variants, three abilities; e.g. FakeScope-M Interpreting 0.638). The published *baseline*
    rows follow another formula instead, :func:`transparency_average_halves`; both are pinned against
    every row of ``leaderboards/reported/fakescope-table-iv.yaml`` in the tests. "Overall" is the mean of
    the three abilities' Avr.
    """
    normalised = [values[k] for k in WORD_LEVEL] + [values[k] / MAX_SCORE for k in SEMANTIC_LEVEL]
    return sum(normalised) / len(normalised)


def transparency_average_halves(values: dict[str, float]) -> float:
    """The formula the paper's *baseline* rows of Table IV follow (not the one its text states):
    ``1/2 * mean(BLEU-1, BLEU-2, ROUGE-L, BERTScore) + 1/2 * mean(alpha/2, rho/2, kappa/2)``.

    It reproduces 26 of the 27 baseline cells (GPT-4V ... mPLUG-Owl2; e.g. GPT-4V Interpreting
    1/2 * 0.2815 + 1/2 * 0.8643 = 0.573) and none of the FakeScope cells. Qwen-VL's Interpreting cell
    (0.432) matches neither formula (0.435 here, 0.391 flat): a typo in the paper, listed in
    ``docs/protocols.md``. Use this metric (``avr_halves``) to put a run next to the published baselines.
    """
    word = sum(values[k] for k in WORD_LEVEL) / len(WORD_LEVEL)
    semantic = sum(values[k] / MAX_SCORE for k in SEMANTIC_LEVEL) / len(SEMANTIC_LEVEL)
    return (word + semantic) / 2.0


class TransparencyAverage(Metric):
    """``avr``: :func:`transparency_average` of this task's BLEU-1/2, ROUGE-L, BERTScore and judge scores."""

    name = "avr"
    requires = "text"
    bootstrap = False
    depends_on = WORD_LEVEL + SEMANTIC_LEVEL
    formula = staticmethod(transparency_average)

    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """Not computed from records; see :meth:`derive`."""
        raise NotImplementedError("avr is derived from other metrics")

    def derive(self, values: dict[str, MetricValue]) -> MetricValue:
        """The Avr. from the seven component values; ``None`` listing what is missing, or when the judge scored
        fewer than :data:`MIN_JUDGE_COVERAGE` of the samples it was asked about (then the average would stand
        on a few samples' judge scores beside every sample's word-level scores). The note says how many judge
        scores each of the three judge measures stands on."""
        missing = [k for k in self.depends_on if k not in values or values[k].value is None]
        if missing:
            return MetricValue(None, 0, f"undefined: missing {', '.join(missing)}")
        components = {k: values[k].value for k in self.depends_on}
        n = min(values[k].n for k in self.depends_on)
        coverage = {}
        for name in SEMANTIC_LEVEL:
            failures = int((values[name].data or {}).get("judge_failures", 0))
            coverage[name] = (values[name].n, values[name].n + failures)
        scored, asked = min(c[0] for c in coverage.values()), max(c[1] for c in coverage.values())
        data = {"components": components, "judge_coverage": {k: list(v) for k, v in coverage.items()}}
        if asked and scored / asked < MIN_JUDGE_COVERAGE:
            return MetricValue(
                None,
                n,
                f"left out: the judge scored only {scored} of {asked} samples (below {MIN_JUDGE_COVERAGE:.0%})",
                data=data,
            )
        note = f"judge measures stand on {scored} of {asked} samples" if scored < asked else None
        return MetricValue(
            self.formula({k: float(v) for k, v in components.items() if v is not None}), n, note, data=data
        )


class TransparencyAverageHalves(TransparencyAverage):
    """``avr_halves``: :func:`transparency_average_halves` (the formula of the paper's baseline rows)."""

    name = "avr_halves"
    formula = staticmethod(transparency_average_halves)
