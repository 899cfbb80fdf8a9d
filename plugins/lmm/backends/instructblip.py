"""InstructBLIP (Vicuna-7B) backend through transformers' ``InstructBlipForConditionalGeneration``.

The baseline of paper Sec. VI-A3 (``Salesforce/instructblip-vicuna-7b``). Upstream
(LAVIS ``blip2_vicuna_instruct``) feeds the instruction as plain text, with no
chat roles, to both the Q-Former and the LLM; the processor does the same and
prepends the query-token placeholders itself. So the chat turn is just
``{prompt}`` and the soft-scoring text is ``What is the authenticity of this
image? This image is``. Images are resized, not padded (BLIP's processor).
"""

from __future__ import annotations

from . import hf_vlm


class InstructBlipBackend(hf_vlm.HfVlmBackend):
    """Loads an InstructBLIP checkpoint folder and serves ``score`` and ``generate``."""

    family = "instructblip"
    model_class = "InstructBlipForConditionalGeneration"
    default_chat = "{prompt}"
    fixed_image_tokens = True
