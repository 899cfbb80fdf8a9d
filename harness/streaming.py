"""The request stream of a run with a request-bound model (an HTTP API, a vLLM server).

Such a model answers one request at a time and is fast only with many requests in flight. Batching them, as
the runner does for local models, leaves slots idle at every batch boundary: a batch is only as fast as its
slowest answer. The stream instead keeps up to ``limit`` requests in flight continuously, across batches and
across the tasks of one run: one thread per slot, each preparing its request (reading and encoding the image)
and asking the model, and each answer handed to a callback (the runner commits it to the response cache at
once, so a run killed with ``kill -9`` asks nothing answered again). One stream per run.

A run stopped by Ctrl-C (or an error) does not throw away what it has paid for: requests not yet sent are
dropped, and those in flight are waited for, up to :data:`INTERRUPT_GRACE_S` seconds
(``HARNESS_INTERRUPT_GRACE``), so their answers are committed before the cache closes; a second Ctrl-C stops
the wait at once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

from harness.interfaces import ModelAdapter
from harness.records import Prediction, Request


def describe_error(exc: BaseException, request: Request) -> str:
    """``Type: message`` of an exception, prefixed with where the sample is unless the message says it."""
    message = f"{type(exc).__name__}: {exc}"
    where = request.sample.describe()
    return message if where in message else f"{where}: {message}"


class RequestStream:
    """Up to ``limit`` requests of one model in flight; submit work items, get futures of their answers."""

    def __init__(self, model: ModelAdapter, limit: int) -> None:
        self.model = model
        self.limit = max(1, int(limit))
        self.pool = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="harness-request")
        self._futures: list[Future[tuple[Prediction, float]]] = []

    def submit(
        self, item: Any, mode: str, done: Callable[[Any, Prediction, float], None]
    ) -> Future[tuple[Prediction, float]]:
        """Queue ``item`` (anything with a ``request``): prepared and answered in a slot's thread, then
        ``done(item, prediction, seconds)`` is called there. The future gives ``(prediction, seconds)``;
        ``seconds`` is this request's own time (preparation and answer), not a share of the wall time."""
        future = self.pool.submit(self._answer, item, mode, done)
        self._futures.append(future)
        return future

    def _answer(self, item: Any, mode: str, done: Callable[[Any, Prediction, float], None]) -> tuple[Prediction, float]:
        start = time.perf_counter()
        request: Request = item.request
        try:
            prediction = self.model.answer_request(
                self.model.prepare(request), "score" if mode == "score" else "generate"
            )
        except Exception as exc:  # noqa: BLE001 - the error stays with its sample
            prediction = Prediction(error=describe_error(exc, request))
        seconds = time.perf_counter() - start
        done(item, prediction, seconds)
        return prediction, seconds

    def close(self, wait: bool = True, grace: float | None = None) -> int:
        """Stop. ``wait``: the run is complete, every request has finished. Otherwise (Ctrl-C, an error) the
        requests not yet started are dropped (a later run asks them) and those in flight are waited for up to
        ``grace`` seconds (default :func:`interrupt_grace`), so what they cost is committed; a second Ctrl-C ends
        the wait. Returns how many were still in flight when the wait ended (0: nothing paid was lost)."""
        if wait:
            self.pool.shutdown(wait=True)
            return 0
        self.pool.shutdown(wait=False, cancel_futures=True)
        running = [f for f in self._futures if not f.done()]
        if not running:
            return 0
        grace = interrupt_grace() if grace is None else grace
        print(
            f"stopping: waiting up to {grace:.0f} s for {len(running)} requests in flight so their answers are kept "
            "(Ctrl-C again to stop now)",
            file=sys.stderr,
            flush=True,
        )
        try:
            _, left = wait_for(running, timeout=grace)
        except KeyboardInterrupt:
            left = {f for f in running if not f.done()}
        return len(left)


#: seconds a stopped run waits for the requests in flight (``HARNESS_INTERRUPT_GRACE``)
INTERRUPT_GRACE_S = 30.0


def interrupt_grace() -> float:
    """How long a stopped run waits for its requests in flight: ``HARNESS_INTERRUPT_GRACE`` seconds, else
    :data:`INTERRUPT_GRACE_S`."""
    try:
        return max(0.0, float(os.environ.get("HARNESS_INTERRUPT_GRACE", INTERRUPT_GRACE_S)))
    except ValueError:
        return INTERRUPT_GRACE_S
