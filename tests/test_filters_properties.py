"""Property tests for filters: print/parse round trips, Arrow evaluation against a plain
row-by-row Python evaluator in three-valued logic, and De Morgan equalities."""

from __future__ import annotations

import datetime as dt
import json
import operator
from typing import Any, Callable

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecdb.filters import (
    And,
    Between,
    Compare,
    Contains,
    ContainsAll,
    ContainsAny,
    Expr,
    In,
    IsNull,
    Not,
    Or,
    bind,
    parse,
)

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
OPS = ["=", "!=", "<", "<=", ">", ">="]
WORDS = ["", "a", "b", "ab", "B", "it's"]
TAGS = ["x", "y", "z"]
DAY0 = dt.date(2025, 1, 1)
DAYS = [DAY0 + dt.timedelta(days=k) for k in range(5)]

# -- a small random table ----------------------------------------------------------------

rows = st.lists(
    st.fixed_dictionaries(
        {
            "i": st.none() | st.integers(-3, 3),
            "f": st.none() | st.sampled_from([-1.5, 0.0, 0.5, 2.0, 3.0]),
            "b": st.none() | st.booleans(),
            "s": st.none() | st.sampled_from(WORDS),
            "d": st.none() | st.sampled_from(DAYS),
            "tags": st.none() | st.lists(st.none() | st.sampled_from(TAGS), max_size=4),
        }
    ),
    max_size=12,
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[pa.Table, list[dict[str, Any]]]:
    data = draw(rows)
    large = draw(st.booleans())
    table = pa.table(
        {
            "i": pa.array([r["i"] for r in data], pa.int64()),
            "f": pa.array([r["f"] for r in data], pa.float64()),
            "b": pa.array([r["b"] for r in data], pa.bool_()),
            "s": pa.array([r["s"] for r in data], pa.string()),
            "d": pa.array([r["d"] for r in data], pa.date32()),
            "tags": pa.array([r["tags"] for r in data], pa.large_list(pa.string()) if large else pa.list_(pa.string())),
        }
    )
    if draw(st.booleans()):
        table = table.set_column(3, "s", table.column("s").dictionary_encode())
    cut = draw(st.integers(0, len(data)))
    if draw(st.booleans()) and 0 < cut < len(data):
        table = pa.concat_tables([table.slice(0, cut), table.slice(cut)])
    return table, data


# -- random expressions over that table ---------------------------------------------------

ints = st.integers(-4, 4)
numbers = ints | st.sampled_from([-0.5, 1.5, 2.0, 0.0])
words = st.sampled_from(WORDS)
days = st.sampled_from(DAYS + [DAY0 - dt.timedelta(days=1)])
day_literals = days | days.map(dt.date.isoformat)
SCALARS: dict[str, st.SearchStrategy[Any]] = {"i": numbers, "f": numbers, "b": st.booleans(), "s": words, "d": day_literals}
ORDERED = ["i", "f", "s", "d"]

leaves = st.one_of(
    st.sampled_from(list(SCALARS)).flatmap(
        lambda c: st.builds(Compare, st.just(c), st.sampled_from(OPS if c != "b" else ["=", "!="]), SCALARS[c])
    ),
    st.sampled_from(ORDERED).flatmap(lambda c: st.builds(Between, st.just(c), SCALARS[c], SCALARS[c])),
    st.sampled_from(list(SCALARS)).flatmap(
        lambda c: st.builds(In, st.just(c), st.lists(SCALARS[c], max_size=3).map(tuple), st.booleans())
    ),
    st.builds(IsNull, st.sampled_from([*SCALARS, "tags"]), st.booleans()),
    st.builds(Contains, st.just("tags"), st.sampled_from(TAGS + ["w"])),
    st.builds(ContainsAny, st.just("tags"), st.lists(st.sampled_from(TAGS + ["w"]), max_size=3).map(tuple)),
    st.builds(ContainsAll, st.just("tags"), st.lists(st.sampled_from(TAGS + ["w"]), max_size=3).map(tuple)),
)


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    pairs = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(And, pairs), st.builds(Or, pairs), st.builds(Not, children))


exprs = st.recursive(leaves, _extend, max_leaves=6)

# -- the reference: plain Python, one row at a time, three-valued -------------------------

PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _lit(value: Any, column: str) -> Any:
    return dt.date.fromisoformat(value) if column == "d" and isinstance(value, str) else value


def _and(values: list[bool | None]) -> bool | None:
    return False if False in values else (None if None in values else True)


def _or(values: list[bool | None]) -> bool | None:
    return True if True in values else (None if None in values else False)


def reference(expr: Expr, row: dict[str, Any]) -> bool | None:
    if isinstance(expr, Or):
        return _or([reference(e, row) for e in expr.operands])
    if isinstance(expr, And):
        return _and([reference(e, row) for e in expr.operands])
    if isinstance(expr, Not):
        inner = reference(expr.operand, row)
        return None if inner is None else not inner
    if isinstance(expr, IsNull):
        return (row[expr.column] is None) != expr.negated
    x = row[expr.column]
    if isinstance(expr, In):
        if x is None:  # x IN () / x NOT IN () are NULL for a NULL x, as in DuckDB
            return None
        if not expr.values:
            return expr.negated
        return (x in [_lit(v, expr.column) for v in expr.values]) != expr.negated
    if x is None:
        return None
    if isinstance(expr, Compare):
        return PY_OPS[expr.op](x, _lit(expr.value, expr.column))
    if isinstance(expr, Between):
        return _and([_lit(expr.low, expr.column) <= x, x <= _lit(expr.high, expr.column)])
    present = {v for v in x if v is not None}
    if isinstance(expr, Contains):
        return expr.value in present
    if isinstance(expr, ContainsAll):
        return all(v in present for v in expr.values)
    assert isinstance(expr, ContainsAny)
    return any(v in present for v in expr.values)


def evaluate3(expr: Expr, table: pa.Table) -> list[bool | None]:
    return bind(expr, table.schema).evaluate_arrow(table).to_pylist()


# -- properties ---------------------------------------------------------------------------


@SETTINGS
@given(exprs)
def test_print_parse_round_trip(expr: Expr) -> None:
    assert parse(str(expr)) == expr
    assert parse(expr.to_json()) == expr
    assert parse(json.dumps(expr.to_json())) == expr
    assert str(parse(str(expr))) == str(expr)


names = st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s)
any_literals = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=10),
    st.dates(),
    st.datetimes(),
)


@SETTINGS
@given(names, st.sampled_from(OPS), any_literals)
def test_round_trip_any_names_and_literals(column: str, op: str, value: Any) -> None:
    for expr in (Compare(column, op, value), In(column, (value, value)), Contains(column, value)):
        assert parse(str(expr)) == expr
        assert parse(expr.to_json()) == expr
        assert parse(json.dumps(expr.to_json())) == expr


@SETTINGS
@given(tables(), exprs)
def test_arrow_matches_reference(table_rows: tuple[pa.Table, list[dict[str, Any]]], expr: Expr) -> None:
    table, data = table_rows
    expected = [reference(expr, row) for row in data]
    bound = bind(expr, table.schema)
    assert bound.evaluate_arrow(table).to_pylist() == expected
    mask = bound.evaluate(table)
    assert mask.tolist() == [v is True for v in expected]
    assert bound.evaluate(table.combine_chunks()).tolist() == mask.tolist()


@SETTINGS
@given(tables(), exprs, exprs)
def test_de_morgan(table_rows: tuple[pa.Table, list[dict[str, Any]]], a: Expr, b: Expr) -> None:
    table, _ = table_rows
    assert evaluate3(~(a & b), table) == evaluate3(~a | ~b, table)
    assert evaluate3(~(a | b), table) == evaluate3(~a & ~b, table)
    assert evaluate3(~~a, table) == evaluate3(a, table)
    assert evaluate3(a & b, table) == evaluate3(b & a, table)


@SETTINGS
@given(tables(), st.sampled_from(ORDERED).flatmap(lambda c: st.tuples(st.just(c), SCALARS[c], SCALARS[c])))
def test_between_is_two_comparisons(table_rows: tuple[pa.Table, list[dict[str, Any]]], args: tuple[str, Any, Any]) -> None:
    table, _ = table_rows
    column, low, high = args
    expected = evaluate3(Compare(column, ">=", low) & Compare(column, "<=", high), table)
    assert evaluate3(Between(column, low, high), table) == expected
    assert evaluate3(Not(Between(column, low, high)), table) == evaluate3(
        Compare(column, "<", low) | Compare(column, ">", high), table
    )
