"""IDEFICS-Instruct backend through transformers' ``IdeficsForVisionText2Text``.

The baseline of paper Sec. VI-A3 (IDEFICS-Instruct, ``HuggingFaceM4/idefics-9b-instruct``).
Its model card's dialogue format is ``User: {question}`` + image +
``<end_of_utterance>`` + ``\\nAssistant:``; here that is the chat turn
``User: {prompt}<image><end_of_utterance>\\nAssistant:``, split at ``<image>``
into the processor's interleaved list (the image passed as a PIL object, never
as a URL string the processor would fetch). The processor is told not to add
its own ``<end_of_utterance>`` between text pieces, since the turn already has
it. Generation stops at ``<end_of_utterance>`` and never emits image tokens, as
on the model card.
"""

from __future__ import annotations

from typing import Any

from . import hf_vlm

END_OF_UTTERANCE = "<end_of_utterance>"


class IdeficsBackend(hf_vlm.HfVlmBackend):
    """Loads an IDEFICS checkpoint folder and serves ``score`` and ``generate``."""

    family = "idefics"
    model_class = "IdeficsForVisionText2Text"
    default_chat = f"User: {{prompt}}{hf_vlm.IMAGE_MARK}{END_OF_UTTERANCE}\nAssistant:"

    def encode(self, images: list[Any], texts: list[str]) -> dict[str, Any]:
        """Interleaved prompts: the text before ``<image>``, the image, the text after."""
        prompts = []
        for image, text in zip(images, texts):
            before, mark, after = text.partition(hf_vlm.IMAGE_MARK)
            if not mark:
                raise ValueError(f"IDEFICS chat template must contain {hf_vlm.IMAGE_MARK}: {text!r}")
            prompts.append([piece for piece in (before, image, after) if not isinstance(piece, str) or piece])
        return dict(self.processor(text=prompts, return_tensors="pt", padding=True, add_end_of_utterance_token=False))

    def generate_kwargs(self) -> dict[str, Any]:
        """Stop at ``<end_of_utterance>`` (or EOS); never generate image tokens."""
        tok = self.tokenizer
        stop = [
            i
            for i in (tok.convert_tokens_to_ids(END_OF_UTTERANCE), tok.eos_token_id)
            if i is not None and i != tok.unk_token_id
        ]
        banned = [
            [i]
            for i in tok.convert_tokens_to_ids(["<image>", "<fake_token_around_image>"])
            if i is not None and i != tok.unk_token_id
        ]
        return {"eos_token_id": stop, **({"bad_words_ids": banned} if banned else {})}
