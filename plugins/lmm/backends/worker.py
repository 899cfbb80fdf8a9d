"""Model worker: serves one backend over stdin/stdout, in whatever Python environment runs it.

Standalone on purpose: it imports only the standard library until it loads the
backend, so it runs in an environment pinned to old library versions (for
example mPLUG-Owl2's torch 2.0.1 / transformers 4.31) while the harness runs in
its own. Start it as::

    /path/to/other-env/bin/python worker.py

Protocol: one JSON object per line in each direction (UTF-8). Every request has
an ``id`` echoed in its response; responses carry ``ok`` and either a result or
``error``.

    {"id": 1, "op": "load", "backend": "llava:LlavaBackend", "args": {"device": "auto", ...}}
        -> {"id": 1, "ok": true, "info": {...}}            # backend.info()
    (``device`` ``auto`` is resolved here, by the worker environment's torch: see :func:`resolve_device`)
    {"id": 2, "op": "score", "items": [{"image": "/path.png"}, {"image": {"b64": "..."}}]}
        -> {"id": 2, "ok": true, "results": [{"score": 0.93}, {"error": "..."}]}
    {"id": 3, "op": "generate", "items": [{"image": ..., "prompt": "..."}], "options": {"max_new_tokens": 64}}
        -> {"id": 3, "ok": true, "results": [{"text": "..."}]}
    {"id": 4, "op": "shutdown"} -> {"id": 4, "ok": true}, then exit 0
    a request that fails as a whole -> {"id": n, "ok": false, "error": "Type: message"}

A batch is run as one call; if it raises, each item is retried alone so one bad
item does not fail the others. Anything the backend prints goes to stderr; stdout
carries the protocol only. ``backend`` is ``module:Class``; the module is searched
in this file's folder first (the harness's own backends, imported as the package ``backends``), then on
``sys.path``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

PROTOCOL_VERSION = 1


def resolve_device(device: str | None) -> str:
    """The device a worker's backend runs on, decided here, by the torch of the worker's environment.

    ``auto`` (or nothing) is ``cpu`` where that torch sees no GPU; with a GPU it is
    ``cuda:<LOCAL_RANK>`` under a launcher (each rank's worker on its own GPU), else ``cuda``.
    A plain ``cuda`` under a launcher is pinned the same way; anything else is kept as given.
    """
    local = os.environ.get("LOCAL_RANK")
    if device not in (None, "", "auto", "cuda"):
        return str(device)
    try:
        import torch
    except ImportError:
        return "cpu" if device != "cuda" else "cuda"
    if not torch.cuda.is_available():
        if device == "cuda":
            raise RuntimeError(
                "--device cuda requested, but the worker's torch sees no CUDA device (use --device auto or cpu)"
            )
        return "cpu"
    if local is not None and torch.cuda.device_count() > 0:
        return f"cuda:{int(local) % torch.cuda.device_count()}"
    return "cuda"


def import_backend_module(module_name: str):
    """A backend module: one of this folder's, imported as a module of this folder's package (``backends.llava``,
    so that its relative imports of its siblings work in an environment without the harness); any other from
    ``sys.path`` as it is named."""
    here = os.path.dirname(os.path.abspath(__file__))
    package = __package__
    if not package:  # run as a script: the folder's parent makes the folder a package (for other backends too)
        parent, package = os.path.split(here)
        if parent not in sys.path:
            sys.path.insert(0, parent)
    if not os.path.exists(os.path.join(here, module_name.replace(".", os.sep) + ".py")):
        return importlib.import_module(module_name)  # a backend of one's own: `from backends.llava import ...`
    return importlib.import_module(f"{package}.{module_name}")


def _load_backend(spec: str, args: dict):
    module_name, _, class_name = spec.partition(":")
    module = import_backend_module(module_name)
    args = dict(args)
    if "device" in args:
        args["device"] = resolve_device(args["device"])
    return getattr(module, class_name)(**args)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _run_items(backend, op: str, items: list, options: dict) -> list:
    def call(batch):
        if op == "score":
            return [{"score": float(s)} for s in backend.score([i["image"] for i in batch])]
        texts = backend.generate([i["image"] for i in batch], [i.get("prompt", "") for i in batch], **options)
        return [{"text": t} for t in texts]

    try:
        return call(items)
    except Exception:  # noqa: BLE001 - isolate the failing item
        if len(items) == 1:
            raise
    results = []
    for item in items:
        try:
            results.extend(call([item]))
        except Exception as exc:  # noqa: BLE001
            results.append({"error": _error(exc)})
    return results


def serve(stdin=None, stdout=None) -> int:
    """Read requests until ``shutdown`` or end of input."""
    stdin = stdin or sys.stdin
    protocol_out = stdout or sys.stdout
    sys.stdout = sys.stderr  # backend prints must not corrupt the protocol
    backend = None

    def send(message: dict) -> None:
        protocol_out.write(json.dumps(message, default=str) + "\n")
        protocol_out.flush()

    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as exc:
            send({"id": None, "ok": False, "error": f"bad request line: {exc}"})
            continue
        rid, op = request.get("id"), request.get("op")
        try:
            if op == "load":
                backend = _load_backend(request["backend"], request.get("args", {}))
                info = backend.info() if hasattr(backend, "info") else {}
                send(
                    {
                        "id": rid,
                        "ok": True,
                        "info": info,
                        "protocol": PROTOCOL_VERSION,
                        "python": sys.version.split()[0],
                        "pid": os.getpid(),
                    }
                )
            elif op in ("score", "generate"):
                if backend is None:
                    raise RuntimeError("no backend loaded: send a 'load' request first")
                send(
                    {
                        "id": rid,
                        "ok": True,
                        "results": _run_items(backend, op, request.get("items", []), request.get("options", {})),
                    }
                )
            elif op == "shutdown":
                send({"id": rid, "ok": True})
                return 0
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:  # noqa: BLE001 - reported to the harness, the worker stays up
            traceback.print_exc(file=sys.stderr)
            send({"id": rid, "ok": False, "error": _error(exc)})
    return 0


if __name__ == "__main__":
    sys.exit(serve())
