"""Shared pieces of the backends whose model code ships inside the model repository (``trust_remote_code``).

Qwen-VL-Chat and InternLM-XComposer2-VL are not in transformers; their
repositories carry their own modelling code, written against transformers 4.3x,
so they normally run in a worker of their own environment (``harness env create
qwen-vl-chat`` / ``internlm-xcomposer2-vl``). Loading that code needs the user's
explicit opt-in (``trust_remote_code=true``). Their chat code reads images from
file paths, so images that arrive as bytes or PIL objects are written to a
temporary file for the duration of the call, and a path longer than a family's
limit (Qwen-VL: 256 bytes inside ``<img>...</img>``) is linked under a short
temporary name. Loading runs with the checkpoint's folder as the working directory
(repository code looks for its side files there, e.g. Qwen-VL's ``SimSun.ttf``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from . import hf_vlm, soft_scoring
from . import images as images_mod


@contextlib.contextmanager
def image_paths(sources: Sequence[Any], max_bytes: int | None = None) -> Iterator[list[str]]:
    """Local file paths for ``sources``: paths as they are, anything else saved as a temporary PNG; a path
    longer than ``max_bytes`` (encoded) is linked (or copied) under a short temporary name."""
    paths, temporary = [], []
    try:
        for source in sources:
            if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
                path = os.fspath(source)
                if max_bytes is not None and len(os.fsencode(path)) > max_bytes:
                    path = _short_alias(path)
                    temporary.append(path)
                paths.append(path)
                continue
            handle, path = tempfile.mkstemp(suffix=".png", prefix="harness-image-")
            os.close(handle)
            temporary.append(path)
            images_mod.open_image(source).save(path, format="PNG")
            paths.append(path)
        yield paths
    finally:
        for path in temporary:
            with contextlib.suppress(OSError):
                os.remove(path)


def _short_alias(path: str) -> str:
    """A short temporary name for ``path``: a symbolic link, or a copy where links are not allowed."""
    folder = tempfile.mkdtemp(prefix="hi-")
    alias = os.path.join(folder, "i" + os.path.splitext(path)[1][:8])
    try:
        os.symlink(os.path.abspath(path), alias)
    except OSError:
        shutil.copyfile(path, alias)
    return alias


@contextlib.contextmanager
def working_directory(path: str) -> Iterator[None]:
    """Run with ``path`` as the current folder (when it is one), then return to where we were."""
    if not os.path.isdir(path):
        yield
        return
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def local_folder(path: str) -> str:
    """``path`` itself, or for a hub id the folder of its snapshot in the local Hugging Face cache."""
    if os.path.isdir(os.path.expanduser(path)):
        return os.path.abspath(os.path.expanduser(path))
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(path, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached or not a hub id: from_pretrained reports it
        return path


class RemoteCodeBackend:
    """Loads tokenizer and model with ``trust_remote_code`` from local files, resolves the anchors."""

    names = "remote-code model"
    auto_class = "AutoModelForCausalLM"
    #: longest image path the repository's prompt format accepts (bytes), ``None`` = no limit
    max_path_bytes: int | None = None

    def __init__(
        self,
        path: str,
        device: str = "cuda",
        dtype: str = "auto",
        trust_remote_code: Any = False,
        fake: Sequence[str] = soft_scoring.DEFAULT_FAKE,
        real: Sequence[str] = soft_scoring.DEFAULT_REAL,
        multi_token: str = "skip",
        method: str = "eq2",
        question: str = soft_scoring.QUESTION,
        answer_prefix: str = soft_scoring.ANSWER_PREFIX,
    ) -> None:
        hf_vlm.require_remote_code(trust_remote_code, self.names)
        import torch
        import transformers

        self.torch, self.device, self.method = torch, device, method
        self.question, self.answer_prefix = question, answer_prefix
        self.requested_dtype = dtype
        folder = local_folder(path)
        auto = getattr(transformers, self.auto_class)
        with working_directory(folder):
            try:
                self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                    path, trust_remote_code=True, local_files_only=True
                )
                self.model = (
                    auto.from_pretrained(
                        path,
                        trust_remote_code=True,
                        local_files_only=True,
                        **hf_vlm.load_kwargs(dtype, device),
                        **self.precision_kwargs(dtype, device),
                    )
                    .to(device)
                    .eval()
                )
            except Exception as exc:
                raise self.explain_load_error(exc, folder) from exc
        # the anchors are what follows the answer prefix at the start of the assistant's turn
        self.fake, self.real = soft_scoring.resolve_anchors(self.tokenizer, answer_prefix, fake, real, multi_token)

    def precision_kwargs(self, dtype: str, device: str) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments that set the precision where the repository's code ignores
        ``torch_dtype`` (override per family)."""
        return {}

    def explain_load_error(self, exc: Exception, folder: str) -> Exception:
        """The error to raise when loading fails (override to name a family's known causes)."""
        return exc

    def info(self) -> dict[str, Any]:
        """Anchors and prompts, and the dtype the weights really have, for results."""
        weights = next(iter(self.model.parameters()), None) if hasattr(self.model, "parameters") else None
        dtype = weights.dtype if weights is not None else getattr(self.model, "dtype", "")
        return {
            "backend": self.names,
            "remote_code": type(self.model).__module__,
            "device": self.device,
            "dtype": str(dtype).replace("torch.", ""),
            "requested_dtype": self.requested_dtype,
            "method": self.method,
            "question": self.question,
            "answer_prefix": self.answer_prefix,
            **soft_scoring.anchors_record(self.fake, self.real),
        }

    def score_logits(self, sequences: list[Any]) -> list[float]:
        """Eq. 2 on a list of [vocab] logit rows."""
        return soft_scoring.soft_scores(
            self.torch.stack([s.float().cpu() for s in sequences]), self.fake.ids, self.real.ids, self.method
        )
