"""Shared pieces of the backends whose model code ships inside the model repository (``trust_remote_code``).

Qwen-VL-Chat and InternLM-XComposer2-VL are not in transformers; their
repositories carry their own modelling code, written against transformers 4.3x,
so they normally run in a worker of their own environment (``harness env create
qwen-vl-chat`` / ``internlm-xcomposer2-vl``). Loading that code needs the user's
explicit opt-in (``trust_remote_code=true``). Their chat code reads images from
file paths, so images that arrive as bytes or PIL objects are written to a
temporary file for the duration of the call.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Iterator, Sequence

try:
    from ._sibling import sibling
except ImportError:  # inside a worker: this folder is on sys.path
    from _sibling import sibling

soft_scoring = sibling("soft_scoring")
images_mod = sibling("images")
hf_vlm = sibling("hf_vlm")


@contextlib.contextmanager
def image_paths(sources: Sequence[Any]) -> Iterator[list[str]]:
    """Local file paths for ``sources``: paths as they are, anything else saved as a temporary PNG."""
    paths, temporary = [], []
    try:
        for source in sources:
            if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
                paths.append(os.fspath(source))
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


class RemoteCodeBackend:
    """Loads tokenizer and model with ``trust_remote_code`` from local files, resolves the anchors."""

    display = "remote-code model"
    auto_class = "AutoModelForCausalLM"

    def __init__(self, path: str, device: str = "cuda", dtype: str = "auto", trust_remote_code: Any = False,
                 fake: Sequence[str] = soft_scoring.DEFAULT_FAKE, real: Sequence[str] = soft_scoring.DEFAULT_REAL,
                 multi_token: str = "skip", method: str = "eq2", question: str = soft_scoring.QUESTION,
                 answer_prefix: str = soft_scoring.ANSWER_PREFIX) -> None:
        hf_vlm.require_remote_code(trust_remote_code, self.display)
        import torch
        import transformers

        self.torch, self.device, self.method = torch, device, method
        self.question, self.answer_prefix = question, answer_prefix
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=True,
                                                                    local_files_only=True)
        auto = getattr(transformers, self.auto_class)
        self.model = auto.from_pretrained(path, trust_remote_code=True, local_files_only=True,
                                          **hf_vlm.load_kwargs(dtype, device)).to(device).eval()
        # the anchors are what follows the answer prefix at the start of the assistant's turn
        self.fake, self.real = soft_scoring.resolve_anchors(self.tokenizer, answer_prefix, fake, real, multi_token)

    def info(self) -> dict[str, Any]:
        """Anchors and prompts, for results."""
        return {"backend": self.display, "remote_code": type(self.model).__module__, "device": self.device,
                "dtype": str(getattr(self.model, "dtype", "")), "method": self.method,
                "question": self.question, "answer_prefix": self.answer_prefix,
                **soft_scoring.anchors_record(self.fake, self.real)}

    def score_logits(self, sequences: list[Any]) -> list[float]:
        """Eq. 2 on a list of [vocab] logit rows."""
        return soft_scoring.soft_scores(self.torch.stack([s.float().cpu() for s in sequences]),
                                        self.fake.ids, self.real.ids, self.method)
