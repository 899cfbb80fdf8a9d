"""LMM adapters: FakeScope and the paper's baseline LMMs, in-process or in an isolated worker environment.

=====================  ================================  ===========================================
model                  backend (:mod:`harness.plugins.lmm.backends`)  weights
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
see :mod:`harness.plugins.lmm.backends.soft_scoring`) and ``generate`` requests (greedy
answers to the task's prompt), with the same question and answer prefix for all
models (paper Sec. VI-A3), each in its own chat format. With ``python=PATH`` any
of them runs as a worker process of that interpreter (:mod:`harness.plugins.lmm.worker_client`)
behind the same adapter contract, so caching and resume do not change.

Model arguments: ``path`` (a local folder or a hub id already in the local
Hugging Face cache), ``python`` (worker interpreter), ``max_new_tokens``,
``request_timeout``, and per backend: ``dtype`` (auto|bf16|fp16|fp32),
``method`` (eq2|logsumexp), ``fake``/``real`` (variant lists, e.g.
``fake=["fake","Fake"]``), ``multi_token`` (skip|first); transformers-native and
Owl2 models also ``score_prompt``, ``chat_template``; Owl2 ``image_aspect_ratio``
(config|pad|resize|none; default: the checkpoint's own), transformers-native ones ``pad_to_square``
(and ``attn_implementation``, ``compile`` = auto|true|false|BACKEND,
``torch.compile`` of the scoring forward pass: ``auto``, the default, compiles on CUDA and keeps it only where
the first batch's scores match the eager ones, ``preprocess`` = auto|cpu|device, where scoring pixels are made
(``device``: JPEGs decoded and processed on the model's device; ``auto`` takes it on CUDA where the probe
photographs score the same both ways), and ``cache_implementation`` = dynamic|static, generate()'s KV
cache); remote-code models ``trust_remote_code``
(required), ``question``, ``answer_prefix`` and ``system`` (Qwen-VL) or
``meta_instruction`` (XComposer2).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.checkpoints import checkpoint_argument
from harness.images import load_image
from harness.interfaces import ModelAdapter, ModelLoadError
from harness.plugins.lmm.engines import Engine, InProcessEngine, WorkerEngine
from harness.records import Request

_SCORING_ARGS = ("dtype", "fake", "real", "multi_token", "method")
_HF_ARGS = _SCORING_ARGS + (
    "score_prompt",
    "chat_template",
    "pad_to_square",
    "attn_implementation",
    "compile",
    "cache_implementation",
    "preprocess",
)
_REMOTE_ARGS = _SCORING_ARGS + ("trust_remote_code", "question", "answer_prefix")


def looks_like_hub_id(path: str) -> bool:
    """``owner/name`` (not a filesystem path such as ``/models/x``, ``./x`` or ``~/x``)."""
    return path.count("/") == 1 and not path.startswith((".", "/", "~")) and not path.endswith("/")


def hub_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder (named by its commit) of a hub id in the Hugging Face cache, if any."""
    if not looks_like_hub_id(repo_id):
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


class LmmAdapter(ModelAdapter):
    """Adapter over a backend class of :mod:`harness.plugins.lmm.backends` (in-process or worker)."""

    request_kinds = frozenset({"score", "generate"})
    backend_spec = "llava:LlavaBackend"
    #: the registry names this adapter serves, as its error messages name the model (not the served model's own
    #: name, which is :meth:`display_name`)
    names = "LLaVA-1.5"
    backend_args: tuple[str, ...] = _HF_ARGS
    requires_remote_code = False
    #: the ``harness env create`` recipe of its worker environment, for hints
    env_recipe: str | None = None
    #: a package the backend imports that the harness's own environment normally lacks
    upstream_module: str | None = None

    @classmethod
    def options(cls) -> dict[str, Any]:
        """The adapter's own options and its backend's (``backend_args``, passed on to the backend)."""
        own = super().options()
        return {**own, **{name: None for name in cls.backend_args if name not in own}}

    def __init__(
        self,
        path: str | None = None,
        python: str | None = None,
        max_new_tokens: int = 256,
        request_timeout: float | None = None,
        checkpoint: str | None = None,
        **args: Any,
    ) -> None:
        path = checkpoint_argument(self.names, checkpoint, path)
        super().__init__(path=path, python=python, max_new_tokens=max_new_tokens, **args)
        if not path:
            raise ValueError(
                f"{self.names} needs --model-args checkpoint=DIR (or path=DIR: a local checkpoint folder or a "
                "hub id already in the local Hugging Face cache)"
            )
        unknown = set(args) - set(self.backend_args)  # (the runner checked already; this guards direct use)
        if unknown:
            raise ValueError(
                f"unknown model arguments {sorted(unknown)}; known: checkpoint (or path), python, max_new_tokens, "
                f"request_timeout, {', '.join(self.backend_args)}"
            )
        if self.requires_remote_code:
            from harness.plugins.lmm.backends.hf_vlm import require_remote_code

            require_remote_code(args.get("trust_remote_code"), self.names)
        self.path, self.python, self.max_new_tokens = path, python, int(max_new_tokens)
        self.request_timeout = request_timeout
        self.backend_kwargs = {k: v for k, v in args.items() if k in self.backend_args}
        #: where the backend runs: here, or in a worker of the ``python=`` environment
        self.engine: Engine = (
            WorkerEngine(str(python), self.backend_spec, request_timeout, self.names)
            if python
            else InProcessEngine(self.backend_spec)
        )
        self.info: dict[str, Any] = {}
        self._weights_sha256: str | None = None

    # -- identity ----------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """Backend, arguments and the content hash of the checkpoint's weight files."""
        return {
            "class": self.backend_spec,
            "weights_sha256": self.weights_hash(),
            "args": {k: v for k, v in self.args.items() if k not in ("path", "python", "request_timeout")},
        }

    def weights_hash(self) -> str:
        """SHA-256 over the checkpoint folder's files (memoised by path, size and mtime); for a hub id, over
        the files of the cached snapshot, so two revisions of one id never share cached answers."""
        if self._weights_sha256 is None:
            from harness.fingerprint import hash_path_memo

            local = Path(self.path).expanduser()
            snapshot = None if local.exists() else hub_snapshot(self.path)
            if local.exists():
                self._weights_sha256 = hash_path_memo(local)
            elif snapshot is not None:
                self._weights_sha256 = f"hub:{self.path}@{snapshot.name}:{hash_path_memo(snapshot)}"
            else:
                self._weights_sha256 = f"hub:{self.path}"  # not cached: check() stops the run before any answer
        return self._weights_sha256

    def trained_on(self) -> dict[str, Any] | None:
        """From ``harness_training.json`` when the checkpoint was made by ``harness train fakescope``."""
        import json

        meta = Path(self.path).expanduser() / "harness_training.json"
        return json.loads(meta.read_text()).get("trained_on") if meta.is_file() else None

    def preprocessing(self) -> dict[str, Any]:
        """The backend's anchors, prompts and image pipeline (known once loaded; asked again now, so choices made
        while running are in it: compile=auto's and preprocess=auto's checks)."""
        if self.info:
            return {**self.info, **self.engine.current_info()}
        return {
            "note": "model not loaded in this run (all answers came from the cache)",
            "declared": self.backend_kwargs,
        }

    # -- lifecycle ---------------------------------------------------------------------------
    def check(self) -> None:
        """Before any data work: the weights, the worker interpreter and its packages, or the upstream package
        in-process."""
        self.check_weights_present()
        if not self.engine.local:
            if not Path(str(self.python)).expanduser().exists():
                raise ModelLoadError(f"{self.names}: worker interpreter {self.python} not found. " + self._env_hint())
            missing = self._missing_in_worker_env()
            if missing:
                raise ModelLoadError(
                    f"{self.names}: the worker environment of {self.python} lacks "
                    f"{', '.join(missing)}. " + self._env_hint()
                )
        elif self.upstream_module:
            import importlib.util

            if importlib.util.find_spec(self.upstream_module) is None:
                raise ModelLoadError(
                    f"{self.names} runs upstream's {self.upstream_module!r} package, which this "
                    f"Python lacks. " + self._env_hint()
                )

    def _missing_in_worker_env(self) -> list[str]:
        """Packages the backend needs that the worker's interpreter cannot import (a quick probe, no import)."""
        import subprocess

        needed = ["torch", "transformers"] + ([self.upstream_module] if self.upstream_module else [])
        probe = (
            "import importlib.util, sys; "
            "print(','.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
        )
        result = subprocess.run(
            [str(Path(self.python or sys.executable).expanduser()), "-c", probe, *needed],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise ModelLoadError(
                f"{self.names}: the worker interpreter {self.python} does not run: {result.stderr.strip()[-500:]}"
            )
        return [m for m in result.stdout.strip().split(",") if m]

    def _env_hint(self) -> str:
        recipe = self.env_recipe or "NAME"
        source = " --source UPSTREAM_DIR" if recipe == "mplug-owl2" else ""
        return (
            f"Build a worker environment with `harness env create {recipe} --dir envs/{recipe}{source}`, "
            f"then pass --model-args python=envs/{recipe}/bin/python"
        )

    def computes_here(self) -> bool:
        """In-process unless the model runs in a worker environment (``python=...``)."""
        return self.engine.local

    def setup(self, device: str = "cpu") -> None:
        """Load the backend in-process, or start the worker (which resolves ``auto`` with its own torch)."""
        from harness.devices import resolve_device

        self.check()
        self.device = resolve_device(device) if self.engine.local else device
        try:
            self.info = self.engine.start(str(self.path), self.device, self.backend_kwargs)
        except ModelLoadError as exc:
            hint = f". {self._env_hint()}" if "ModuleNotFoundError" in str(exc) else ""
            raise ModelLoadError(f"{exc}{hint}") from exc
        self.device = self.info.get("device", self.device)
        self._choose_preprocessing()

    def _choose_preprocessing(self) -> None:
        """``preprocess=auto`` on a CUDA device, in this process: the backend compares its two scoring paths on the
        probe JPEGs (:func:`harness.images.probe_jpegs`) and keeps the device one where the scores agree."""
        backend = getattr(self.engine, "backend", None)
        if backend is None or not getattr(backend, "fixed_image_tokens", False):
            return
        if backend.preprocess_requested == "auto" and str(self.device).startswith("cuda"):
            from harness.images import probe_jpegs

            try:
                backend.check_device_preprocessing(probe_jpegs())
            except Exception as exc:  # noqa: BLE001 - a check that cannot run leaves the CPU path, said why
                backend.preprocess = "cpu"
                backend.preprocess_check = {"kept": False, "error": f"{type(exc).__name__}: {exc}"[:300]}

    def check_weights_present(self) -> None:
        """A local folder, or a hub id whose files are in the local Hugging Face cache; else a clear error
        (nothing is ever downloaded)."""
        local = Path(self.path).expanduser()
        if local.exists():
            return
        if looks_like_hub_id(self.path):
            from huggingface_hub import constants

            if hub_snapshot(self.path) is not None:
                return
            raise ModelLoadError(
                f"{self.names}: {self.path!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) "
                f"and nothing is downloaded during a run. Fetch it on a machine with network access "
                f"(`hf download {self.path}`, with HF_HOME pointing at the cache this machine reads) or pass "
                f"--model-args path=DIR of a local copy."
            )
        raise ModelLoadError(f"{self.names}: no checkpoint folder at {str(local)!r} (--model-args path=...)")

    def close(self) -> None:
        """Stop the worker, if any."""
        self.engine.close()

    # -- requests ----------------------------------------------------------------------------
    def prepare(self, request: Request) -> tuple[Any, str | None]:
        """Decode the image here (so bad files fail as that sample); ship a path or bytes to a worker;
        for scoring with a fixed-size image encoding, also run the image processor here; a JPEG the backend
        decodes on its device (``preprocess=device``) is only read here."""
        undecoded = self.engine.undecoded(request)
        if undecoded is not None:
            return undecoded, request.prompt
        return self.engine.item(request, load_image(request.sample)), request.prompt

    def cost(self, request: Request) -> float | None:
        """Answers: the prompt's length (similar lengths share a padded batch); scores: all alike."""
        return float(len(request.prompt or "")) if request.kind == "generate" else None

    def score_batch(self, inputs: Sequence[tuple[Any, str | None]]) -> list[Any]:
        """P(fake) per image by soft-scoring."""
        return self.engine.score([item for item, _ in inputs])

    def generate_batch(self, inputs: Sequence[tuple[Any, str | None]]) -> list[Any]:
        """Greedy answers to each request's prompt."""
        return self.engine.generate([i for i, _ in inputs], [p or "" for _, p in inputs], self.max_new_tokens)


class LlavaAdapter(LmmAdapter):
    """``fakescope-llava`` / ``llava-1.5``: LLaVA-1.5 in Hugging Face format."""

    backend_spec = "llava:LlavaBackend"
    names = "fakescope-llava / llava-1.5"


class Owl2Adapter(LmmAdapter):
    """``fakescope-owl2`` / ``mplug-owl2``: mPLUG-Owl2 through the upstream ``mplug_owl2`` package.

    Normally with ``python=ENV/bin/python`` of an environment built by
    ``harness env create mplug-owl2``; in-process only where ``mplug_owl2`` imports.
    """

    backend_spec = "owl2:Owl2Backend"
    names = "fakescope-owl2 / mplug-owl2"
    backend_args = _SCORING_ARGS + ("score_prompt", "chat_template", "image_aspect_ratio")
    env_recipe = "mplug-owl2"
    upstream_module = "mplug_owl2"


class InstructBlipAdapter(LmmAdapter):
    """``instructblip-vicuna-7b``: InstructBLIP (Vicuna-7B) through transformers."""

    backend_spec = "instructblip:InstructBlipBackend"
    names = "instructblip-vicuna-7b"


class IdeficsAdapter(LmmAdapter):
    """``idefics-instruct``: IDEFICS-Instruct through transformers."""

    backend_spec = "idefics:IdeficsBackend"
    names = "idefics-instruct"


class QwenVlAdapter(LmmAdapter):
    """``qwen-vl-chat``: Qwen-VL-Chat through its repository's code (``trust_remote_code=true``)."""

    backend_spec = "qwen_vl:QwenVlBackend"
    names = "qwen-vl-chat"
    backend_args = _REMOTE_ARGS + ("system",)
    requires_remote_code = True
    env_recipe = "qwen-vl-chat"


class XComposer2Adapter(LmmAdapter):
    """``internlm-xcomposer2-vl``: InternLM-XComposer2-VL through its repository's code (``trust_remote_code=true``)."""

    backend_spec = "xcomposer2:XComposer2Backend"
    names = "internlm-xcomposer2-vl"
    backend_args = _REMOTE_ARGS + ("meta_instruction", "repetition_penalty")
    requires_remote_code = True
    env_recipe = "internlm-xcomposer2-vl"
