"""Drive a model worker (``plugins/lmm/backends/worker.py``) running in another Python environment.

The client starts ``<python> worker.py``, sends a ``load`` request, then one
request per batch. If the worker dies (a crash, an out-of-memory kill), the
pending request raises :class:`WorkerCrashed` with the exit code and the tail of
the worker's stderr; the next request starts a fresh worker. The runner then
retries the batch item by item, so finished samples are never lost and only an
item that crashes the worker every time fails.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

WORKER_SCRIPT = Path(__file__).resolve().parent / "backends" / "worker.py"


class WorkerError(RuntimeError):
    """The worker answered a request with an error."""


class WorkerCrashed(RuntimeError):
    """The worker process exited or stopped answering."""


class WorkerClient:
    """One worker process serving one backend; restarted on demand after a crash."""

    def __init__(
        self,
        python: str,
        backend: str,
        args: dict[str, Any],
        env: dict[str, str] | None = None,
        startup_timeout: float = 1800.0,
        request_timeout: float | None = None,
    ) -> None:
        self.python, self.backend, self.args = python, backend, args
        self.env = env
        self.startup_timeout, self.request_timeout = startup_timeout, request_timeout
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}
        self.restarts = 0
        self._next_id = 0
        self._lines: queue.Queue = queue.Queue()
        self._stderr_path: str | None = None
        self._stderr_handle: Any = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Start the process and load the backend; returns the backend's info."""
        if not Path(self.python).exists():
            raise FileNotFoundError(f"worker interpreter {self.python} not found (--model-args python=...)")
        self._drop_log()  # a restarted worker gets a fresh log; the old one's tail was already reported
        handle, self._stderr_path = tempfile.mkstemp(prefix="harness-worker-", suffix=".log")
        self._stderr_handle = os.fdopen(handle, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update(self.env or {})
        self.proc = subprocess.Popen(
            [self.python, str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_handle,
            text=True,
            bufsize=1,
            env=env,
        )
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self._lines), daemon=True).start()
        response = self._call({"op": "load", "backend": self.backend, "args": self.args}, self.startup_timeout)
        self.info = response.get("info", {})
        self.info["worker_python"] = response.get("python")
        return self.info

    @staticmethod
    def _pump(proc: subprocess.Popen, lines: queue.Queue) -> None:
        for line in proc.stdout or ():
            lines.put(line)
        lines.put(None)  # end of output: the process is gone

    def close(self) -> None:
        """Ask the worker to exit (kill it if it does not); close and remove its stderr log."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self._call({"op": "shutdown"}, timeout=30)
                self.proc.wait(timeout=30)
        except (WorkerCrashed, WorkerError, subprocess.TimeoutExpired, OSError):
            if self.proc is not None:
                self.proc.kill()
        finally:
            self.proc = None
            self._drop_log()

    def _drop_log(self) -> None:
        if self._stderr_handle is not None:
            self._stderr_handle.close()
            self._stderr_handle = None
        if self._stderr_path:
            Path(self._stderr_path).unlink(missing_ok=True)
            self._stderr_path = None

    # -- requests ----------------------------------------------------------------------------
    def request(self, op: str, items: list[dict[str, Any]], options: dict[str, Any] | None = None) -> list[dict]:
        """Run one batch; per-item results are ``{"score"|"text": ...}`` or ``{"error": ...}``."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.restarts += 1
            self.start()
        response = self._call({"op": op, "items": items, "options": options or {}}, self.request_timeout)
        results = response["results"]
        if len(results) != len(items):
            raise WorkerError(f"worker returned {len(results)} results for {len(items)} items")
        return results

    def _call(self, message: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        assert self.proc is not None
        self._next_id += 1
        message = {"id": self._next_id, **message}
        try:
            assert self.proc.stdin is not None  # started with stdin=PIPE
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._crashed(message)
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self.proc.kill()
                self._crashed(message, f"no answer within {timeout} s; killed")
            if line is None:
                self._crashed(message)
            try:
                response = json.loads(line)
            except ValueError:
                continue  # not protocol (should not happen: the worker sends prints to stderr)
            if response.get("id") != message["id"]:
                continue
            if not response.get("ok"):
                raise WorkerError(f"worker {message['op']} failed: {response.get('error')}")
            return response

    def _crashed(self, message: dict[str, Any], why: str | None = None) -> None:
        proc = self.proc
        code = proc.wait(timeout=30) if proc is not None else None
        self.proc = None
        tail = ""
        if self._stderr_path and os.path.exists(self._stderr_path):
            tail = Path(self._stderr_path).read_text(errors="replace")[-1500:].strip()
        raise WorkerCrashed(
            f"model worker ({self.python}) {why or f'exited with code {code}'} during "
            f"{message['op']} of {len(message.get('items', []))} items" + (f"; stderr tail: {tail}" if tail else "")
        )
