"""Several OpenAI-compatible endpoints as one: data-parallel serving (one ``vllm serve`` per GPU) for ``openai-api``.

Each request goes to the live endpoint with the fewest requests outstanding (ties to the one used least), so a
slow or busy engine gets less. A request that fails in a way another endpoint may not (unreachable, timed out,
HTTP 429 / 5xx) is tried again on another endpoint; an endpoint that could not be reached three times in a
row is marked dead for the rest of the run and its requests go to the others. What happened is kept per
endpoint (requests, failures, when it was marked dead and why) for the run's record.

With one endpoint nothing of this applies: the ``openai`` client's own retries with backoff (honouring
``Retry-After``) handle transient errors, as before.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

#: consecutive connection failures after which an endpoint is taken out of the run
DEAD_AFTER = 3


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

    def call(self, fn: Callable[[Any], Any], retryable: Callable[[BaseException], str | None]) -> tuple[Any, str]:
        """``fn(client)`` on the least-loaded live endpoint; returns its result and the endpoint's URL.

        ``retryable(exc)`` says whether an error may go to another endpoint: ``None`` (no: raise it),
        ``"connection"`` (the endpoint may be down) or any other reason (``"429"``, ``"5xx"``, ``"timeout"``).
        With one endpoint nothing is retried here (its client retries)."""
        attempts = 1 + (self.max_retries if len(self.endpoints) > 1 else 0)
        last: BaseException | None = None
        previous: Endpoint | None = None
        for attempt in range(attempts):
            endpoint = self._pick(previous)
            try:
                result = fn(endpoint.client)
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised when not retryable
                reason = retryable(exc)
                self._failed(endpoint, reason or type(exc).__name__)
                if reason is None or attempt == attempts - 1:
                    raise
                last, previous = exc, endpoint
                if all(e.dead is not None or e is endpoint for e in self.endpoints):
                    time.sleep(min(8.0, 0.25 * 2**attempt))  # nowhere else to go: back off before asking again
                continue
            with self._lock:
                endpoint.outstanding -= 1
                endpoint.answered += 1
                endpoint.consecutive_connection_failures = 0
            return result, endpoint.base_url or ""
        assert last is not None
        raise last

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
