"""``launch=N``: start N ``vllm serve`` processes for a run, wait until they are healthy, stop them afterwards.

``harness run --model vllm --model-args model=/models/fakescope-llava,launch=8`` runs, for replica ``i`` on
local GPU ``i`` (counted within ``CUDA_VISIBLE_DEVICES`` when it is set)::

    CUDA_VISIBLE_DEVICES=i vllm serve /models/fakescope-llava --served-model-name fakescope-llava \\
        --port PORT_i --max-logprobs 20 --logprobs-mode processed_logprobs [--chat-template FILE]

(``launch_command`` replaces that command line: a template with ``{model}``, ``{name}``, ``{port}``, ``{gpu}``
and ``{template}``; ``launch_args`` appends options, e.g. ``--tensor-parallel-size 2``.) Each replica's
output goes to a log file whose last lines are shown if it fails to start. The run talks to the replicas as
data-parallel endpoints of ``openai-api``. They are stopped (SIGTERM to each process group, SIGKILL after a
grace period) when the run ends, fails or is interrupted, at interpreter exit, and, on Linux, when the
harness process itself dies (parent-death signal): no engine is left holding a GPU.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

#: the command each replica runs, unless ``launch_command`` names another
DEFAULT_COMMAND = (
    "vllm serve {model} --served-model-name {name} --port {port} --max-logprobs 20 --logprobs-mode processed_logprobs"
)
TEMPLATES = Path(__file__).resolve().parent / "lmm" / "templates"


def chat_template_path(name: str) -> Path:
    """A chat template shipped with the harness (``fakescope-llava``, ``llava-1.5``) or a file path."""
    shipped = TEMPLATES / f"{name}.jinja"
    if shipped.is_file():
        return shipped
    path = Path(name).expanduser()
    if path.is_file():
        return path
    known = ", ".join(sorted(p.stem for p in TEMPLATES.glob("*.jinja")))
    raise ValueError(f"chat template {name!r}: not a shipped template ({known}) nor a file")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class VllmLauncher:
    """N engine processes of one model, each on its own GPU and port."""

    def __init__(
        self,
        model_path: str,
        replicas: int,
        served_model_name: str | None = None,
        command: str | None = None,
        extra_args: str = "",
        chat_template: str | None = None,
        timeout: float = 1800.0,
        grace: float = 30.0,
    ) -> None:
        if replicas < 1:
            raise ValueError("launch needs at least one replica")
        self.model_path = model_path
        self.replicas = int(replicas)
        self.served_model_name = served_model_name or Path(model_path.rstrip("/")).name or model_path
        self.command = command or DEFAULT_COMMAND
        self.extra_args = extra_args or ""
        self.template = str(chat_template_path(chat_template)) if chat_template else None
        self.timeout, self.grace = float(timeout), float(grace)
        self.ports = [free_port() for _ in range(self.replicas)]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.started_s: float | None = None
        self._log_dir: str | None = None
        self._keep_logs = False

    @property
    def base_urls(self) -> list[str]:
        """The replicas' ``/v1`` URLs."""
        return [f"http://127.0.0.1:{port}/v1" for port in self.ports]

    def command_line(self, replica: int) -> list[str]:
        """The exact argv of one replica."""
        words = self.command.format(
            model=shlex.quote(self.model_path),
            name=shlex.quote(self.served_model_name),
            port=self.ports[replica],
            gpu=self.gpu(replica),
            template=shlex.quote(self.template or ""),
        )
        if self.template and "{template}" not in self.command:
            words += f" --chat-template {shlex.quote(self.template)}"
        return shlex.split(words + (" " + self.extra_args if self.extra_args else ""))

    def gpu(self, replica: int) -> str:
        """The device a replica runs on: the replica-th of ``CUDA_VISIBLE_DEVICES`` when set, else its index."""
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        return visible[replica % len(visible)] if visible else str(replica)

    def start(self) -> None:
        """Start every replica and wait until all answer ``/health``; on failure, stop them and raise
        :class:`~harness.interfaces.ModelLoadError` with the failing replica's log tail."""
        from harness.interfaces import ModelLoadError

        if self.processes:
            return
        self._log_dir = tempfile.mkdtemp(prefix="harness-vllm-")
        atexit.register(self.stop)
        begin = time.monotonic()
        for replica in range(self.replicas):
            argv = self.command_line(replica)
            log = Path(self._log_dir) / f"replica-{replica}.log"
            self.logs.append(log)
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": self.gpu(replica)}
            print(f"launching replica {replica}: {shlex.join(argv)}", file=sys.stderr, flush=True)
            with open(log, "wb") as handle:
                try:
                    process = subprocess.Popen(
                        argv, stdout=handle, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
                    )
                except OSError as exc:
                    self.stop()
                    raise ModelLoadError(
                        f"cannot start {argv[0]!r} ({exc.strerror or exc}); install vLLM in its own environment "
                        "(pip install vllm) or name the command with launch_command=..."
                    ) from None
            self.processes.append(process)
        try:
            for replica in range(self.replicas):
                self._wait_healthy(replica, begin)
        except BaseException:
            self._keep_logs = True  # the message names them
            self.stop()
            raise
        self.started_s = time.monotonic() - begin
        print(
            f"{self.replicas} replica(s) of {self.served_model_name!r} healthy after {self.started_s:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    def _wait_healthy(self, replica: int, begin: float) -> None:
        from harness.interfaces import ModelLoadError

        url = f"http://127.0.0.1:{self.ports[replica]}/health"
        process = self.processes[replica]
        while True:
            code = process.poll()
            if code is not None:
                raise ModelLoadError(
                    f"replica {replica} exited with code {code} before it was healthy; the end of its log "
                    f"({self.logs[replica]}):\n{self._tail(replica)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2.0) as reply:
                    if reply.status == 200:
                        return
            except (OSError, ValueError):  # not listening yet (URLError is an OSError), or not healthy
                pass
            if time.monotonic() - begin > self.timeout:
                raise ModelLoadError(
                    f"replica {replica} not healthy after {self.timeout:.0f} s (launch_timeout); the end of its "
                    f"log:\n{self._tail(replica)}"
                )
            time.sleep(0.25)

    def _tail(self, replica: int, lines: int = 20) -> str:
        try:
            return "\n".join(self.logs[replica].read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop every replica (idempotent): SIGTERM to its process group, SIGKILL after the grace period."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log_dir and not self._keep_logs and all(p.poll() is not None for p in self.processes):
            for log in self.logs:
                log.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                os.rmdir(self._log_dir)
            self._log_dir = None

    def note(self) -> dict[str, Any]:
        """What was launched, for the run's record."""
        return {
            "replicas": self.replicas,
            "command": shlex.join(self.command_line(0)),
            "seconds_to_healthy": round(self.started_s, 1) if self.started_s is not None else None,
        }
