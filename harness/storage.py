"""Files that are never torn: atomic and exclusive writes, leftovers cleaned up, storage faults in one line.

Every file the harness publishes (results, samples, boards, exports) is written to a temporary file in the
same folder, flushed to disk (``fsync``) and then renamed over its final name, so a reader sees either the old
file or the new one, never a part. The temporary name carries the writer's process id
(``.<name>.<pid>.<random>.tmp``): a write that fails or is interrupted removes its own temporary file, and
one left by a process that was killed (``kill -9``) is removed by the next write into that folder
(:func:`remove_stale_temps`). :func:`publish_exclusive` creates a name that must not exist yet (a run's
timestamped files) with a hard link, which fails instead of replacing.

A storage fault (disk full, read-only folder, permission denied) becomes a :class:`StorageError` whose one
line names the file, says what happened and what to do; ``harness`` prints it without a traceback.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Union

#: what a write takes: the content, or its pieces in order (written as they come, never joined in memory)
Content = Union[str, bytes, Iterable[str], Iterable[bytes]]  # noqa: UP007 - a runtime alias (3.10 has no | here)

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


class StorageError(RuntimeError):
    """A file could not be read or written: the message names the file, the fault and what to do."""


def describe_os_error(exc: BaseException, path: str | Path, action: str) -> StorageError:
    """One line for an ``OSError`` (or SQLite's disk errors) met while ``action`` (``"write"``, ``"read"``)
    ``path``: the file, what happened, and the usual remedy."""
    code = getattr(exc, "errno", None)
    text = str(getattr(exc, "strerror", None) or exc)
    lowered = text.lower()
    if code == errno.ENOSPC or "disk is full" in lowered or "no space" in lowered:
        hint = "the disk is full: free space or choose another --output-dir"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in lowered or "read-only" in lowered:
        hint = "the folder is read-only or not yours: choose a writable --output-dir"
    elif code == errno.ENOENT:
        hint = "the file or its folder is missing"
    else:
        hint = "check the disk and the path"
    return StorageError(f"cannot {action} {path}: {text} ({hint})")


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _write_temp(path: Path, data: Content) -> Path:
    """``data`` in a new temporary file beside ``path``, flushed to disk; removed again if anything fails."""
    tmp = _temp_name(path)
    try:
        with open(tmp, "xb") as handle:
            if isinstance(data, (str, bytes)):
                handle.write(_encode(data))
            else:
                for piece in data:
                    handle.write(_encode(piece))
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:  # an interrupt mid-write must not leave the temporary file behind either
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise describe_os_error(exc, path, "write") from exc
        raise
    return tmp


def _encode(data: str | bytes) -> bytes:
    """Bytes as they are, text as UTF-8."""
    # a stray undecodable byte of a file name (kept as a surrogate escape) never aborts a write
    return data if isinstance(data, bytes) else data.encode("utf-8", "backslashreplace")


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: Content) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file, ``fsync``, rename); nothing is left behind
    when it fails or is interrupted."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise describe_os_error(exc, path, "write") from exc
        raise
    _sync_folder(path.parent)


def atomic_copy(source: str | Path, path: str | Path) -> None:
    """Replace ``path`` with a copy of the finished file ``source`` atomically. A copy, not a hard link: a user
    who edits the copy in place must not change the original."""
    source = Path(source)
    with open(source, "rb") as handle:
        atomic_write(path, iter(lambda: handle.read(1 << 20), b""))


def publish_exclusive(path: str | Path, data: Content) -> None:
    """Create ``path`` holding ``data``, complete or not at all; ``FileExistsError`` when the name is taken
    (a hard link from a finished temporary file: creation and content in one atomic step)."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        raise describe_os_error(exc, path, "write") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _sync_folder(path.parent)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files in ``folder`` whose writer is no longer running; returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match and not _alive(int(match.group("pid"))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed
