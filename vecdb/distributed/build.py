"""``vecdb.distributed.build``: a sharded collection from Parquet / Arrow input.

1. **Route**: the input is read in record batches (Ray Data's parallel Parquet reader in Ray mode, pyarrow
   in this process otherwise); each batch's rows are routed to their shard (``routing.Sharding``) and
   staged as Arrow IPC files under ``<tmp>/_staging/<shard>/``. A staged file is named by a hash of its
   ids, so a retried batch rewrites the same file instead of adding a second copy.
2. **Build**: one task per shard (a Ray task with ``max_retries``, or a call in this process) reads its
   staged rows into an ordinary collection, builds its index and computes its column statistics. A task
   works in a directory of its own and renames it into place when complete, so a retry starts clean.
3. **Commit**: ``sharded.json`` is written, the staging removed, and the whole directory renamed from
   ``PATH.tmp-*`` to ``PATH``. On any failure the temporary directory is removed: nothing half-written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

import vecdb
from vecdb.errors import CollectionExistsError, InvalidParameterError, SchemaError

from . import manifest as manifests
from .errors import ShardedBuildError
from .manifest import ShardedManifest, ShardEntry
from .routing import Sharding, range_bounds
from .stats import MAX_DISTINCT, merge_stats, table_stats

log = logging.getLogger(__name__)
SUFFIXES = (".parquet", ".pq", ".arrow", ".feather", ".ipc")
ADD_ROWS = 262_144  # rows a shard task adds per commit
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What ``build`` did: rows per shard and seconds per phase (``route``: read + route + stage;
    ``shards``: the slowest shard's add + index; ``total``)."""

    path: str
    rows: int
    shard_rows: tuple[int, ...]
    seconds: dict[str, float]
    shard_seconds: tuple[dict[str, float], ...]
    mode: str


def shard_name(i: int) -> str:
    return f"shard-{i:04d}"


def build(source: Any, path: str | Path, *, shards: int, vector_column: str | None = None,
          id_column: str | None = None, metric: str = "cosine", partition: str | None = None,
          partition_kind: str | None = None, index: str | None = "hnsw", index_options: dict[str, Any] | None = None,
          ray: bool | str = True, batch_size: int = 65_536, max_distinct: int = MAX_DISTINCT, retries: int = 2,
          progress: Progress | None = None) -> BuildReport:
    """Build a sharded collection at ``path`` (which must not exist) from ``source``: a Parquet / Arrow IPC
    file, a directory of them, or a ``pyarrow.Table``, holding a vector column (``fixed_size_list<float>``
    or ``list<float>``; detected when there is one), an integer id column (default ``id``) and attributes.

    ``shards``: how many ordinary collections. ``partition``: a column routing rows by value (strings,
    booleans: hashed) or by range (numbers, dates: quantile boundaries); ``partition_kind`` (``"value"`` or
    ``"range"``) overrides the choice. Default: by a hash of the id. ``index`` / ``index_options``: what
    each shard builds (``Collection.build_index``; ``None`` for none). ``ray``: ``True`` (the connected
    Ray, or a local one), a cluster address, or ``False`` (everything in this process).
    ``progress(phase, done, total)`` is called as rows are routed and shards finish.
    """
    root = Path(path)
    if root.exists():
        raise CollectionExistsError(f"{str(root)!r} already exists; choose a new path")
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise InvalidParameterError(f"shards must be a positive integer; got {shards!r}")
    if batch_size <= 0:
        raise InvalidParameterError(f"batch_size must be a positive integer; got {batch_size}")
    use_ray = ray is not False and ray is not None
    if use_ray:
        from . import require_ray

        require_ray()
    files, table = _inputs(source)
    schema = table.schema if table is not None else _schema_of(files[0])
    vector_column = _vector_column(schema, vector_column)
    id_column = id_column or "id"
    if id_column not in schema.names or not pa.types.is_integer(schema.field(id_column).type):
        raise SchemaError(f"a sharded collection needs integer ids: no integer column {id_column!r} in "
                          f"{schema.names} (name it with id_column=)")
    attr_schema = pa.schema([f for f in schema if f.name not in (vector_column, id_column)])
    sharding = _sharding(shards, partition, partition_kind, attr_schema, files, table)
    dim = _dim(schema.field(vector_column).type, files, table, vector_column)
    report = progress or (lambda phase, done, total: log.info("%s: %d of %d", phase, done, total))

    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    staging = tmp / "_staging"
    try:
        staging.mkdir(parents=True)
        start = time.perf_counter()
        total = table.num_rows if table is not None else sum(_rows_of(f) for f in files)
        spec = dict(staging=str(staging), sharding=sharding, id_column=id_column)
        if use_ray:
            from . import ray_build

            routed = ray_build.route(files, table, spec, batch_size, total, report, ray)
        else:
            routed = 0
            for batch in _batches(files, table, batch_size):
                routed += int(stage_batch(batch, **spec).column("rows").to_numpy().sum())
                report("route", routed, total)
        route_s = time.perf_counter() - start
        job = dict(dim=dim, metric=metric, schema=attr_schema, vector_column=vector_column, id_column=id_column,
                   index=index, index_options=dict(index_options or {}), max_distinct=max_distinct,
                   full_distinct=() if partition is None else (partition,))
        names = [shard_name(i) for i in range(shards)]
        shard_start = time.perf_counter()
        if use_ray:
            results = ray_build.build_shards(names, staging, tmp, job, retries, report)
        else:
            results = []
            for name in names:
                results.append(build_shard(str(staging / name), str(tmp / name), name, **job))
                report("shards", len(results), shards)
        shard_s = time.perf_counter() - shard_start
        shutil.rmtree(staging)
        entries = tuple(ShardEntry(r["name"], r["rows"], r["stats"]) for r in results)
        manifest = ShardedManifest(1, dim, metric, sharding, entries,
                                   None if index is None else {"kind": index, "options": job["index_options"]},
                                   time.time())
        manifests.write(tmp, manifest)
        os.rename(tmp, root)
        manifests.fsync_dir(root.parent if str(root.parent) else Path("."))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if sum(r["rows"] for r in results) != routed:
        log.warning("routed %d rows but the shards hold %d", routed, sum(r["rows"] for r in results))
    return BuildReport(str(root), routed, tuple(r["rows"] for r in results),
                       {"route": route_s, "shards": shard_s, "total": time.perf_counter() - start},
                       tuple(r["seconds"] for r in results), "ray" if use_ray else "local")


# ----------------------------------------------------------------- input
def _inputs(source: Any) -> tuple[list[Path], pa.Table | None]:
    if isinstance(source, pa.Table):
        return [], source
    if isinstance(source, pa.RecordBatch):
        return [], pa.Table.from_batches([source])
    if not isinstance(source, (str, Path)):
        raise InvalidParameterError(f"source must be a Parquet / Arrow path or a pyarrow Table; got "
                                    f"{type(source).__name__}")
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise InvalidParameterError(f"directory {str(path)!r} holds no {'/'.join(SUFFIXES)} files")
        return files, None
    if not path.exists():
        raise InvalidParameterError(f"no such file or directory: {str(path)!r}")
    return [path], None


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def _schema_of(path: Path) -> pa.Schema:
    if _is_parquet(path):
        return pq.read_schema(path)
    with pa.OSFile(str(path)) as f:
        return ipc.open_file(f).schema


def _rows_of(path: Path) -> int:
    if _is_parquet(path):
        return pq.read_metadata(path).num_rows
    with pa.OSFile(str(path)) as f:
        return ipc.open_file(f).count_rows()


def _batches(files: Sequence[Path], table: pa.Table | None, batch_size: int) -> Iterator[pa.Table]:
    if table is not None:
        for batch in table.to_batches(max_chunksize=batch_size):
            yield pa.Table.from_batches([batch])
        return
    for path in files:
        if _is_parquet(path):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
                yield pa.Table.from_batches([batch])
        else:
            with pa.memory_map(str(path)) as f:
                yield ipc.open_file(f).read_all()


def _vector_column(schema: pa.Schema, requested: str | None) -> str:
    def is_vector(t: pa.DataType) -> bool:
        return (pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)) and \
            pa.types.is_floating(t.value_type)

    if requested is not None:
        if requested not in schema.names or not is_vector(schema.field(requested).type):
            raise SchemaError(f"no vector column {requested!r} (fixed_size_list<float> or list<float>) in "
                              f"{schema.names}")
        return requested
    found = [f.name for f in schema if is_vector(f.type)]
    if len(found) != 1:
        raise SchemaError(f"{'several' if found else 'no'} vector columns in {schema.names}: name one with "
                          f"vector_column=")
    return found[0]


def _dim(t: pa.DataType, files: Sequence[Path], table: pa.Table | None, column: str) -> int:
    if pa.types.is_fixed_size_list(t):
        return t.list_size
    first = table.column(column) if table is not None else next(
        (b.column(0) for b in pq.ParquetFile(files[0]).iter_batches(batch_size=1, columns=[column])), None)
    if first is None or len(first) == 0:
        raise InvalidParameterError("the input holds no rows")
    return len(first[0])


def _sharding(shards: int, partition: str | None, kind: str | None, schema: pa.Schema, files: Sequence[Path],
              table: pa.Table | None) -> Sharding:
    if partition is None:
        if kind is not None:
            raise InvalidParameterError("partition_kind needs partition=COLUMN")
        return Sharding("hash", shards)
    if partition not in schema.names:
        raise SchemaError(f"no partition column {partition!r} among the attributes {schema.names}")
    t = schema.field(partition).type
    ordered = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_date(t)
    kind = kind or ("range" if ordered else "value")
    if kind == "range":
        if not ordered:
            raise SchemaError(f"range partitioning needs a numeric or date column; {partition!r} is {t}")
        column = table.column(partition) if table is not None else \
            pa.chunked_array([c for f in files for c in _column_of(f, partition).chunks])
        return Sharding("range", shards, partition, range_bounds(column, shards))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        raise SchemaError(f"cannot partition by the list column {partition!r}")
    return Sharding(kind, shards, partition)


def _column_of(path: Path, name: str) -> pa.ChunkedArray:
    if _is_parquet(path):
        return pq.read_table(path, columns=[name]).column(name)
    with pa.memory_map(str(path)) as f:
        return ipc.open_file(f).read_all().column(name)


# ----------------------------------------------------------------- routing (one batch) and one shard
def stage_batch(batch: pa.Table, *, staging: str, sharding: Sharding, id_column: str) -> pa.Table:
    """Route one batch's rows and write each shard's part under ``staging/<shard>/``; returns the rows
    staged per shard (``shard``, ``rows``)."""
    ids = batch.column(id_column).to_numpy()
    if batch.column(id_column).null_count:
        raise SchemaError(f"null id in column {id_column!r}")
    owners = sharding.route(ids, batch)
    out_shard, out_rows = [], []
    for s in np.unique(owners):
        part = batch.filter(pa.array(owners == s))
        digest = hashlib.blake2b(part.column(id_column).to_numpy().astype(np.int64).tobytes(), digest_size=12)
        folder = Path(staging) / shard_name(int(s))
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"part-{digest.hexdigest()}.arrow"
        tmp = folder / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:6]}"
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, part.schema) as writer:
            writer.write_table(part)
        os.replace(tmp, target)
        out_shard.append(int(s))
        out_rows.append(part.num_rows)
    return pa.table({"shard": pa.array(out_shard, pa.int64()), "rows": pa.array(out_rows, pa.int64())})


def _vectors(column: pa.ChunkedArray, dim: int, name: str) -> np.ndarray:
    arr = column.combine_chunks()
    if arr.null_count:
        raise SchemaError(f"vector column {name!r} holds a null vector")
    if not pa.types.is_fixed_size_list(arr.type):
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if (lengths != dim).any():
            raise SchemaError(f"vector column {name!r}: a vector of length {int(lengths[lengths != dim][0])}, "
                              f"expected {dim}")
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), dim)


def build_shard(staging: str, out: str, name: str, *, dim: int, metric: str, schema: pa.Schema, vector_column: str,
                id_column: str, index: str | None, index_options: dict[str, Any], max_distinct: int,
                full_distinct: tuple[str, ...]) -> dict[str, Any]:
    """One shard: its staged rows into a new collection at ``out``, its index, its statistics."""
    target = Path(out)
    work = target.with_name(f"{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    start = time.perf_counter()
    try:
        # no schema= here: vecdb.create(schema=<non-empty>) fails in collection._load today (no segments to
        # concatenate); the first add sets the schema, and an empty shard is never searched (rows == 0)
        coll = vecdb.create(work, dim, metric)
        parts = sorted(Path(staging).glob("part-*.arrow")) if Path(staging).is_dir() else []
        stats = table_stats(schema.empty_table(), max_distinct=max_distinct, full_distinct=full_distinct)
        pending: list[pa.Table] = []
        rows = 0

        def flush() -> None:
            nonlocal stats, rows
            if not pending:
                return
            chunk = pa.concat_tables(pending)
            pending.clear()
            attrs = chunk.drop([vector_column, id_column])
            coll.add(_vectors(chunk.column(vector_column), dim, vector_column), attrs,
                     ids=chunk.column(id_column).to_numpy())
            stats = merge_stats(stats, table_stats(attrs, max_distinct=max_distinct, full_distinct=full_distinct),
                                max_distinct=max_distinct, full_distinct=full_distinct)
            rows += chunk.num_rows

        buffered = 0
        for part in parts:
            with pa.memory_map(str(part)) as f:
                table = ipc.open_file(f).read_all()
            pending.append(table)
            buffered += table.num_rows
            if buffered >= ADD_ROWS:
                flush()
                buffered = 0
        flush()
        added = time.perf_counter()
        if index is not None and rows:
            coll.build_index(index, **index_options)
        coll.close()
        if target.exists():  # a retry of a task whose first run finished
            shutil.rmtree(target)
        os.rename(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    end = time.perf_counter()
    return {"name": name, "rows": rows, "stats": stats,
            "seconds": {"add": added - start, "index": end - added, "total": end - start}}


def failed(name: str, exc: BaseException) -> ShardedBuildError:
    return ShardedBuildError(f"building shard {name!r} failed: {type(exc).__name__}: {exc}")
