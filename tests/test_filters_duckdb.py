"""Differential test: seeded random filters over the arXiv slice (plus derived columns holding NULLs,
int64 / uint64 extremes, NaN, quotes and Unicode) answered by the attribute index, the public pyarrow
evaluator and DuckDB on the same Arrow table; every answer must be the same set of rows."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vecdb.filters import (
    And, Between, ColumnCompare, Compare, Contains, ContainsAll, ContainsAny, Expr, In, IsBool, IsNull, Length,
    Like, Not, Or, bind, parse,
)
from vecdb.filters.attribute_index import AttributeIndex

duckdb = pytest.importorskip("duckdb")

SLICE = Path(__file__).resolve().parents[1] / "data" / "arxiv-slice" / "attributes.parquet"
N_FILTERS = 2000
I64 = [-(2**63), -(2**63) + 1, -(2**53) - 1, -1, 0, 1, 7, 2**53 - 1, 2**53, 2**53 + 1, 2**62, 2**63 - 2, 2**63 - 1]
U64 = [0, 1, 5, 2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 2, 2**64 - 1]
F64 = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 0.5, -1.5, 1e308, -1e308, 2.0**53, 3.0, 1e-300]
WORDS = ["", "a", "it's", "O''Brien", "100%", "snake_case", "back\\slash", "é", "É", "naïve", "日本語", "a_b%c",
         "line\nbreak", "Ab", "ab", "abc", "b"]
TAGS = ["x", "y", "it's", "é", "%"]
DAY0 = dt.date(2024, 1, 1)


def derived(n: int, rng: np.random.Generator) -> dict[str, pa.Array]:
    """Nullable columns of every kind the filters support, drawn from small pools of awkward values."""
    def pick(pool: list, null: float = 0.15) -> list:
        return [None if rng.random() < null else pool[int(rng.integers(len(pool)))] for _ in range(n)]

    days = [DAY0 + dt.timedelta(days=int(k)) for k in range(0, 800, 37)]
    times = [dt.datetime(2024, 1, 1) + dt.timedelta(hours=int(h)) for h in range(0, 3000, 97)]
    tags = [None if rng.random() < 0.1 else [t if rng.random() > 0.1 else None
                                               for t in rng.choice(TAGS, size=int(rng.integers(0, 4)))]
            for _ in range(n)]
    return {
        "i64": pa.array(pick(I64), pa.int64()),
        "u64": pa.array(pick(U64), pa.uint64()),
        "f64": pa.array(pick(F64), pa.float64()),
        "n2": pa.array(pick(list(range(0, 12))), pa.int32()),
        "s": pa.array(pick(WORDS), pa.string()),
        "b": pa.array(pick([True, False]), pa.bool_()),
        "d": pa.array(pick(days), pa.date32()),
        "ts": pa.array(pick(times), pa.timestamp("us")),
        "tags": pa.array(tags, pa.list_(pa.string())),
    }


@pytest.fixture(scope="module")
def table() -> pa.Table:
    base = pq.read_table(SLICE)
    base = base.select([c for c in base.column_names if c not in ("abstract_len", "other_classes")])
    columns = dict(zip(base.column_names, base.columns))
    columns.update(derived(base.num_rows, np.random.default_rng(2024)))
    columns["row_id"] = pa.array(np.arange(base.num_rows, dtype=np.int64))
    return pa.table(columns)


# ---------------------------------------------------------------------------------------- generator
INTS = {"n_authors": (1, 30), "year": (2020, 2027), "yyyymm": (202401, 202612), "date_int": (20240101, 20261231),
        "n2": (0, 12), "i64": (-5, 5), "u64": (0, 10)}
STRINGS = ["s", "primary_category", "arxiv_id"]
LISTS = ["categories", "authors", "tags"]
OPS = ["=", "!=", "<", "<=", ">", ">="]
PAIRS = [("n_authors", "n2"), ("n2", "year"), ("i64", "n2"), ("u64", "i64"), ("i64", "u64"), ("n_authors", "f64"),
         ("f64", "f64"), ("d", "listing_date"), ("ts", "d"), ("s", "primary_category"), ("b", "has_comment")]


class Gen:
    def __init__(self, table: pa.Table, seed: int):
        self.r = random.Random(seed)
        self.data = {c: [v for v in table.column(c).to_pylist() if v is not None][:400] for c in
                     ["primary_category", "arxiv_id", "listing_date"]}
        self.cats = sorted({c for cs in table.column("categories").to_pylist() for c in cs})
        self.authors = [a for a_s in table.column("authors").to_pylist()[:200] for a in a_s][:300]

    def int_literal(self, column: str) -> int | float:
        r = self.r
        lo, hi = INTS[column]
        k = r.random()
        if k < 0.5:
            return r.randint(lo - 2, hi + 2)
        if k < 0.7 and column in ("i64", "u64"):
            return r.choice(I64 if column == "i64" else U64)
        if k < 0.8:
            return r.choice([2**63, 2**63 - 1, -(2**63) - 1, 2**64, 2**64 - 1, 2**70, -(2**70), 2**53 + 1])
        return r.choice([r.randint(lo, hi) + 0.5, float(2**53), 1e300, -1e300, -0.5, float(r.randint(lo, hi)),
                         float(2**63), 9007199254740992.0])

    def literal(self, column: str):
        r = self.r
        if column in INTS:
            return self.int_literal(column)
        if column == "f64":
            return r.choice(F64[3:] + [1, -2, 2**53, 0, 2.5, 1e300])
        if column in ("s", "primary_category", "arxiv_id"):
            pool = WORDS if column == "s" else self.data[column]
            return r.choice(pool + ["cs.", "zzz", "~", ""])
        if column in ("listing_date", "d"):
            if r.random() < 0.2:
                return dt.datetime.combine(r.choice(self.data["listing_date"]), dt.time(r.choice([0, 6])))
            return r.choice(self.data["listing_date"]) + dt.timedelta(days=r.randint(-400, 40))
        if column == "ts":
            day = dt.datetime(2024, 1, 1) + dt.timedelta(hours=r.randint(-10, 3100))
            return day.date() if r.random() < 0.2 else day
        return r.random() < 0.5

    def element(self, column: str) -> str:
        if column == "categories":
            return self.r.choice(self.cats + ["cs.ZZ"])
        if column == "authors":
            return self.r.choice(self.authors + ["Nobody"])
        return self.r.choice(TAGS + ["w"])

    def pattern(self) -> tuple[str, str | None]:
        r = self.r
        pieces = [r.choice(["cs.", "c", "Deep", "it''s".replace("''", "'"), "é", "a", "b", "_", "%", "%", "ab", "日",
                            "\\", ".", "1", "2"]) for _ in range(r.randint(0, 3))]
        pattern = "".join(pieces)
        if r.random() < 0.2:
            return pattern + "!%" + r.choice(["", "%"]), "!"
        return pattern + r.choice(["", "%", "%", "_"]), None

    def leaf(self) -> Expr:
        r = self.r
        scalars = list(INTS) + ["f64", "s", "primary_category", "arxiv_id", "listing_date", "d", "ts", "b",
                                "has_comment"]
        kind = r.random()
        if kind < 0.30:
            column = r.choice(scalars)
            ops = OPS if column not in ("b", "has_comment") else ["=", "!="]
            return Compare(column, r.choice(ops), self.literal(column))
        if kind < 0.40:
            column = r.choice([c for c in scalars if c not in ("b", "has_comment")])
            return Between(column, self.literal(column), self.literal(column), r.random() < 0.2)
        if kind < 0.52:
            column = r.choice(scalars)
            size = r.choice([0, 1, 2, 3, 5, 40])
            values = tuple(self.literal(column) for _ in range(size))
            return In(column, values, r.random() < 0.4)
        if kind < 0.57:
            return IsNull(r.choice(scalars + LISTS), r.random() < 0.5)
        if kind < 0.62:
            return IsBool(r.choice(["b", "has_comment"]), r.random() < 0.5, r.random() < 0.5)
        if kind < 0.72:
            column = r.choice(LISTS)
            which = r.random()
            if which < 0.5:
                return Contains(column, self.element(column))
            values = tuple(self.element(column) for _ in range(r.choice([0, 1, 2, 3])))
            return (ContainsAny if which < 0.8 else ContainsAll)(column, values)
        if kind < 0.80:
            pattern, escape = self.pattern()
            return Like(r.choice(["s", "primary_category", "title"]), pattern, r.random() < 0.3, r.random() < 0.3,
                        escape)
        if kind < 0.87:
            return Length(r.choice(LISTS), r.choice(OPS), r.choice([0, 1, 2, 3, 1.5, -1, 2**63]))
        if kind < 0.95:
            left, right = r.choice(PAIRS)
            return ColumnCompare(left, r.choice(OPS), right)
        return Compare(r.choice(["b", "has_comment"]), "=", True)  # a bare boolean column

    def expr(self, depth: int = 0) -> Expr:
        r = self.r
        k = r.random()
        if depth >= 3 or k < 0.35:
            return self.leaf()
        if k < 0.5:
            return Not(self.expr(depth + 1))
        operands = tuple(self.expr(depth + 1) for _ in range(r.randint(2, 4)))
        return And(operands) if k < 0.75 else Or(operands)


# ---------------------------------------------------------------------------------- DuckDB spelling
def _literal(value, column: str) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if column in INTS and value == value:  # DuckDB compares integers with DECIMAL literals exactly
            text = format(Decimal(value), "f")
            if len(text.replace("-", "").replace(".", "").lstrip("0")) <= 30:
                return text if "." in text else text + ".0"
        return f"CAST('{value!r}' AS DOUBLE)"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return f"DATE '{value.isoformat()}'"


def _name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def duck(expr: Expr) -> str:
    if isinstance(expr, Or):
        return "(" + " OR ".join(duck(e) for e in expr.operands) + ")"
    if isinstance(expr, And):
        return "(" + " AND ".join(duck(e) for e in expr.operands) + ")"
    if isinstance(expr, Not):
        return f"(NOT {duck(expr.operand)})"
    if isinstance(expr, Compare):
        return f"({_name(expr.column)} {expr.op} {_literal(expr.value, expr.column)})"
    if isinstance(expr, ColumnCompare):
        return f"({_name(expr.left)} {expr.op} {_name(expr.right)})"
    if isinstance(expr, Length):
        return f"(len({_name(expr.column)}) {expr.op} {_literal(expr.value, 'n2')})"
    # BETWEEN and IN are spelled as comparisons: DuckDB gives BETWEEN's bounds and an IN list one common
    # type, and a DOUBLE among them makes it compare int64 / uint64 values as doubles (inexactly)
    if isinstance(expr, Between):
        c, lo, hi = _name(expr.column), _literal(expr.low, expr.column), _literal(expr.high, expr.column)
        if expr.symmetric:  # DuckDB has no BETWEEN SYMMETRIC
            return f"(({c} >= {lo} AND {c} <= {hi}) OR ({c} >= {hi} AND {c} <= {lo}))"
        return f"({c} >= {lo} AND {c} <= {hi})"
    if isinstance(expr, In):
        if not expr.values:
            return f"({_name(expr.column)} {'NOT IN' if expr.negated else 'IN'} ())"
        items = " OR ".join(f"{_name(expr.column)} = {_literal(v, expr.column)}" for v in expr.values)
        return f"({'NOT ' if expr.negated else ''}({items}))"
    if isinstance(expr, IsNull):
        return f"({_name(expr.column)} IS {'NOT ' if expr.negated else ''}NULL)"
    if isinstance(expr, IsBool):
        return f"({_name(expr.column)} IS {'NOT ' if expr.negated else ''}{'TRUE' if expr.value else 'FALSE'})"
    if isinstance(expr, Like):
        escape = "" if expr.escape is None else f" ESCAPE {_literal(expr.escape, '')}"
        return f"({_name(expr.column)} {expr.keyword} {_literal(expr.pattern, '')}{escape})"
    if isinstance(expr, Contains):
        return f"list_contains({_name(expr.column)}, {_literal(expr.value, '')})"
    if isinstance(expr, ContainsAny):
        items = "[" + ", ".join(_literal(v, "") for v in expr.values) + "]::VARCHAR[]"
        function = "list_has_all" if isinstance(expr, ContainsAll) else "list_has_any"
        return f"{function}({_name(expr.column)}, {items})"
    raise AssertionError(expr)


# ------------------------------------------------------------------------------------------- test
def test_index_evaluator_and_duckdb_agree(table: pa.Table) -> None:
    con = duckdb.connect(config={"threads": 1})
    con.register("arrow_t", table)
    con.execute("CREATE TABLE t AS SELECT * FROM arrow_t")  # a native copy: no Arrow scan per query
    index = AttributeIndex(table)
    gen = Gen(table, seed=11)
    disagreements = []
    for i in range(N_FILTERS):
        expr = gen.expr()
        assert parse(str(expr)) == expr, str(expr)
        assert parse(expr.to_json()) == expr
        by_index = index.select(index.bind(expr)).rows
        by_arrow = np.flatnonzero(bind(expr, table.schema).evaluate(table))
        sql = duck(expr)
        by_duckdb = np.sort(np.asarray(con.execute(f"SELECT row_id FROM t WHERE {sql}").fetchnumpy()["row_id"],
                                       dtype=np.int64))
        if not (np.array_equal(by_index, by_duckdb) and np.array_equal(by_arrow, by_duckdb)):
            disagreements.append((i, str(expr), sql, len(by_index), len(by_arrow), len(by_duckdb)))
    assert not disagreements, disagreements[:5]
