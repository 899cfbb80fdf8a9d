"""LMM adapters: FakeScope and the paper's baseline LMMs, in-process or in an isolated worker environment.

=====================  ================================  ===========================================
model                  backend (:mod:`harness.backends`)  weights
=====================  ================================  ===========================================
fakescope-llava        llava (transformers)               ``path=DIR`` of a FakeScope-LLaVA checkpoint
llava-1.5              llava (transformers)               llava-hf/llava-1.5-7b-hf
instructblip-vicuna-7b instructblip (transformers)        Salesforce/instructblip-vicuna-7b
idefics-instruct       idefics (transformers)             HuggingFaceM4/idefics-9b-instruct
fakescope-owl2         owl2 (upstream ``mplug_owl2``)      ``path=DIR``; worker env ``mplug-owl2``
mplug-owl2             owl2 (upstream ``mplug_owl2``)      MAGAer13/mplug-owl2-llama2-7b
qwen-vl-chat           qwen_vl (remote code, opt-in)      Qwen/Qwen-VL-Chat; worker env ``qwen-vl-chat``
internlm-xcomposer2-vl xcomposer2 (remote code, opt-in)   internlm/internlm-xcomposer2-vl-7b; worker env
=====================  ================================  ===========================================

Every one serves ``score`` requests (P(fake) by token soft-scoring, paper Eq. 2;
see :mod:`harness.backends.soft_scoring`) and ``generate`` requests (greedy
answers to the task's prompt), with the same question and answer prefix for all
models (paper Sec. VI-A3), each in its own chat format. With ``python=PATH`` any
of them runs as a worker process of that interpreter (:mod:`harness.worker_client`)
behind the same adapter contract, so caching and resume do not change.

Model arguments: ``path`` (a local folder or a hub id already in the local
Hugging Face cache), ``python`` (worker interpreter), ``max_new_tokens``,
``request_timeout``, and per backend: ``dtype`` (auto|bf16|fp16|fp32),
``method`` (eq2|logsumexp), ``fake``/``real`` (variant lists, e.g.
``fake=["fake","Fake"]``), ``multi_token`` (skip|first); transformers-native and
Owl2 models also ``score_prompt``, ``chat_template``, ``pad_to_square``
(transformers-native ones also ``attn_implementation`` and ``compile`` = true|BACKEND,
``torch.compile`` of the forward pass); remote-code models ``trust_remote_code``
(required), ``question``, ``answer_prefix`` and ``system`` (Qwen-VL) or
``meta_instruction`` (XComposer2).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Sequence

from harness.images import load_image
from harness.interfaces import ModelAdapter
from harness.records import Prediction, Request

_SCORING_ARGS = ("dtype", "fake", "real", "multi_token", "method")
_HF_ARGS = _SCORING_ARGS + ("score_prompt", "chat_template", "pad_to_square", "attn_implementation", "compile")
_REMOTE_ARGS = _SCORING_ARGS + ("trust_remote_code", "question", "answer_prefix")


class LmmAdapter(ModelAdapter):
    """Adapter over a backend class of :mod:`harness.backends` (in-process or worker)."""

    request_kinds = frozenset({"score", "generate"})
    backend_spec = "llava:LlavaBackend"
    display = "LLaVA-1.5"
    backend_args: tuple[str, ...] = _HF_ARGS
    requires_remote_code = False

    def __init__(self, path: str | None = None, python: str | None = None, max_new_tokens: int = 256,
                 request_timeout: float | None = None, **args: Any) -> None:
        super().__init__(path=path, python=python, max_new_tokens=max_new_tokens, **args)
        if not path:
            raise ValueError(f"{self.display} needs --model-args path=DIR (a local checkpoint folder or a hub id "
                             "already in the local Hugging Face cache)")
        unknown = set(args) - set(self.backend_args)
        if unknown:
            raise ValueError(f"unknown model arguments {sorted(unknown)}; known: path, python, max_new_tokens, "
                             f"request_timeout, {', '.join(self.backend_args)}")
        if self.requires_remote_code:
            from harness.backends.hf_vlm import require_remote_code

            require_remote_code(args.get("trust_remote_code"), self.display)
        self.path, self.python, self.max_new_tokens = path, python, int(max_new_tokens)
        self.request_timeout = request_timeout
        self.backend_kwargs = {k: v for k, v in args.items() if k in self.backend_args}
        self.backend: Any = None
        self.worker: Any = None
        self.info: dict[str, Any] = {}
        self._weights_sha256: str | None = None

    # -- identity ----------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """Backend, arguments and the content hash of the checkpoint's weight files."""
        return {"class": self.backend_spec, "weights_sha256": self.weights_hash(),
                "args": {k: v for k, v in self.args.items() if k not in ("path", "python", "request_timeout")}}

    def weights_hash(self) -> str:
        """SHA-256 over the checkpoint folder's files (memoised by path, size and mtime)."""
        if self._weights_sha256 is None:
            from harness.fingerprint import hash_path_memo

            local = Path(self.path).expanduser()
            self._weights_sha256 = hash_path_memo(local) if local.exists() else f"hub:{self.path}"
        return self._weights_sha256

    def trained_on(self) -> dict[str, Any] | None:
        """From ``harness_training.json`` when the checkpoint was made by ``harness train fakescope``."""
        import json

        meta = Path(self.path).expanduser() / "harness_training.json"
        return json.loads(meta.read_text()).get("trained_on") if meta.is_file() else None

    def preprocessing(self) -> dict[str, Any]:
        """The backend's anchors, prompts and image pipeline (known once loaded)."""
        return self.info or {"note": "model not loaded in this run (all answers came from the cache)",
                             "declared": self.backend_kwargs}

    # -- lifecycle ---------------------------------------------------------------------------
    def setup(self, device: str = "cpu") -> None:
        """Load the backend in-process, or start the worker."""
        from harness.devices import resolve_device

        self.device = resolve_device(device) if not self.python else (device if device != "auto" else "cuda")
        if not self.python:
            self.check_weights_present()
        args = {"path": str(self.path), "device": self.device, **self.backend_kwargs}
        if self.python:
            from harness.worker_client import WorkerClient

            self.worker = WorkerClient(self.python, self.backend_spec, args, request_timeout=self.request_timeout)
            self.info = {**self.worker.start(), "isolated_worker": True}
        else:
            self.backend = self._backend_class()(**args)
            self.info = self.backend.info()

    def check_weights_present(self) -> None:
        """A local folder, or a hub id whose files are in the local Hugging Face cache; else a clear error
        (nothing is ever downloaded)."""
        if Path(self.path).expanduser().exists():
            return
        from huggingface_hub import constants, try_to_load_from_cache

        if self.path.count("/") == 1 and not self.path.startswith((".", "/", "~")):
            if isinstance(try_to_load_from_cache(self.path, "config.json"), str):
                return
        raise FileNotFoundError(
            f"{self.display}: no weights at {self.path!r}: not a local folder and not in the local Hugging Face "
            f"cache ({constants.HF_HUB_CACHE}). Fetch them on a machine with network access "
            f"(`huggingface-cli download {self.path}`) or pass --model-args path=DIR.")

    def _backend_class(self) -> Any:
        import importlib

        module, _, cls = self.backend_spec.partition(":")
        return getattr(importlib.import_module(f"harness.backends.{module}"), cls)

    def close(self) -> None:
        """Stop the worker, if any."""
        if self.worker is not None:
            self.worker.close()

    # -- requests ----------------------------------------------------------------------------
    def prepare(self, request: Request) -> tuple[Any, str | None]:
        """Decode the image here (so bad files fail as that sample); ship a path or bytes to a worker;
        for scoring with a fixed-size image encoding, also run the image processor here."""
        image = load_image(request.sample)
        if self.python:
            source = request.sample.image
            payload = {"b64": base64.b64encode(source).decode("ascii")} if isinstance(source, bytes) else \
                str(Path(source).resolve())
            return payload, request.prompt
        if request.kind == "score" and getattr(self.backend, "fixed_image_tokens", False):
            # pixels made here, in the runner's worker threads, while the model runs on the previous batch
            return self.backend.prepare_pixels(image), request.prompt
        return image, request.prompt

    def cost(self, request: Request) -> float | None:
        """Answers: the prompt's length (similar lengths share a padded batch); scores: all alike."""
        return float(len(request.prompt or "")) if request.kind == "generate" else None

    def score_batch(self, inputs: Sequence[tuple[Any, str | None]]) -> list[Any]:
        """P(fake) per image by soft-scoring."""
        if self.worker is not None:
            return self._from_worker("score", inputs)
        return self.backend.score([image for image, _ in inputs])

    def generate_batch(self, inputs: Sequence[tuple[Any, str | None]]) -> list[Any]:
        """Greedy answers to each request's prompt."""
        options = {"max_new_tokens": self.max_new_tokens}
        if self.worker is not None:
            return self._from_worker("generate", inputs, options)
        return self.backend.generate([i for i, _ in inputs], [p or "" for _, p in inputs], **options)

    def _from_worker(self, op: str, inputs: Sequence[tuple[Any, str | None]],
                     options: dict[str, Any] | None = None) -> list[Prediction]:
        items = [{"image": image, "prompt": prompt} for image, prompt in inputs]
        results = self.worker.request(op, items, options)
        out = []
        for result in results:
            if "error" in result:
                out.append(Prediction(error=f"worker: {result['error']}"))
            elif op == "score":
                out.append(Prediction(score=float(result["score"])))
            else:
                out.append(Prediction(text=result["text"]))
        return out


class LlavaAdapter(LmmAdapter):
    """``fakescope-llava`` / ``llava-1.5``: LLaVA-1.5 in Hugging Face format."""

    backend_spec = "llava:LlavaBackend"
    display = "fakescope-llava / llava-1.5"


class Owl2Adapter(LmmAdapter):
    """``fakescope-owl2`` / ``mplug-owl2``: mPLUG-Owl2 through the upstream ``mplug_owl2`` package.

    Normally with ``python=ENV/bin/python`` of an environment built by
    ``harness env create mplug-owl2``; in-process only where ``mplug_owl2`` imports.
    """

    backend_spec = "owl2:Owl2Backend"
    display = "fakescope-owl2 / mplug-owl2"
    backend_args = _SCORING_ARGS + ("score_prompt", "chat_template", "pad_to_square")


class InstructBlipAdapter(LmmAdapter):
    """``instructblip-vicuna-7b``: InstructBLIP (Vicuna-7B) through transformers."""

    backend_spec = "instructblip:InstructBlipBackend"
    display = "instructblip-vicuna-7b"


class IdeficsAdapter(LmmAdapter):
    """``idefics-instruct``: IDEFICS-Instruct through transformers."""

    backend_spec = "idefics:IdeficsBackend"
    display = "idefics-instruct"


class QwenVlAdapter(LmmAdapter):
    """``qwen-vl-chat``: Qwen-VL-Chat through its repository's code (``trust_remote_code=true``)."""

    backend_spec = "qwen_vl:QwenVlBackend"
    display = "qwen-vl-chat"
    backend_args = _REMOTE_ARGS + ("system",)
    requires_remote_code = True


class XComposer2Adapter(LmmAdapter):
    """``internlm-xcomposer2-vl``: InternLM-XComposer2-VL through its repository's code (``trust_remote_code=true``)."""

    backend_spec = "xcomposer2:XComposer2Backend"
    display = "internlm-xcomposer2-vl"
    backend_args = _REMOTE_ARGS + ("meta_instruction",)
    requires_remote_code = True
