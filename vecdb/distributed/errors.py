"""The errors of sharded collections (``vecdb.distributed``); each subclasses ``vecdb.errors.VecdbError``
and the built-in that fits, as in ``vecdb/errors.py``."""

from __future__ import annotations

from vecdb.errors import VecdbError

RAY_HINT = "pip install 'vecdb[ray]'"


class ShardUnavailableError(VecdbError, RuntimeError):
    """A shard that did not answer: its actor died and was not restarted in time (or could not reopen its
    collection). Names the shard; ``search(..., allow_partial=True)`` answers from the other shards instead
    and flags the result (``partial``, ``missing_shards``)."""

    def __init__(self, shard: str, reason: str):
        self.shard = shard
        self.reason = reason
        super().__init__(f"shard {shard!r} is unavailable: {reason}")


class RayNotInstalledError(VecdbError, ImportError):
    """``ray=True`` (or a cluster address) without Ray installed."""

    def __init__(self) -> None:
        super().__init__(f"this needs Ray, which is not installed: {RAY_HINT} (or pass ray=False to run the "
                         f"shards in this process)")


class ShardedBuildError(VecdbError, RuntimeError):
    """A sharded build that failed; nothing was left at the target path."""
