"""The writer lock: one writer at a time per collection, across handles and processes.

An OS file lock (``flock`` through ``filelock``) on ``writer.lock`` in the collection directory: the
kernel releases it when its holder's process dies, so there are no stale locks to clean up. The holder
writes its pid to ``writer.pid`` so a writer that gives up can name it. Readers never take the lock.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import filelock

from ..errors import WriterLockedError
from .files import storage_error

LOCK = "writer.lock"
PID = "writer.pid"


class WriterLock:
    """The lock of one collection directory, held by one handle (reentrant within it)."""

    def __init__(self, root: Path, timeout: float):
        self.root, self.timeout = root, timeout
        self._lock = filelock.FileLock(root / LOCK, timeout=timeout, thread_local=False)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise WriterLockedError(
                f"{str(self.root)!r} is locked by another writer ({holder(self.root)}); gave up after "
                f"{self.timeout:g} s (pass lock_timeout= to vecdb.open to wait longer)") from None
        try:
            if self._lock.lock_counter == 1:
                try:
                    (self.root / PID).write_text(str(os.getpid()))
                except OSError as exc:  # a full disk or a file size limit: the write cannot happen anyway
                    raise storage_error(exc, self.root / PID) from exc
            yield
        finally:
            self._lock.release()


def holder(root: Path) -> str:
    """Who holds the lock, as far as ``writer.pid`` tells."""
    try:
        return f"pid {int((root / PID).read_text())}"
    except (OSError, ValueError):
        return "pid unknown"
