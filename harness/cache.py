"""The response cache: one SQLite file that makes runs resumable and reruns free.

A model's answer to a request is stored under a key built from the model
fingerprint (name, args, checkpoint hash), the task fingerprint (version and
config), the request (kind, prompt, generation parameters) and the sample's
content hash. Answers are committed batch by batch in WAL mode, so a run killed
with ``kill -9`` loses at most the batch in flight, and rerunning the same
command recomputes nothing that finished. Transient errors are never cached: a
failed sample is retried on the next run. A failure that asking again would
repeat (the endpoint answered, but the answer cannot be scored) is cached as a
failure, so a rerun does not pay for it again (``--retry-failed`` asks again).

Each stored payload carries a checksum of its text: an entry damaged on disk is
not trusted (it is asked again, and counted in :attr:`ResponseCache.damaged`).
A cache file the user cannot write (``--use-cache`` on a read-only copy) is read
without being changed: answers of the run are then not kept, and the runner says
so. A file that is not a SQLite database, or a damaged one, stops the run with
one line naming it (:class:`harness.storage.StorageError`).

File content hashes are memoised under (path, size, mtime) so that a rerun over
a large benchmark does not re-read every image.

Under ``torchrun`` every rank writes only its own file, ``responses.rank<R>.sqlite`` beside the shared one,
and reads the shared one (read-only) for answers of earlier runs: SQLite's locking, and WAL mode altogether,
do not work over the network filesystems that span nodes, so no two processes ever write one file. Rank 0
merges the rank files into the shared file at each task's end, while the other ranks wait at a barrier
(:func:`merge_rank_files`), and removes them when the run ends (as lm-eval keeps a cache file per rank).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.file_memo import recent_identity
from harness.fingerprint import canonical_json, hash_bytes, hash_file, hash_obj
from harness.records import Request, Sample
from harness.storage import StorageError, describe_os_error

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
        #: the file exists but cannot be written: read it, keep nothing new (``unsaved`` counts what was lost)
        self.read_only = False
        self.unsaved = 0
        #: entries whose payload failed its checksum (not trusted: asked again)
        self.damaged = 0
        try:
            self._open(rank)
        except sqlite3.DatabaseError as exc:
            raise self._error(exc, "open") from exc
        except OSError as exc:
            raise describe_os_error(exc, self.path or ":memory:", "open the response cache") from exc

    def _open(self, rank: int | None) -> None:
        if self.path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
        elif rank is None and _read_only(self.path):
            # a copy the user cannot write: read it as it is (no WAL switch, no new tables, and no shared-memory or
            # WAL file beside it, which a read-only folder could not take anyway: the file is opened as immutable)
            self.read_only = True
            uri = self.path.resolve().as_uri() + "?mode=ro&immutable=1"
            self._db = sqlite3.connect(uri, timeout=60, check_same_thread=False, uri=True)
            self._db.execute("SELECT COUNT(*) FROM responses").fetchone()  # fails here if it is no cache at all
            self._checksums = "checksum" in self._columns("responses")
            return
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
        self._checksums = True
        if rank is not None and self.path is not None:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._db.execute("ATTACH DATABASE ? AS shared", (uri,))
            self.shared = True

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def _error(self, exc: BaseException, action: str) -> StorageError:
        """One line for a SQLite failure on this cache: the file, what happened, what to do."""
        text = str(exc)
        if "disk is full" in text or "disk I/O" in text or "readonly" in text:
            return describe_os_error(exc, self.path or ":memory:", f"{action} the response cache")
        return StorageError(
            f"response cache {self.path}: {text} (the file is not a usable cache: move it aside to start a new one, "
            "or run with --no-cache)"
        )

    def _setup_schema(self, deadline_s: float = 60.0, wal: bool = True) -> None:
        """WAL mode (one process's file: rollback journal) and tables. Processes opening a *new* file together
        can get "database is locked" here without SQLite's busy handler being called, so retry with backoff."""
        statements = ([] if self.path is None or not wal else ["PRAGMA journal_mode=WAL"]) + [
            "PRAGMA synchronous=NORMAL",
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, payload TEXT NOT NULL, created REAL NOT NULL, "
            "checksum TEXT)",
            "CREATE TABLE IF NOT EXISTS file_hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
            "sha256 TEXT)",
            "CREATE TABLE IF NOT EXISTS intervals (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS metric_values (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ]
        deadline, delay = time.monotonic() + deadline_s, 0.01
        while True:
            try:
                for statement in statements:
                    self._db.execute(statement)
                if "checksum" not in self._columns("responses"):  # a cache written before checksums: keep it
                    self._db.execute("ALTER TABLE responses ADD COLUMN checksum TEXT")
                self._db.commit()
                return
            except sqlite3.OperationalError as exc:
                if "duplicate column" in str(exc):  # another process added it first
                    continue
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    # -- keys --------------------------------------------------------------------------------
    def sample_hash(self, sample: Sample) -> str:
        """SHA-256 of the sample's image bytes (memoised for files). Raises ``OSError`` if unreadable."""
        [digest] = self.sample_hashes([sample])
        if isinstance(digest, OSError):
            raise digest
        return digest

    def sample_hashes(self, samples: list[Sample]) -> list[str | OSError]:
        """SHA-256 of each sample's image bytes, memoised for files by (path, size, mtime) unless ``rehash``: one
        ``stat`` per file and one query per 500 files for the memo (not one per file), the files whose memo does
        not hold read and stored in one transaction. An unreadable file gives its ``OSError`` in its place."""
        out: list[str | OSError | None] = [None] * len(samples)
        wanted: dict[Any, list[tuple[int, tuple[int, int]]]] = {}
        paths: dict[Any, str] = {}
        for index, sample in enumerate(samples):
            if isinstance(sample.image, (bytes, bytearray)):
                out[index] = hash_bytes(bytes(sample.image))
                continue
            image = str(sample.image)
            path = image if os.path.isabs(image) else os.path.abspath(image)
            # the listing's stat of this run when it made one (its header memo), else one now
            stat = None if self.rehash else recent_identity(path)
            if stat is None:
                try:
                    found_stat = os.stat(path)
                except OSError as exc:
                    out[index] = exc
                    continue
                stat = (found_stat.st_size, found_stat.st_mtime_ns)
            key: str | bytes = path
            try:
                path.encode("utf-8")
            except UnicodeEncodeError:  # a non-UTF-8 file name: its exact bytes are the key
                key = path.encode("utf-8", "surrogateescape")
            wanted.setdefault(key, []).append((index, stat))
            paths[key] = path
        memo: dict[Any, tuple[int, int, str]] = {}
        if not self.rehash and wanted:
            keys = list(wanted)
            tables = (["shared.file_hashes"] if self.shared else []) + ["file_hashes"]  # own rows win
            with self._lock:
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for table in tables:
                        for key, size, mtime, digest in self._db.execute(
                            f"SELECT path, size, mtime_ns, sha256 FROM {table} WHERE path IN ({marks})", chunk
                        ):
                            memo[key] = (size, mtime, digest)
        fresh = []
        for key, uses in wanted.items():
            size, mtime_ns = uses[0][1]
            row = memo.get(key)
            found: str | OSError
            if row is not None and row[0] == size and row[1] == mtime_ns:
                found = row[2]
            else:
                try:
                    found = hash_file(paths[key])
                    fresh.append((key, size, mtime_ns, found))
                except OSError as exc:
                    found = exc
            for index, _ in uses:
                out[index] = found
        if fresh and not self.read_only:
            with self._lock:
                self._db.executemany("INSERT OR REPLACE INTO file_hashes VALUES (?,?,?,?)", fresh)
        return [value if value is not None else OSError("no hash") for value in out]

    @staticmethod
    def request_key(model_fp: str, task_fp: str, request: Request, sample_hash: str) -> str:
        """The cache key of one request: the SHA-256 hex digest of the canonical JSON of ``{"schema", "model",
        "task", "sample_id", "sample", "request"}`` (:func:`harness.fingerprint.hash_obj`). Built here from its
        parts, the request's part rendered once per distinct request (most requests of a task share one): the
        same bytes, so the same keys as always, at a fraction of the cost per sample (tested equal)."""
        parts = (model_fp, task_fp, sample_hash, request.sample.id)
        if not all(isinstance(part, str) for part in parts):
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
        text = (
            f'{{"model":{_string(model_fp)},"request":{_request_json(request.kind, request.prompt, request.generation)}'
            f',"sample":{_string(sample_hash)},"sample_id":{_string(request.sample.id)},"schema":{SCHEMA_VERSION}'
            f',"task":{_string(task_fp)}}}'
        )
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()

    # -- storage -----------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Cached payloads for the keys that have one; an entry whose text fails its checksum is left out (and
        counted in :attr:`damaged`), so it is asked again instead of trusted."""
        keys = list(keys)
        found: dict[str, dict[str, Any]] = {}
        column = "checksum" if self._checksums else "NULL"
        with self._lock:
            try:
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    tables = ["responses"] + (["shared.responses"] if self.shared else [])
                    for table in reversed(tables):  # this rank's own answers win
                        intact = []
                        for key, payload, checksum in self._db.execute(
                            f"SELECT key, payload, {column} FROM {table} WHERE key IN ({marks})", chunk
                        ):
                            if checksum is not None and checksum != payload_checksum(payload):
                                self.damaged += 1
                                continue
                            intact.append((key, payload))
                        found.update(self._decoded(intact))
            except sqlite3.DatabaseError as exc:
                raise self._error(exc, "read") from exc
        return found

    def _decoded(self, rows: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """Payload texts as objects: one JSON parse for the lot (as fast as it gets in Python), else one by one,
        leaving out (and counting as damaged) a text that is not one JSON object."""
        try:
            values = json.loads("[" + ",".join(text for _, text in rows) + "]")
            if len(values) == len(rows) and all(isinstance(v, dict) for v in values):
                return {key: value for (key, _), value in zip(rows, values, strict=True)}
        except ValueError:
            pass
        out = {}
        for key, text in rows:
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if isinstance(value, dict):
                out[key] = value
            else:
                self.damaged += 1
        return out

    def put_many(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Store payloads in one transaction (committed before returning), each with its checksum."""
        now = time.time()
        texts = [(key, json.dumps(payload, sort_keys=True)) for key, payload in items]
        rows = [(key, text, now, payload_checksum(text)) for key, text in texts]
        with self._lock:
            if self.read_only or self._db is None:  # read-only, or closed while a late answer came in
                self.unsaved += len(rows)
                return
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO responses (key, payload, created, checksum) VALUES (?,?,?,?)", rows
                )
                self._db.commit()
            except sqlite3.DatabaseError as exc:
                raise self._error(exc, "write to") from exc

    @property
    def intervals(self) -> MemoTable:
        """Bootstrap intervals kept beside the answers they were computed from (see ``MetricContext.intervals``)."""
        return MemoTable(self, "intervals")

    @property
    def metric_values(self) -> MemoTable:
        """Metric values kept beside the answers they were computed from (see ``MetricContext.values``)."""
        return MemoTable(self, "metric_values")

    def flush(self) -> None:
        """Commit pending file-hash rows."""
        with self._lock:
            try:
                self._db.commit()
            except sqlite3.DatabaseError as exc:
                raise self._error(exc, "write to") from exc

    def close(self) -> None:
        """Commit and close the database (closing twice is harmless)."""
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.commit()
            except sqlite3.DatabaseError as exc:
                raise self._error(exc, "write to") from exc
            finally:
                self._db.close()
                self._db = None  # type: ignore[assignment]


class MemoTable:
    """``get(key)`` / ``put(key, value)`` of small JSON results in one of a response cache's memo tables
    (``intervals``, ``metric_values``; :mod:`harness.metric_memo`). Writes are committed with the cache's next
    commit (at the latest when it closes): a memo lost to a crash is only computed again."""

    TABLES = ("intervals", "metric_values")

    def __init__(self, cache: ResponseCache, table: str) -> None:
        if table not in self.TABLES:
            raise ValueError(f"no memo table {table!r}: one of {', '.join(self.TABLES)}")
        self.cache = cache
        self.table = table

    def get(self, key: str) -> Any:
        """The value stored under ``key`` (an interval's ``[]`` for "undefined"), or ``None``."""
        with self.cache._lock:
            if self.cache._db is None:
                return None
            try:
                row = self.cache._db.execute(f"SELECT value FROM {self.table} WHERE key=?", (key,)).fetchone()
            except sqlite3.DatabaseError:  # a read-only cache written before this table existed
                return None
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON) under ``key`` (nothing on a read-only cache)."""
        with self.cache._lock:
            if self.cache.read_only or self.cache._db is None:
                return
            try:
                self.cache._db.execute(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?)", (key, json.dumps(value)))
            except sqlite3.DatabaseError as exc:
                raise self.cache._error(exc, "write to") from exc


#: how canonical JSON writes a string (``ensure_ascii=False``): quotes, backslashes and control characters escaped
_string = json.encoder.encode_basestring


@functools.lru_cache(maxsize=4096)
def _request_json(kind: Any, prompt: str | None, generation: Any) -> str:
    """The canonical JSON of a request's fingerprint (kind, prompt, decoding), once per distinct request."""
    return canonical_json(Request(sample=_NO_SAMPLE, kind=kind, prompt=prompt, generation=generation).fingerprint())


_NO_SAMPLE = Sample(id="", image=b"", label=None)


def payload_checksum(text: str) -> str:
    """The checksum stored beside a payload's text (the first 16 hex digits of its SHA-256)."""

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _read_only(path: Path) -> bool:
    """Whether ``path`` is an existing file this process cannot write (or whose folder it cannot write)."""
    if not path.exists():
        return False
    return not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK)


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
            copied += db.execute(
                "INSERT OR REPLACE INTO responses (key, payload, created, checksum) "
                "SELECT key, payload, created, checksum FROM part.responses"
            ).rowcount
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
