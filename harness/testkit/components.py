"""Helpers for testing plugins and timing the harness itself.

- :class:`NoopModel` (registered as ``noop``): a deterministic pseudo-score derived
  from the sample id, without reading pixels. Use it to check a new task end to
  end, or to measure the runner's own overhead.
- :class:`ListTask`: a task whose samples come from a JSON-lines file
  (``{"id", "image", "label", "subset"}`` per line); register it from a test or
  a benchmark with any name. Scores by default; with ``--mode generate`` each
  image is asked the ``question`` option.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.interfaces import ModelAdapter, Task
from harness.records import Request, Sample


class NoopModel(ModelAdapter):
    """Serves both request kinds without looking at the image: score and text from a hash of the id."""

    request_kinds = frozenset({"score", "generate"})

    def __init__(self, decode: bool = False, **args: Any) -> None:
        super().__init__(decode=decode, **args)
        self.decode = bool(decode)

    def prepare(self, request: Request) -> str:
        """The sample id; with ``decode=true`` the image is decoded first (so unreadable files fail)."""
        if self.decode:
            from harness.images import load_image

            load_image(request.sample)
        return request.sample.id

    def score_batch(self, inputs: Sequence[str]) -> list[float]:
        """A stable pseudo-random P(fake) in [0, 1) per id."""
        return [int.from_bytes(hashlib.blake2b(i.encode(), digest_size=4).digest(), "big") / 2**32 for i in inputs]

    def generate_batch(self, inputs: Sequence[str]) -> list[str]:
        """'This image is fake.' or '... real.' from the same pseudo-score."""
        return [f"This image is {'fake' if s > 0.5 else 'real'}." for s in self.score_batch(inputs)]


class ListTask(Task):
    """Samples from a JSON-lines manifest given as the ``manifest`` option; ``question`` for generate mode."""

    name = "list"
    version = "1"
    modes = ("score", "generate")

    def __init__(
        self,
        manifest: str | None = None,
        data_root: str | None = None,
        question: str = "Is this image real or AI-generated? Explain why.",
        **options: Any,
    ) -> None:
        super().__init__(data_root=data_root, manifest=manifest, question=question, **options)
        self.manifest = Path(manifest) if manifest else None
        self.question = question

    def request(self, sample: Sample, mode: str) -> Request:
        """A score request, or the question about the image."""
        if mode == "score":
            return Request(sample=sample, kind="score")
        return Request(sample=sample, kind="generate", prompt=self.question)

    def metrics_for(self, mode: str) -> tuple[str, ...]:
        """Detection metrics when scoring; none for free answers (timing and plumbing runs)."""
        return self.default_metrics if mode == "score" else ()

    def available(self) -> tuple[bool, str]:
        """Present when the manifest file exists."""
        if self.manifest is None or not self.manifest.is_file():
            return False, f"manifest {self.manifest} not found"
        return True, ""

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        """One sample per manifest line; relative image paths are resolved against the manifest's folder."""
        assert self.manifest is not None, "available() is checked before samples()"
        base = self.manifest.parent
        with open(self.manifest, encoding="utf-8") as handle:
            for line in handle:
                entry = json.loads(line)
                yield Sample(
                    id=str(entry["id"]),
                    image=str(base / entry["image"]),
                    label=entry.get("label"),
                    subset=entry.get("subset", "all"),
                )
