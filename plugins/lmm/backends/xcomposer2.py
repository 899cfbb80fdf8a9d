"""InternLM-XComposer2-VL backend through the model repository's own code (``internlm/internlm-xcomposer2-vl-7b``).

The baseline of paper Sec. VI-A3. It follows the repository's chat path:

- the user turn is ``<ImageHere>QUESTION``; ``model.encode_img(PATH)`` gives the image
  embeddings and ``model.interleav_wrap_chat(tokenizer, query, image, history, meta_instruction)``
  the input embeddings of the whole conversation (``[UNUSED_TOKEN_146]system ...``, the
  user turn, then ``[UNUSED_TOKEN_146]assistant\\n``) with its image mask;
- soft-scoring writes the answer prefix ``This image is`` on after ``assistant\n``, tokenized with the text
  before it as the repository tokenizes a text part (:meth:`XComposer2Backend.scored_turn`), with a zero image
  mask, and reads the logits at the last position (Eq. 2);
- answers: what ``model.chat(tokenizer, query, image=PATH, history=[], do_sample=False)`` gives, with ``chat``'s own
  ``repetition_penalty=1.005`` by default (what the repository's users get, and what the paper's baseline
  numbers come from); ``repetition_penalty=1.0`` gives plain greedy decoding. Recorded in the results.
  ``chat``'s steps run on a batch: ``encode_img`` and ``interleav_wrap_chat`` per image, one ``generate`` per
  conversation length with ``chat``'s end tokens (``eos`` and ``[UNUSED_TOKEN_145]``), each row cut at its
  first end token (the batch pads finished rows), decoded and cut at ``[UNUSED_TOKEN_145]`` as ``chat`` does
  (:mod:`.batching`; the image is a fixed number of embeddings, so one question gives one length).

The meta instruction is the one ``chat`` uses by default. On CUDA the calls run
under autocast as the repository's examples do. Needs ``trust_remote_code=true``;
runs normally in a worker of ``harness env create internlm-xcomposer2-vl``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from . import batching, remote_code

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


#: what the repository's chat prompt puts between the user's text and the assistant's answer
TURN_TO_ASSISTANT = "[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n"
#: ``chat()``'s default in the repository: its greedy answers are penalised for repeating, 1.005
UPSTREAM_REPETITION_PENALTY = 1.005


class XComposer2Backend(remote_code.RemoteCodeBackend):
    """InternLM-XComposer2-VL: embedding-level soft-scoring and ``model.chat`` answers."""

    names = "internlm-xcomposer2-vl"
    auto_class = "AutoModel"

    def __init__(
        self,
        path: str,
        meta_instruction: str = META_INSTRUCTION,
        repetition_penalty: float = UPSTREAM_REPETITION_PENALTY,
        **kwargs: Any,
    ) -> None:
        super().__init__(path, **kwargs)
        self.meta_instruction = meta_instruction
        self.repetition_penalty = float(repetition_penalty)
        self.model.tokenizer = self.tokenizer  # the repository's examples attach it; some methods read it

    def info(self) -> dict[str, Any]:
        """Adds the meta instruction and the decoding's repetition penalty."""
        return {
            **super().info(),
            "meta_instruction": self.meta_instruction,
            "repetition_penalty": self.repetition_penalty,
            "scored_turn": self.tokenizer.convert_ids_to_tokens(self.scored_turn()[0].tolist()),
        }

    def _autocast(self) -> Any:
        """Autocast, as the repository's examples run ``chat`` (``torch.cuda.amp.autocast()``): its
        ``encode_img`` hands float32 image features to the projector, which fails against half-precision weights
        without it. On the CPU: autocast at the weights' dtype when they are not float32."""
        if str(self.device).startswith("cuda"):
            return self.torch.autocast("cuda")
        dtype = next(iter(self.model.parameters())).dtype if hasattr(self.model, "parameters") else None
        if dtype in (self.torch.bfloat16, self.torch.float16):
            return self.torch.autocast("cpu", dtype=dtype)
        return contextlib.nullcontext()

    def _embed_tokens(self, ids: Any) -> Any:
        inner: Any = getattr(self.model, "model", self.model)
        return inner.tok_embeddings(ids)

    def scored_turn(self) -> Any:
        """The token ids of the text after the image with the answer prefix written on, tokenized as one string the
        way the repository tokenizes each text part (``tokenizer(part)``, BOS added): the question,
        ``[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n`` and ``This image is``. The prefix is tokenized in
        its place, as the model writes it there: tokenized alone it would get SentencePiece's dummy-prefix space
        (``▁This`` where the turn holds ``This``), a sequence the model never sees at the start of its answer;
        the conformance run against the repository's code found that difference (0.014 in Eq. 2)."""
        return self.tokenizer(self.question + TURN_TO_ASSISTANT + self.answer_prefix, return_tensors="pt")["input_ids"]

    def _conversation(self, path: str, turn: Any, tail_length: int) -> tuple[Any, Any]:
        """Input embeddings and image mask of the chat up to the answer prefix: the repository's
        ``interleav_wrap_chat`` builds the conversation; its last text part (after the image) is replaced by
        ``turn``, the embeddings of :meth:`scored_turn`, after checking that it is that part (``tail_length``
        tokens: the question and turn end tokenized alone)."""
        torch = self.torch
        image = self.model.encode_img(path)
        inputs, im_mask = self.model.interleav_wrap_chat(
            self.tokenizer, IMAGE_HERE + self.question, image, [], self.meta_instruction
        )
        embeds, im_mask = inputs["inputs_embeds"], im_mask.bool()
        image_end = int(im_mask[0].nonzero().max()) + 1
        if embeds.shape[1] - image_end != tail_length:
            raise ValueError(
                f"{self.names}: the conversation after the image has {embeds.shape[1] - image_end} tokens, the "
                f"question and turn end tokenized alone {tail_length}: the repository's chat format is not the one "
                "this backend knows"
            )
        turn = turn.to(embeds.dtype)
        mask = torch.zeros(1, turn.shape[1], dtype=torch.bool, device=im_mask.device)
        return torch.cat([embeds[:, :image_end], turn], dim=1), torch.cat([im_mask[:, :image_end], mask], dim=1)

    def score(self, sources: Sequence[Any]) -> list[float]:
        """P(fake) per image (Eq. 2); images whose conversations have equal length share a forward pass."""
        torch = self.torch
        tail_length = len(self.tokenizer(self.question + TURN_TO_ASSISTANT)["input_ids"])
        with remote_code.image_paths(sources) as paths, torch.inference_mode(), self._autocast():
            turn = self._embed_tokens(self.scored_turn().to(self.device))  # the same for every image: once a call
            rows = [self._conversation(path, turn, tail_length) for path in paths]
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
        """Answers as the repository's ``chat`` gives them (greedy unless ``do_sample``), the conversations of equal
        length in one ``generate`` call (see the module)."""
        torch = self.torch
        sampling = {"temperature": float(temperature), "top_p": float(top_p)} if do_sample else {}
        tokenizer: Any = self.tokenizer
        ends = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(["[UNUSED_TOKEN_145]"])[0]]  # as chat()
        with remote_code.image_paths(sources) as paths, torch.inference_mode(), self._autocast():
            rows = [
                self.model.interleav_wrap_chat(self.tokenizer, IMAGE_HERE + prompt, self.model.encode_img(path), [],
                                               self.meta_instruction)
                for path, prompt in zip(paths, prompts)
            ]  # fmt: skip
            groups = batching.equal_length_groups([inputs["inputs_embeds"].shape[1] for inputs, _ in rows])
            answers = []
            for group in groups:
                outputs = self.model.generate(
                    inputs_embeds=torch.cat([rows[i][0]["inputs_embeds"] for i in group]).to(self.device),
                    im_mask=torch.cat([rows[i][1] for i in group]).to(self.device),
                    max_new_tokens=int(max_new_tokens),
                    do_sample=bool(do_sample),
                    eos_token_id=ends,
                    repetition_penalty=self.repetition_penalty,
                    **sampling,
                )
                answers.append([self._answer(row, ends) for row in outputs.cpu().tolist()])
        return batching.rows_in_order(groups, answers)

    def _answer(self, tokens: list[int], ends: list[int]) -> str:
        """One row as ``chat`` decodes its output: special tokens skipped, cut at the end of the assistant's turn."""
        text = self.tokenizer.decode(batching.through_first_end(tokens, ends), skip_special_tokens=True)
        return str(text).split("[UNUSED_TOKEN_145]")[0].strip()


def _equal_length_runs(rows: list[tuple[Any, Any]]) -> list[list[tuple[Any, Any]]]:
    """Consecutive rows with the same sequence length, in order (one forward pass each)."""
    runs: list[list[tuple[Any, Any]]] = []
    for row in rows:
        if runs and runs[-1][0][0].shape[1] == row[0].shape[1]:
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs
