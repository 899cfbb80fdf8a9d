"""A stand-in for a served LMM engine: the HTTP surface of ``vllm serve`` that the harness uses, on the CPU.

It answers ``POST /v1/chat/completions``, ``POST /tokenize``, ``POST /detokenize``, ``GET /health`` and
``GET /v1/models`` the way vLLM's OpenAI-compatible server does, with a fixed ``latency`` per request and at
most ``capacity`` requests served at once (the rest wait, as in an engine's queue). It exists to test and
measure the harness's served path without a GPU: the streaming runner and the multi-endpoint client
(``benchmarks/api_throughput.py``), the ``launch=N`` launcher (it is a command the launcher can start), and
Eq. 2 through the server.

Known logits. Every request has logits ``z`` over a small word vocabulary (:data:`VOCAB`), drawn from a seed
that is a hash of the request's messages (:func:`logits_for`), so a test can compute the paper's Eq. 2 from the
same logits independently. The server implements vLLM's semantics around them:

- ``allowed_token_ids`` restricts the answer to those ids (``-inf`` elsewhere);
- ``logprobs_mode`` (server option, vLLM's ``--logprobs-mode``): ``raw_logprobs`` returns the log-softmax of the
  *unrestricted* logits, ``processed_logprobs`` that of the logits after the restriction;
- ``top_logprobs`` returns the k most likely tokens of that distribution, at most ``max_logprobs``;
- ``return_tokens_as_token_ids`` writes tokens as ``token_id:N``;
- ``/tokenize`` splits on whitespace (``add_special_tokens`` is accepted and ignored).

``strict_openai=True`` behaves like OpenAI's own API instead: unknown sampling fields are a 400 and there is no
``/tokenize``. ``die_after=N`` makes the engine stop listening after N answers (an endpoint dying mid-run).

Faults and counting, for the tests that prove no paid call is lost or repeated: :attr:`StandinEngine.received`
counts every chat completion that reached the engine (what a paid API bills), answered or not; ``fault``
(a function of the request's number and body) injects a failure into chosen requests (an HTTP status with a
message, a body that is not JSON, no choices, no log-probabilities); ``max_prompt_tokens`` refuses longer
prompts with HTTP 400 as real servers word it; ``ignore_prefill=True`` answers 200 but ignores
``continue_final_message``, as llama-cpp-python does. Prompt tokens are the whitespace tokens of a
Vicuna-style rendering (``USER: ... ASSISTANT:``), so the prefill shows in the counts as it does on a real
server.

    python -m harness.testkit.standin_engine --port 8000 --latency 0.2 --capacity 64 --served-model-name fakescope
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: the stand-in's vocabulary; token id = position
VOCAB = (
    ["<unk>", "This", "image", "is", "fake", "Fake", "FAKE", "real", "Real", "REAL", "a", "the", "photo", "of"]
    + ["generated", "by", "AI", "because", "shadows", "texture", "lighting", "edges", "look", "natural", "odd", "."]
    + [f"w{i}" for i in range(100)]
)
TOKEN_ID = {token: index for index, token in enumerate(VOCAB)}


def tokenize(text: str) -> list[int]:
    """Whitespace tokens of ``text`` as ids (unknown words are ``<unk>``, id 0)."""
    return [TOKEN_ID.get(word, 0) for word in text.split()]


def logits_for(messages: Any) -> list[float]:
    """The logits of the answer's first position for these messages: seeded by their JSON, one per vocabulary
    token, spread wide enough that anchors often fall outside a top-20 of the full vocabulary."""
    seed = int.from_bytes(hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()[:8], "big")
    rng = random.Random(seed)
    return [rng.gauss(0.0, 3.0) for _ in VOCAB]


def message_text(content: Any) -> str:
    """The text of a chat message's content: a string, or the text parts of a list of typed parts."""
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def log_softmax(logits: list[float]) -> list[float]:
    """``z - logsumexp(z)``, ``-inf`` entries kept."""
    top = max(logits)
    total = top + math.log(sum(math.exp(z - top) for z in logits if z != -math.inf))
    return [z - total if z != -math.inf else -math.inf for z in logits]


class _Handler(BaseHTTPRequestHandler):
    """The engine's HTTP surface; ``self.server.engine`` answers."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real engine's server
    # headers and body go out as separate writes: without TCP_NODELAY (uvicorn sets it) Nagle's algorithm
    # and the client's delayed ACK add ~40 ms to every answer on a keep-alive connection
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        engine: StandinEngine = self.server.engine  # type: ignore[attr-defined]
        if self.path.rstrip("/") == "/health":
            return self._send(200, {})
        if self.path.rstrip("/") == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": engine.served_model_name}]})
        return self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        engine: StandinEngine = self.server.engine  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if engine.dead:
            self.close_connection = True
            return None
        if self.path.rstrip("/") == "/tokenize" and engine.tokenizer_routes:
            tokens = tokenize(body.get("prompt", ""))
            return self._send(200, {"tokens": tokens, "count": len(tokens), "max_model_len": 4096})
        if self.path.rstrip("/") == "/detokenize" and engine.tokenizer_routes:
            words = [VOCAB[t] if 0 <= t < len(VOCAB) else "<unk>" for t in body.get("tokens", [])]
            return self._send(200, {"prompt": " ".join(words)})
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        if engine.record:
            with engine._lock:
                engine.requests.append(body)
                engine.auth_headers.append(self.headers.get("authorization", ""))
        status, payload, *headers = engine.complete(body)
        return self._send(status, payload, headers[0] if headers else None)

    def _send(self, status: int, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    """A threading server that holds its engine."""

    request_queue_size = 4096  # hundreds of clients connect at once
    daemon_threads = True


class StandinEngine:
    """The engine in a background thread: ``with StandinEngine(latency=0.2) as engine: engine.base_url``."""

    def __init__(
        self,
        port: int = 0,
        latency: float = 0.0,
        capacity: int = 1_000_000,
        served_model_name: str = "standin",
        logprobs_mode: str = "raw_logprobs",
        max_logprobs: int = 20,
        strict_openai: bool = False,
        die_after: int | None = None,
        reply_words: int = 12,
        fault: Any = None,
        max_prompt_tokens: int | None = None,
        ignore_prefill: bool = False,
        record: bool = False,
    ) -> None:
        if logprobs_mode not in ("raw_logprobs", "processed_logprobs"):
            raise ValueError(f"logprobs_mode must be raw_logprobs or processed_logprobs, not {logprobs_mode!r}")
        self.latency, self.capacity = float(latency), int(capacity)
        self.served_model_name, self.logprobs_mode = served_model_name, logprobs_mode
        self.max_logprobs, self.strict_openai = int(max_logprobs), bool(strict_openai)
        self.die_after, self.reply_words = die_after, int(reply_words)
        #: ``fault(n, body)`` -> None, an HTTP status (int), ``(status, message)``, ``"garbage"``, ``"nochoices"``
        #: or ``"nologprobs"``; ``n`` counts the chat completions received, from 1
        self.fault = fault
        self.max_prompt_tokens, self.ignore_prefill = max_prompt_tokens, bool(ignore_prefill)
        #: ``record=True``: every chat-completion body received, and its ``Authorization`` header
        self.record = bool(record)
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str] = []
        #: vLLM's ``/tokenize`` and ``/detokenize`` (OpenAI's API has neither)
        self.tokenizer_routes = not self.strict_openai
        self.answered = 0
        #: chat completions that reached the engine, answered or failed (what a paid API would bill)
        self.received = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.dead = False
        #: (start, end, text of the last message) of every answered request, for tests that look at overlap
        self.timeline: list[tuple[float, float, str]] = []
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", port), _Handler)
        self.server.engine = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- the engine --------------------------------------------------------------------------
    def complete(self, body: dict[str, Any]) -> tuple[Any, ...]:
        """One chat completion: wait for a slot, hold it ``latency`` seconds, answer from the known logits."""
        with self._lock:
            self.received += 1
            number = self.received
        injected = self.fault(number, body) if self.fault else None
        if isinstance(injected, int):
            return injected, {"error": {"message": f"injected fault {injected}"}}
        if isinstance(injected, tuple):
            return int(injected[0]), {"error": {"message": str(injected[1])}}
        if self.max_prompt_tokens is not None:
            count = len(self.render(body).split())
            if count > self.max_prompt_tokens:
                return 400, {
                    "error": {
                        "message": f"The prompt has {count} tokens, but the model takes at most "
                        f"{self.max_prompt_tokens}"
                    }
                }
        if self.strict_openai:
            unknown = sorted(set(body) & {"allowed_token_ids", "return_tokens_as_token_ids", "continue_final_message"})
            if unknown:
                return 400, {"error": {"message": f"Unrecognized request argument supplied: {unknown[0]}"}}
        if body.get("model") != self.served_model_name and self.served_model_name != "*":
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
        with self._slots:
            began = time.monotonic()
            with self._lock:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            payload: dict[str, Any] | None = None
            try:
                if self.latency:
                    time.sleep(self.latency)
                payload = self._answer(body, injected)
            finally:
                with self._lock:  # one step: no observer sees the request neither in flight nor answered
                    self.in_flight -= 1
                    if payload is not None:
                        self.answered += 1
                        self.timeline.append(
                            (
                                began,
                                time.monotonic(),
                                message_text((body.get("messages") or [{}])[-1].get("content", "")),
                            )
                        )
                    dying = self.die_after is not None and self.answered >= self.die_after and not self.dead
                    if dying:
                        self.dead = True
        if dying:
            threading.Thread(target=self._die, daemon=True).start()
        if injected == "garbage":
            return 200, b"<html>not a completion"
        return 200, payload

    def prefill_continued(self, body: dict[str, Any]) -> bool:
        """Whether this request continues its last (assistant) message, as vLLM does with
        ``continue_final_message`` (never with ``ignore_prefill``)."""
        messages = body.get("messages") or []
        last_is_assistant = bool(messages) and messages[-1].get("role") == "assistant"
        return last_is_assistant and bool(body.get("continue_final_message")) and not self.ignore_prefill

    def render(self, body: dict[str, Any]) -> str:
        """The prompt as a Vicuna-style template renders it: ``ROLE: text </s>`` per message, then ``ASSISTANT:``;
        a continued final message is left open instead."""
        messages = body.get("messages") or []
        continued = self.prefill_continued(body)
        parts = []
        for index, message in enumerate(messages):
            content = message.get("content")
            images = sum(1 for p in content if p.get("type") == "image_url") if isinstance(content, list) else 0
            text = " ".join(["<image>"] * images + [message_text(content)])
            open_end = continued and index == len(messages) - 1
            parts.append(f"{str(message.get('role', 'user')).upper()}: {text}" + ("" if open_end else " </s>"))
        add_header = self.ignore_prefill or not continued and body.get("add_generation_prompt", True)
        return " ".join(parts) + (" ASSISTANT:" if add_header else "")

    def _answer(self, body: dict[str, Any], injected: Any = None) -> dict[str, Any]:
        messages = body.get("messages")
        if messages and messages[-1].get("role") == "assistant" and not self.prefill_continued(body):
            messages = list(messages) + [{"role": "assistant", "content": ""}]  # scored after a new header
        logits = logits_for(messages)
        allowed = body.get("allowed_token_ids")
        processed = [z if allowed is None or i in allowed else -math.inf for i, z in enumerate(logits)]
        chosen = max(range(len(VOCAB)), key=lambda i: processed[i])
        as_ids = bool(body.get("return_tokens_as_token_ids"))

        def name(i: int) -> str:
            return f"token_id:{i}" if as_ids else VOCAB[i]

        max_tokens = int(body.get("max_tokens") or 16)
        words = [VOCAB[chosen]] + [VOCAB[1 + (chosen + k) % (len(VOCAB) - 1)] for k in range(1, self.reply_words)]
        words = words[:max_tokens]
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": " ".join(words)},
            "finish_reason": "length" if len(words) == max_tokens else "stop",
        }
        if body.get("logprobs") and injected != "nologprobs":
            logprobs = log_softmax(processed if self.logprobs_mode == "processed_logprobs" else logits)
            k = min(int(body.get("top_logprobs") or 0), self.max_logprobs)
            order = sorted((i for i in range(len(VOCAB)) if logprobs[i] != -math.inf), key=lambda i: -logprobs[i])
            top = [{"token": name(i), "logprob": logprobs[i], "bytes": None} for i in order[:k]]
            choice["logprobs"] = {
                "content": [{"token": name(chosen), "logprob": logprobs[chosen], "bytes": None, "top_logprobs": top}]
            }
        prompt_tokens = len(self.render(body).split())
        return {
            "id": f"chatcmpl-standin-{self.answered}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_model_name,
            "choices": [] if injected == "nochoices" else [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            },
        }

    def _die(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> StandinEngine:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if not self.dead:
            self.dead = True
            self._die()

    def __enter__(self) -> StandinEngine:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class ScriptedEngine(StandinEngine):
    """OpenAI's own API with scripted replies, for tests of clients, judges and text LLMs: any model name is
    served, there is no ``/tokenize``, every request is recorded (``requests``, ``auth_headers``), and the reply is
    ``default_reply``, ``responder(text of the last message)``, or the ``<text>`` of a ``REPLY=<text>|`` marker.
    With ``top_logprobs`` (``[(token, logprob), ...]``) a request that asks for log-probabilities gets that list
    (and its first token as the answer). Markers in the last message choose a behaviour, so concurrent requests
    stay predictable:

    - ``RATE429``: the first such request answers 429 (``retry-after-ms: 10``), later ones succeed;
    - ``ALWAYS500``: always HTTP 500;
    - ``SLOW``: sleeps ``slow_seconds`` before answering (client timeouts);
    - ``GARBAGE``: HTTP 200 with a body that is not JSON; ``NOCHOICES``: well-formed, no choices.

    ``fault(n)`` (``n`` counts the requests, from 1) injects the same faults by number: ``500`` / ``429``,
    ``"garbage"``, ``"nochoices"``. ``answered_by_messages`` counts successful replies per conversation.
    """

    MARKERS = ("RATE429", "ALWAYS500", "SLOW", "GARBAGE", "NOCHOICES")

    def __init__(
        self,
        default_reply: str = "Score: 2",
        slow_seconds: float = 2.0,
        top_logprobs: list[tuple[str, float]] | None = None,
        responder: Any = None,
        fault: Any = None,
    ) -> None:
        super().__init__(served_model_name="*", record=True, fault=self._by_marker)
        self.tokenizer_routes = False
        self.default_reply, self.slow_seconds = default_reply, float(slow_seconds)
        self.top_logprobs, self.responder, self.numbered_fault = top_logprobs, responder, fault
        #: requests per marker (``None``: none)
        self.seen: Counter[str | None] = Counter()
        self.answered_by_messages: Counter[str] = Counter()

    def _by_marker(self, number: int, body: dict[str, Any]) -> Any:
        """The fault a request's marker (or ``fault(n)``) asks for."""
        text = message_text(body["messages"][-1]["content"]) if body.get("messages") else ""
        marker = next((m for m in self.MARKERS if m in text), None)
        with self._lock:
            self.seen[marker] += 1
            count = self.seen[marker]
        injected = self.numbered_fault(number) if self.numbered_fault else None
        if injected in (500, 429):
            return int(injected), "injected fault"
        if injected in ("garbage", "nochoices"):
            return injected
        if marker == "RATE429" and count == 1:
            return 429, "rate limited"
        if marker == "ALWAYS500":
            return 500, "boom"
        if marker == "SLOW":
            time.sleep(self.slow_seconds)
        return {"GARBAGE": "garbage", "NOCHOICES": "nochoices"}.get(marker or "")

    def complete(self, body: dict[str, Any]) -> tuple[Any, ...]:
        """As the stand-in, plus ``retry-after-ms`` on a 429 (as OpenAI sends it)."""
        status, payload = super().complete(body)
        return (status, payload, {"retry-after-ms": "10"}) if status == 429 else (status, payload)

    def _answer(self, body: dict[str, Any], injected: Any = None) -> dict[str, Any]:
        text = message_text(body["messages"][-1]["content"]) if body.get("messages") else ""
        match = re.search(r"REPLY=(.*?)\|", text, re.S)
        reply = match.group(1) if match else self.responder(text) if self.responder else self.default_reply
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": reply},
            "finish_reason": "stop",
        }
        if body.get("logprobs") and self.top_logprobs is not None:
            top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in self.top_logprobs]
            first = top[0] if top else {"token": "", "logprob": 0.0}
            choice["message"]["content"] = first["token"] if top else reply
            choice["logprobs"] = {
                "content": [
                    {"token": first["token"], "logprob": first["logprob"], "bytes": None,
                     "top_logprobs": top[: body.get("top_logprobs") or 0]}
                ]
            }  # fmt: skip
        if injected not in ("nochoices", "garbage"):
            with self._lock:
                self.answered_by_messages[json.dumps(body.get("messages"), sort_keys=True)] += 1
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [] if injected == "nochoices" else [choice],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (the launcher's stand-in for ``vllm serve``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None, help="accepted and ignored (vllm serve's MODEL)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--capacity", type=int, default=1_000_000, help="requests served at once")
    parser.add_argument("--served-model-name", default="standin")
    parser.add_argument("--logprobs-mode", default="raw_logprobs", choices=("raw_logprobs", "processed_logprobs"))
    parser.add_argument("--max-logprobs", type=int, default=20)
    parser.add_argument("--strict-openai", action="store_true")
    parser.add_argument("--startup-delay", type=float, default=0.0, help="seconds before listening (model load)")
    args, _ = parser.parse_known_args(argv)  # vllm serve's other options are accepted and ignored
    time.sleep(args.startup_delay)
    engine = StandinEngine(
        port=args.port,
        latency=args.latency,
        capacity=args.capacity,
        served_model_name=args.served_model_name,
        logprobs_mode=args.logprobs_mode,
        max_logprobs=args.max_logprobs,
        strict_openai=args.strict_openai,
    )
    print(f"stand-in engine on {engine.base_url} serving {args.served_model_name!r}", flush=True)
    try:
        engine.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        engine.server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
