"""Tiny random models built offline (no hub): a word-level tokenizer trained here and small configs."""

from __future__ import annotations

from pathlib import Path

CORPUS = ["USER: <image> What is the authenticity of this image? ASSISTANT: This image is fake",
          "Is this a real image , yes or no ? Score : 0 1 2 real Real fake Fake yes no .",
          "You are a helpful assistant . Evaluate whether the description completely includes"]


def word_tokenizer(corpus=CORPUS, extra_special=None):
    """A PreTrainedTokenizerFast with a word-level vocabulary trained on ``corpus``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<s>", "</s>",
                                                                             "<image>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", **(extra_special or {}))


def tiny_causal_lm(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer random LlamaForCausalLM and its tokenizer to ``path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_llava(path: Path, seed: int = 0, corpus=None) -> Path:
    """Save a random tiny LLaVA (CLIP vision 2 layers, Llama 2 layers, 224 px, patch 32) with its processor.

    Recipe of ../shared/reference/environment.md, section 5.
    """
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tokenizer = word_tokenizer(corpus or CORPUS, {"extra_special_tokens": {"image_token": "<image>"}})
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=224, patch_size=32, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-2)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    improc = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    processor = LlavaProcessor(image_processor=improc, tokenizer=tokenizer, patch_size=32,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
