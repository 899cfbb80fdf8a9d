"""The request stream of a run with a request-bound model (an HTTP API, a vLLM server).

Such a model answers one request at a time and is fast only with many requests in flight. Batching them, as
the runner does for local models, leaves slots idle at every batch boundary: a batch is only as fast as its
slowest answer. The stream instead keeps up to ``limit`` requests in flight continuously, across batches and
across the tasks of one run: one thread per slot, each preparing its request (reading and encoding the image)
and asking the model, and each answer handed to a callback (the runner commits it to the response cache at
once, so a run killed with ``kill -9`` asks nothing answered again). One stream per run.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from harness.interfaces import ModelAdapter
from harness.records import Prediction, Request


def describe_error(exc: BaseException, request: Request) -> str:
    """``Type: message`` of an exception, prefixed with where the sample is unless the message says it."""
    message = f"{type(exc).__name__}: {exc}"
    where = request.sample.describe()
    return message if where in message else f"{where}: {message}"


def normalise_prediction(out: Any) -> Prediction:
    """A model's output as a :class:`Prediction`: itself, a text, or a P(fake) checked to lie in [0, 1]."""
    if isinstance(out, Prediction):
        return out
    if isinstance(out, str):
        return Prediction(text=out)
    value = float(out)
    if value != value or not 0.0 <= value <= 1.0:
        return Prediction(error=f"model returned an invalid P(fake) {out!r}")
    return Prediction(score=value)


class RequestStream:
    """Up to ``limit`` requests of one model in flight; submit work items, get futures of their answers."""

    def __init__(self, model: ModelAdapter, limit: int) -> None:
        self.model = model
        self.limit = max(1, int(limit))
        self.pool = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="harness-request")

    def submit(
        self, item: Any, mode: str, done: Callable[[Any, Prediction, float], None]
    ) -> Future[tuple[Prediction, float]]:
        """Queue ``item`` (anything with a ``request``): prepared and answered in a slot's thread, then
        ``done(item, prediction, seconds)`` is called there. The future gives ``(prediction, seconds)``;
        ``seconds`` is this request's own time (preparation and answer), not a share of the wall time."""
        return self.pool.submit(self._answer, item, mode, done)

    def _answer(self, item: Any, mode: str, done: Callable[[Any, Prediction, float], None]) -> tuple[Prediction, float]:
        start = time.perf_counter()
        request: Request = item.request
        try:
            prediction = normalise_prediction(self.model.answer_one(self.model.prepare(request), mode))
        except Exception as exc:  # noqa: BLE001 - the error stays with its sample
            prediction = Prediction(error=describe_error(exc, request))
        seconds = time.perf_counter() - start
        done(item, prediction, seconds)
        return prediction, seconds

    def close(self, wait: bool = True) -> None:
        """Stop: requests not yet started are dropped (a later run asks them); those in flight finish first when
        ``wait`` (a run interrupted by Ctrl-C or an error does not wait for them: their answers are not kept)."""
        self.pool.shutdown(wait=wait, cancel_futures=True)
