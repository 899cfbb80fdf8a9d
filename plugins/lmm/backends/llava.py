"""LLaVA-1.5 (Hugging Face ``LlavaForConditionalGeneration``) backend: ``fakescope-llava`` and ``llava-1.5``.

Chat turn ``USER: <image> {prompt} ASSISTANT:``, so the soft-scoring text is the
paper's ``USER: <image> What is the authenticity of this image? ASSISTANT: This
image is`` (Sec. V-B). Images are padded to a square with the processor mean,
LLaVA-1.5's ``image_aspect_ratio=pad``. Everything else: :mod:`hf_vlm`.
"""

from __future__ import annotations

from . import hf_vlm

DEFAULT_CHAT = "USER: <image> {prompt} ASSISTANT:"


class LlavaBackend(hf_vlm.HfVlmBackend):
    """Loads a LLaVA checkpoint folder and serves ``score`` and ``generate``."""

    family = "llava"
    model_class = "LlavaForConditionalGeneration"
    default_chat = DEFAULT_CHAT
    default_pad_to_square = True
    fixed_image_tokens = True
