"""One-line reasons for failed calls to OpenAI-compatible endpoints (the ``openai-api`` model and the LLM judge):
the HTTP status, the attempts really made, and what the server said."""

from __future__ import annotations

import json
from typing import Any

#: the longest server message kept in an error (the rest is cut, marked with "...")
MAX_SERVER_MESSAGE = 300


def server_message(exc: BaseException) -> str | None:
    """What the server said in an error reply: ``error.message`` / ``detail`` / ``message`` of a JSON body, else
    the body's text; ``None`` when it said nothing."""
    body: Any = getattr(exc, "body", None)
    response = getattr(exc, "response", None)
    if body is None and response is not None:
        try:
            body = json.loads(response.text)
        except (ValueError, AttributeError, TypeError):
            body = getattr(response, "text", None)
    text: Any = body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            text = inner.get("message") or inner.get("detail") or body.get("detail") or json.dumps(body)
        else:
            text = body.get("detail") or body.get("message") or inner
    if text is None or not str(text).strip():
        return None
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_SERVER_MESSAGE else text[: MAX_SERVER_MESSAGE - 3] + "..."


def attempts_text(attempts: int) -> str:
    """``"1 attempt"`` / ``"3 attempts"``."""
    return f"{attempts} attempt" + ("" if attempts == 1 else "s")


def api_error_message(exc: BaseException, subject: str, timeout: float, attempts: int) -> str:
    """What went wrong, for the record: HTTP status and the server's message, timeout, unreachable endpoint, or a
    malformed reply, with the attempts made. ``subject`` names the endpoint ("API", "judge"). Never the key."""
    import openai

    from harness.plugins.openai_endpoints import CallFailed

    if isinstance(exc, CallFailed):
        attempts = exc.attempts
        exc = exc.cause
    tries = attempts_text(attempts)
    if isinstance(exc, openai.APIStatusError):
        said = server_message(exc)
        return f"{subject} endpoint answered HTTP {exc.status_code} ({tries})" + (f": {said}" if said else "")
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError, its base class
        return f"{subject} request timed out after {timeout:g} s ({tries}; raise timeout= if the server is slow)"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the {subject} endpoint ({tries}): {type(exc).__name__}"
    if type(exc).__name__ == "AllEndpointsDead":
        return f"{subject}: {exc}"
    if type(exc).__name__ == "MalformedReply":
        return f"malformed {subject} response ({tries}): {exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed {subject} response ({tries}): the body is not JSON ({exc})"
    return f"malformed {subject} response ({tries}): {type(exc).__name__}: {exc}"


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a failed call, if the server answered one."""
    from harness.plugins.openai_endpoints import CallFailed

    if isinstance(exc, CallFailed):
        exc = exc.cause
    status = getattr(exc, "status_code", None)
    return int(status) if isinstance(status, int) else None
