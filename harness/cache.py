"""The response cache: one SQLite file that makes runs resumable and reruns free.

A model's answer to a request is stored under a key built from the model
fingerprint (name, args, checkpoint hash), the task fingerprint (version and
config), the request (kind, prompt, generation parameters) and the sample's
content hash. Answers are committed batch by batch in WAL mode, so a run killed
with ``kill -9`` loses at most the batch in flight, and rerunning the same
command recomputes nothing that finished. Errors are never cached: a failed
sample is retried on the next run.

File content hashes are memoised under (path, size, mtime) so that a rerun over
a large benchmark does not re-read every image.

Under ``torchrun`` every rank writes only its own file, ``responses.rank<R>.sqlite`` beside the shared one,
and reads the shared one (read-only) for answers of earlier runs: SQLite's locking, and WAL mode altogether,
do not work over the network filesystems that span nodes, so no two processes ever write one file. Rank 0
merges the rank files into the shared file at each task's end, while the other ranks wait at a barrier
(:func:`merge_rank_files`), and removes them when the run ends (as lm-eval keeps a cache file per rank).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from harness.fingerprint import hash_bytes, hash_file, hash_obj
from harness.records import Request, Sample

SCHEMA_VERSION = 1


class ResponseCache:
    """SQLite-backed store of model answers and file hashes."""

    def __init__(self, path: str | Path | None, rehash: bool = False, rank: int | None = None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        #: read every image file again instead of trusting the (path, size, mtime) memo of its hash
        self.rehash = rehash
        #: under torchrun: this rank's own file (written), the shared one attached read-only as ``shared``
        self.rank = rank
        self.shared = False
        if self.path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            own = self.path if rank is None else rank_file(self.path, rank)
            if rank is not None and not self.path.exists():
                ResponseCache(self.path).close()  # the shared file with its tables, so it can be attached
            if rank is None:
                self._db = sqlite3.connect(str(own), timeout=60, check_same_thread=False)
            else:  # URIs on, for the read-only ATTACH below
                self._db = sqlite3.connect(own.resolve().as_uri(), timeout=60, check_same_thread=False, uri=True)
        self._setup_schema(wal=rank is None)
        if rank is not None and self.path is not None:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._db.execute("ATTACH DATABASE ? AS shared", (uri,))
            self.shared = True

    def _setup_schema(self, deadline_s: float = 60.0, wal: bool = True) -> None:
        """WAL mode (one process's file: rollback journal) and tables. Processes opening a *new* file together
        can get "database is locked" here without SQLite's busy handler being called, so retry with backoff."""
        statements = ([] if self.path is None or not wal else ["PRAGMA journal_mode=WAL"]) + [
            "PRAGMA synchronous=NORMAL",
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, payload TEXT NOT NULL, created REAL NOT NULL)",
            "CREATE TABLE IF NOT EXISTS file_hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
            "sha256 TEXT)",
        ]
        deadline, delay = time.monotonic() + deadline_s, 0.01
        while True:
            try:
                for statement in statements:
                    self._db.execute(statement)
                self._db.commit()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    # -- keys --------------------------------------------------------------------------------
    def sample_hash(self, sample: Sample) -> str:
        """SHA-256 of the sample's image bytes (memoised for files). Raises ``OSError`` if unreadable."""
        if isinstance(sample.image, (bytes, bytearray)):
            return hash_bytes(bytes(sample.image))
        path = os.path.abspath(sample.image)
        stat = os.stat(path)
        key: str | bytes = path
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # a non-UTF-8 file name: its exact bytes are the key
            key = path.encode("utf-8", "surrogateescape")
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns, sha256 FROM file_hashes WHERE path=?", (key,)).fetchone()
            if row is None and self.shared:
                row = self._db.execute(
                    "SELECT size, mtime_ns, sha256 FROM shared.file_hashes WHERE path=?", (key,)
                ).fetchone()
        if row and row[0] == stat.st_size and row[1] == stat.st_mtime_ns and not self.rehash:
            return row[2]
        digest = hash_file(path)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO file_hashes VALUES (?,?,?,?)", (key, stat.st_size, stat.st_mtime_ns, digest)
            )
        return digest

    @staticmethod
    def request_key(model_fp: str, task_fp: str, request: Request, sample_hash: str) -> str:
        """The cache key of one request (a SHA-256 hex digest)."""
        return hash_obj(
            {
                "schema": SCHEMA_VERSION,
                "model": model_fp,
                "task": task_fp,
                "sample_id": request.sample.id,
                "sample": sample_hash,
                "request": request.fingerprint(),
            }
        )

    # -- storage -----------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Cached payloads for the keys that have one."""
        keys = list(keys)
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                tables = ["responses"] + (["shared.responses"] if self.shared else [])
                for table in reversed(tables):  # this rank's own answers win
                    for key, payload in self._db.execute(
                        f"SELECT key, payload FROM {table} WHERE key IN ({marks})", chunk
                    ):
                        found[key] = json.loads(payload)
        return found

    def put_many(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Store payloads in one transaction (committed before returning)."""
        now = time.time()
        rows = [(key, json.dumps(payload, sort_keys=True), now) for key, payload in items]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?)", rows)
            self._db.commit()

    def flush(self) -> None:
        """Commit pending file-hash rows."""
        with self._lock:
            self._db.commit()

    def close(self) -> None:
        """Commit and close the database."""
        with self._lock:
            self._db.commit()
            self._db.close()


def rank_file(path: Path, rank: int) -> Path:
    """The file rank ``rank`` writes beside the shared cache ``path``."""
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def merge_rank_files(path: Path, world: int, remove: bool = False) -> int:
    """Copy every rank file's rows into the shared cache ``path`` (rank 0, while the others wait); returns the
    answers copied. ``remove``: delete the rank files afterwards (at the end of the run)."""
    copied = 0
    db = sqlite3.connect(str(path), timeout=60)
    try:
        for rank in range(world):
            part = rank_file(path, rank)
            if not part.exists():
                continue
            db.execute("ATTACH DATABASE ? AS part", (str(part),))
            copied += db.execute("INSERT OR REPLACE INTO responses SELECT * FROM part.responses").rowcount
            db.execute("INSERT OR REPLACE INTO file_hashes SELECT * FROM part.file_hashes")
            db.commit()
            db.execute("DETACH DATABASE part")
    finally:
        db.close()
    if remove:
        for rank in range(world):
            rank_file(path, rank).unlink(missing_ok=True)
            for extra in ("-journal", "-wal", "-shm"):
                Path(str(rank_file(path, rank)) + extra).unlink(missing_ok=True)
    return copied
