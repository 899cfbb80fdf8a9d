"""The transformers-native LMM backends against a plain transformers computation written here from the model
cards and the paper (no harness code on the reference side): the prompt text spelled out, the model's own
processor and forward pass, Eq. 2 written out (softmax over the summed fake / real anchor logits), greedy
``generate`` with the model card's stopping rules. Tiny random checkpoints, non-square photographs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from tiny_models import tiny_idefics, tiny_instructblip, tiny_llava

from harness.plugins.lmm.backends import idefics, instructblip, llava

QUESTION = "What is the authenticity of this image?"
ASK = "Is this a real image, yes or no?"


def photos() -> list[Image.Image]:
    photo = skimage.data.chelsea()
    return [Image.fromarray(photo[:120, :200]), Image.fromarray(photo[100:260, 150:230])]


def llava_pad(image: Image.Image, mean) -> Image.Image:
    """LLaVA-1.5's ``expand2square`` with ``tuple(int(x * 255) for x in image_processor.image_mean)``."""
    side = max(image.size)
    canvas = Image.new(image.mode, (side, side), tuple(int(x * 255) for x in mean))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def eq2(logits: torch.Tensor, tokenizer) -> float:
    """Paper Eq. 2 over the anchor variants the word-level test tokenizer knows (FAKE / REAL it does not)."""
    ids = {w: tokenizer.convert_tokens_to_ids(w) for w in ("fake", "Fake", "real", "Real")}
    pair = torch.stack([logits[[ids["fake"], ids["Fake"]]].sum(), logits[[ids["real"], ids["Real"]]].sum()])
    return float(torch.softmax(pair.float(), dim=0)[0])


def plain_llava(path: Path, images):
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    processor, model = LlavaProcessor.from_pretrained(path), LlavaForConditionalGeneration.from_pretrained(path)
    padded = [llava_pad(i, processor.image_processor.image_mean) for i in images]
    encode = lambda image, text: processor(images=[image], text=[text], return_tensors="pt")  # noqa: E731
    return (
        processor,
        model,
        padded,
        encode,
        f"USER: <image> {QUESTION} ASSISTANT: This image is",
        f"USER: <image> {ASK} ASSISTANT:",
        {},
    )


def plain_instructblip(path: Path, images):
    from transformers import InstructBlipForConditionalGeneration, InstructBlipProcessor

    processor = InstructBlipProcessor.from_pretrained(path)
    model = InstructBlipForConditionalGeneration.from_pretrained(path)
    encode = lambda image, text: processor(images=[image], text=[text], return_tensors="pt")  # noqa: E731
    return processor, model, images, encode, f"{QUESTION} This image is", ASK, {}


def plain_idefics(path: Path, images):
    from transformers import IdeficsForVisionText2Text, IdeficsProcessor

    processor, model = IdeficsProcessor.from_pretrained(path), IdeficsForVisionText2Text.from_pretrained(path)

    def encode(image, text):
        before, after = text.split("<image>")
        return processor(text=[[before, image, after]], return_tensors="pt", add_end_of_utterance_token=False)

    tok = processor.tokenizer  # the model card's stopping rule and banned tokens
    card = {
        "eos_token_id": tok("<end_of_utterance>", add_special_tokens=False).input_ids,
        "bad_words_ids": tok(["<image>", "<fake_token_around_image>"], add_special_tokens=False).input_ids,
    }
    return (
        processor,
        model,
        images,
        encode,
        f"User: {QUESTION}<image><end_of_utterance>\nAssistant: This image is",
        f"User: {ASK}<image><end_of_utterance>\nAssistant:",
        card,
    )


@pytest.mark.parametrize(
    "builder, backend_class, plain",
    [
        (tiny_llava, llava.LlavaBackend, plain_llava),
        (tiny_instructblip, instructblip.InstructBlipBackend, plain_instructblip),
        (tiny_idefics, idefics.IdeficsBackend, plain_idefics),
    ],
    ids=["llava", "instructblip", "idefics"],
)
def test_backend_equals_a_plain_transformers_computation(builder, backend_class, plain, tmp_path):
    path = builder(tmp_path / "m")
    images = photos()
    processor, model, inputs_images, encode, score_text, chat_text, stop = plain(path, images)
    model.eval()
    expected, answers = [], []
    with torch.no_grad():
        for image in inputs_images:
            expected.append(eq2(model(**encode(image, score_text)).logits[0, -1], processor.tokenizer))
            inputs = encode(image, chat_text)
            output = model.generate(
                **inputs, do_sample=False, max_new_tokens=6, pad_token_id=processor.tokenizer.pad_token_id, **stop
            )
            answers.append(
                processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
            )
    backend = backend_class(str(path), device="cpu")
    np.testing.assert_allclose(backend.score(images), expected, atol=1e-5)
    assert len({round(e, 6) for e in expected}) == len(expected)  # the image reaches the logits
    assert [backend.generate([i], [ASK], max_new_tokens=6)[0] for i in images] == answers
