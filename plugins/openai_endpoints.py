"""Calls to OpenAI-compatible endpoints, retried here and counted: the ``openai-api`` model and the LLM judge.

Every attempt is made and counted here (the ``openai`` client's own retries are off), so ``usage`` holds every
request a server received, retries included, and an error says how many attempts were really made. What is
retried, within the run:

- unreachable endpoint, HTTP 429 and 5xx: up to ``max_retries`` more attempts, with exponential backoff
  (0.5 s doubling, at most 8 s) that honours the server's ``Retry-After`` / ``retry-after-ms``;
- a timed-out request: once more (:data:`RETRIES_BY_REASON`; the server may still be working on, and billing,
  the first one; raise ``timeout=`` instead);
- a malformed reply (HTTP 200 whose body is not JSON, or has no choices): twice more;
- nothing else (HTTP 400, 401, 404, 422 ...: asking again would be refused again).

Several endpoints (data-parallel serving, one ``vllm serve`` per GPU): each request goes to the live endpoint
with the fewest requests outstanding (ties to the one used least), so a slow or busy engine gets less; a retry
goes to another endpoint at once instead of backing off; an endpoint that could not be reached three times in
a row is marked dead for the rest of the run and its requests go to the others. What happened is kept per
endpoint (requests, failures, when it was marked dead and why) for the run's record.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: consecutive connection failures after which an endpoint is taken out of the run
DEAD_AFTER = 3
#: more attempts per failure kind where ``max_retries`` would be too many (the smaller of the two applies)
RETRIES_BY_REASON = {"timeout": 1, "malformed": 2}
#: backoff between attempts on one endpoint: first wait and cap, in seconds
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 8.0


class MalformedReply(ValueError):
    """An HTTP 200 whose body cannot be used as a chat completion (not JSON, no choices): asked again."""


class CallFailed(Exception):
    """A call that failed for good: the last error (``cause``) and how many attempts were made."""

    def __init__(self, cause: BaseException, attempts: int) -> None:
        super().__init__(str(cause))
        self.cause, self.attempts = cause, attempts


@dataclass
class Endpoint:
    """One base URL, its client, and what it did in this run."""

    base_url: str | None
    client: Any
    outstanding: int = 0
    requests: int = 0
    answered: int = 0
    failures: int = 0
    consecutive_connection_failures: int = 0
    dead: str | None = None
    dead_at: float | None = None
    errors: dict[str, int] = field(default_factory=dict)

    def note(self) -> dict[str, Any]:
        """JSON-ready summary for the results."""
        out: dict[str, Any] = {
            "base_url": self.base_url,
            "requests": self.requests,
            "answered": self.answered,
            "failures": self.failures,
        }
        if self.errors:
            out["errors"] = dict(self.errors)
        if self.dead:
            out["dead"] = self.dead
        return out


class AllEndpointsDead(RuntimeError):
    """No endpoint of the list is left to ask."""


class EndpointPool:
    """Least-outstanding load spreading with failover over ``clients`` (``(base_url, client)`` pairs)."""

    def __init__(self, clients: list[tuple[str | None, Any]], max_retries: int = 5) -> None:
        if not clients:
            raise ValueError("an endpoint pool needs at least one endpoint")
        self.endpoints = [Endpoint(url, client) for url, client in clients]
        self.max_retries = int(max_retries)
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def _pick(self, avoid: Endpoint | None) -> Endpoint:
        with self._lock:
            live = [e for e in self.endpoints if e.dead is None]
            if not live:
                raise AllEndpointsDead(
                    "every endpoint is dead: " + "; ".join(f"{e.base_url}: {e.dead}" for e in self.endpoints)
                )
            choices = [e for e in live if e is not avoid] or live
            chosen = min(choices, key=lambda e: (e.outstanding, e.requests))
            chosen.outstanding += 1
            chosen.requests += 1
            return chosen

    def call(
        self, fn: Callable[[Any], Any], retryable: Callable[[BaseException], str | None] | None = None
    ) -> tuple[Any, str, int]:
        """``fn(client)`` on the least-loaded live endpoint, retried as the module says; returns its result, the
        endpoint's URL and the attempts made. Raises :class:`CallFailed` (the last error, the attempts made).

        ``retryable(exc)`` (default :func:`failure_kind`) says whether an error may be asked again: ``None``
        (no), ``"connection"`` (the endpoint may be down), ``"timeout"``, ``"malformed"`` or any other reason
        (``"429"``, ``"503"``)."""
        retryable = retryable or failure_kind
        used: dict[str, int] = {}
        previous: Endpoint | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                endpoint = self._pick(previous)
            except AllEndpointsDead as exc:
                raise CallFailed(exc, attempt - 1) from exc
            try:
                result = fn(endpoint.client)
            except Exception as exc:  # noqa: BLE001 - classified below, raised when not retryable
                reason = retryable(exc)
                self._failed(endpoint, reason or type(exc).__name__)
                used[reason or ""] = used.get(reason or "", 0) + 1
                budget = min(self.max_retries, RETRIES_BY_REASON.get(reason or "", self.max_retries))
                if reason is None or used[reason] > budget:
                    raise CallFailed(exc, attempt) from exc
                previous = endpoint
                if all(e.dead is not None or e is endpoint for e in self.endpoints):
                    time.sleep(backoff_seconds(exc, used[reason]))  # nowhere else to go: wait before asking again
                continue
            with self._lock:
                endpoint.outstanding -= 1
                endpoint.answered += 1
                endpoint.consecutive_connection_failures = 0
            return result, endpoint.base_url or "", attempt

    def _failed(self, endpoint: Endpoint, reason: str) -> None:
        with self._lock:
            endpoint.outstanding -= 1
            endpoint.failures += 1
            endpoint.errors[reason] = endpoint.errors.get(reason, 0) + 1
            if reason == "connection":
                endpoint.consecutive_connection_failures += 1
                if endpoint.consecutive_connection_failures >= DEAD_AFTER and endpoint.dead is None:
                    endpoint.dead = (
                        f"unreachable {DEAD_AFTER} times in a row, taken out "
                        f"{time.monotonic() - self._start:.1f} s into the run"
                    )
                    endpoint.dead_at = time.monotonic()

    def note(self) -> dict[str, Any]:
        """Per-endpoint counts, and which endpoints died, for the run's record."""
        out: dict[str, Any] = {"endpoints": [e.note() for e in self.endpoints]}
        dead = [e.base_url for e in self.endpoints if e.dead]
        if dead:
            out["failover"] = (
                f"{len(dead)} of {len(self.endpoints)} endpoints died during the run ({', '.join(map(str, dead))}); "
                "their requests went to the others"
            )
        return out


def failure_kind(exc: BaseException) -> str | None:
    """Whether a failed call may be asked again, and why: ``"timeout"``, ``"connection"``, ``"429"`` / ``"5xx"``
    statuses, ``"malformed"`` (a 200 that is no usable completion), or ``None`` (asking again would fail again)."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        return str(exc.status_code) if exc.status_code == 429 or exc.status_code >= 500 else None
    if isinstance(exc, (MalformedReply, ValueError, openai.APIResponseValidationError)):
        return "malformed"
    return None


def backoff_seconds(exc: BaseException, attempt: int) -> float:
    """How long to wait before attempt ``attempt + 1``: the server's ``retry-after-ms`` / ``Retry-After`` when it
    sent one (at most 60 s), else 0.5 s doubling up to 8 s, with a little jitter."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name) if hasattr(headers, "get") else None
        if value is not None:
            try:
                return min(60.0, max(0.0, float(value) * scale))
            except ValueError:
                pass
    wait = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1))
    return wait * (0.75 + 0.5 * random.random())
