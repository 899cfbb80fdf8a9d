"""The response cache under concurrent processes (ranks under torchrun open one new file together)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

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


def test_rank_files_are_written_apart_and_merged_by_rank_0(tmp_path):
    """Under torchrun no two processes write one SQLite file (network filesystems break its locks): each rank
    writes its own, reads the shared one read-only, and rank 0 merges."""
    from harness.cache import merge_rank_files, rank_file

    shared = tmp_path / ".cache" / "responses.sqlite"
    before = ResponseCache(shared)
    before.put_many([("old", {"score": 0.1})])
    before.close()
    ranks = [ResponseCache(shared, rank=r) for r in range(2)]
    ranks[0].put_many([("a", {"score": 0.2}), ("old", {"score": 0.9})])
    ranks[1].put_many([("b", {"score": 0.3})])
    assert ranks[1].get_many(["old", "a", "b"]) == {"old": {"score": 0.1}, "b": {"score": 0.3}}
    assert ranks[0].get_many(["old"]) == {"old": {"score": 0.9}}, "a rank's own answer wins"
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ranks[1]._db.execute("INSERT INTO shared.responses VALUES ('x', '{}', 0, NULL)")
    assert rank_file(shared, 1).is_file()
    assert merge_rank_files(shared, 2) == 3
    assert ranks[1].get_many(["a"]) == {"a": {"score": 0.2}}, "after the merge every rank sees every answer"
    for cache in ranks:
        cache.close()
    merge_rank_files(shared, 2, remove=True)
    assert not rank_file(shared, 0).exists() and not rank_file(shared, 1).exists()
    merged = ResponseCache(shared)
    assert merged.get_many(["old", "a", "b"]) == {"old": {"score": 0.9}, "a": {"score": 0.2}, "b": {"score": 0.3}}


@pytest.mark.parametrize(
    "sample_id, prompt",
    [
        ("plain.png", None),
        ('quo"te\\back/slash\n\tctl\x01.png', 'Is this "real"?\nAnswer: é 🙂'),
        ("caf\udce9.png", "x"),  # a non-UTF-8 name kept as a surrogate escape
        ("ünïcödé/日本.jpg", ""),
    ],
)
def test_request_keys_are_the_canonical_json_hash_they_always_were(sample_id, prompt):
    """The key is built from its parts for speed (issue #31); it must stay byte-for-byte the hash of the canonical
    JSON, or every cache written before would be paid for again."""
    from harness.cache import SCHEMA_VERSION
    from harness.fingerprint import hash_obj
    from harness.records import GenerationParams, Request, Sample

    for kind, generation in (("score", None), ("generate", GenerationParams(max_new_tokens=7, temperature=0.5))):
        request = Request(Sample(id=sample_id, image="x.png", label=1), kind=kind, prompt=prompt, generation=generation)
        expected = hash_obj({"schema": SCHEMA_VERSION, "model": "m" * 64, "task": "t\u00e9", "sample_id": sample_id,
                             "sample": "s" * 64, "request": request.fingerprint()})  # fmt: skip
        assert ResponseCache.request_key("m" * 64, "t\u00e9", request, "s" * 64) == expected


def test_a_payload_that_is_not_one_object_is_left_out_and_counted(tmp_path):
    """Issue #31: cached payloads are parsed in one go; one that passes its checksum but is not a JSON object (a
    hand-edited row) is left out and counted as damaged, the others still read."""
    from harness.cache import payload_checksum

    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put_many([("a", {"score": 0.1}), ("b", {"score": 0.2}), ("c", {"score": 0.3})])
    cache._db.execute(
        "UPDATE responses SET payload = ?, checksum = ? WHERE key = 'b'", ("[1]", payload_checksum("[1]"))
    )
    cache._db.commit()
    assert cache.get_many(["a", "b", "c"]) == {"a": {"score": 0.1}, "c": {"score": 0.3}}
    assert cache.damaged == 1
    cache.close()


def test_a_task_stats_each_file_once_for_its_header_and_its_hash(tmp_path, monkeypatch):
    """Issue #31: the content-hash memo takes the stat the listing's header memo made in the same task (one
    ``stat`` per file, not two); a stat from an earlier task never stands in (forgotten at each listing)."""
    import os

    from PIL import Image

    import harness.file_memo as file_memo
    from harness.tasks.common import header_metadata

    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (2, 2), (i, 0, 0)).save(path)
        paths.append(str(path))
    file_memo.forget_recent_stats()
    header_metadata(paths)
    stats = []
    real = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: stats.append(str(p)) or real(p, *a, **k))
    cache = ResponseCache(tmp_path / "c.sqlite")
    from harness.records import Sample

    hashes = cache.sample_hashes([Sample(id=str(i), image=p, label=0) for i, p in enumerate(paths)])
    assert not set(stats) & set(paths), "the listing's stats were used"
    file_memo.forget_recent_stats()
    again = cache.sample_hashes([Sample(id=str(i), image=p, label=0) for i, p in enumerate(paths)])
    assert again == hashes and set(paths) <= set(stats), "without a listing of this task, each file is stat'ed"
    cache.close()
