"""``vecdb build SOURCE --out PATH --shards N [--partition COLUMN] [--ray [ADDRESS]]``: a sharded collection
(``vecdb.distributed.build``) from a Parquet / Arrow file or directory. Without ``--ray`` everything runs
in this process; with it, Ray Data reads and routes the input and one Ray task per shard builds it."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import CliError, parse_key_values
from .output import emit_line
from .progress import Progress


def run_sharded(args: argparse.Namespace) -> int:
    import vecdb.distributed as vd

    if args.shards is None or args.shards < 1:
        raise CliError(f"--shards must be a positive integer; got {args.shards}")
    for flag, value in (("--vectors", args.vectors), ("--offsets", args.offsets), ("--attributes", args.attributes),
                        ("--append", args.append), ("--overwrite", args.overwrite), ("--columns", args.columns)):
        if value:
            raise CliError(f"{flag} does not apply to a sharded build (--shards): give SOURCE, a Parquet / Arrow "
                           f"file or directory with a vector column and an id column")
    if not args.source:
        raise CliError("nothing to read: give SOURCE (a Parquet / Arrow file or directory)")
    kind = args.index or "hnsw"
    params = parse_key_values(args.index_param, "--index-param")
    address: bool | str = False
    if args.ray:
        address = True if args.ray == "local" else args.ray
    bars: dict[str, Progress] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if args.quiet:
            return
        bar = bars.get(phase)
        if bar is None:
            for old in bars.values():
                old.close()
            bar = bars[phase] = Progress("routing rows" if phase == "route" else "building shards", total)
        bar.update(done - bar.done)

    given = args.vector_column or []
    if len(given) > 1 or any("=" in g for g in given):
        raise CliError("sharded collections hold one vector field: give one --vector-column NAME")
    try:
        report = vd.build(Path(args.source), Path(args.out), shards=args.shards,
                          vector_column=given[0] if given else None,
                          id_column=args.id_column, metric=args.metric or "cosine", partition=args.partition,
                          index=None if kind == "none" else kind, index_options=params, ray=address,
                          batch_size=args.batch_size, progress=progress)
    except (vd.RayNotInstalledError, vd.ShardedBuildError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        for bar in bars.values():
            bar.close()
    if not args.quiet:
        emit_line(f"built {report.path}: {report.rows:,} rows in {len(report.shard_rows)} shards "
                  f"({', '.join(f'{n:,}' for n in report.shard_rows)}), mode {report.mode}; "
                  f"{report.seconds['total']:.1f} s (route {report.seconds['route']:.1f} s, "
                  f"shards {report.seconds['shards']:.1f} s)")
    return 0
