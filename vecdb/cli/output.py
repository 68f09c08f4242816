"""Everything the CLI writes to stdout (or to ``--output``): summaries, aligned tables, hits as JSON / CSV.

This is the only module of the package that prints.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from .common import jsonable, short_float

CELL_WIDTH = 48


def emit_line(text: str) -> None:
    """One line of normal output on stdout."""
    print(text, file=sys.stdout)


def write_text(text: str, output: str | None) -> None:
    """``text`` to the file ``output``, or to stdout when ``output`` is None."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(output).write_text(text, encoding="utf-8", newline="")


def describe_index(info: dict[str, Any] | None) -> str:
    """``hnsw (M=32, ef_construction=200, ef_search=128)``, ``flat``, or ``none``."""
    if info is None:
        return "none"
    opts = ", ".join(f"{k}={v}" for k, v in info["config"].items())
    return f"{info['kind']} ({opts})" if opts else info["kind"]


def cell(value: Any, width: int = CELL_WIDTH) -> str:
    """A value as table text: lists joined by commas, dates ISO, nulls empty, long text cut with '…'."""
    value = jsonable(value)
    if value is None:
        text = ""
    elif isinstance(value, list):
        text = "[" + ", ".join("" if v is None else str(v) for v in value) + "]"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def align(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths[:-1])] + [cells[-1]]
        return indent + "  ".join(padded).rstrip()

    return "\n".join([line(header)] + [line(r) for r in rows]) + "\n"


def hits_by_query(table: pa.Table, nq: int) -> list[list[dict[str, Any]]]:
    """``[[{"id": .., "score": .., <columns>}, ...] per query]`` from ``SearchResult.to_arrow``."""
    groups: list[list[dict[str, Any]]] = [[] for _ in range(nq)]
    for row in table.to_pylist():
        q = row.pop("query")
        row.pop("rank")
        hit = {"id": row.pop("id"), "score": short_float(row.pop("score"))}
        hit.update({name: jsonable(value) for name, value in row.items()})
        groups[q].append(hit)
    return groups


def render_json(table: pa.Table, nq: int) -> str:
    """Valid JSON laid out one hit per line: ``[[{hit}, ...], ...]``."""
    queries = []
    for hits in hits_by_query(table, nq):
        lines = ",\n".join("    " + json.dumps(hit, ensure_ascii=False) for hit in hits)
        queries.append("  [\n" + lines + "\n  ]" if hits else "  []")
    return "[\n" + ",\n".join(queries) + "\n]\n" if queries else "[]\n"


def render_csv(table: pa.Table) -> str:
    """One row per hit: query, rank, id, score, columns; lists as JSON arrays, dates ISO, nulls empty."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        out = []
        for name, value in row.items():
            value = short_float(value) if name == "score" else jsonable(value)
            if isinstance(value, (list, dict)):
                value = json.dumps(value, ensure_ascii=False)
            out.append("" if value is None else value)
        writer.writerow(out)
    return buf.getvalue()


def render_table(table: pa.Table, nq: int, plans: Sequence[str]) -> str:
    """A block per query: a heading with the hit count and plan, then rank / id / score / columns."""
    names = [n for n in table.column_names if n not in ("query", "rank")]
    rows_by_query: list[list[list[str]]] = [[] for _ in range(nq)]
    for row in table.to_pylist():
        rows_by_query[row["query"]].append([str(row["rank"] + 1)] + [cell(row[n]) for n in names])
    blocks = []
    for q, rows in enumerate(rows_by_query):
        heading = f"query {q}: {len(rows)} hit{'s' if len(rows) != 1 else ''} (plan {plans[q]})\n"
        blocks.append(heading + (align(["#", *names], rows, indent="  ") if rows else ""))
    return "\n".join(blocks)
