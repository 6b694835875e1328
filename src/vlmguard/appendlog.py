"""Append-only JSONL logs and their run folders: tail repair, one writer per folder, write failures.

Shared by the evaluation results (:mod:`vlmguard.eval.store`) and the synthesis records
(:mod:`vlmguard.synth.store`):

- :func:`read_log` reads every line of a log with a caller's parser. A last line that is torn (no
  newline: a process killed mid-write) or garbage (it does not parse, newline or not) is set aside
  into ``<log>.torn`` and cut off when ``repair`` is set, so the next append starts on a clean line
  and a resumed run simply does that item again. A bad line anywhere else is corruption: a
  :class:`LogCorrupt` naming the file and line.
- :class:`FolderLock` is an exclusive ``flock`` on ``<folder>/.lock``; the holder writes who it is
  (process id, host, start time, command) into the file, and a second writer is refused with one
  line naming the holder. The lock is released when the process exits, however it exits.
- :class:`StorageError` is what a failed write of a log becomes (a full disk, a read-only file
  system, an I/O error): one line naming the file and the cause; :func:`is_storage_error` tells
  such a failure apart from others where it surfaces in a dependency (e.g. a cache database).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vlmguard.errors import InputError, VLMGuardError

log = logging.getLogger(__name__)

T = TypeVar("T")

_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})


class LogCorrupt(InputError):
    """A log holds an unreadable line before its last line: not something a crash leaves behind."""


class FolderLocked(VLMGuardError):
    """Another process holds the folder's lock."""


class StorageError(VLMGuardError):
    """Writing to disk failed (full disk, read-only file system, I/O error); the run must stop."""


def is_storage_error(exc: BaseException) -> bool:
    """True for a failure of the disk itself, wherever it surfaces (``OSError`` or ``sqlite3``)."""
    if isinstance(exc, StorageError):
        return True
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return True
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        text = str(exc).lower()
        return "disk" in text or "readonly" in text or "read-only" in text
    return False


def storage_error(path: Path, exc: BaseException) -> StorageError:
    """The one-line :class:`StorageError` for a failed write to ``path``."""
    reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
    return StorageError(f"cannot write {path}: {reason}; the run stopped (finished work is kept)")


def read_log(path: Path, parse: Callable[[bytes], T | None], *, repair: bool = False) -> list[T]:
    """Every parsed line of the log at ``path`` (empty lines skipped; see the module docstring).

    ``parse`` returns ``None`` for a line it cannot read. With ``repair`` a torn or garbage last
    line is moved to ``<path>.torn`` (appended, synced) and cut off the log.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    tail = data[good_end:]
    lines = data[:good_end].split(b"\n")[:-1]
    out: list[T] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        item = parse(line)
        if item is None:
            if number == len(lines) and not tail:  # a garbage last line: set aside like a torn one
                good_end -= len(line) + 1
                tail = line + b"\n"
                break
            raise LogCorrupt(
                f"{path}:{number} is not a valid line; the file is corrupt (not a torn last line)"
            )
        out.append(item)
    if tail:
        log.warning("%s: setting aside an unreadable last line (%d bytes)", path, len(tail))
        if repair:
            with open(f"{path}.torn", "ab") as handle:
                handle.write(tail if tail.endswith(b"\n") else tail + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            with open(path, "r+b") as handle:
                handle.truncate(good_end)
                handle.flush()
                os.fsync(handle.fileno())
    return out


class FolderLock:
    """An exclusive ``flock`` on ``<folder>/.lock``: one writer per run folder."""

    def __init__(self, folder: Path, *, what: str = "run") -> None:
        self.path = Path(folder) / ".lock"
        self.what = what
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds (or last held) the lock, as written by the holder."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return "another process"
        if not isinstance(info, dict):
            return "another process"
        parts = [f"pid {info.get('pid', '?')}"]
        if info.get("host"):
            parts.append(f"on {info['host']}")
        if info.get("started"):
            parts.append(f"since {info['started']}")
        if info.get("command"):
            parts.append(f"({info['command']})")
        return " ".join(parts)

    def acquire(self) -> None:
        """Take the lock, or raise :class:`FolderLocked` naming the holder."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLocked(
                f"{self.path.parent} is in use by another {self.what}: {self.holder()}"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300],
        }
        self._fd = fd
        try:  # who holds the lock is information only: a full disk must not lose the lock itself
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(info).encode("utf-8"))
        except OSError:
            pass

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
