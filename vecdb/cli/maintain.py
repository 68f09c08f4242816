"""``vecdb delete | upsert | compact | calibrate | versions | verify``: change and look after a collection in
place.

Each write takes the collection's writer lock (other writers, in any process, wait) and commits a new
version; readers keep answering from the version they opened.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from .common import CliError, load_npy, split_columns
from .output import emit_line, write_text

EPILOG = {
    "delete": """examples: from the repository root, after 'vecdb build --help''s first example
  vecdb delete scratch/arxiv.vdb --where "year < 2025 AND n_authors > 50"
  vecdb delete scratch/arxiv.vdb --ids 3,17,42
""",
    "upsert": """examples: (rows whose ids exist are replaced, the others added)
  vecdb upsert scratch/arxiv.vdb --vectors data/arxiv-slice/base.f16.npy --attributes data/arxiv-slice/attributes.parquet --id-column id
""",
    "compact": """examples:
  vecdb compact scratch/arxiv.vdb               # drop deleted rows, merge segments, rebuild the index
  vecdb compact scratch/arxiv.vdb --cleanup     # and remove older versions' files now
""",
    "calibrate": """examples: (recall curves from a sample of your own queries, for target_recall and the default)
  vecdb calibrate scratch/arxiv.vdb --queries data/arxiv-slice/queries.f32.npy
  vecdb calibrate scratch/arxiv.vdb --queries q.npy --where-file filters.txt   # and the filters they carried
""",
    "versions": """examples:
  vecdb versions scratch/arxiv.vdb
  vecdb versions scratch/arxiv.vdb --format json
""",
    "verify": """examples:
  vecdb verify scratch/arxiv.vdb                # hash every file against the manifest
""",
}


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    def parser(name: str, help: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=parents, help=help, description=description, epilog=EPILOG[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("path", metavar="PATH", help="the collection directory")
        return p

    p = parser("delete", "delete rows by filter or by id", "Delete the rows passing a filter, or the given ids.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--where", metavar="FILTER", help="SQL-like filter")
    which.add_argument("--ids", metavar="I,J", help="comma-separated ids")
    p.set_defaults(run=run_delete)

    p = parser("upsert", "insert or replace rows by id, from files",
               "Insert rows, replacing those whose ids exist, from the same inputs as 'vecdb build --append'.")
    p.add_argument("source", nargs="?", metavar="SOURCE", help="Parquet / Arrow IPC file or directory")
    p.add_argument("--vectors", metavar="X.npy", help="vectors as a 2-D .npy array (instead of SOURCE)")
    p.add_argument("--attributes", metavar="FILE", help="attribute rows for --vectors")
    p.add_argument("--vector-column", metavar="NAME", action="append",
                   help="the vector column (detected when there is only one); for several vector fields, "
                        "FIELD=COLUMN once per field")
    p.add_argument("--id-column", metavar="NAME", help="the id column (default: a column named 'id')")
    p.add_argument("--columns", metavar="A,B", help="attribute columns to keep (default: all)")
    p.add_argument("--batch-size", type=int, default=32768, metavar="N", help="rows per batch (default 32768)")
    p.add_argument("--no-optimize", action="store_true", help="leave the new rows beside the index")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary")
    p.set_defaults(run=run_upsert)

    p = parser("compact", "rewrite the live rows, reclaim space, rebuild the index",
               "Rewrite the live rows as one segment (dropping deleted rows) and rebuild the index with its "
               "options. Handles reading older versions keep working until their files are cleaned up.")
    p.add_argument("--cleanup", action="store_true", help="then remove every older version's files now")
    p.set_defaults(run=run_compact)

    p = parser("calibrate", "measure the recall curves on a sample of your queries",
               "Measure the recall per beam width that target_recall and the default beam read on a sample of "
               "your own queries (at least 20; a .npy array), instead of the build-time query model; saved as "
               "a new version.")
    p.add_argument("--queries", required=True, metavar="Q.npy", help="query vectors: a 2-D .npy array")
    carried = p.add_mutually_exclusive_group()
    carried.add_argument("--where", metavar="FILTER", help="the filter every query of the sample carried")
    carried.add_argument("--where-file", metavar="FILE",
                         help="the filters the queries carried: line i for query i (UTF-8 text; an empty line: none); "
                              "the bands of selectivity they fill are measured under them")
    p.add_argument("--field", metavar="NAME", help="the vector field (needed when there are several)")
    p.add_argument("--index", metavar="NAME", help="the index (default: the field's only HNSW index)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    p.set_defaults(run=run_calibrate)

    p = parser("versions", "list the retained versions", "The versions whose files are kept, oldest first.")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    p.set_defaults(run=run_versions)

    p = parser("verify", "check every file against the manifest's checksums",
               "Hash every file of the current version; a damaged file is named and the exit status is 1.")
    p.set_defaults(run=run_verify)


def run_delete(args: argparse.Namespace) -> int:
    import vecdb

    coll = vecdb.open(args.path)
    if args.ids is not None:
        try:
            ids = [int(v) for v in split_columns(args.ids) or []]
        except ValueError as exc:
            raise CliError(f"--ids must be comma-separated integers; got {args.ids!r}") from exc
        n = coll.delete(ids=ids)
    else:
        n = coll.delete(where=args.where)
    emit_line(f"deleted {n:,} rows from {args.path}: {len(coll):,} rows left (version {coll.version})")
    return 0


def run_upsert(args: argparse.Namespace) -> int:
    import vecdb

    from .build import open_source
    from ..ingest import rebatch

    if args.batch_size <= 0:
        raise CliError(f"--batch-size must be a positive integer; got {args.batch_size}")
    source = open_source(args)
    coll = vecdb.open(args.path)
    n = 0
    with coll.locked():
        before = coll.version
        try:
            for batch in rebatch(source.batches(args.batch_size), args.batch_size):
                if batch.ids is None:
                    raise CliError("upsert needs ids: give --id-column (or a column named 'id')")
                coll.upsert(batch.vectors, batch.attributes, ids=batch.ids)
                n += len(batch)
            if not args.no_optimize:
                coll.optimize()
        except BaseException:
            if coll.version != before:
                coll.restore(before)
            raise
    if not args.quiet:
        emit_line(f"upserted {n:,} rows into {args.path}: {len(coll):,} rows (version {coll.version})")
    return 0


def run_compact(args: argparse.Namespace) -> int:
    import vecdb

    coll = vecdb.open(args.path)
    before = coll.stats()
    coll.compact()
    removed = coll.cleanup(keep_last=1, older_than=0) if args.cleanup else 0
    after = coll.stats()
    emit_line(f"compacted {args.path}: {after['rows']:,} rows in {after['segments']} segment(s), "
              f"{before['deleted_rows']:,} deleted rows dropped; on disk {before['bytes_on_disk']:,} -> "
              f"{after['bytes_on_disk']:,} bytes" + (f" ({removed} files of older versions removed)" if removed else ""))
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    import vecdb
    from vecdb.calibration import ef_for

    coll = vecdb.open(args.path)
    where: Any = args.where
    if args.where_file is not None:
        try:
            where = [line or None for line in Path(args.where_file).read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read --where-file {args.where_file!r}: {exc}") from exc
    curves = coll.calibrate(load_npy(args.queries, option="--queries"), where=where, field=args.field,
                            index=args.index)
    beams = {str(t): ef_for(curves, "index", t) for t in (0.9, 0.95, 0.99)}
    if args.format == "json":
        write_text(json.dumps({"version": coll.version, "beams": beams, "curves": curves}, indent=2) + "\n", None)
        return 0
    own = curves.get("own_filter_bands")
    emit_line(f"calibrated {args.path} on {curves['queries']} queries (version {coll.version}); unfiltered beam "
              + ", ".join(f"ef {ef} for recall {t}" for t, ef in beams.items())
              + ("; filtered bands measured under the queries' own filters at selectivity "
                 + ", ".join(f"{s:.3g}" for s in own) if own else ""))
    return 0


def run_versions(args: argparse.Namespace) -> int:
    import vecdb

    versions = vecdb.open(args.path).versions()
    if args.format == "json":
        write_text(json.dumps(versions, indent=2) + "\n", None)
        return 0
    lines = [f"{'version':>8}  {'committed (UTC)':<19}  {'rows':>12}  operation"]
    for v in versions:
        when = dt.datetime.fromtimestamp(v["timestamp"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") \
            if v["timestamp"] else "-"
        lines.append(f"{v['version']:>8}  {when:<19}  {v['stored_rows']:>12,}  {v['operation'] or '-'}")
    write_text("\n".join(lines) + "\n", None)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    import vecdb

    coll = vecdb.open(Path(args.path))
    n = coll.verify()
    emit_line(f"{args.path}: version {coll.version}, {n} files verified")
    return 0
