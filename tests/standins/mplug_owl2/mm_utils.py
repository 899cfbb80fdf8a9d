"""Upstream ``mplug_owl2.mm_utils`` behaviour: square padding with a truncated fill, the three aspect modes,
and the image-token splice."""

from __future__ import annotations

import torch
from PIL import Image

from .constants import DEFAULT_IMAGE_TOKEN, IMAGE_TOKEN_INDEX


def expand2square(image, background):
    """Centre ``image`` on a square canvas of ``background``."""
    width, height = image.size
    side = max(width, height)
    if width == height:
        return image
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def process_images(images, image_processor, model_cfg=None):
    """``pad``: square with int(mean * 255); ``resize`` (also without a config): stretched square; else plain."""
    mode = getattr(model_cfg, "image_aspect_ratio", None) if model_cfg is not None else "resize"
    if mode == "pad":
        fill = tuple(int(m * 255) for m in image_processor.image_mean)
        images = [expand2square(i, fill) for i in images]
    elif mode == "resize":
        images = [i.resize((max(i.size), max(i.size))) for i in images]
    else:
        return image_processor(images, return_tensors="pt")["pixel_values"]
    return torch.stack([image_processor.preprocess(i, return_tensors="pt")["pixel_values"][0] for i in images])


def tokenizer_image_token(prompt, tokenizer, image_token_index=IMAGE_TOKEN_INDEX, return_tensors=None):
    """Token ids of ``prompt`` with ``image_token_index`` where ``<|image|>`` stood."""
    ids: list[int] = []
    for number, chunk in enumerate(prompt.split(DEFAULT_IMAGE_TOKEN)):
        if number:
            ids.append(image_token_index)
        if chunk:
            ids.extend(tokenizer(chunk).input_ids)
    return torch.tensor(ids, dtype=torch.long) if return_tensors == "pt" else ids


def get_model_name_from_path(model_path):
    """The folder's last component."""
    return model_path.strip("/").split("/")[-1]
