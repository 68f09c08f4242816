"""Local mode: every shard opened in this process, one thread each (the kernels release the GIL).

The backend protocol both modes implement: ``run(calls, allow_partial)`` takes ``(shard, method, args)``
triples, runs them concurrently and returns ``{shard: result}`` and ``{shard: ShardUnavailableError}``
(the second empty unless ``allow_partial``; otherwise the first unavailable shard raises). Errors a shard
raises on purpose (a bad filter, an unknown id) propagate unchanged.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from .errors import ShardUnavailableError
from .shard import ShardServer

Call = tuple[int, str, tuple]


class LocalBackend:
    mode = "local"

    def __init__(self, root: Path, names: Sequence[str]):
        self.names = list(names)
        self.servers: list[ShardServer] = []
        for name in self.names:
            try:
                self.servers.append(ShardServer(root / name, name))
            except OSError as exc:
                raise ShardUnavailableError(name, f"cannot open {str(root / name)!r}: {exc}") from exc
        self._pool = ThreadPoolExecutor(max(len(self.names), 1), thread_name_prefix="vecdb-shard")

    def run(self, calls: Sequence[Call], allow_partial: bool = False) -> tuple[dict[int, Any], dict[int, Exception]]:
        if len(calls) == 1:  # no thread hop for one shard
            shard, method, args = calls[0]
            return {shard: getattr(self.servers[shard], method)(*args)}, {}
        futures = [(shard, self._pool.submit(getattr(self.servers[shard], method), *args))
                   for shard, method, args in calls]
        return {shard: future.result() for shard, future in futures}, {}

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for server in self.servers:
            server.close()
