"""The four component interfaces: model adapters, tasks, metrics and trainers.

See ``docs/architecture.md`` for how they meet in a run.
"""

from __future__ import annotations

import difflib
import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from harness.records import Prediction, Request, RequestKind, Sample, SampleRecord
from harness.results_model import MetricEntry


class ModelLoadError(RuntimeError):
    """A model that cannot be made ready (weights, environment or worker missing or broken). The message
    says what is missing and how to fix it; the CLI prints it without a traceback."""


class ModelAdapter(ABC):  # noqa: B024 - every method has a default; an adapter overrides what it serves
    """A model the harness can evaluate.

    Lifecycle: constructed with the user's ``--model-args`` (strings already
    parsed to int/float/bool where they look like one), then :meth:`check` before
    any data is read (cheap: are the weights and environment there?), then :meth:`setup` once,
    then for each batch :meth:`prepare` per request (CPU work such as decoding;
    may run in worker threads; raising fails that sample only) followed by
    :meth:`score_batch` or :meth:`generate_batch` on the prepared inputs.
    """

    #: Request kinds this adapter serves: ``"score"`` (P(fake)) and/or ``"generate"`` (text).
    request_kinds: ClassVar[frozenset[str]] = frozenset({"score"})
    #: option names the adapter takes through ``**args`` besides its ``__init__`` parameters (see :meth:`options`)
    extra_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **args: Any) -> None:
        self.args = dict(args)
        self.device = "cpu"

    @classmethod
    def options(cls) -> dict[str, Any]:
        """The ``--model-args`` this adapter takes, name -> default (``inspect.Parameter.empty`` when required):
        the keyword parameters of its ``__init__`` and of its bases' (declared once, where they are used), plus
        :attr:`extra_options`. ``harness ls models --options`` prints them; :meth:`check_options` holds a run to
        them."""
        found: dict[str, Any] = {}
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for name, parameter in inspect.signature(init).parameters.items():
                if name != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                    found.setdefault(name, parameter.default)
        for name in cls.extra_options:
            found.setdefault(name, None)
        return found

    @classmethod
    def check_options(cls, given: dict[str, Any], model_name: str) -> None:
        """Refuse ``--model-args`` the adapter does not take (a typo would otherwise be recorded and ignored),
        naming the closest option it does take."""
        known = cls.options()
        for name in given:
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(
                    f"model {model_name!r} takes no argument {name!r}{hint}; it takes: {', '.join(sorted(known))} "
                    f"(`harness ls models --options`)"
                )

    def check(self) -> None:  # noqa: B027 - optional hook
        """Fail fast, before any data work, when what :meth:`setup` needs is absent: raise
        :class:`ModelLoadError` saying what is missing and how to get it. Must not load weights."""

    def setup(self, device: str = "cpu") -> None:
        """Load weights and move them to ``device``; called once before the first batch."""
        self.device = device

    def fingerprint(self) -> dict[str, Any]:
        """Identity of the model for the response cache: name, args and checkpoint hash.

        Subclasses that load a checkpoint must include its content hash so that a
        changed checkpoint never reuses cached answers.
        """
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", "args": self.args}

    def preprocessing(self) -> dict[str, Any]:
        """The exact preprocessing applied to images (recorded in results)."""
        return {}

    def prepare(self, request: Request) -> Any:
        """Per-request CPU work (image decoding, transforms). Raise to fail this sample."""
        return request

    def cost(self, request: Request) -> float | None:
        """Relative cost of a request (e.g. its prompt length). When a model gives one, the runner sends
        the costliest requests first and batches requests of similar cost together, so padded batches
        waste less and an out-of-memory batch shows up at once. ``None`` (default): task order."""
        return None

    def estimate(self, requests: Sequence[Request]) -> str | None:
        """What answering ``requests`` will cost, in words (API models: tokens and USD), printed in the run's
        plan before the first call; ``None`` when there is nothing to say."""
        return None

    def in_flight_limit(self) -> int:
        """For a request-bound model (an HTTP API, a served engine), how many requests to keep in flight; the
        runner then streams requests through :meth:`answer_one` (:mod:`harness.streaming`) instead of batching
        them, independent of ``--batch-size``. ``0`` (default): a batched model."""
        return 0

    def answer(self, inputs: Sequence[Any], kind: RequestKind) -> list[Prediction]:
        """The one way the harness asks a batched model (do not override): :meth:`score_batch` or
        :meth:`generate_batch` by ``kind``, its outputs checked (one per input; each a :class:`Prediction`, a text,
        or a P(fake) in [0, 1], anything else that sample's error) and returned as predictions."""
        if kind not in self.request_kinds:
            raise ValueError(f"{type(self).__name__} serves {sorted(self.request_kinds)}, not {kind!r} requests")
        outputs = list(self.score_batch(inputs) if kind == "score" else self.generate_batch(inputs))
        if len(outputs) != len(inputs):
            raise RuntimeError(f"model returned {len(outputs)} outputs for {len(inputs)} inputs")
        return [Prediction.of(out) for out in outputs]

    def answer_request(self, prepared: Any, kind: RequestKind) -> Prediction:
        """The one way the harness asks a request-bound model (do not override): :meth:`answer_one`, checked as
        :meth:`answer` checks a batch."""
        return Prediction.of(self.answer_one(prepared, kind))

    def answer_one(self, prepared: Any, mode: str) -> Any:
        """One prepared request's answer (a :class:`~harness.records.Prediction`, a P(fake) or a text), called
        from many threads at once when :meth:`in_flight_limit` is above 0."""
        raise NotImplementedError(f"{type(self).__name__} answers in batches (score_batch / generate_batch)")

    def display_name(self) -> str | None:
        """What was evaluated, when the registry name does not say it (``openai-api`` serving ``gpt-4o``): used in
        the results folder's name and as the board label; ``None`` (default): the registry name."""
        return None

    def computes_here(self) -> bool:
        """Whether the model's compute runs in this process (default); ``False`` for a model in a worker process or
        behind a server, so the runner leaves this process's cores to sample preparation (:mod:`harness.threads`)."""
        return self.in_flight_limit() == 0

    def run_notes(self) -> dict[str, Any]:
        """What happened inside the model during the run that a reader of the results should know (endpoints
        used, failovers), recorded under ``model.run_notes`` in each results file; ``{}`` when nothing."""
        return {}

    def run_usage(self) -> dict[str, dict[str, Any]]:
        """Calls the model made so far in this run that belong to no sample (a paid API's probes), by source
        name, each ``{"requests", "prompt_tokens", "completion_tokens"[, "cost_usd"]}``; counted in the results'
        ``usage`` with the samples' own. ``{}`` when none (every local model)."""
        return {}

    def score_batch(self, inputs: Sequence[Any]) -> Sequence[float | Prediction]:
        """P(fake) for each prepared input, in order (or a :class:`Prediction`, to carry an error or extras)."""
        raise NotImplementedError(f"{type(self).__name__} does not serve score requests")

    def generate_batch(self, inputs: Sequence[Any]) -> Sequence[str | Prediction]:
        """Generated text for each prepared input, in order."""
        raise NotImplementedError(f"{type(self).__name__} does not serve generate requests")

    def trained_on(self) -> dict[str, Any] | None:
        """What the checkpoint was trained on (``{"task", "seen_generators", ...}``), if known.

        The runner uses ``seen_generators`` for Seen / Unseen averages unless the user
        passes ``--seen``.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (worker processes, GPU memory)."""


class Task(ABC):
    """A benchmark: where its samples come from, how to ask about them, how to score answers."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    #: Modes in order of preference; the runner picks the first the model serves.
    modes: ClassVar[tuple[str, ...]] = ("score",)
    default_metrics: ClassVar[tuple[str, ...]] = ("acc", "ap", "auc")
    main_metric: ClassVar[str] = "auc"
    default_split: ClassVar[str] = "test"
    #: every split the task has, when it knows them (what ``harness data export`` writes by default; empty: the
    #: default and calibration splits)
    splits: tuple[str, ...] = ()
    #: Split used to choose thresholds (``acc_val_threshold``); ``None`` when the task has none.
    calibration_split: ClassVar[str | None] = None
    #: Metadata fields to break metrics down by, besides the subset (e.g. ``("question_type",)``).
    breakdown_keys: ClassVar[tuple[str, ...]] = ()
    #: Columns of the paper-style board layouts this task appears in (``qualitative``, ``transparency``), as data:
    #: a list of column specs per layout (see :mod:`harness.boards`), written into every results file, so the
    #: board code needs to know no benchmark's breakdowns or metrics.
    board_columns: ClassVar[dict[str, list[dict[str, Any]]]] = {}
    #: What the benchmark's own "average" is over: ``"generators"`` (the subsets that hold fake images:
    #: the generator columns of CNNDetection / AIGCDetectBenchmark / SynthWildX / FakeBench) or
    #: ``"subsets"`` (every subset, real ones included: AntifakePrompt's per-folder accuracies).
    average_over: ClassVar[str] = "generators"
    #: ability: the task reads ``--data-root hf:SOURCE`` itself (else :mod:`harness.hf_data` serves its samples)
    reads_hf_source: ClassVar[bool] = False
    description: ClassVar[str] = ""

    def __init__(self, data_root: str | None = None, **options: Any) -> None:
        self.data_root = Path(data_root).expanduser() if data_root else None
        self.options = dict(options)

    def available(self) -> tuple[bool, str]:
        """Whether the task's data is present, and if not, why (shown when ``--tasks all`` skips it)."""
        return True, ""

    @abstractmethod
    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """The samples of ``split`` (default :attr:`default_split`) in a stable order."""

    def request(self, sample: Sample, mode: str) -> Request:
        """The request for one sample in ``mode`` (default: one plain score request)."""
        return Request(sample=sample, kind="score" if mode == "score" else "generate")

    def parse_verdict(self, sample: Sample, text: str) -> int | None:
        """Map generated text to 1 (fake), 0 (real) or ``None`` (unknown)."""
        return None

    def metrics_for(self, mode: str) -> tuple[str, ...]:
        """The metrics of a run in ``mode`` (default: :attr:`default_metrics`)."""
        return self.default_metrics

    def postprocess(self, sample: Sample, text: str) -> str:
        """The generated text as the task scores it (e.g. FakeQA's sentence filter); default unchanged."""
        return text

    def data_notes(self) -> dict[str, Any]:
        """Facts about the data found (e.g. listed-but-missing images), recorded in results."""
        return {}

    def export(self, records: Sequence[SampleRecord]) -> dict[str, Any]:
        """Files to write beside the results (name -> JSON-ready content), e.g. an upstream submission."""
        return {}

    def config(self) -> dict[str, Any]:
        """Everything that changes the samples or prompts (part of the task fingerprint)."""
        return {"options": self.options}

    def fingerprint(self) -> dict[str, Any]:
        """Task identity for the cache and results: name, version and config."""
        return {"name": self.name, "version": self.version, "config": self.config()}


@dataclass
class MetricValue:
    """An aggregate metric: a value, or ``None`` with a note saying why it is undefined.

    ``ci`` is a 95% bootstrap interval when one was computed; ``data`` carries
    non-scalar results (curves, chosen thresholds, failure counts).
    """

    value: float | None
    n: int
    note: str | None = None
    ci: list[float] | None = None
    data: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, as a results file holds it (:class:`harness.results_model.MetricEntry`)."""
        return MetricEntry(self.value, self.n, self.note, self.ci, self.data).to_json()


@dataclass
class MetricContext:
    """What a metric may need beyond the records of the set it scores.

    ``calibration``: scored records of the task's validation split (for thresholds
    chosen on validation, never on test); ``cache_dir``: where metrics keep caches
    (the LLM judge); ``seed``: for resampling.
    """

    calibration: Sequence[SampleRecord] | None = None
    cache_dir: Path | None = None
    seed: int = 0
    #: the run's plugin manager (:class:`harness.plugin_manager.HarnessPlugins`), for metrics that build
    #: registered components (the judge metrics)
    plugins: Any = None
    #: ``--retry-failed``: metrics that make calls ask again what their cache kept as a failure
    retry_failed: bool = False
    #: bootstrap intervals kept with the labels and scores they came from (``get(key)`` / ``put(key, value)``;
    #: the run's response cache), so a rerun with the same records does not resample again
    intervals: Any = None
    #: aggregate values kept the same way (:mod:`harness.metric_memo`): a cached rerun computes no metric again
    values: Any = None


class Metric(ABC):
    """A metric with a per-sample part (optional) and an aggregate part."""

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    #: Which record field the metric needs: ``"score"``, ``"verdict"`` or ``"text"``.
    requires: ClassVar[str] = "score"
    #: Whether a bootstrap confidence interval makes sense (scalar metrics over samples).
    bootstrap: ClassVar[bool] = True
    #: Whether the metric needs the validation split's records (``MetricContext.calibration``).
    needs_calibration: ClassVar[bool] = False
    #: Names of metrics this one is derived from (computed after them, see :meth:`derive`).
    depends_on: ClassVar[tuple[str, ...]] = ()
    #: Whether a single-class (fake-only) subset is scored together with the run's shared pool of reals.
    #: True for metrics that need both classes by definition (AP, AUC, EER, balanced accuracy); False for
    #: the rest, so a fake-only subset's accuracy is its fake recall, as each upstream script computes
    #: it per folder.
    pairs_with_real_pool: ClassVar[bool] = False
    #: The values the metric can take: a results file holding one outside is refused when read (hand edits).
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    #: Whether the per-sample values come from paid calls (an LLM judge). The runner computes them once per run,
    #: while it calls the model (:func:`harness.metrics_runner.make_metric_calls`); aggregation, the bootstrap and
    #: the report never call: a sample without a value is left out and counted.
    makes_calls: ClassVar[bool] = False
    #: ability: the value is the mean of the per-sample values (the bootstrap resamples those, calling nothing)
    mean_of_per_sample: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = dict(options)

    def per_sample(self, record: SampleRecord, context: MetricContext | None = None) -> float | None:
        """This sample's contribution (e.g. 1.0 if correct), or ``None`` if not per-sample."""
        return None

    def per_sample_batch(
        self, records: Sequence[SampleRecord], context: MetricContext | None = None
    ) -> list[float | None]:
        """Per-sample values for many records at once (override to batch, e.g. BERTScore)."""
        return [self.per_sample(record, context) for record in records]

    @abstractmethod
    def aggregate(self, records: Sequence[SampleRecord], context: MetricContext | None = None) -> MetricValue:
        """The metric over ``records`` (only records without error and with the required field)."""

    def derive(self, values: dict[str, MetricValue]) -> MetricValue:
        """For derived metrics: the value from the values of :attr:`depends_on`."""
        raise NotImplementedError


class JudgeError(Exception):
    """A judge call that failed (after the retries): the sample is not scored, never scored 0.
    ``deterministic``: asking again would fail the same way (the request itself was refused), so the failure is
    cached like an answer; otherwise (timeouts, 5xx) the next run asks again."""

    deterministic: bool = False


class Judge(ABC):
    """An LLM that grades text (LLM-as-judge): a prompt in, a reply out, deterministic (temperature 0)."""

    def __init__(self, **args: Any) -> None:
        self.args = dict(args)
        #: calls made and tokens used so far (API judges fill it through :meth:`count`; results report it)
        self.usage: dict[str, Any] = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._usage_lock = threading.Lock()

    def count(self, requests: int = 0, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Add to :attr:`usage` (thread-safe: judges are called from worker threads)."""
        with self._usage_lock:
            self.usage["requests"] += requests
            self.usage["prompt_tokens"] += prompt_tokens
            self.usage["completion_tokens"] += completion_tokens

    def fingerprint(self) -> dict[str, Any]:
        """Identity for the judge cache (model name, endpoint, decoding), never secrets."""
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", "args": self.args}

    @abstractmethod
    def complete(self, prompt: str, system: str | None = None) -> str:
        """The judge's reply; raise :class:`JudgeError` on failure."""

    def complete_many(
        self, prompts: Sequence[str], system: str | None = None, concurrency: int = 1
    ) -> Iterator[tuple[int, str | JudgeError]]:
        """``(position, reply or the JudgeError its call raised)`` for every prompt, yielded as they are answered
        (a caller keeps each before the next comes, so an interrupted run loses none it was given). This default
        calls :meth:`complete` from ``concurrency`` threads, in order (an endpoint answers requests in flight
        together); a judge that batches better overrides it (a local model: continuous batching)."""

        def ask(prompt: str) -> str | JudgeError:
            try:
                return self.complete(prompt, system=system)
            except JudgeError as exc:
                return exc

        if concurrency <= 1 or len(prompts) <= 1:
            yield from ((i, ask(prompt)) for i, prompt in enumerate(prompts))
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            yield from enumerate(pool.map(ask, prompts))


class Trainer(ABC):
    """Fits a model on a task's training split and writes a checkpoint directory."""

    name: ClassVar[str] = ""
    #: The model (adapter) name that loads this trainer's checkpoints.
    model_name: ClassVar[str] = ""
    #: Whether ``harness train`` must be given ``--task`` (a detector fits a task's split; an instruction tuner
    #: reads its own data file and is handed empty splits).
    requires_task: ClassVar[bool] = True

    def __init__(self, **args: Any) -> None:
        self.args = dict(args)

    def evaluation_command(self, out_dir: Path, task_name: str) -> str:
        """The ``harness run`` command that evaluates what :meth:`train` wrote (printed by ``harness train``)."""
        return f"harness run --model {self.model_name or self.name} --model-args checkpoint={out_dir} " + (
            f"--tasks {task_name}" if task_name else "--tasks aigi-mini"
        )

    @abstractmethod
    def train(
        self, train: Sequence[Sample], val: Sequence[Sample], out_dir: Path, task_name: str, resume: bool = True
    ) -> dict[str, Any]:
        """Train, write the checkpoint into ``out_dir`` and return a summary dict."""


# -- optional abilities: what a component may offer beyond its base class, checked with isinstance ----------------


@runtime_checkable
class ArrayMetric(Protocol):
    """A metric computable from arrays of labels and scores: the bootstrap resamples arrays, not records."""

    def from_arrays(self, labels: Any, scores: Any, context: MetricContext | None = None) -> float | None:
        """The metric of these labels (0/1) and scores (P(fake))."""
        ...


@runtime_checkable
class FastArrayMetric(Protocol):
    """An :class:`ArrayMetric` with a faster equivalent for many resamples (same value, tested)."""

    def fast_from_arrays(self, labels: Any, scores: Any, context: MetricContext | None = None) -> float | None:
        """As ``from_arrays``, faster."""
        ...


@runtime_checkable
class WeightedMetric(Protocol):
    """A metric that takes sample weights: every bootstrap resample at once, as a matrix of counts."""

    def from_weights(self, labels: Any, scores: Any, weights: Any, context: MetricContext | None = None) -> Any:
        """The metric under each row of ``weights`` (resample counts per sample)."""
        ...


@runtime_checkable
class ReportsCalls(Protocol):
    """A component that makes paid calls of its own (an LLM judge metric) and says how many: usage counts them."""

    def judge_usage(self) -> dict[str, Any] | None:
        """Requests, tokens and cost of the calls made so far (``None``: none)."""
        ...


@runtime_checkable
class Thresholded(Protocol):
    """A metric whose value depends on a threshold chosen elsewhere (on the validation split): the threshold is
    part of a cached bootstrap interval's key."""

    def threshold(self, context: MetricContext | None) -> Any:
        """The threshold in use under ``context``."""
        ...
