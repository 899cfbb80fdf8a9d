"""``openai-api`` (alias ``vllm``): any OpenAI-compatible chat endpoint as a model (GPT-4V/4o, Gemini or Claude
through compatible endpoints, vLLM servers).

- A request-bound model: the runner keeps ``concurrency`` requests in flight continuously, across batches
  and tasks (:mod:`harness.streaming`), independent of ``--batch-size``. Images go inline as base64 data URLs,
  each file read once. Retries are made and counted here (:mod:`harness.plugins.openai_endpoints`: 429 / 5xx /
  unreachable up to ``max_retries`` with backoff honouring ``Retry-After``, a timeout once, a malformed reply
  twice, nothing else); a request that still fails becomes that sample's error, with the HTTP status, the
  attempts made and the server's own message. Every attempt counts in ``usage``. The runner's response cache
  makes a rerun pay nothing twice; an answer the endpoint gave but that cannot be scored (no log-probabilities,
  no anchor among them) is cached as a failure, since asking again would repeat it (``--retry-failed``).
- ``base_url`` may name several endpoints (a JSON list, or URLs separated by ``;`` or spaces: one
  ``vllm serve`` per GPU): requests go to the least-loaded one, and one that dies mid-run is taken out, its
  requests answered by the others (:mod:`harness.plugins.openai_endpoints`; recorded under ``run_notes``).
- ``launch=N`` starts N ``vllm serve`` processes of ``model=PATH`` on the local GPUs when the first request is
  due (none for a rerun answered from the cache) and stops them at the end (:mod:`harness.plugins.vllm_launcher`).
- ``generate``: the task's prompt at temperature 0.
- ``score``: the FakeScope question, one answer token. ``score_method=auto`` (default) asks for the paper's
  Eq. 2 exactly where the endpoint allows it (vLLM): the anchor tokens' ids come from the server's
  ``/tokenize`` (resolved in context, as the local scorer does), the answer is restricted to them
  (``allowed_token_ids``) and their log-probabilities returned by id; with every anchor's log-probability
  in hand and as many fake as real variants, ``sum(lp_fake) - sum(lp_real)`` equals ``sum(z_fake) -
  sum(z_real)`` (the normaliser cancels), which is Eq. 2. Where the endpoint cannot (OpenAI's API: no
  ``/tokenize``, no ``allowed_token_ids``), it falls back to ``topk``: the probability mass of the fake
  variants over fake + real among the ``top_logprobs`` returned (an anchor outside the top k is lost).
  Each sample records which method gave its score; ``score_method=exact`` refuses the fallback. No score
  is ever invented: no log-probabilities, or no anchor among them, is that sample's error. ``prefill=true``
  (vLLM) continues an assistant turn "This image is" as the paper's prompt does; a server that ignores
  ``continue_final_message`` (and scores after a new assistant header instead) is detected by three probe
  requests before the first score (:meth:`OpenAIApiModel._check_prefill`) and refused.
- Token usage (and cost, with ``price_in``/``price_out`` in USD per million tokens) is recorded per sample
  and summed in the results.
- The key is read from ``HARNESS_API_KEY`` (else ``OPENAI_API_KEY``) and never appears in fingerprints,
  results, logs or errors. Nor does the endpoint: the served model's name identifies the model, so the same
  answers are found in the cache whichever endpoint, or how many replicas, answered them.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from harness.images import load_image, read_image_bytes
from harness.interfaces import ModelAdapter, ModelLoadError
from harness.plugins.api_errors import api_error_message, status_of
from harness.plugins.lmm.backends.soft_scoring import DEFAULT_FAKE, DEFAULT_REAL, resolve_anchors
from harness.plugins.openai_endpoints import CallFailed, EndpointPool, MalformedReply
from harness.records import Prediction, Request

SCORE_QUESTION = "What is the authenticity of this image?"
PREFILL = "This image is"
SCORE_METHODS = ("auto", "exact", "topk")


def split_urls(base_url: Any) -> list[str | None]:
    """``base_url`` as a list: a list stays one, a string splits on ``;`` and whitespace, ``None`` is the
    client's default endpoint."""
    if base_url is None:
        return [None]
    if isinstance(base_url, (list, tuple)):
        urls = [str(u).strip() for u in base_url if str(u).strip()]
    else:
        urls = [u for u in re.split(r"[;\s]+", str(base_url)) if u]
    if not urls:
        raise ValueError("base_url names no endpoint")
    return list(dict.fromkeys(urls))


class OpenAIApiModel(ModelAdapter):
    """Chat-completions model over HTTP, on one endpoint or several."""

    request_kinds = frozenset({"score", "generate"})

    def __init__(
        self,
        model: str | None = None,
        base_url: Any = None,
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
        score_method: str = "auto",
        launch: int = 0,
        launch_command: str | None = None,
        launch_args: str = "",
        chat_template: str | None = None,
        served_model_name: str | None = None,
        launch_timeout: float = 1800.0,
        **args: Any,
    ) -> None:
        model = model or os.environ.get("HARNESS_API_MODEL")
        base_url = base_url or os.environ.get("HARNESS_API_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        if not model:
            raise ValueError("openai-api needs --model-args model=NAME (or HARNESS_API_MODEL)")
        if score_method not in SCORE_METHODS:
            raise ValueError(f"score_method must be one of {', '.join(SCORE_METHODS)}, not {score_method!r}")
        self.launcher: Any = None
        if int(launch or 0) > 0:
            from harness.plugins.vllm_launcher import VllmLauncher

            self.launcher = VllmLauncher(
                model_path=str(model),
                replicas=int(launch),
                served_model_name=served_model_name,
                command=launch_command,
                extra_args=launch_args,
                chat_template=chat_template,
                timeout=float(launch_timeout),
            )
            args.update(launched_from=str(model), launch=int(launch))
            model, base_url = self.launcher.served_model_name, self.launcher.base_urls
        elif chat_template:
            raise ValueError("chat_template= applies to engines started with launch=N; pass it to vllm serve")
        super().__init__(
            model=model,
            base_url=base_url,
            max_tokens=max_tokens,
            top_logprobs=top_logprobs,
            prefill=prefill,
            fake=list(fake),
            real=list(real),
            image_detail=image_detail,
            score_method=score_method,
            **args,
        )
        self.model = str(model)
        self.base_urls = split_urls(base_url)
        self.base_url = self.base_urls[0]
        self.concurrency, self.timeout, self.max_retries = int(concurrency), float(timeout), int(max_retries)
        self.max_tokens, self.top_logprobs, self.prefill = int(max_tokens), int(top_logprobs), bool(prefill)
        self.fake, self.real = list(fake), list(real)
        self.price_in, self.price_out = price_in, price_out
        self.image_detail = image_detail
        self.score_method = score_method
        self.client: Any = None
        self.pool: EndpointPool | None = None
        self._anchors: dict[str, Any] | None = None  # resolved anchor ids, or the reason exact scoring is off
        self._anchor_lock = threading.Lock()
        self._methods: dict[str, int] = {}
        self._prefill: dict[str, Any] | None = None  # the prefill check's outcome (prefill=true)
        self._probe_usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def fingerprint(self) -> dict[str, Any]:
        """Model and request settings (no key, no endpoint, no concurrency or timeouts): the served model's name
        identifies what answers, so which endpoint, or how many replicas, answered does not change an answer's
        key (serve different weights under different names, as ``vllm serve --served-model-name`` does)."""
        return {
            "class": "openai-api",
            "model": self.model,
            **({"launched_from": self.launcher.model_path} if self.launcher is not None else {}),
            "max_tokens": self.max_tokens,
            "top_logprobs": self.top_logprobs,
            "prefill": self.prefill,
            "fake": self.fake,
            "real": self.real,
            "image_detail": self.image_detail,
            **({"score_method": self.score_method} if self.score_method != "auto" else {}),
        }

    def display_name(self) -> str:
        """The served model's name (results folders and board labels)."""
        return self.model

    def preprocessing(self) -> dict[str, Any]:
        """What is sent."""
        return {
            "image": "original file bytes, base64 data URL",
            "detail": self.image_detail,
            "score_prompt": SCORE_QUESTION + (f" [assistant prefill: {PREFILL!r}]" if self.prefill else ""),
            "score_method": {
                "auto": "Eq. 2 exactly where the endpoint allows (vLLM: /tokenize, allowed_token_ids, "
                "log-probabilities by token id), else the top-k fallback; each sample records its method",
                "exact": "Eq. 2 exactly (vLLM: /tokenize, allowed_token_ids, log-probabilities by token id)",
                "topk": "probability mass of the anchor variants among top_logprobs (an approximation of Eq. 2)",
            }[self.score_method],
            "temperature": 0,
        }

    def setup(self, device: str = "cpu") -> None:
        """Start the engines when asked to launch them (only now: a rerun answered from the cache starts none),
        then create one client per endpoint."""
        from openai import OpenAI

        if self.launcher is not None:
            self.launcher.start()

        key = os.environ.get("HARNESS_API_KEY") or os.environ.get("OPENAI_API_KEY")
        if not key and self.base_urls == [None]:
            raise ValueError(
                "openai-api needs HARNESS_API_KEY (or OPENAI_API_KEY) for the OpenAI API, or "
                "base_url=... for a local OpenAI-compatible server"
            )
        self._check_reachable()
        # every attempt is made (and counted) by the endpoint pool: the client's own retries are off
        clients = [
            (url, OpenAI(api_key=key or "EMPTY", base_url=url, timeout=self.timeout, max_retries=0))
            for url in self.base_urls
        ]
        self.client = clients[0][1]
        self.pool = EndpointPool(clients, max_retries=self.max_retries)

    def _check_reachable(self) -> None:
        """Fail fast when no given endpoint accepts a connection (a server not started, a wrong port): one line
        before any sample, instead of every sample failing after its retries. Any HTTP answer counts as up."""
        import urllib.error
        import urllib.request

        urls = [u for u in self.base_urls if u]
        if not urls:
            return  # the provider's default endpoint
        reasons = []
        for url in urls:
            try:
                with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=min(10.0, self.timeout)):
                    return
            except urllib.error.HTTPError:
                return  # it answered: up (the route or the key may differ; requests will say)
            except (OSError, ValueError) as exc:
                reasons.append(f"{url}: {getattr(exc, 'reason', exc)}")
        raise ModelLoadError(
            "openai-api: no endpoint accepts connections (" + "; ".join(reasons) + "); start the server or fix base_url"
        )

    def close(self) -> None:
        """Stop launched engines."""
        if self.launcher is not None:
            self.launcher.stop()

    def run_notes(self) -> dict[str, Any]:
        """Endpoints used (and any that died), the score methods used, launched engines."""
        notes: dict[str, Any] = {}
        if self.pool is not None and len(self.pool.endpoints) > 1:
            notes.update(self.pool.note())
        if self._methods:
            notes["score_methods"] = dict(self._methods)
        if self._anchors is not None and self._anchors.get("why_not_exact"):
            notes["why_not_exact"] = self._anchors["why_not_exact"]
        if self.launcher is not None:
            notes["launched"] = self.launcher.note()
        if self._prefill is not None:
            notes["prefill_check"] = dict(self._prefill)
        return notes

    def run_usage(self) -> dict[str, dict[str, Any]]:
        """The prefill check's probe requests (they belong to no sample)."""
        return {"probe": dict(self._probe_usage)} if self._probe_usage["requests"] else {}

    # -- requests ----------------------------------------------------------------------------
    def in_flight_limit(self) -> int:
        """``concurrency`` requests in flight (the runner streams them)."""
        return max(1, self.concurrency)

    def prepare(self, request: Request) -> tuple[str, Request]:
        """Read the file once, check it decodes, and build its data URL from those bytes."""
        raw = read_image_bytes(request.sample)
        load_image(raw, where=request.sample.describe())  # decoded in full: a truncated file is caught here
        fmt = (_format_of(raw) or "png").lower()
        mime = "jpeg" if fmt in ("jpeg", "jpg", "mpo") else fmt
        return f"data:image/{mime};base64,{base64.b64encode(raw).decode('ascii')}", request

    def answer_one(self, prepared: tuple[str, Request], mode: str) -> Prediction:
        """One request's answer; anything raising is that request's error."""
        return self._guarded(self._score_one if mode == "score" else self._generate_one, prepared)

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
        """Soft scores, concurrently (the runner streams through :meth:`answer_one` instead)."""
        return self._map(self._score_one, inputs)

    def generate_batch(self, inputs: Sequence[tuple[str, Request]]) -> list[Prediction]:
        """Answers at temperature 0, concurrently (the runner streams through :meth:`answer_one` instead)."""
        return self._map(self._generate_one, inputs)

    @staticmethod
    def _guarded(fn: Any, item: tuple[str, Request]) -> Prediction:
        """``fn(item)``; a raise is that item's error, so one malformed reply never costs the others."""
        try:
            return fn(item)
        except Exception as exc:  # noqa: BLE001
            return Prediction(error=f"malformed API response: {type(exc).__name__}: {exc}", extra={"attempts": 1})

    def _map(self, fn: Any, inputs: Sequence[tuple[str, Request]]) -> list[Prediction]:
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(lambda item: self._guarded(fn, item), inputs))

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
        reply = self._create(_has_message, messages=self._messages(url, request.prompt or ""), max_tokens=max_tokens)
        if reply.error:
            return Prediction(error=reply.error, extra={"attempts": reply.attempts})
        text = reply.response.choices[0].message.content
        return Prediction(text=text, extra=self._usage(reply))

    # -- Eq. 2 -------------------------------------------------------------------------------
    def _score_one(self, item: tuple[str, Request]) -> Prediction:
        url, request = item
        messages = self._messages(url, SCORE_QUESTION)
        extra_body: dict[str, Any] = {}
        attempts = 0
        if self.prefill:
            refused = self._check_prefill(messages)
            if refused:
                return Prediction(error=refused)
            messages.append({"role": "assistant", "content": PREFILL})
            extra_body.update({"continue_final_message": True, "add_generation_prompt": False})
        anchors = self._anchor_ids() if self.score_method != "topk" else None
        if anchors is not None and anchors.get("ids"):
            ids = anchors["ids"]
            reply = self._create(
                _has_choice,
                messages=messages,
                max_tokens=1,
                logprobs=True,
                # processed log-probs: the anchors are the only finite ones; raw: the more come back, the likelier
                # every anchor is among them
                top_logprobs=max(len(ids), self.top_logprobs),
                extra_body={**extra_body, "allowed_token_ids": ids, "return_tokens_as_token_ids": True},
            )
            attempts += reply.attempts
            if reply.error and self.score_method == "auto" and reply.status in REFUSED_FIELD_STATUSES:
                self._no_exact(f"the endpoint refused allowed_token_ids ({reply.error})")
            elif reply.error:
                return Prediction(error=reply.error, extra={"attempts": attempts})
            else:
                return self._exact_score(reply, anchors, attempts)
        if self.score_method == "exact":
            why = (anchors or {}).get("why_not_exact", "unknown")
            return Prediction(
                error=f"soft score unavailable: exact Eq. 2 needs vLLM's /tokenize and allowed_token_ids ({why})",
                extra={"attempts": attempts},
            )
        reply = self._create(
            _has_choice,
            messages=messages,
            max_tokens=1,
            logprobs=True,
            top_logprobs=self.top_logprobs,
            extra_body=extra_body or None,
        )
        attempts += reply.attempts
        if reply.error:
            return Prediction(error=reply.error, extra={"attempts": attempts})
        extra = self._usage(reply, attempts)
        top = _top_logprobs(reply.response)
        if not top:
            return _unusable("the endpoint returned no log-probabilities", extra)
        score, detail = anchor_probability(((t.token, t.logprob) for t in top), self.fake, self.real)
        if score is None:
            return _unusable(detail["reason"], extra)
        extra["soft_score"] = {"method": "topk", "exact": False, **detail}
        self._count("topk")
        return Prediction(score=score, extra=extra)

    def _exact_score(self, reply: _Reply, anchors: dict[str, Any], attempts: int) -> Prediction:
        """Eq. 2 from the anchors' log-probabilities, returned by id."""
        extra = self._usage(reply, attempts)
        top = _top_logprobs(reply.response)
        if not top:
            return _unusable("the endpoint returned no log-probabilities", extra)
        by_id: dict[int, float] = {}
        for entry in top:
            match = re.fullmatch(r"token_id:(\d+)", str(entry.token))
            if match:
                by_id[int(match.group(1))] = float(entry.logprob)
        fake_ids, real_ids = anchors["fake"], anchors["real"]
        missing = [i for i in fake_ids + real_ids if i not in by_id]
        if not by_id or all(i in missing for i in fake_ids) and all(i in missing for i in real_ids):
            return _unusable("no anchor token among the returned log-probabilities", extra)
        if missing or len(fake_ids) != len(real_ids):
            # not every anchor came back, or the classes have unequal counts (Eq. 2's sums then depend on the
            # absolute logits, which no endpoint returns): probability mass over what came back, labelled
            fake_mass = sum(math.exp(by_id[i]) for i in fake_ids if i in by_id)
            real_mass = sum(math.exp(by_id[i]) for i in real_ids if i in by_id)
            why = (
                f"anchor ids {missing} not among the returned log-probabilities"
                if missing
                else f"{len(fake_ids)} fake vs {len(real_ids)} real anchor tokens"
            )
            extra["soft_score"] = {"method": "anchor-mass", "exact": False, "why": why, "anchors": anchors["record"]}
            self._count("anchor-mass")
            return Prediction(score=fake_mass / (fake_mass + real_mass), extra=extra)
        margin = sum(by_id[i] for i in fake_ids) - sum(by_id[i] for i in real_ids)  # = sum z_fake - sum z_real
        score = 1.0 / (1.0 + math.exp(-margin)) if margin > -700 else 0.0
        extra["soft_score"] = {"method": "eq2", "exact": True, "anchors": anchors["record"]}
        self._count("eq2")
        return Prediction(score=score, extra=extra)

    def _anchor_ids(self) -> dict[str, Any]:
        """The anchor variants' token ids, resolved once through the endpoint's ``/tokenize`` in the context of
        the scored position (after the prefill when there is one), as the local scorer resolves them."""
        with self._anchor_lock:
            if self._anchors is not None:
                return self._anchors
            context = PREFILL if self.prefill else ""
            try:
                tokenizer = _ServerTokenizer(self.base_url, self.model, self.timeout)
                tokenizer(context or "This")  # is there a /tokenize at all?
            except Exception as exc:  # noqa: BLE001 - no /tokenize: the labelled fallback
                self._anchors = {"why_not_exact": f"no usable /tokenize on the endpoint ({type(exc).__name__}: {exc})"}
                return self._anchors
            try:
                fake, real = resolve_anchors(tokenizer, context, self.fake, self.real)
            except Exception as exc:  # noqa: BLE001
                self._anchors = {"why_not_exact": f"the anchors do not resolve: {type(exc).__name__}: {exc}"}
                return self._anchors
            fake_ids, real_ids = list(fake.ids), list(real.ids)
            self._anchors = {
                "ids": fake_ids + real_ids,
                "fake": fake_ids,
                "real": real_ids,
                "record": {"fake": fake.as_dict(), "real": real.as_dict()},
            }
            return self._anchors

    def _no_exact(self, why: str) -> None:
        with self._anchor_lock:
            self._anchors = {"why_not_exact": why}

    def _count(self, method: str) -> None:
        with self._anchor_lock:
            self._methods[method] = self._methods.get(method, 0) + 1

    # -- the prefill check -------------------------------------------------------------------------
    def _check_prefill(self, messages: list[dict[str, Any]]) -> str | None:
        """Whether the endpoint continues the prefilled assistant turn (``continue_final_message``), checked once
        with three probe requests on the first image, before any score: ``None`` when it does, else why not (then
        every score request fails with that reason: a score taken after a new assistant header is not the
        paper's, and some servers answer 200 while ignoring the field).

        The probes compare prompt-token counts: B (no prefill), A (prefill ``P``), C (prefill ``P P``). A server
        that continues the turn adds only the prefill's tokens, so A - B equals C - A give or take one token at
        the join; one that ignores it also adds an end of turn and a new assistant header to A and C alike, so
        A - B exceeds C - A by those tokens."""
        with self._anchor_lock:
            if self._prefill is not None:
                return self._prefill.get("refused")
            counts: dict[str, int | None] = {}
            for name, prefill in (("plain", None), ("prefill", PREFILL), ("prefill_twice", f"{PREFILL} {PREFILL}")):
                probe = list(messages) + ([{"role": "assistant", "content": prefill}] if prefill else [])
                flags = {"continue_final_message": True, "add_generation_prompt": False} if prefill else None
                reply = self._create(_has_choice, messages=probe, max_tokens=1, extra_body=flags)
                self._probe_usage["requests"] += reply.attempts
                if reply.error:
                    self._prefill = {
                        "refused": f"prefill=true: the endpoint cannot continue an assistant turn ({reply.error}); "
                        "use prefill=false or a server that takes continue_final_message (vLLM)"
                    }
                    return self._prefill["refused"]
                tokens = self._usage(reply).get("usage") or {}
                self._probe_usage["prompt_tokens"] += tokens.get("prompt_tokens", 0)
                self._probe_usage["completion_tokens"] += tokens.get("completion_tokens", 0)
                counts[name] = tokens.get("prompt_tokens") or None
            plain, once, twice = counts["plain"], counts["prefill"], counts["prefill_twice"]
            if plain is None or once is None or twice is None:
                self._prefill = {"verified": False, "why": "the endpoint reports no prompt token counts"}
                return None
            added, again = once - plain, twice - once
            self._prefill = {"verified": abs(added - again) <= 1, "prompt_tokens": counts}
            if abs(added - again) > 1:
                self._prefill["refused"] = (
                    f"prefill=true: the endpoint ignores continue_final_message (the prefill added {added} prompt "
                    f"tokens, once more it added {again}: a new assistant turn was opened after it, so the score "
                    "would be taken after a second header); use prefill=false or a server that continues the turn"
                )
            return self._prefill.get("refused")

    # -- transport ---------------------------------------------------------------------------
    def _create(self, validate: Any, **kwargs: Any) -> _Reply:
        """One chat completion through the endpoint pool (retried and counted there); ``validate(response)`` raises
        :class:`MalformedReply` for a 200 that is no usable completion, which is asked again."""
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        assert self.pool is not None, "setup() creates the clients"

        def ask(client: Any) -> Any:
            response = client.chat.completions.create(model=self.model, temperature=0, **kwargs)
            validate(response)
            return response

        try:
            response, endpoint, attempts = self.pool.call(ask)
            return _Reply(response, endpoint, attempts)
        except CallFailed as exc:
            message = api_error_message(exc, "API", self.timeout, exc.attempts)
            return _Reply(None, "", exc.attempts, message, status_of(exc))

    def _usage(self, reply: _Reply, attempts: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"attempts": attempts if attempts is not None else reply.attempts}
        if len(self.base_urls) > 1 and reply.endpoint:
            out["endpoint"] = reply.endpoint
        usage = getattr(reply.response, "usage", None)
        if usage is None:
            return out
        tokens = {
            "prompt_tokens": int(usage.prompt_tokens or 0),
            "completion_tokens": int(usage.completion_tokens or 0),
        }
        out["usage"] = tokens
        if self.price_in is not None and self.price_out is not None:
            out["cost_usd"] = (
                tokens["prompt_tokens"] * float(self.price_in) + tokens["completion_tokens"] * float(self.price_out)
            ) / 1e6
        return out


#: statuses with which an endpoint refuses a request's fields (vLLM's allowed_token_ids unknown to it): exact
#: Eq. 2 is then off and ``score_method=auto`` falls back to the top-k method
REFUSED_FIELD_STATUSES = (400, 404, 422)


@dataclass
class _Reply:
    """A chat completion, or why there is none; the attempts either took."""

    response: Any
    endpoint: str
    attempts: int
    error: str | None = None
    status: int | None = None


def _has_choice(response: Any) -> None:
    """A completion must have a first choice."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise MalformedReply("no choices in the reply")


def _has_message(response: Any) -> None:
    """A generation must have a first choice with a text message."""
    _has_choice(response)
    message = getattr(response.choices[0], "message", None)
    if not isinstance(getattr(message, "content", None), str):
        raise MalformedReply("no message content in the reply")


def _unusable(reason: str, extra: dict[str, Any]) -> Prediction:
    """A reply the endpoint gave that cannot be scored: a deterministic failure (cached as one)."""
    return Prediction(error=f"soft score unavailable: {reason}", extra=extra, deterministic=True)


def _top_logprobs(response: Any) -> list[Any] | None:
    """The top log-probabilities of the answer's first token, or ``None`` when the reply has none."""
    try:
        return response.choices[0].logprobs.content[0].top_logprobs
    except (AttributeError, IndexError, TypeError):
        return None


class _ServerTokenizer:
    """A tokenizer-shaped view of a vLLM server's ``POST /tokenize`` (served at the root, beside ``/v1``)."""

    def __init__(self, base_url: str | None, model: str, timeout: float) -> None:
        if not base_url:
            raise ValueError("the OpenAI API has no /tokenize")
        self.root = re.sub(r"/v1/?$", "", base_url.rstrip("/"))
        self.model, self.timeout = model, timeout
        self.unk_token_id = None

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        tokens = self._post("/tokenize", {"prompt": text, "add_special_tokens": add_special_tokens})["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ValueError("/tokenize returned no token ids")
        return {"input_ids": tokens}

    def convert_ids_to_tokens(self, token_id: int) -> str:
        """The token's text through ``/detokenize`` (for the record), ``token_id:N`` where there is none."""
        try:
            return str(self._post("/detokenize", {"tokens": [int(token_id)]})["prompt"])
        except Exception:  # noqa: BLE001 - only the record's label depends on it
            return f"token_id:{token_id}"

    def _post(self, route: str, payload: dict[str, Any]) -> dict[str, Any]:
        import urllib.request

        body = json.dumps({"model": self.model, **payload}).encode()
        request = urllib.request.Request(
            self.root + route, data=body, headers={"content-type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # an HTTP error status raises
            return json.loads(reply.read())


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
