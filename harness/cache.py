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

    def __init__(self, path: str | Path | None, rehash: bool = False):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        #: read every image file again instead of trusting the (path, size, mtime) memo of its hash
        self.rehash = rehash
        if self.path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        self._setup_schema()

    def _setup_schema(self, deadline_s: float = 60.0) -> None:
        """WAL mode and tables. Processes opening a *new* file together (ranks under torchrun) can get
        "database is locked" here without SQLite's busy handler being called, so retry with backoff."""
        statements = ([] if self.path is None else ["PRAGMA journal_mode=WAL"]) + [
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
                for key, payload in self._db.execute(
                    f"SELECT key, payload FROM responses WHERE key IN ({marks})", chunk
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
