"""Where an LMM adapter's backend runs: in this process, or in a worker process of another Python environment.

The adapter (:mod:`harness.plugins.lmm`) talks to one :class:`Engine` and never asks which it is: the engine
loads the backend, turns a decoded request into what the backend takes (pixels here, a path or bytes for a
worker), and answers batches as predictions.
"""

from __future__ import annotations

import base64
import importlib
from pathlib import Path
from typing import Any, Protocol

from harness.images import HIGH_BIT_MODES, JPEG_MAGIC, file_metadata, read_image_bytes
from harness.interfaces import ModelLoadError
from harness.records import Prediction, Request


def high_bit_depth(sample: Any) -> bool:
    """Whether the sample's image is 16-bit, 32-bit integer or float (from the listing's metadata, else its
    header: a file or in-memory bytes)."""
    mode = (sample.metadata or {}).get("mode")
    if mode is None:  # a path or in-memory bytes: read the header
        try:
            mode = file_metadata(sample.image)["mode"]
        except Exception:  # noqa: BLE001 - unreadable: load_image already raised for it
            return False
    return mode in HIGH_BIT_MODES


def png_bytes(image: Any) -> bytes:
    """A decoded image as PNG bytes (lossless)."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Engine(Protocol):
    """A loaded backend, wherever it runs."""

    #: what the backend reported when it loaded (device, dtype, anchors ...)
    info: dict[str, Any]
    #: whether the backend computes in this process (else ``auto`` is resolved where it runs)
    local: bool

    def start(self, path: str, device: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Load the backend (``device`` may be ``auto``: resolved where the backend runs); returns its info."""
        ...

    def item(self, request: Request, image: Any) -> Any:
        """What the backend takes for one request whose image was decoded here (so bad files fail here)."""
        ...

    def undecoded(self, request: Request) -> Any | None:
        """What the backend takes for a request whose image bytes it decodes itself (JPEGs decoded on the model's
        device), or ``None`` when it wants the image decoded here."""
        ...

    def current_info(self) -> dict[str, Any]:
        """The backend's info as it is now (choices made while running, such as compile=auto's, included)."""
        ...

    def score(self, items: list[Any]) -> list[Any]:
        """P(fake) per item (floats or predictions)."""
        ...

    def generate(self, items: list[Any], prompts: list[str], max_new_tokens: int) -> list[Any]:
        """Greedy answers per item (texts or predictions)."""
        ...

    def close(self) -> None:
        """Release what the engine holds."""
        ...


class InProcessEngine:
    """The backend class imported and run here."""

    local = True

    def __init__(self, backend_spec: str) -> None:
        self.backend_spec = backend_spec
        self.backend: Any = None
        self.info: dict[str, Any] = {}

    def start(self, path: str, device: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Import the backend class and load the weights."""
        module, _, name = self.backend_spec.partition(":")
        cls = getattr(importlib.import_module(f"harness.plugins.lmm.backends.{module}"), name)
        self.backend = cls(path=path, device=device, **kwargs)
        self.info = self.backend.info()
        return self.info

    def item(self, request: Request, image: Any) -> Any:
        """The decoded image; for scoring with a fixed-size image encoding, its pixels, made here in the runner's
        threads while the model runs on the previous batch."""
        if request.kind == "score" and getattr(self.backend, "fixed_image_tokens", False):
            return self.backend.prepare_pixels(image)
        return image

    def undecoded(self, request: Request) -> Any | None:
        """A JPEG's bytes for a backend scoring with ``preprocess=device`` (decoded on the model's device); else
        None (other formats, other backends, answers)."""
        if request.kind != "score" or getattr(self.backend, "preprocess", "cpu") != "device":
            return None
        data = read_image_bytes(request.sample)
        if data[:3] != JPEG_MAGIC or high_bit_depth(request.sample):
            return None
        return self.backend.encoded(data, request.sample.describe())

    def current_info(self) -> dict[str, Any]:
        """The loaded backend's info, asked now."""
        return self.backend.info() if self.backend is not None else self.info

    def score(self, items: list[Any]) -> list[Any]:
        """The backend's soft scores."""
        return list(self.backend.score(items))

    def generate(self, items: list[Any], prompts: list[str], max_new_tokens: int) -> list[Any]:
        """The backend's greedy answers."""
        return list(self.backend.generate(items, prompts, max_new_tokens=max_new_tokens))

    def close(self) -> None:
        """Nothing to stop."""


class WorkerEngine:
    """The backend in a worker process of another Python environment (:mod:`harness.plugins.lmm.worker_client`)."""

    local = False

    def __init__(self, python: str, backend_spec: str, request_timeout: float | None, describe: str) -> None:
        self.python, self.backend_spec, self.request_timeout = python, backend_spec, request_timeout
        #: names the model and what to do in errors (``"LLaVA-1.5: the worker (...)"``)
        self.describe = describe
        self.worker: Any = None
        self.info: dict[str, Any] = {}

    def start(self, path: str, device: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Start the worker and load the backend there (it resolves ``auto`` with its own torch)."""
        from harness.plugins.lmm.worker_client import WorkerClient, WorkerCrashed, WorkerError

        args = {"path": path, "device": device, **kwargs}
        self.worker = WorkerClient(self.python, self.backend_spec, args, request_timeout=self.request_timeout)
        try:
            self.info = {**self.worker.start(), "isolated_worker": True}
        except (WorkerError, WorkerCrashed) as exc:
            self.worker.close()
            raise ModelLoadError(f"{self.describe}: the worker ({self.python}) could not load {path}: {exc}") from exc
        return self.info

    def item(self, request: Request, image: Any) -> Any:
        """A path the worker opens itself, or bytes: the original file's, or the 8-bit pixels decoded here for a
        high-bit-depth image (the worker's PIL would clip it)."""
        source = request.sample.image
        if high_bit_depth(request.sample):
            return {"b64": base64.b64encode(png_bytes(image)).decode("ascii")}
        if isinstance(source, bytes):
            return {"b64": base64.b64encode(source).decode("ascii")}
        return str(Path(source).resolve())

    def undecoded(self, request: Request) -> Any | None:
        """None: the worker gets a path or bytes (:meth:`item`)."""
        return None

    def current_info(self) -> dict[str, Any]:
        """What the worker reported when it loaded."""
        return self.info

    def score(self, items: list[Any]) -> list[Any]:
        """Soft scores from the worker."""
        return self._ask("score", [{"image": item} for item in items])

    def generate(self, items: list[Any], prompts: list[str], max_new_tokens: int) -> list[Any]:
        """Greedy answers from the worker."""
        asked = [{"image": item, "prompt": prompt} for item, prompt in zip(items, prompts, strict=True)]
        return self._ask("generate", asked, {"max_new_tokens": max_new_tokens})

    def _ask(self, op: str, items: list[dict[str, Any]], options: dict[str, Any] | None = None) -> list[Prediction]:
        out = []
        for result in self.worker.request(op, items, options):
            if "error" in result:
                out.append(Prediction(error=f"worker: {result['error']}"))
            elif op == "score":
                out.append(Prediction(score=float(result["score"])))
            else:
                out.append(Prediction(text=result["text"]))
        return out

    def close(self) -> None:
        """Stop the worker."""
        if self.worker is not None:
            self.worker.close()
