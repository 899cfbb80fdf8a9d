"""The records that flow through a run: samples in, requests to models, one record out per sample.

All are plain dataclasses so they serialise to JSON lines without custom code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

REAL, FAKE = 0, 1
"""Label convention everywhere in the harness: 0 = real, 1 = fake (AI-generated)."""

RequestKind = Literal["score", "generate"]


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of a POSIX file name (Python's surrogate escapes) written as
    ``\\xNN``: ids, messages and records then survive any file name and still name the file recognisably
    (``caf\\xe9.png`` for the Latin-1 bytes of ``café.png``)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Sample:
    """One image of a benchmark.

    ``image`` is a filesystem path (or raw encoded bytes for data that lives inside
    a dataset file); nothing is decoded until a model asks for pixels. ``label`` is
    0 (real), 1 (fake) or ``None`` when the benchmark withholds it. ``subset`` is the
    generator (or platform); ``metadata`` holds file format, width, height, source
    and anything task-specific (question text, question type...).
    """

    id: str
    image: str | bytes
    label: int | None
    subset: str = "all"
    split: str = "test"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def image_path(self) -> Path | None:
        """The image's path, or ``None`` for in-memory images."""
        return Path(self.image) if isinstance(self.image, str) else None

    def describe(self) -> str:
        """Where this sample's image lives, for error messages (any file name, printable)."""
        if isinstance(self.image, str):
            return printable(self.image)
        return f"<{len(self.image)} bytes of sample {self.id}>"


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters of a ``generate`` request (greedy by default, as in the paper)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    do_sample: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (part of the request fingerprint)."""
        return asdict(self)


@dataclass(frozen=True)
class Request:
    """What the runner asks a model for one sample.

    ``kind == "score"``: P(fake) for the image (``prompt`` may carry the prompt an
    LMM scores with). ``kind == "generate"``: text for image + prompt.
    """

    sample: Sample
    kind: RequestKind = "score"
    prompt: str | None = None
    generation: GenerationParams | None = None

    def fingerprint(self) -> dict[str, Any]:
        """The request's identity apart from the sample (part of the cache key)."""
        return {
            "kind": self.kind,
            "prompt": self.prompt,
            "generation": self.generation.as_dict() if self.generation else None,
        }


@dataclass
class Prediction:
    """A model's answer to one request: a score, a text, or an error message."""

    score: float | None = None
    text: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: with ``error``: asking again would fail the same way (the endpoint answered, but its answer cannot be
    #: used: no log-probabilities, no anchor among them). Cached as a failure, so a rerun does not pay for it
    #: again; ``--retry-failed`` asks again. Transient failures (timeouts, 5xx) are never cached.
    deterministic: bool = False

    @property
    def ok(self) -> bool:
        """True when the model answered without error."""
        return self.error is None

    @classmethod
    def of(cls, out: Any) -> Prediction:
        """A model's output as a prediction: itself, a text, or a P(fake) checked to lie in [0, 1] (anything else,
        NaN included, is that sample's error)."""
        if isinstance(out, Prediction):
            return out
        if isinstance(out, str):
            return cls(text=out)
        try:
            value = float(out)
        except (TypeError, ValueError):
            return cls(error=f"model returned {type(out).__name__} {out!r}, not a P(fake), a text or a Prediction")
        if value != value or not 0.0 <= value <= 1.0:
            return cls(error=f"model returned an invalid P(fake) {out!r}")
        return cls(score=value)


@dataclass
class SampleRecord:
    """One line of ``samples.jsonl``: the sample, the model's answer, and how it went."""

    sample_id: str
    subset: str
    split: str
    label: int | None
    mode: str
    #: the image file scored (printable; ``None`` for an image held in memory, e.g. a parquet row)
    image: str | None = None
    score: float | None = None
    text: str | None = None
    verdict: int | None = None
    error: str | None = None
    seconds: float = 0.0
    cached: bool = False
    key: str = ""
    prompt: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (field order kept; a shallow copy of the fields, much faster than ``asdict``)."""
        values = self.__dict__
        return {name: values[name] for name in _RECORD_FIELDS}

    def fields_view(self) -> dict[str, Any]:
        """The record's fields, in order, to be encoded at once (never kept or changed): the instance's own
        ``__dict__`` when it holds exactly the fields (as ``__init__`` leaves it), else :meth:`to_json`. Saves
        the copy per record when a run writes ``samples.jsonl``."""
        values = self.__dict__
        return values if len(values) == len(_RECORD_FIELDS) else self.to_json()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SampleRecord:
        """Inverse of :meth:`to_json`; unknown keys are ignored."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


#: SampleRecord's fields, in order (what :meth:`SampleRecord.to_json` writes)
_RECORD_FIELDS = tuple(SampleRecord.__dataclass_fields__)
