"""A memo of what was read from files, keyed by (path, size, modification time): read once, not at every run.

Listing a benchmark reads every image's header (format, size, JPEG quality); on a rerun over unchanged files
that is work already done. :func:`memoised` stats each file (cheap), looks the unchanged ones up in one SQLite
query per 500 paths, computes only the rest and stores them in one transaction. The memo lives in the harness
cache (``HARNESS_CACHE_DIR/file-memo.sqlite``), one table per kind of value. It is an optimisation only: where
the cache folder cannot be written, or the memo file is damaged, values are computed as if it were empty.

The process keeps its connection to the memo open between calls (a folder benchmark lists each generator's
folder with a call of its own: opening the file in WAL mode and closing it again cost ~1 ms a call, a tenth of a
cached rerun's listing at 1,000 files); it is opened again when ``HARNESS_CACHE_DIR`` points elsewhere or the
process forked, and closed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CHUNK = 500
#: (size, mtime_ns) of the files :func:`memoised` stat'ed most recently in this process, so that the content-hash
#: memo of the same run reads them instead of a second ``stat`` per file (bounded: cleared past _RECENT_MAX)
_recent: dict[str, tuple[int, int]] = {}
_RECENT_MAX = 2_000_000
#: the memo connection this process keeps: (process id, file, connection, kinds whose table exists), or None
_kept: tuple[int, str, sqlite3.Connection, set[str]] | None = None
_lock = threading.Lock()


def recent_identity(path: str) -> tuple[int, int] | None:
    """The (size, mtime_ns) :func:`memoised` saw for ``path`` since :func:`forget_recent_stats`, or ``None``."""
    return _recent.get(path)


def forget_recent_stats() -> None:
    """Forget the stats seen so far: the runner calls it before each task lists its samples, so a stat stands in
    only within the listing and hashing of one task, never across runs of a long-lived process."""
    _recent.clear()


def memo_path() -> Path:
    """``HARNESS_CACHE_DIR/file-memo.sqlite``."""
    from harness.paths import cache_dir

    return cache_dir() / "file-memo.sqlite"


def memoised(kind: str, paths: list[str], compute: Callable[[str], tuple[Any, bool]]) -> dict[str, Any]:
    """``{path: value}``: the memo's value where the file's size and modification time are those it was computed
    for, else ``compute(path)`` -> ``(value, keep)`` (``keep=False``: not stored, e.g. an unreadable file)."""
    stats = _stat_all(paths)
    with _lock:
        db = _open(kind)
        known = _known(db, kind, paths, stats) if db is not None else {}
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
    if db is not None and fresh:
        with _lock:
            try:
                db.executemany(f"INSERT OR REPLACE INTO {kind} VALUES (?,?,?,?)", fresh)
                db.commit()
            except sqlite3.Error:
                _forget_connection()
    return found


def _stat_all(paths: list[str]) -> dict[str, tuple[int, int] | None]:
    """(size, mtime_ns) of each path (``None``: cannot be stat'ed), remembered for :func:`recent_identity`."""
    stats: dict[str, tuple[int, int] | None] = {}
    if len(_recent) + len(paths) > _RECENT_MAX:
        _recent.clear()
    for path in paths:
        try:
            stat = os.stat(path)
            stats[path] = _recent[path] = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            stats[path] = None
            _recent.pop(path, None)
    return stats


def _known(
    db: sqlite3.Connection, kind: str, paths: list[str], stats: dict[str, tuple[int, int] | None]
) -> dict[str, Any]:
    """The memo's values for the paths whose size and modification time are those they were computed for: one
    query per 500 paths, one JSON parse for every hit (a call per value costs more than the parsing itself);
    ``{}`` when the memo cannot be read."""
    try:
        candidates = [p for p in paths if stats[p] is not None and _storable(p)]
        hits: list[tuple[str, str]] = []
        for start in range(0, len(candidates), _CHUNK):
            chunk = candidates[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for path, size, mtime, value in db.execute(
                f"SELECT path, size, mtime_ns, value FROM {kind} WHERE path IN ({marks})", chunk
            ):
                if stats[path] == (size, mtime):
                    hits.append((path, value))
        values = json.loads("[" + ",".join(value for _, value in hits) + "]")
        if len(values) != len(hits):
            raise ValueError("memo values do not parse one by one")
        return {path: value for (path, _), value in zip(hits, values, strict=True)}
    except (sqlite3.Error, ValueError):
        return {}


def _storable(path: str) -> bool:
    """Whether SQLite can hold the path (a non-UTF-8 file name, kept as surrogate escapes, cannot)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _open(kind: str) -> sqlite3.Connection | None:
    """The memo database with the ``kind`` table (the connection this process keeps, opened on first use), or
    ``None`` when it cannot be used. The caller holds ``_lock``."""
    global _kept
    if not kind.isidentifier():
        raise ValueError(f"memo kind {kind!r} must be an identifier")
    try:
        path = str(memo_path())
        if _kept is None or _kept[0] != os.getpid() or _kept[1] != path:
            _forget_connection()
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=30, check_same_thread=False)  # used under _lock only
            db.execute("PRAGMA journal_mode=WAL")
            _kept = (os.getpid(), path, db, set())
        db, kinds = _kept[2], _kept[3]
        if kind not in kinds:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {kind} (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, value TEXT)"
            )
            kinds.add(kind)
        return db
    except (OSError, sqlite3.Error):
        _forget_connection()
        return None


def _forget_connection() -> None:
    """Close the kept connection (one inherited from a parent process is dropped unclosed, as SQLite asks)."""
    global _kept
    kept, _kept = _kept, None
    if kept is not None and kept[0] == os.getpid():
        with contextlib.suppress(sqlite3.Error):
            kept[2].close()


atexit.register(_forget_connection)
