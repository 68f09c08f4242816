"""Ray mode: one long-lived actor per shard keeps its shard open (``ShardServer``); the driver sends each
shard its batch of queries in one call and merges. Imported only when Ray is used.

Faults: actors are created with ``max_restarts``; a restarted actor reopens its shard in ``__init__``. A
read (search, explain, get, count) whose actor died is sent again up to ``retries`` times (reads are
idempotent), then fails with ``ShardUnavailableError`` naming the shard. A write is never re-sent (it may
have committed before the actor died): it fails with ``ShardUnavailableError`` saying so.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Sequence

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from .errors import ShardUnavailableError
from .shard import ShardServer

try:  # newer Ray: a transient loss of the actor (it is being restarted)
    from ray.exceptions import ActorUnavailableError
except ImportError:  # pragma: no cover
    ActorUnavailableError = RayActorError

READS = frozenset({"ping", "search", "explain", "count", "rows", "holds", "get_held", "stats"})
_DEAD = (RayActorError, ActorUnavailableError)
Call = tuple[int, str, tuple]


def connect(address: Any, *, num_cpus: int | None = None) -> None:
    """Use the Ray this process is connected to; else ``address`` (a string: a cluster, ``ray.init(address)``)
    or, for ``True``, a local Ray started on the loopback interface only, without dashboard, whose workers
    import the same vecdb as this process."""
    if ray.is_initialized():
        return
    if isinstance(address, str):
        ray.init(address=address)
        return
    import vecdb

    package_root = str(Path(vecdb.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=num_cpus or min(2, os.cpu_count() or 1), include_dashboard=False,
             _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}})


class RayBackend:
    mode = "ray"

    def __init__(self, root: Path, names: Sequence[str], *, address: Any = True, retries: int = 2,
                 timeout_s: float = 120.0, actor_options: dict[str, Any] | None = None):
        connect(address)
        self.names = list(names)
        self.retries = retries
        self.timeout_s = timeout_s
        options = {"num_cpus": 0, "max_restarts": 3, "max_task_retries": 0, "max_concurrency": 2,
                   **(actor_options or {})}
        tag = uuid.uuid4().hex[:8]
        remote = ray.remote(ShardServer)
        self.actors = [remote.options(name=f"vecdb-{tag}-{name}", **options).remote(str(root / name), name)
                       for name in self.names]
        self.run([(i, "ping", ()) for i in range(len(self.names))])  # every shard opened, or a typed error

    def run(self, calls: Sequence[Call], allow_partial: bool = False) -> tuple[dict[int, Any], dict[int, Exception]]:
        pending = {shard: (method, args, getattr(self.actors[shard], method).remote(*args), 0)
                   for shard, method, args in calls}
        done: dict[int, Any] = {}
        failed: dict[int, Exception] = {}
        while pending:
            shard, (method, args, ref, tries) = next(iter(pending.items()))
            del pending[shard]
            try:
                done[shard] = ray.get(ref, timeout=self.timeout_s)
            except RayTaskError as exc:  # the shard raised: the caller sees the original error
                cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                raise cause from None
            except _DEAD as exc:
                if method in READS and tries < self.retries:
                    pending[shard] = (method, args, getattr(self.actors[shard], method).remote(*args), tries + 1)
                    continue
                what = "" if method in READS else f"; the {method} may or may not have been applied"
                error = ShardUnavailableError(self.names[shard], f"its actor died ({type(exc).__name__}){what}")
                if not allow_partial or method not in READS:
                    raise error from exc
                failed[shard] = error
            except GetTimeoutError as exc:
                ray.cancel(ref)
                error = ShardUnavailableError(self.names[shard], f"no answer within {self.timeout_s} s")
                if not allow_partial or method not in READS:
                    raise error from exc
                failed[shard] = error
        return done, failed

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
