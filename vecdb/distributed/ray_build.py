"""The Ray half of ``build``: Ray Data reads and routes the input in parallel, then one Ray task per
shard builds it (retried ``retries`` times; a task that still fails fails the build, which removes
everything it wrote). Imported only when Ray is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import pyarrow as pa
import ray

from .build import build_shard, failed, stage_batch
from .ray_backend import connect


def route(files: Sequence[Path], table: pa.Table | None, spec: dict[str, Any], batch_size: int, total: int,
          report: Callable[[str, int, int], None], address: Any) -> int:
    """Read (Parquet in parallel with Ray Data), route and stage every row; returns the rows staged."""
    connect(address)
    import ray.data

    if table is not None:
        ds = ray.data.from_arrow(table)
    elif all(_parquet(f) for f in files):
        ds = ray.data.read_parquet([str(f) for f in files])
    else:  # Arrow IPC files: read here, routed in parallel
        import pyarrow.ipc as ipc

        tables = []
        for f in files:
            with pa.memory_map(str(f)) as source:
                tables.append(ipc.open_file(source).read_all())
        ds = ray.data.from_arrow(tables)
    staged = ds.map_batches(stage_batch, batch_format="pyarrow", batch_size=batch_size, fn_kwargs=spec)
    routed = 0
    for batch in staged.iter_batches(batch_format="pyarrow", batch_size=None):
        routed += int(pa.compute.sum(batch.column("rows")).as_py() or 0)
        report("route", routed, total)
    return routed


def _parquet(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def build_shards(names: Sequence[str], staging: Path, out: Path, job: dict[str, Any], retries: int,
                 report: Callable[[str, int, int], None]) -> list[dict[str, Any]]:
    """One Ray task per shard; results in shard order. The first task that fails after its retries fails
    the build, once the other tasks have ended: the caller then removes what they wrote, which a task
    still running would write into again. They are not cancelled: ``ray.cancel`` racing a task that is
    just ending aborts the driver process (Ray 2.60's RAY_CHECK "Tried to complete task that was not
    pending", ray-project/ray#54798 for the same race on retries; it ended a test run here when both
    shards of a build failed at once), so a failed build takes as long as its slowest shard."""
    task = ray.remote(build_shard).options(max_retries=retries, retry_exceptions=True)
    refs = {task.remote(str(staging / name), str(out / name), name, **job): name for name in names}
    results: dict[str, dict[str, Any]] = {}
    waiting = list(refs)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        name = refs[ready[0]]
        try:
            results[name] = ray.get(ready[0])
        except Exception as exc:
            if waiting:
                ray.wait(waiting, num_returns=len(waiting))  # ended, failed or not: nothing writes after this
            cause = getattr(exc, "cause", None) or exc
            raise failed(name, cause) from exc
        report("shards", len(results), len(names))
    return [results[name] for name in names]
