"""Token soft-scoring (FakeScope, paper Sec. V-B, Eq. 2): P(fake) from the logits of anchor tokens.

Prompt (default): ``USER: <image> What is the authenticity of this image? ASSISTANT: This image is``;
the logits ``z`` at the next position are read for the case variants of the
anchors "fake" and "real", and

    p_fake = exp(sum_{v in fake variants} z_v) / (exp(sum_{fake} z_v) + exp(sum_{real} z_v))   (Eq. 2)

Anchor resolution: each variant word is tokenised *in context*, i.e. as the
continuation of the prompt (``prompt + " " + word`` minus the prompt's tokens),
so leading-space forms (SentencePiece "▁fake") come out right. A variant is
**skipped, never scored**, when it maps to the unknown token or, by default,
when it is not a single token (``multi_token="skip"``); ``multi_token="first"``
uses its first sub-token instead (the convention of Q-Align's scorer). Duplicate
ids within a class count once. The resolved ids and the skipped variants are
recorded, and unequal variant counts between the classes are reported, since
Eq. 2's sums then weigh the classes differently.

``method="eq2"`` is the paper's formula. ``method="logsumexp"`` (ours, not the
paper's) sums *probabilities* of the variants within a class instead of
logits: ``p_fake = softmax([logsumexp(z_fake), logsumexp(z_real)])[0]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_FAKE = ("fake", "Fake", "FAKE")
DEFAULT_REAL = ("real", "Real", "REAL")
QUESTION = "What is the authenticity of this image?"
ANSWER_PREFIX = "This image is"
DEFAULT_PROMPT = f"USER: <image> {QUESTION} ASSISTANT: {ANSWER_PREFIX}"
METHODS = ("eq2", "logsumexp")


@dataclass
class AnchorSet:
    """Token ids of one class's variants, with what was skipped and why."""

    word: str
    ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded in results)."""
        return {"word": self.word, "ids": self.ids, "tokens": self.tokens, "skipped": self.skipped}


def token_text(token: Any) -> str:
    """A token as readable text: byte-level tokenizers (tiktoken-based Qwen) return ``bytes``."""
    if isinstance(token, (bytes, bytearray)):
        return bytes(token).decode("utf-8", errors="replace")
    return str(token)


def resolve_anchor(
    tokenizer: Any, prompt: str, variants: Sequence[str], multi_token: str = "skip", word: str = ""
) -> AnchorSet:
    """Resolve variant words to next-token ids after ``prompt`` (see the module docstring)."""
    if multi_token not in ("skip", "first"):
        raise ValueError(f"multi_token must be 'skip' or 'first', not {multi_token!r}")
    anchor = AnchorSet(word=word or (variants[0] if variants else ""))
    base = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    for variant in variants:
        full = tokenizer(prompt + " " + variant, add_special_tokens=False)["input_ids"]
        if full[: len(base)] != base:
            # the variant merged with the prompt's last token: tokenise it alone with a leading space
            continuation = tokenizer(" " + variant, add_special_tokens=False)["input_ids"]
        else:
            continuation = full[len(base) :]
        if not continuation:
            anchor.skipped[variant] = "tokenizes to nothing"
            continue
        if unk is not None and unk in continuation:
            anchor.skipped[variant] = "unknown to the tokenizer"
            continue
        if len(continuation) > 1 and multi_token == "skip":
            anchor.skipped[variant] = f"{len(continuation)} tokens (multi_token=skip)"
            continue
        token_id = int(continuation[0])
        if token_id in anchor.ids:
            anchor.skipped[variant] = "same token as another variant"
            continue
        anchor.ids.append(token_id)
        anchor.tokens.append(token_text(tokenizer.convert_ids_to_tokens(token_id)))
    return anchor


def resolve_anchors(
    tokenizer: Any,
    prompt: str,
    fake: Sequence[str] = DEFAULT_FAKE,
    real: Sequence[str] = DEFAULT_REAL,
    multi_token: str = "skip",
) -> tuple[AnchorSet, AnchorSet]:
    """Both classes' anchors; raises ``ValueError`` if a class has no scorable variant."""
    fake_set = resolve_anchor(tokenizer, prompt, fake, multi_token, "fake")
    real_set = resolve_anchor(tokenizer, prompt, real, multi_token, "real")
    for anchor in (fake_set, real_set):
        if not anchor.ids:
            raise ValueError(f"no scorable variant for anchor {anchor.word!r}: {anchor.skipped}")
    overlap = set(fake_set.ids) & set(real_set.ids)
    if overlap:
        raise ValueError(f"fake and real anchors share token ids {sorted(overlap)}")
    return fake_set, real_set


def anchors_record(fake: AnchorSet, real: AnchorSet) -> dict[str, Any]:
    """The resolved anchors as results record them, with whether the classes have equal variant counts."""
    return {
        "anchors": {"fake": fake.as_dict(), "real": real.as_dict()},
        "anchor_counts_equal": len(fake.ids) == len(real.ids),
    }


def soft_scores(logits: Any, fake_ids: Sequence[int], real_ids: Sequence[int], method: str = "eq2") -> list[float]:
    """P(fake) per row of ``logits`` (a torch tensor or array of shape [batch, vocab])."""
    import torch

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    z = torch.as_tensor(logits).float()
    z_fake, z_real = z[:, list(fake_ids)], z[:, list(real_ids)]
    if method == "eq2":
        pair = torch.stack([z_fake.sum(dim=1), z_real.sum(dim=1)], dim=1)
    else:
        pair = torch.stack([torch.logsumexp(z_fake, dim=1), torch.logsumexp(z_real, dim=1)], dim=1)
    return torch.softmax(pair, dim=1)[:, 0].tolist()
