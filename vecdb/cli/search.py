"""``vecdb search``: the k nearest rows to one or many query vectors, filtered, as a table / JSON / CSV / Parquet."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from .. import planner
from .common import CliError, load_npy, parse_key_values, split_columns
from .output import render_csv, render_json, render_table, write_text

EPILOG = """examples: from the repository root, after 'vecdb build --help's first example (scratch/ is git-ignored)
  python -c "import numpy as np; np.save('scratch/q.npy', np.load('data/arxiv-slice/queries.f32.npy')[:3])"
  vecdb search scratch/arxiv.vdb --vector-file scratch/q.npy -k 5 --where "'cs.LG' IN categories AND year >= 2025" --columns title,year
  vecdb search scratch/arxiv.vdb --row 42 --format json --columns title
  vecdb search scratch/arxiv.vdb --row 42 --params ef=256 --columns "*"
  vecdb search scratch/arxiv.vdb --vector-file scratch/q.npy --format parquet --output scratch/hits.parquet --plan exact

--vector takes one query as a JSON array of exactly the collection's dim numbers (384 for the slice),
or an array of such arrays: --vector "$(python -c 'import json, numpy as np; print(json.dumps(np.load("scratch/q.npy")[0].tolist()))')"

JSON output: a list with one entry per query, each a list of hits {"id", "score", <columns>}.
Scores: higher is better for cosine and ip; squared distances (ascending) for l2.
"""

FORMATS = ("table", "json", "csv", "parquet")
PLANS = ("auto", *planner.PLANS)


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("search", parents=parents, help="nearest neighbours of query vectors, with a filter",
                       description="Search a collection for the k nearest rows to each query vector.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", help="the collection directory")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--vector-file", metavar="Q.npy", help="query vectors: a 1-D (one) or 2-D (many) .npy array")
    query.add_argument("--row", type=int, metavar="ID", help="use the stored vector of the row with this id (that row is then the top hit)")
    query.add_argument("--vector", metavar="JSON", help="one query as a JSON array of the collection's dim numbers, or an array of arrays")
    p.add_argument("--where", metavar="FILTER", help="SQL-like filter, e.g. \"year >= 2025 AND tag = 'a'\"")
    p.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument("--columns", metavar="A,B", help="attribute columns to show ('*' for all, 'vector' for the stored vectors; default none)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout (required for parquet)")
    p.add_argument("--params", action="append", metavar="KEY=VALUE",
                   help="search options, repeatable or comma-separated: ef=128 (hnsw), nprobe=16 (ivf)")
    p.add_argument("--plan", choices=PLANS, help="force a plan instead of the planner's choice")
    p.add_argument("--field", metavar="NAME", help="the vector field searched (needed when the collection has several)")
    p.add_argument("--index", metavar="NAME", help="search through this index of the field (default: the planner's choice)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"),
                   help="where the search runs: auto (the planner's cost model), cpu, or gpu (an index built on a GPU)")
    p.set_defaults(run=run)


def _queries(args: argparse.Namespace, coll: Any) -> np.ndarray:
    """The query matrix from --vector-file, --row or --vector (JSON, never eval)."""
    if args.vector_file is not None:
        return load_npy(args.vector_file, option="--vector-file")
    if args.row is not None:  # that row's value of the field: a vector, or in a multi-vector field a set
        field = args.field if args.field is not None else next(iter(coll.fields)) if len(coll.fields) == 1 else None
        if field not in coll.fields:
            raise CliError(f"--row needs --field, one of {', '.join(coll.fields)}")
        value = coll.get([args.row], columns=[], with_vectors=True).column(field).to_pylist()[0]
        if value is None:
            raise CliError(f"row {args.row} holds no value in field {field!r}")
        return np.asarray(value if coll.fields[field].multi else [value], dtype=np.float32)
    try:
        value = json.loads(args.vector)
    except json.JSONDecodeError as exc:
        raise CliError(f"--vector is not valid JSON: {exc}") from exc
    if not isinstance(value, list) or not value:
        raise CliError(f"--vector must be a JSON array of numbers; got {args.vector[:60]!r}")
    rows = value if all(isinstance(v, list) for v in value) else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for row in rows for v in row):
        raise CliError("--vector must hold numbers only (an array, or an array of arrays)")
    lengths = sorted({len(row) for row in rows})
    if len(lengths) > 1:
        raise CliError(f"--vector rows have mixed lengths {lengths}")
    return np.asarray(rows, dtype=np.float64)


def run(args: argparse.Namespace) -> int:
    import vecdb

    if args.format == "parquet" and not args.output:
        raise CliError("--format parquet needs --output FILE")
    params = parse_key_values(args.params, "--params")
    if args.plan:
        params["plan"] = args.plan
    if args.device:
        params["device"] = args.device
    coll = vecdb.open(args.path)
    # the semantics of SearchResult.to_arrow: '*' every attribute column, 'vector' the stored vector(s)
    columns = [c for c in split_columns(args.columns) or [] if c not in ("id", "score")]
    queries = _queries(args, coll)
    result = coll.search(queries, k=args.k, where=args.where, field=args.field, index=args.index,
                         **params)  # multi-vector: one query set
    table = result.to_arrow(columns)
    nq = len(result)
    if args.format == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, args.output)
    elif args.format == "json":
        write_text(render_json(table, nq), args.output)
    elif args.format == "csv":
        write_text(render_csv(table), args.output)
    else:
        write_text(render_table(table, nq, result.plans), args.output)
    return 0
