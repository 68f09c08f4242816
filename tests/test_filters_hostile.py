"""Hostile and edge-case input: every string either parses or raises FilterError, deep nesting up to
MAX_DEPTH works in every spelling, and the regressions of the exact-number / NaN / uint64 / empty-IN fixes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecdb.errors import FilterError
from vecdb.filters import MAX_DEPTH, Compare, Not, bind, col, parse
from vecdb.filters.ast import deep_recursion
from vecdb.filters.attribute_index import AttributeIndex

SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

FRAGMENTS = ["a", "x", '"q"', "'s'", "'it''s'", "1", "-2.5", "1e9", "(", ")", "[", "]", ",", "=", "==", "!=", "<>",
             "<", ">=", "AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "BETWEEN", "SYMMETRIC", "LIKE", "ILIKE",
             "ESCAPE", "len(", "list_has_any(", "array_has(", "DATE", "'2025-01-01'", "--", "\n", "%", "²", "５",
             "\ud800", "'\udc00'", "99999999999999999999999", "NaN", "\x00", " "]


def _parses_or_filter_error(text: str) -> None:
    try:
        expr = parse(text)
    except FilterError as exc:
        assert isinstance(exc, ValueError)
        return
    if expr is not None:
        assert parse(str(expr)) == expr
        assert parse(expr.to_json()) == expr


@SETTINGS
@given(st.text())
def test_any_text_parses_or_raises_filter_error(text: str) -> None:
    _parses_or_filter_error(text)


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(" ".join))
def test_near_miss_sql_parses_or_raises_filter_error(text: str) -> None:
    _parses_or_filter_error(text)


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.floats(),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(
                        st.sampled_from(["and", "or", "not", "eq", "like", "in", "len", "col", "between_symmetric",
                                         "is_true", "date"]), c, max_size=2), max_leaves=8))
def test_any_json_tree_parses_or_raises_filter_error(tree: object) -> None:
    try:
        parse(tree if isinstance(tree, (dict, list)) else json.dumps(tree))
    except FilterError:
        pass


@pytest.mark.parametrize("text", ["a = ²", "a = ⑤", "a = ５", "a = ١٢", "a = 1" + "0" * 4001, '"\ud800" = 1',
                                  "x = '\udc00'", "x LIKE 'a' ESCAPE 'ab'", "NOT (" * (MAX_DEPTH + 1) + "a = 1",
                                  "(" * (2 * MAX_DEPTH + 1) + "a = 1" + ")" * (2 * MAX_DEPTH + 1)])
def test_hostile_strings_raise_filter_error_with_offset(text: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(text)
    assert info.value.position is not None


def test_nesting_to_max_depth_in_every_spelling() -> None:
    depth = MAX_DEPTH - 1
    text = "NOT (" * depth + "a = 1" + ")" * depth
    expr = parse(text)
    assert expr.depth == MAX_DEPTH
    assert str(expr) == text and hash(expr) == hash(parse(str(expr)))
    with deep_recursion():  # json.dumps itself recurses
        text_json = json.dumps(expr.to_json())
    assert parse(expr.to_json()) == expr and parse(text_json) == expr
    assert parse("(" * depth + "a = 1" + ")" * depth) == Compare("a", "=", 1)
    built = Compare("a", "=", 1)
    for _ in range(depth):
        built = ~built
    assert built == expr
    with pytest.raises(FilterError, match="nested"):
        Not(built)
    table = pa.table({"a": pa.array([1, 2, None])})
    assert bind(expr, table).evaluate(table).tolist() == [depth % 2 == 0, depth % 2 == 1, False]
    index = AttributeIndex(table)
    assert index.select(index.bind(expr)).mask.tolist() == [depth % 2 == 0, depth % 2 == 1, False]
    with pytest.raises(FilterError, match="nested"):
        parse('{"not": ' * (MAX_DEPTH + 5) + '{"eq": ["a", 1]}' + "}" * (MAX_DEPTH + 5))


def test_long_flat_and_chain() -> None:
    table = pa.table({"a": pa.array(np.arange(100)), "s": pa.array([str(i) for i in range(100)])})
    text = " AND ".join(f"a != {i + 1000}" if i % 2 else f"s != 'x{i}'" for i in range(20000))
    expr = parse(text)
    assert len(expr.operands) == 20000
    assert bind(expr, table).evaluate(table).all()
    index = AttributeIndex(table)
    assert index.select(index.bind(expr)).count == 100


# -- regressions: exact numbers, NaN, uint64, empty IN -----------------------------------------------
BIG = 9007199254740993


@pytest.fixture
def table() -> pa.Table:
    return pa.table({
        "v": pa.array([BIG, BIG - 1, None, 2**63 - 1, 2**63 - 2, -(2**63)], pa.int64()),
        "u": pa.array([2**64 - 1, 5, None, 2**63 + 3, 99, 0], pa.uint64()),
        "f": pa.array([float("nan"), 1.0, None, float("inf"), -0.0, 2.0**53]),
        "s": pa.array(["abc", "abd", None, "ab%", "x_y", "ABC"]),
        "b": pa.array([True, False, None, True, False, None]),
        "l": pa.array([[1], [], None, [1, 2, 3], [None], [4, 5]], pa.list_(pa.int64())),
    })


T, F, N = True, False, None


@pytest.mark.parametrize(("where", "expected"), [
    (f"v IN ({BIG}, 9007199254740992.0)", [T, T, N, F, F, F]),
    ("v = 9007199254740992.0", [F, T, N, F, F, F]),
    ("v < 9223372036854775808", [T, T, N, T, T, T]),
    ("v < 9223372036854775807", [T, T, N, F, T, T]),
    ("v >= -9223372036854775809", [T, T, N, T, T, T]),
    ("v > 9007199254740992.5", [T, F, N, T, T, F]),
    ("v BETWEEN 9007199254740992.0 AND 1e300", [T, T, N, T, T, F]),
    ("u < 100", [F, T, N, F, T, T]),
    ("u > 9223372036854775807", [T, F, N, T, F, F]),
    ("u IN (18446744073709551615, 5.0, -1)", [T, T, N, F, F, F]),
    ("f > 1e308", [T, F, N, T, F, F]),
    ("f != 1", [T, F, N, T, T, T]),
    ("f < 1", [F, F, N, F, T, F]),
    ("f NOT IN (1.0, 0)", [T, F, N, T, F, T]),
    ("f = 9007199254740993", [F, F, N, F, F, F]),
    ("f < 9007199254740993", [F, T, N, F, T, T]),
    ("f = f", [T, T, N, T, T, T]),
    ("v IN ()", [F, F, N, F, F, F]),
    ("v NOT IN ()", [T, T, N, T, T, T]),
    ("s LIKE 'ab%'", [T, T, N, T, F, F]),
    ("s LIKE 'ab!%' ESCAPE '!'", [F, F, N, T, F, F]),
    ("s ILIKE 'ab_'", [T, T, N, T, F, T]),
    ("s NOT LIKE '%b%'", [F, F, N, F, T, T]),
    ("s LIKE 'x_y'", [F, F, N, F, T, F]),
    ("b IS NOT TRUE", [F, T, T, F, T, T]),
    ("b IS FALSE", [F, T, F, F, T, F]),
    ("NOT b", [F, T, N, F, T, N]),
    ("len(l) >= 2", [F, F, N, T, F, T]),
    ("array_length(l) = 0", [F, T, N, F, F, F]),
    ("v > u", [F, T, N, F, T, F]),
    ("u BETWEEN SYMMETRIC 100 AND 1", [F, T, N, F, T, F]),
    ("list_has_any(l, [5, 7])", [F, F, N, F, F, T]),
])
def test_both_evaluators_exact(table: pa.Table, where: str, expected: list) -> None:
    bound = bind(where, table)
    assert bound.evaluate_arrow(table).to_pylist() == expected
    index = AttributeIndex(table)
    rows = index.select(index.bind(parse(where)))
    assert rows.rows.tolist() == [i for i, v in enumerate(expected) if v is True]
    assert rows.count == len(set(rows.rows.tolist()))


def test_builder_spells_the_new_syntax() -> None:
    assert col("s").like("a%") == parse("s LIKE 'a%'")
    assert col("s").not_ilike("a!%", escape="!") == parse("s NOT ILIKE 'a!%' ESCAPE '!'")
    assert col("b").is_not_false() == parse("b IS NOT FALSE")
    assert (col("l").len() >= 2) == parse("len(l) >= 2") == parse("2 <= len(l)")
    assert (col("a") < col("b")) == parse("a < b")
    assert col("a").between(3, 1, symmetric=True) == parse("a BETWEEN SYMMETRIC 3 AND 1")
    assert parse("a == 1 -- the answer\n AND b") == parse("a = 1 AND b = TRUE")
    assert parse("array_has(c, 'x') AND list_has_all(c, ['y'])") == parse("'x' IN c AND array_contains_all(c, ('y'))")


def test_double_quotes_name_columns(table: pa.Table) -> None:
    with pytest.raises(FilterError, match="double quotes name a column"):
        bind('s = "abc"', table)
    with pytest.raises(FilterError, match="double quotes name a column") as info:
        parse('s IN ("abc")')
    assert info.value.position == 6
