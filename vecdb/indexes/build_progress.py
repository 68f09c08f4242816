"""Progress of an index build, reported to whoever asked for it (``vecdb build``'s progress bar).

FAISS has no progress callback, so an index that can report adds its rows in chunks and calls the
listener after each: ``callback(rows_done, rows_total)``, starting with ``(0, total)``. Only while a
listener is set (``with reporting(callback): coll.build_index(...)``, on the thread that builds); with
none, the rows go to the engine in one call, exactly as without this module.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

import numpy as np

Callback = Callable[[int, int], None]

MIN_CHUNK = 4096  # rows per engine call: large enough for the engine's threads to stay busy
STEPS = 100       # at most this many reports per build

_listener: contextvars.ContextVar[Callback | None] = contextvars.ContextVar("vecdb_build_progress", default=None)


@contextlib.contextmanager
def reporting(callback: Callback) -> Iterator[None]:
    """Index builds inside the block report their progress to ``callback(rows_done, rows_total)``."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)


def add_in_chunks(add: Callable[[np.ndarray], None], vectors: np.ndarray) -> None:
    """``add(vectors)``: in one call without a listener; in chunks, reporting after each, with one."""
    callback = _listener.get()
    if callback is None:
        add(vectors)
        return
    n = int(vectors.shape[0])
    chunk = max(MIN_CHUNK, -(-n // STEPS))
    callback(0, n)
    for start in range(0, n, chunk):
        add(vectors[start:start + chunk])
        callback(min(start + chunk, n), n)
