"""Stable hashes: canonical JSON for configs, SHA-256 for files and directories."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


#: one encoder for every call (``json.dumps`` with options builds a new one per call: a cost per cache key)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace; non-JSON values fall back to ``str``."""
    return _CANONICAL.encode(obj)


def hash_obj(obj: Any) -> str:
    """SHA-256 hex digest of an object's canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8", "surrogateescape")).hexdigest()


def hash_bytes(data: bytes) -> str:
    """SHA-256 hex digest of bytes."""
    return hashlib.sha256(data).hexdigest()


def hash_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_path(path: str | Path) -> str:
    """Content hash of a file, or of every file below a directory (names and contents)."""
    path = Path(path)
    if path.is_file():
        return hash_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode("utf-8") + b"\0")
        digest.update(hash_file(file).encode("ascii"))
    return digest.hexdigest()


#: set by ``harness run --rehash``: checkpoint files are read again whatever their memo says
_REHASH = False


@contextmanager
def rehashing(enabled: bool = True) -> Iterator[None]:
    """Within the block, :func:`hash_path_memo` reads every file again instead of trusting its memo."""
    global _REHASH
    previous, _REHASH = _REHASH, bool(enabled) or _REHASH
    try:
        yield
    finally:
        _REHASH = previous


def hash_path_memo(path: str | Path) -> str:
    """:func:`hash_path`, with each file's hash memoised in the harness cache.

    Multi-gigabyte checkpoints are then read once, not at every run. The memo holds while the file's size,
    modification time, status-change time and inode are unchanged: a checkpoint rewritten in place with its
    size and modification time restored (``touch -r``, ``cp --preserve``) still changes its status-change time,
    which no user command can set back, so its new content is hashed. Inside :func:`rehashing` (``--rehash``)
    nothing is trusted.
    """
    import sqlite3

    from harness.paths import cache_dir

    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    memo_path = cache_dir() / "file-hashes.sqlite"
    memo_path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(memo_path), timeout=60)
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS file_memo (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
            "ctime_ns INTEGER, inode INTEGER, sha256 TEXT)"
        )
        digest = hashlib.sha256()
        file_hash = ""
        for file in files:
            stat = file.stat()
            identity = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
            row = db.execute(
                "SELECT size, mtime_ns, ctime_ns, inode, sha256 FROM file_memo WHERE path=?", (str(file),)
            ).fetchone()
            if row and tuple(row[:4]) == identity and not _REHASH:
                file_hash = row[4]
            else:
                file_hash = hash_file(file)
                db.execute("INSERT OR REPLACE INTO file_memo VALUES (?,?,?,?,?,?)", (str(file), *identity, file_hash))
                db.commit()
            if path.is_dir():
                digest.update(str(file.relative_to(path)).encode("utf-8") + b"\0")
            digest.update(file_hash.encode("ascii"))
        return digest.hexdigest() if path.is_dir() else file_hash
    finally:
        db.close()
