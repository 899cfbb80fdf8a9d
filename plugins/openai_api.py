"""``openai-api``: any OpenAI-compatible chat endpoint as a model (GPT-4V/4o, Gemini or Claude through
compatible endpoints, a local vLLM server).

- Images go inline as base64 data URLs; requests run with bounded concurrency
  (``concurrency``); 429 / 5xx / timeouts are retried with exponential backoff by
  the ``openai`` client (``max_retries``, honouring ``Retry-After``); a request that
  still fails becomes that sample's error. The runner's response cache makes a
  rerun pay nothing twice.
- ``generate``: the task's prompt at temperature 0.
- ``score``: the FakeScope question, one token, ``logprobs`` with ``top_logprobs``;
  P(fake) = sum p(fake variants) / (sum p(fake variants) + sum p(real variants)) over
  the variants present in the returned top tokens (the logsumexp variant of Eq. 2:
  an API returns log-probabilities, not logits, and only the top k). If the endpoint
  returns no log-probabilities, or no anchor among them, the score is **unavailable**
  (a per-sample error), never invented. ``prefill=true`` (vLLM) continues an
  assistant turn "This image is" as the paper's prompt does.
- Token usage (and cost, with ``price_in``/``price_out`` in USD per million tokens) is
  recorded per sample and summed in the results.
- The key is read from ``HARNESS_API_KEY`` (else ``OPENAI_API_KEY``) and never
  appears in fingerprints, results, logs or errors.
"""

from __future__ import annotations

import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from harness.images import load_image
from harness.interfaces import ModelAdapter
from harness.plugins.api_errors import api_error_message
from harness.plugins.lmm.backends.soft_scoring import DEFAULT_FAKE, DEFAULT_REAL
from harness.records import Prediction, Request

SCORE_QUESTION = "What is the authenticity of this image?"
PREFILL = "This image is"


class OpenAIApiModel(ModelAdapter):
    """Chat-completions model over HTTP."""

    request_kinds = frozenset({"score", "generate"})

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        max_tokens: int = 512,
        top_logprobs: int = 20,
        prefill: bool = False,
        fake: Sequence[str] = DEFAULT_FAKE,
        real: Sequence[str] = DEFAULT_REAL,
        price_in: float | None = None,
        price_out: float | None = None,
        image_detail: str = "auto",
        **args: Any,
    ) -> None:
        model = model or os.environ.get("HARNESS_API_MODEL")
        base_url = base_url or os.environ.get("HARNESS_API_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        if not model:
            raise ValueError("openai-api needs --model-args model=NAME (or HARNESS_API_MODEL)")
        super().__init__(
            model=model,
            base_url=base_url,
            max_tokens=max_tokens,
            top_logprobs=top_logprobs,
            prefill=prefill,
            fake=list(fake),
            real=list(real),
            image_detail=image_detail,
            **args,
        )
        self.model, self.base_url = model, base_url
        self.concurrency, self.timeout, self.max_retries = int(concurrency), float(timeout), int(max_retries)
        self.max_tokens, self.top_logprobs, self.prefill = int(max_tokens), int(top_logprobs), bool(prefill)
        self.fake, self.real = list(fake), list(real)
        self.price_in, self.price_out = price_in, price_out
        self.image_detail = image_detail
        self.client: Any = None

    def fingerprint(self) -> dict[str, Any]:
        """Model, endpoint and request settings (no key, no concurrency or timeouts)."""
        return {
            "class": "openai-api",
            "model": self.model,
            "base_url": self.base_url,
            "max_tokens": self.max_tokens,
            "top_logprobs": self.top_logprobs,
            "prefill": self.prefill,
            "fake": self.fake,
            "real": self.real,
            "image_detail": self.image_detail,
        }

    def preprocessing(self) -> dict[str, Any]:
        """What is sent."""
        return {
            "image": "original file bytes, base64 data URL",
            "detail": self.image_detail,
            "score_prompt": SCORE_QUESTION + (f" [assistant prefill: {PREFILL!r}]" if self.prefill else ""),
            "score_method": "logsumexp over anchor variants in top_logprobs (Eq. 2 needs logits; "
            "APIs return top-k log-probabilities)",
            "temperature": 0,
        }

    def setup(self, device: str = "cpu") -> None:
        """Create the client (no network traffic yet)."""
        from openai import OpenAI

        key = os.environ.get("HARNESS_API_KEY") or os.environ.get("OPENAI_API_KEY")
        if not key and not self.base_url:
            raise ValueError(
                "openai-api needs HARNESS_API_KEY (or OPENAI_API_KEY) for the OpenAI API, or "
                "base_url=... for a local OpenAI-compatible server"
            )
        self.client = OpenAI(
            api_key=key or "EMPTY", base_url=self.base_url, timeout=self.timeout, max_retries=self.max_retries
        )

    # -- requests ----------------------------------------------------------------------------
    def prepare(self, request: Request) -> tuple[str, Request]:
        """Check the image decodes, then build its data URL from the original bytes."""
        image = load_image(request.sample)
        source = request.sample.image
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
        fmt = (image.format or _format_of(raw) or "png").lower()
        mime = "jpeg" if fmt in ("jpeg", "jpg", "mpo") else fmt
        return f"data:image/{mime};base64,{base64.b64encode(raw).decode('ascii')}", request

    #: image tokens assumed per request for the plan's estimate: OpenAI's count for a ~1k px image at
    #: detail high/auto (85 + 4 tiles x 170), and its flat 85 at detail low
    IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}

    def estimate(self, requests: Sequence[Request]) -> str | None:
        """Prompt tokens (text / 4 + image tokens), completion tokens at most, and USD when priced."""
        image = self.IMAGE_TOKENS.get(self.image_detail, 765)
        prompt = completion = 0
        for request in requests:
            text = request.prompt if request.kind == "generate" else SCORE_QUESTION
            prompt += image + len(text or "") // 4 + 10
            completion += (
                (request.generation.max_new_tokens if request.generation else self.max_tokens)
                if request.kind == "generate"
                else 1
            )
        words = f"about {prompt:,} prompt + at most {completion:,} completion tokens"
        if self.price_in is not None and self.price_out is not None:
            cost = (prompt * float(self.price_in) + completion * float(self.price_out)) / 1e6
            words += f", at most about ${cost:,.2f}"
        return words + " (estimate)"

    def score_batch(self, inputs: Sequence[tuple[str, Request]]) -> list[Prediction]:
        """Soft scores from top log-probabilities, concurrently."""
        return self._map(self._score_one, inputs)

    def generate_batch(self, inputs: Sequence[tuple[str, Request]]) -> list[Prediction]:
        """Answers at temperature 0, concurrently."""
        return self._map(self._generate_one, inputs)

    def _map(self, fn: Any, inputs: Sequence[tuple[str, Request]]) -> list[Prediction]:
        """``fn`` over the batch; an item that raises is that item's error, so the answers already received
        (and paid for) are never lost to a retry of the whole batch."""

        def guarded(item: tuple[str, Request]) -> Prediction:
            try:
                return fn(item)
            except Exception as exc:  # noqa: BLE001 - one malformed reply must not cost the others
                return Prediction(error=f"malformed API response: {type(exc).__name__}: {exc}")

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(guarded, inputs))

    def _messages(self, url: str, text: str) -> list[dict[str, Any]]:
        return [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url, "detail": self.image_detail}},
                    {"type": "text", "text": text},
                ],
            }
        ]

    def _generate_one(self, item: tuple[str, Request]) -> Prediction:
        url, request = item
        params = request.generation
        max_tokens = params.max_new_tokens if params else self.max_tokens
        response, error = self._create(messages=self._messages(url, request.prompt or ""), max_tokens=max_tokens)
        if error:
            return Prediction(error=error)
        try:
            text = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            return Prediction(error="malformed API response: no choices in the reply")
        if not isinstance(text, str):
            return Prediction(error="malformed API response: no message content")
        return Prediction(text=text, extra=self._usage(response))

    def _score_one(self, item: tuple[str, Request]) -> Prediction:
        url, request = item
        messages = self._messages(url, SCORE_QUESTION)
        extra_body = None
        if self.prefill:
            messages.append({"role": "assistant", "content": PREFILL})
            extra_body = {"continue_final_message": True, "add_generation_prompt": False}
        response, error = self._create(
            messages=messages, max_tokens=1, logprobs=True, top_logprobs=self.top_logprobs, extra_body=extra_body
        )
        if error:
            return Prediction(error=error)
        try:
            top = response.choices[0].logprobs.content[0].top_logprobs
        except (AttributeError, IndexError, TypeError):
            top = None
        if not top:
            return Prediction(error="soft score unavailable: the endpoint returned no log-probabilities")
        score, detail = anchor_probability(((t.token, t.logprob) for t in top), self.fake, self.real)
        if score is None:
            return Prediction(error=f"soft score unavailable: {detail['reason']}")
        extra = self._usage(response)
        extra["soft_score"] = detail
        return Prediction(score=score, extra=extra)

    def _create(self, **kwargs: Any) -> tuple[Any, str | None]:
        import openai

        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        try:
            return self.client.chat.completions.create(model=self.model, temperature=0, **kwargs), None
        except (openai.APIError, ValueError, TypeError) as exc:
            return None, api_error_message(exc, "API", self.timeout, self.max_retries)

    def _usage(self, response: Any) -> dict[str, Any]:
        usage = getattr(response, "usage", None)
        if usage is None:
            return {}
        tokens = {
            "prompt_tokens": int(usage.prompt_tokens or 0),
            "completion_tokens": int(usage.completion_tokens or 0),
        }
        out: dict[str, Any] = {"usage": tokens}
        if self.price_in is not None and self.price_out is not None:
            out["cost_usd"] = (
                tokens["prompt_tokens"] * float(self.price_in) + tokens["completion_tokens"] * float(self.price_out)
            ) / 1e6
        return out


def anchor_probability(top: Any, fake: Sequence[str], real: Sequence[str]) -> tuple[float | None, dict[str, Any]]:
    """P(fake) from (token, logprob) pairs: probability mass of fake variants over fake + real variants.

    Tokens match a variant after stripping leading whitespace and SentencePiece/BPE space
    markers ("▁", "Ġ"). Returns (None, reason) when no variant is among the tokens.
    """
    import math

    fake_set, real_set = set(fake), set(real)
    mass = {"fake": 0.0, "real": 0.0}
    found: dict[str, list[str]] = {"fake": [], "real": []}
    for token, logprob in top:
        word = str(token).lstrip().lstrip("▁Ġ").strip()
        for cls, variants in (("fake", fake_set), ("real", real_set)):
            if word in variants:
                mass[cls] += math.exp(float(logprob))
                found[cls].append(word)
    if not found["fake"] and not found["real"]:
        return None, {"reason": "no anchor variant among the returned top tokens"}
    total = mass["fake"] + mass["real"]
    detail = {
        "found": found,
        "mass": mass,
        "note": None
        if found["fake"] and found["real"]
        else "one class below the returned top tokens: its mass counted as 0",
    }
    return mass["fake"] / total, detail


def _format_of(raw: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as image:
            return image.format
    except OSError:
        return None
