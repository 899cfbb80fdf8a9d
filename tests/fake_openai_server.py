"""A real HTTP server on 127.0.0.1 that speaks enough of the OpenAI chat-completions API for tests.

Behaviour is chosen by markers in the last user message, so concurrent requests
stay predictable:

- ``RATE429``: the first request answers 429 (with ``retry-after-ms: 10``), later ones succeed;
- ``ALWAYS500``: always HTTP 500;
- ``SLOW``: sleeps ``slow_seconds`` before answering (client timeouts);
- ``GARBAGE``: HTTP 200 with a body that is not JSON;
- ``REPLY=<text>|``: answers ``<text>``;
- otherwise answers ``default_reply``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.standin_engine import message_text as _text_of


class FakeOpenAI:
    """Start with ``with FakeOpenAI() as server: server.base_url``; inspect ``server.requests``."""

    def __init__(
        self,
        default_reply: str = "Score: 2",
        slow_seconds: float = 2.0,
        top_logprobs: list[tuple[str, float]] | None = None,
        responder=None,
        fault=None,
    ):
        self.default_reply, self.slow_seconds = default_reply, slow_seconds
        self.fault = fault  # optional callable(n) -> None | 500 | 429 | "garbage" | "nochoices", n = request number
        self.answered = Counter()  # successful replies per request content (image + text), server-side
        self.responder = responder  # optional callable(text) -> reply, for scripted conversations
        self.top_logprobs = top_logprobs  # returned when a request asks for logprobs; None: never
        self.requests: list[dict] = []
        self.seen = Counter()
        self.auth_headers: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # silence
                pass

            def do_POST(self):  # noqa: N802 - http.server API
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):  # as OpenAI's API: no /tokenize
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                text = _text_of(body["messages"][-1]["content"]) if body.get("messages") else ""
                with outer._lock:
                    outer.requests.append(body)
                    outer.auth_headers.append(self.headers.get("authorization", ""))
                    marker = next(
                        (m for m in ("RATE429", "ALWAYS500", "SLOW", "GARBAGE", "NOCHOICES") if m in text), None
                    )
                    outer.seen[marker] += 1
                    count = outer.seen[marker]
                    injected = outer.fault(len(outer.requests)) if outer.fault else None
                if injected in (500, 429):
                    return self._send(injected, {"error": {"message": "injected fault"}})
                if injected == "garbage":
                    marker = "GARBAGE"
                if injected == "nochoices":
                    marker = "NOCHOICES"
                if marker == "RATE429" and count == 1:
                    return self._send(429, {"error": {"message": "rate limited"}}, {"retry-after-ms": "10"})
                if marker == "ALWAYS500":
                    return self._send(500, {"error": {"message": "boom"}})
                if marker == "SLOW":
                    time.sleep(outer.slow_seconds)
                if marker == "GARBAGE":
                    raw = b"<html>definitely not json"
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return None
                if marker == "NOCHOICES":  # well-formed JSON, but nothing to read
                    return self._send(
                        200,
                        {
                            "id": "chatcmpl-test",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body.get("model"),
                            "choices": [],
                        },
                    )
                match = re.search(r"REPLY=(.*?)\|", text, re.S)
                reply = match.group(1) if match else outer.responder(text) if outer.responder else outer.default_reply
                choice = {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                if body.get("logprobs") and outer.top_logprobs is not None:
                    top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in outer.top_logprobs]
                    choice["message"]["content"] = top[0]["token"] if top else reply
                    choice["logprobs"] = {
                        "content": [
                            {
                                "token": top[0]["token"] if top else "",
                                "logprob": top[0]["logprob"] if top else 0.0,
                                "bytes": None,
                                "top_logprobs": top[: body.get("top_logprobs") or 0],
                            }
                        ]
                    }
                with outer._lock:
                    outer.answered[json.dumps(body.get("messages"), sort_keys=True)] += 1
                return self._send(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model"),
                        "choices": [choice],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
                    },
                )

            def _send(self, status, payload, headers=None):
                raw = json.dumps(payload).encode()
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
