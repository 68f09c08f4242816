"""Sharded collections: one collection spread over N ordinary ones (shards), searched with the same API.

>>> import vecdb.distributed as vd
>>> vd.build("papers.parquet", "papers.sharded", shards=4, id_column="id", metric="cosine", ray=False)
>>> coll = vd.open("papers.sharded", ray=False)          # shards in this process, one thread each
>>> res = coll.search(q, k=10, where="year >= 2025", plan="exact")

A sharded collection is a directory: ``sharded.json`` (``manifest.py``: the shards, the routing, each
shard's row count and column statistics) beside one sub-directory per shard, each an ordinary collection
(every storage guarantee holds per shard). Rows go to shards by a hash of their id (default) or by a
partition column (``routing.py``). A search skips the shards whose statistics prove that no row passes
its filter (``stats.py``), runs each other shard's own planner for k, and merges (``collection.py``).

Ray is optional (extra ``ray``: ``pip install 'vecdb[ray]'``) and imported only by the Ray paths:
``ray=True`` uses one actor per shard (``ray_backend.py``) and Ray Data / Ray tasks to build
(``ray_build.py``); ``ray=False`` runs everything in this process (``local.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .build import BuildReport, build
from .collection import ShardedCollection
from .errors import RayNotInstalledError, ShardedBuildError, ShardUnavailableError
from .manifest import read as read_manifest
from .results import ShardedPlan, ShardedSearchResult
from .routing import Sharding

__all__ = ["BuildReport", "RayNotInstalledError", "ShardUnavailableError", "ShardedBuildError",
           "ShardedCollection", "ShardedPlan", "ShardedSearchResult", "Sharding", "build", "open",
           "ray_available"]


def ray_available() -> bool:
    """Whether Ray can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def require_ray() -> None:
    if not ray_available():
        raise RayNotInstalledError()


def open(path: str | Path, *, ray: bool | str = True, retries: int = 2, timeout_s: float = 120.0,  # noqa: A001
         actor_options: dict[str, Any] | None = None) -> ShardedCollection:
    """Open a sharded collection. ``ray``: ``True`` (one Ray actor per shard, on the connected Ray or a
    local one), a cluster address, or ``False`` (local mode: shards in this process, one thread each).
    Ray mode only: ``retries`` (reads re-sent to a restarted actor), ``timeout_s`` (per call),
    ``actor_options`` (``ray.remote`` options: ``num_cpus``, ``max_restarts``, ``max_concurrency``...)."""
    root = Path(path)
    manifest = read_manifest(root)
    names = [s.name for s in manifest.shards]
    if ray is False or ray is None:
        from .local import LocalBackend

        return ShardedCollection(root, manifest, LocalBackend(root, names))
    require_ray()
    from .ray_backend import RayBackend

    backend = RayBackend(root.resolve(), names, address=ray, retries=retries, timeout_s=timeout_s,
                         actor_options=actor_options)
    return ShardedCollection(root, manifest, backend)
