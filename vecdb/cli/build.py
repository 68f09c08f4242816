"""``vecdb build``: a collection on disk from Parquet / Arrow files or ``.npy`` vectors, streamed in batches.

Nothing half-written is ever left at ``--out``: a new collection is built in the sibling directory
``OUT.tmp-<pid>`` and renamed into place only once complete (``--overwrite`` moves the old one aside
first); on any failure the temporary directory is removed and ``OUT`` is as it was. ``--append`` adds
to the collection in place under its writer lock (other writers wait) and restores the version from
before the append if anything fails.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .common import CliError, load_npy, parse_key_values, split_columns
from .output import describe_index, emit_line
from .progress import Progress

EPILOG = """examples: from the repository root, on the bundled slice (scratch/ is git-ignored)
  vecdb build --vectors data/arxiv-slice/base.f16.npy --attributes data/arxiv-slice/attributes.parquet --id-column id --out scratch/arxiv.vdb --index hnsw --index-param M=16
  vecdb search scratch/arxiv.vdb --row 7 -k 50 --columns "*,vector" --format parquet --output scratch/hits.parquet
  vecdb build scratch/hits.parquet --out scratch/hits.vdb --vector-column vector --columns title,year,categories --index flat
  vecdb build --vectors data/arxiv-slice/base.f16.npy --out scratch/plain.vdb --index hnsw --index-param M=32,ef_search=128
  vecdb build --vectors data/arxiv-slice/base.f16.npy --out scratch/plain.vdb --append    # rows with new ids; the index is updated
  # sharded (vecdb.distributed; --ray [ADDRESS] builds on a Ray cluster):
  #   vecdb build scratch/hits.parquet --out scratch/hits.sharded --vector-column vector --shards 2
"""


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    from ..indexes import index_kinds
    from ..indexes.base import METRICS
    from ..indexes.device import DEVICES

    p = sub.add_parser("build", parents=parents, help="build (or append to) a collection from files",
                       description="Build a vecdb collection from a Parquet / Arrow IPC file or directory holding "
                                   "a vector column, or from --vectors X.npy beside --attributes FILE.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="Parquet / Arrow IPC file, or a directory of them, with a vector column")
    p.add_argument("--out", "-o", required=True, metavar="PATH", help="the collection directory to write")
    p.add_argument("--vectors", metavar="X.npy", help="vectors as a 2-D .npy array (instead of SOURCE)")
    p.add_argument("--offsets", metavar="OFFSETS.npy",
                   help="multi-vector documents: with --vectors TOKENS.npy, document i is rows "
                        "offsets[i]:offsets[i+1] (makes a multi-vector collection; index muvera)")
    p.add_argument("--attributes", metavar="FILE",
                   help="attribute rows for --vectors: a Parquet / Arrow file or directory")
    p.add_argument("--vector-column", metavar="NAME", action="append",
                   help="the vector column (detected when there is only one); for several vector fields, "
                        "FIELD=COLUMN once per field")
    p.add_argument("--field", metavar="NAME", help="the vector field --index is built on (default: every field)")
    p.add_argument("--id-column", metavar="NAME",
                   help="integer ids (default: a column named 'id' if any, else 0, 1, ...)")
    p.add_argument("--columns", metavar="A,B", help="attribute columns to keep (default: all)")
    p.add_argument("--metric", choices=METRICS, help="similarity (default cosine; --append keeps the collection's)")
    p.add_argument("--index", choices=[*index_kinds(), "muvera", "none"],
                   help="index type to build (default hnsw; with --append the existing index is updated)")
    p.add_argument("--index-param", action="append", metavar="KEY=VALUE",
                   help="an option of the index, repeatable: M=32, ef_construction=200, ef_search=128, nlist=256, "
                        "nprobe=32, engine=hnswlib")
    p.add_argument("--device", choices=DEVICES, default="auto", help="where the index runs (default auto)")
    p.add_argument("--batch-size", type=int, default=32768, metavar="N", help="rows read per batch (default 32768)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="add the rows to the existing collection at --out")
    mode.add_argument("--overwrite", action="store_true", help="replace --out once the new collection is complete")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    sharded = p.add_argument_group("sharded collections (vecdb.distributed; see vecdb/cli/shards.py)")
    sharded.add_argument("--shards", type=int, metavar="N", help="build a sharded collection of N shards from SOURCE")
    sharded.add_argument("--partition", metavar="COLUMN",
                         help="route rows by this column (by value, or by range for numbers and dates) "
                              "instead of by a hash of the id")
    sharded.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                         help="build with Ray: a local Ray (no value) or the cluster at ADDRESS; default: "
                              "in this process")
    p.set_defaults(run=run)


def open_source(args: argparse.Namespace) -> Any:
    from ..ingest import NpySource, TableSource

    columns = split_columns(args.columns)
    if args.source and args.vectors:
        raise CliError("give either SOURCE or --vectors X.npy, not both")
    if args.vectors:
        if args.vector_column:
            raise CliError("--vector-column applies to a SOURCE table, not to --vectors")
        return NpySource(Path(args.vectors), Path(args.attributes) if args.attributes else None,
                         id_column=args.id_column, columns=columns)
    if args.attributes:
        raise CliError("--attributes goes with --vectors X.npy")
    if not args.source:
        raise CliError("nothing to read: give SOURCE (a Parquet / Arrow file or directory) or --vectors X.npy")
    return TableSource(Path(args.source), vector_column=_vector_columns(args.vector_column), id_column=args.id_column,
                       columns=columns)


def _vector_columns(given: list[str] | None) -> str | dict[str, str] | None:
    """``--vector-column``: one column, or FIELD=COLUMN per vector field."""
    if not given:
        return None
    if not any("=" in g for g in given):
        if len(given) > 1:
            raise CliError("several --vector-column: name the fields, FIELD=COLUMN each")
        return given[0]
    pairs = [g.split("=", 1) for g in given]
    if not all(len(p) == 2 and p[0] and p[1] for p in pairs):
        raise CliError(f"--vector-column takes FIELD=COLUMN for every field when there are several; got {given}")
    fields = [p[0] for p in pairs]
    if len(set(fields)) != len(fields):
        raise CliError(f"a field named twice in --vector-column: {fields}")
    return dict(pairs)


def _swap_into_place(tmp: Path, out: Path, replace: bool) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed only after."""
    if not replace:
        os.rename(tmp, out)
        return
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _index_options(cls: type, params: dict[str, Any], device: str) -> dict[str, Any]:
    accepted = inspect.signature(cls.__init__).parameters
    if "device" in accepted and "device" not in params:
        params = {**params, "device": device}
    return params


def run(args: argparse.Namespace) -> int:
    import vecdb
    from ..indexes import index_class
    from ..storage.manifest import read_manifest

    if args.batch_size <= 0:
        raise CliError(f"--batch-size must be a positive integer; got {args.batch_size}")
    if args.shards is not None or args.partition or args.ray:
        from .shards import run_sharded

        return run_sharded(args)
    out = Path(args.out)
    exists = out.exists() or out.is_symlink()
    if exists and not (args.append or args.overwrite):
        raise CliError(f"{str(out)!r} already exists; pass --append to add rows to it or --overwrite to replace it")
    if exists:
        try:
            read_manifest(out)
        except vecdb.errors.NotACollectionError as exc:
            raise CliError(f"refusing to {'append to' if args.append else 'overwrite'} {str(out)!r}: {exc}") from exc
    index_params = parse_key_values(args.index_param, "--index-param")
    if args.offsets or args.index == "muvera":
        return _run_multivector(args, out, exists, index_params)
    source = open_source(args)  # every input is checked before anything is written

    appending = args.append and exists
    kind = args.index if args.index is not None else (None if appending else "hnsw")
    if index_params and kind in (None, "none"):
        raise CliError("--index-param needs --index KIND")
    if kind not in (None, "none"):
        index_params = _index_options(index_class(kind), index_params, args.device)

    start = time.perf_counter()
    progress = Progress("adding", source.total_rows, enabled=False if args.quiet else None)
    if appending:
        coll, t_add = _append(source, out, kind, index_params, args, progress)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            coll = _add_all(source, None, tmp, args, progress)
            progress.close()
            t_add = time.perf_counter() - start
            _index(coll, kind, index_params, args, progress, optimize=False)
            _swap_into_place(tmp, out, replace=exists)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    total = time.perf_counter() - start
    if not args.quiet:
        if len(coll.fields) == 1:
            what = f"dim {coll.dim}, metric {coll.metric}, index {describe_index(coll.index_info)}"
        else:
            what = "fields " + ", ".join(f"{name} ({f.dim}-d {f.metric}: "
                                         f"{', '.join(i['name'] for i in coll.indexes() if i['field'] == name) or 'no index'})"
                                         for name, f in coll.fields.items())
        emit_line(f"{'appended to' if appending else 'built'} {out}: {len(coll):,} rows ({progress.done:,} added), "
                  f"{what}; {total:.1f} s (read+write {t_add:.1f} s, index {total - t_add:.1f} s)")
    return 0


def _append(source: Any, out: Path, kind: str | None, index_params: dict[str, Any], args: argparse.Namespace,
            progress: Progress) -> tuple[Any, float]:
    """``--append``: the rows are added to the collection in place, holding its writer lock throughout (other
    writers wait; readers see each committed batch). On any failure the version from before the append is
    restored, so the append is all or nothing for what stays."""
    import vecdb

    start = time.perf_counter()
    coll = vecdb.open(out)
    metrics = {f.metric for f in coll.fields.values()}
    if args.metric and metrics != {args.metric}:
        raise CliError(f"--metric {args.metric} differs from the collection's metric {', '.join(sorted(metrics))}")
    with coll.locked():
        before = coll.version
        try:
            _add_all(source, coll, out, args, progress)
            progress.close()
            t_add = time.perf_counter() - start
            _index(coll, kind, index_params, args, progress, optimize=True)
        except BaseException:
            if coll.version != before:
                coll.restore(before)
            raise
    return coll, t_add


def _index(coll: Any, kind: str | None, index_params: dict[str, Any], args: argparse.Namespace,
           progress: Progress, *, optimize: bool) -> None:
    """Build the ``kind`` index (``--index``), or (``optimize``: appending) fold the new rows into the
    collection's own index."""
    if kind not in (None, "none"):
        for field in [args.field] if args.field is not None else list(coll.fields):
            if field not in coll.fields:
                raise CliError(f"--field {field!r} is not a vector field; fields are {', '.join(coll.fields)}")
            progress.status(f"building the {kind} index of {field!r} over {len(coll):,} rows ...")
            with _index_progress(kind, args.quiet):
                coll.build_index(kind, field=field, **index_params)
    elif optimize and coll.indexes():
        progress.status(f"adding the new rows to the indexes ({', '.join(i['name'] for i in coll.indexes())}) ...")
        coll.optimize()


class _IndexBar:
    """A progress bar per index build, fed by ``indexes.build_progress`` (rows added to the engine so far);
    engines that cannot report (hnswlib, flat, binary) leave it undrawn."""

    def __init__(self, kind: str, quiet: bool):
        self.kind, self.quiet = kind, quiet
        self.bar: Progress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None or done == 0:
            self.bar = Progress(f"indexing ({self.kind})", total, enabled=False if self.quiet else None)
        self.bar.update(done - self.bar.done)
        if done >= total:
            self.bar.close()
            self.bar.status("rows indexed; calibrating and saving ...")
            self.bar = None


@contextlib.contextmanager
def _index_progress(kind: str, quiet: bool) -> Iterator[None]:
    from ..indexes.build_progress import reporting

    with reporting(_IndexBar(kind, quiet)):
        yield


def _add_all(source: Any, coll: Any, tmp: Path, args: argparse.Namespace, progress: Progress) -> Any:
    """Stream the source's batches into ``coll`` (created at ``tmp`` from the first batch when None)."""
    import vecdb
    from ..ingest import rebatch

    first = 0
    for batch in rebatch(source.batches(args.batch_size), args.batch_size):
        if coll is None:
            strings = batch.ids is not None and batch.ids.dtype.kind == "U"  # e.g. --id-column arxiv_id
            metric = args.metric or "cosine"
            if isinstance(batch.vectors, dict):  # --vector-column FIELD=COLUMN ...: one field each
                coll = vecdb.create(tmp, vectors={f: vecdb.VectorField(int(v.shape[1]), metric)
                                                  for f, v in batch.vectors.items()},
                                    id_type="string" if strings else "int64")
            else:
                coll = vecdb.create(tmp, dim=int(batch.vectors.shape[1]), metric=metric,
                                    id_type="string" if strings else "int64")
        try:
            coll.add(batch.vectors, batch.attributes, ids=batch.ids)
        except (vecdb.errors.InvalidVectorError, vecdb.errors.DimensionError) as exc:
            # the library counts rows within the batch; say where the batch starts in the input
            raise CliError(f"input rows {first}..{first + len(batch) - 1}: {exc}") from exc
        first += len(batch)
        progress.update(len(batch))
    if coll is None:
        raise CliError("the input holds no rows; nothing to build")
    return coll


def _run_multivector(args: argparse.Namespace, out: Path, exists: bool, index_params: dict[str, Any]) -> int:
    """``--vectors TOKENS.npy --offsets OFFSETS.npy [--attributes A.parquet]``: a multi-vector collection."""
    import pyarrow.parquet as pq

    import vecdb

    if not (args.vectors and args.offsets):
        raise CliError("a multi-vector build needs --vectors TOKENS.npy and --offsets OFFSETS.npy")
    if args.append:
        raise CliError("--append is not supported for multi-vector collections yet")
    if args.index not in (None, "muvera", "none"):
        raise CliError(f"multi-vector collections take --index muvera (or none), not {args.index!r}")
    tokens = load_npy(args.vectors, mmap=True)
    offsets = load_npy(args.offsets).astype(np.int64)
    if tokens.ndim != 2 or offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 \
            or offsets[-1] != len(tokens) or (np.diff(offsets) < 0).any():
        raise CliError(f"--offsets must rise from 0 to the {len(tokens)} rows of --vectors; got {len(offsets)} "
                       f"offsets ending at {int(offsets[-1]) if len(offsets) else None}")
    n_docs = len(offsets) - 1
    attrs = ids = None
    if args.attributes:
        attrs = pq.read_table(args.attributes, columns=split_columns(args.columns))
        if attrs.num_rows != n_docs:
            raise CliError(f"--attributes has {attrs.num_rows} rows but --offsets describes {n_docs} documents")
        id_column = args.id_column or ("id" if "id" in attrs.column_names else None)
        if id_column:
            ids = attrs.column(id_column).to_numpy()
            attrs = attrs.drop_columns([id_column])
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.perf_counter()
    progress = Progress("adding", n_docs, enabled=False if args.quiet else None)
    try:
        coll = vecdb.create(tmp, dim=int(tokens.shape[1]), metric=args.metric or "ip", multivector=True)
        for a in range(0, n_docs, args.batch_size):
            b = min(n_docs, a + args.batch_size)
            chunk = np.asarray(tokens[offsets[a]:offsets[b]], dtype=np.float32)
            coll.add((chunk, offsets[a:b + 1] - offsets[a]),
                           None if attrs is None else attrs.slice(a, b - a),
                           ids=None if ids is None else ids[a:b])
            progress.update(b - a)
        progress.close()
        if args.index != "none":
            progress.status(f"building the muvera index over {n_docs:,} documents ...")
            with _index_progress("muvera", args.quiet):
                coll.build_index("muvera", **index_params)
        _swap_into_place(tmp, out, replace=exists)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not args.quiet:
        emit_line(f"built {out}: {len(coll):,} multi-vector documents ({len(tokens):,} vectors), dim {coll.dim}, "
                  f"metric {coll.metric}, index {describe_index(coll.index_info)}; "
                  f"{time.perf_counter() - start:.1f} s")
    return 0
