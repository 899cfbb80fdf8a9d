"""A memo of what was read from files, keyed by (path, size, modification time): read once, not at every run.

Listing a benchmark reads every image's header (format, size, JPEG quality); on a rerun over unchanged files
that is work already done. :func:`memoised` stats each file (cheap), looks the unchanged ones up in one SQLite
query per 500 paths, computes only the rest and stores them in one transaction. The memo lives in the harness
cache (``HARNESS_CACHE_DIR/file-memo.sqlite``), one table per kind of value. It is an optimisation only: where
the cache folder cannot be written, or the memo file is damaged, values are computed as if it were empty.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CHUNK = 500


def memo_path() -> Path:
    """``HARNESS_CACHE_DIR/file-memo.sqlite``."""
    from harness.paths import cache_dir

    return cache_dir() / "file-memo.sqlite"


def memoised(kind: str, paths: list[str], compute: Callable[[str], tuple[Any, bool]]) -> dict[str, Any]:
    """``{path: value}``: the memo's value where the file's size and modification time are those it was computed
    for, else ``compute(path)`` -> ``(value, keep)`` (``keep=False``: not stored, e.g. an unreadable file)."""
    stats: dict[str, tuple[int, int] | None] = {}
    for path in paths:
        try:
            stat = os.stat(path)
            stats[path] = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            stats[path] = None
    db = _open(kind)
    known: dict[str, Any] = {}
    if db is not None:
        try:
            candidates = [p for p in paths if stats[p] is not None and _storable(p)]
            for start in range(0, len(candidates), _CHUNK):
                chunk = candidates[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for path, size, mtime, value in db.execute(
                    f"SELECT path, size, mtime_ns, value FROM {kind} WHERE path IN ({marks})", chunk
                ):
                    if stats[path] == (size, mtime):
                        known[path] = json.loads(value)
        except (sqlite3.Error, ValueError):
            known = {}
    found: dict[str, Any] = {}
    fresh: list[tuple[str, int, int, str]] = []
    for path in paths:
        if path in known:
            found[path] = known[path]
            continue
        value, keep = compute(path)
        found[path] = value
        identity = stats[path]
        if keep and identity is not None and _storable(path):
            fresh.append((path, identity[0], identity[1], json.dumps(value)))
    if db is not None:
        try:
            if fresh:
                db.executemany(f"INSERT OR REPLACE INTO {kind} VALUES (?,?,?,?)", fresh)
                db.commit()
        except sqlite3.Error:
            pass
        finally:
            db.close()
    return found


def _storable(path: str) -> bool:
    """Whether SQLite can hold the path (a non-UTF-8 file name, kept as surrogate escapes, cannot)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _open(kind: str) -> sqlite3.Connection | None:
    """The memo database with the ``kind`` table, or ``None`` when it cannot be used."""
    if not kind.isidentifier():
        raise ValueError(f"memo kind {kind!r} must be an identifier")
    try:
        path = memo_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {kind} (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, value TEXT)"
        )
        return db
    except (OSError, sqlite3.Error):
        return None
