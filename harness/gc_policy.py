"""Cyclic garbage collection at a run's pace (issue #31).

A run makes millions of small objects that live until it ends (samples, requests, work items, records, their
dicts), few of them in reference cycles. CPython's default thresholds (a young collection every 700 net
allocations, a full one after 10 x 10 young ones) rescan that growing heap again and again: at 64,000 samples it
was 0.6 s of a 3.3 s cached rerun of the noop model (``benchmarks/runner_throughput.py``). During a run the
young generation is collected every 50,000 allocations and the old ones rarely; cycles are still collected,
and the thresholds the process had are restored after.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: (young, middle, old) thresholds while a run builds its records
RUN_THRESHOLDS = (50_000, 20, 100)


@contextlib.contextmanager
def fewer_collections(thresholds: tuple[int, int, int] = RUN_THRESHOLDS) -> Iterator[None]:
    """Raise the collector's thresholds to at least ``thresholds`` for the block, then restore the old ones."""
    old = gc.get_threshold()
    gc.set_threshold(*(max(a, b) for a, b in zip(old, thresholds, strict=True)))
    try:
        yield
    finally:
        gc.set_threshold(*old)
