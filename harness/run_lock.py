"""One run per response cache at a time: an advisory lock beside the cache file.

Two runs that share a response cache would both ask the model for every sample that neither has answered yet
(each reads the cache when its task starts), paying twice for each. So a run holds an exclusive ``flock`` on
``<cache>.lock`` while it runs, and writes who it is into that file; a second run on the same cache stops at
once with one line naming the holder (process, host, start time, command) and what to do instead. The lock
is the kernel's: it goes away with the process however that ends (``kill -9`` included), so a stale lock file
never blocks a later run.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.storage import describe_os_error


class RunLockedError(RuntimeError):
    """Another run holds the response cache this run would use."""


def lock_path(cache_path: Path) -> Path:
    """The lock file of a response cache."""
    return cache_path.with_name(cache_path.name + ".lock")


class RunLock:
    """``with RunLock(cache_path, command):`` the cache is this process's for the block."""

    def __init__(self, cache_path: Path, command: Sequence[str] = ()) -> None:
        self.path = lock_path(Path(cache_path))
        self.command = list(command)
        self._handle: Any = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunLockedError` naming its holder."""
        try:
            import fcntl
        except ImportError:  # no flock on this platform (Windows): runs are not guarded
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open: the lock lives with it
        except OSError as exc:
            if not os.access(self.path.parent, os.W_OK):  # a read-only cache folder: nothing can be written there
                return
            raise describe_os_error(exc, self.path, "create the run lock") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise RunLockedError(
                f"another harness run is using the response cache {self.path.with_suffix('')} ({holder}); "
                "wait for it to finish (a rerun afterwards pays nothing it paid), or give this run its own "
                "--output-dir or --use-cache PATH"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": platform.node(),
                    "started": _dt.datetime.now().isoformat(timespec="seconds"),
                    "command": self.command or sys.argv,
                }
            )
        )
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give the lock back (the file stays; it holds no lock once closed)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        command = " ".join(map(str, info.get("command") or []))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {command}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def hold_cache(cache: Any, command: Sequence[str] = ()) -> RunLock | None:
    """Hold a run's response cache (:class:`harness.cache.ResponseCache`) for the run, or ``None`` where nothing
    needs holding: no cache file, a read-only one, or a torchrun rank other than 0 (rank 0 holds it for all). The
    cache is closed when the lock cannot be had."""
    if cache.path is None or cache.read_only or (cache.rank or 0) != 0:
        return None
    lock = RunLock(cache.path, command)
    try:
        lock.acquire()
    except BaseException:
        cache.close()
        raise
    return lock
