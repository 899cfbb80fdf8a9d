"""Batches of equal-length prompts for the backends whose upstream code generates without padding.

mPLUG-Owl2, Qwen-VL-Chat and InternLM-XComposer2-VL take a batch of prompts in their model's ``generate`` only
when the rows need no padding (their multimodal merging pads on the right, or not at all), while an answer must be
what the repository's own one-image ``chat`` gives. Prompts whose token sequences have the same length need no
padding: every sample of a task that asks one question (FakeClass, FakeClue) falls in one group, so one
``generate`` call answers the runner's whole batch; a task whose questions differ (FakeQA) gets one call per
distinct length. Greedy tokens equal the one-image path's (tested on the stand-ins; checked against each
repository's code by the conformance scripts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def equal_length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """The positions of ``lengths`` grouped by value, each group in order, groups in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for position, length in enumerate(lengths):
        groups.setdefault(int(length), []).append(position)
    return list(groups.values())


def rows_in_order(groups: list[list[int]], answers: list[list[Any]]) -> list[Any]:
    """Per-group answers put back in the positions the groups came from."""
    out: list[Any] = [None] * sum(len(group) for group in groups)
    for group, got in zip(groups, answers):
        if len(got) != len(group):
            raise RuntimeError(f"a batch of {len(group)} prompts got {len(got)} answers")
        for position, answer in zip(group, got):
            out[position] = answer
    return out


def through_first_end(tokens: Sequence[int], end_ids: Sequence[int]) -> list[int]:
    """The generated ``tokens`` of one row up to and including its first end token: what ``generate`` returns for
    that prompt alone, where the batch goes on and fills the finished row with the pad token."""
    ends = {int(end) for end in end_ids if end is not None}
    tokens = [int(token) for token in tokens]
    for position, token in enumerate(tokens):
        if token in ends:
            return tokens[: position + 1]
    return tokens
