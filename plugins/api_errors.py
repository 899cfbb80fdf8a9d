"""One-line reasons for failed calls to OpenAI-compatible endpoints (the ``openai-api`` model and the LLM judge)."""

from __future__ import annotations


def api_error_message(exc: BaseException, subject: str, timeout: float, retries: int) -> str:
    """What went wrong, for the record: HTTP status, timeout, unreachable endpoint, or a malformed response.

    ``exc`` is what the ``openai`` client raised (after its own retries with backoff) or what reading its
    response raised; ``subject`` names the endpoint in the message ("API", "judge"). Never includes the key.
    """
    import openai

    if isinstance(exc, openai.APIStatusError):
        return f"{subject} endpoint answered HTTP {exc.status_code} (after {retries} retries)"
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError, its base class
        return f"{subject} request timed out after {timeout} s (after {retries} retries)"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the {subject} endpoint: {type(exc).__name__}"
    return f"malformed {subject} response ({type(exc).__name__})"
