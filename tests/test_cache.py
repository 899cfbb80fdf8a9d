"""The response cache under concurrent processes (ranks under torchrun open one new file together)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from harness.cache import ResponseCache


def _open_and_write(args: tuple) -> str:
    path, worker, barrier = args
    barrier.wait()  # every process opens the new file at the same moment
    cache = ResponseCache(path)
    cache.put_many([(f"k{worker}", {"score": worker / 10})])
    cache.close()
    return "ok"


def test_many_processes_create_one_new_cache_at_once(tmp_path: Path):
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(8) as pool:
        barrier = manager.Barrier(8)
        for round_ in range(20):
            path = str(tmp_path / f"round{round_}" / "responses.sqlite")
            assert pool.map(_open_and_write, [(path, w, barrier) for w in range(8)]) == ["ok"] * 8
            cache = ResponseCache(path)
            assert len(cache.get_many(f"k{w}" for w in range(8))) == 8
            cache.close()
