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
