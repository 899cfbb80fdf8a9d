"""InternLM-XComposer2-VL backend through the model repository's own code (``internlm/internlm-xcomposer2-vl-7b``).

The baseline of paper Sec. VI-A3. It follows the repository's chat path:

- the user turn is ``<ImageHere>QUESTION``; ``model.encode_img(PATH)`` gives the image
  embeddings and ``model.interleav_wrap_chat(tokenizer, query, image, history, meta_instruction)``
  the input embeddings of the whole conversation (``[UNUSED_TOKEN_146]system ...``, the
  user turn, then ``[UNUSED_TOKEN_146]assistant\\n``) with its image mask;
- soft-scoring appends the embeddings of the answer prefix ``This image is`` (no BOS)
  with a zero image mask and reads the logits at the last position (Eq. 2);
- answers: ``model.chat(tokenizer, query, image=PATH, history=[], do_sample=False)``.

The meta instruction is the one ``chat`` uses by default. On CUDA the calls run
under autocast as the repository's examples do. Needs ``trust_remote_code=true``;
runs normally in a worker of ``harness env create internlm-xcomposer2-vl``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from . import remote_code

IMAGE_HERE = "<ImageHere>"
META_INSTRUCTION = (
    "You are an AI assistant whose name is InternLM-XComposer (浦语·灵笔).\n"
    "- InternLM-XComposer (浦语·灵笔) is a multi-modality conversational language model that is developed by "
    "Shanghai AI Laboratory (上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
    "- InternLM-XComposer (浦语·灵笔) can understand and communicate fluently in the language chosen by the user "
    "such as English and 中文.\n"
    "- InternLM-XComposer (浦语·灵笔) is capable of comprehending and articulating responses effectively based on "
    "the provided image."
)


class XComposer2Backend(remote_code.RemoteCodeBackend):
    """InternLM-XComposer2-VL: embedding-level soft-scoring and ``model.chat`` answers."""

    names = "internlm-xcomposer2-vl"
    auto_class = "AutoModel"

    def __init__(self, path: str, meta_instruction: str = META_INSTRUCTION, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.meta_instruction = meta_instruction
        self.model.tokenizer = self.tokenizer  # the repository's examples attach it; some methods read it

    def info(self) -> dict[str, Any]:
        """Adds the meta instruction."""
        return {**super().info(), "meta_instruction": self.meta_instruction}

    def _autocast(self) -> Any:
        if str(self.device).startswith("cuda"):
            return self.torch.autocast("cuda")
        return contextlib.nullcontext()

    def _embed_tokens(self, ids: Any) -> Any:
        inner: Any = getattr(self.model, "model", self.model)
        return inner.tok_embeddings(ids)

    def score(self, sources: Sequence[Any]) -> list[float]:
        """P(fake) per image (Eq. 2); images whose conversations have equal length share a forward pass."""
        torch = self.torch
        prefix_ids = self.tokenizer(self.answer_prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
        rows: list[tuple[Any, Any]] = []
        with remote_code.image_paths(sources) as paths, torch.inference_mode(), self._autocast():
            prefix = self._embed_tokens(prefix_ids.to(self.device))
            for path in paths:
                image = self.model.encode_img(path)
                inputs, im_mask = self.model.interleav_wrap_chat(
                    self.tokenizer, IMAGE_HERE + self.question, image, [], self.meta_instruction
                )
                embeds = torch.cat([inputs["inputs_embeds"], prefix.to(inputs["inputs_embeds"].dtype)], dim=1)
                mask = torch.cat(
                    [im_mask.bool(), torch.zeros(1, prefix.shape[1], dtype=torch.bool, device=im_mask.device)], dim=1
                )
                rows.append((embeds, mask))
            logits: list[Any] = []
            for group in _equal_length_runs(rows):
                embeds = torch.cat([e for e, _ in group]).to(self.device)
                mask = torch.cat([m for _, m in group]).to(self.device)
                logits.extend(self.model(inputs_embeds=embeds, im_mask=mask).logits[:, -1])
        return self.score_logits(logits)

    def generate(
        self,
        sources: Sequence[Any],
        prompts: Sequence[str],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        do_sample: bool = False,
    ) -> list[str]:
        """Answers through the repository's ``chat``, greedy unless ``do_sample``."""
        answers = []
        sampling = {"temperature": float(temperature), "top_p": float(top_p)} if do_sample else {}
        with remote_code.image_paths(sources) as paths, self.torch.inference_mode(), self._autocast():
            for path, prompt in zip(paths, prompts):
                response, _ = self.model.chat(
                    self.tokenizer,
                    query=IMAGE_HERE + prompt,
                    image=path,
                    history=[],
                    do_sample=bool(do_sample),
                    max_new_tokens=int(max_new_tokens),
                    meta_instruction=self.meta_instruction,
                    **sampling,
                )
                answers.append(str(response).strip())
        return answers


def _equal_length_runs(rows: list[tuple[Any, Any]]) -> list[list[tuple[Any, Any]]]:
    """Consecutive rows with the same sequence length, in order (one forward pass each)."""
    runs: list[list[tuple[Any, Any]]] = []
    for row in rows:
        if runs and runs[-1][0][0].shape[1] == row[0].shape[1]:
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs
