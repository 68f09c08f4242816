"""Parsing filters: SQL-like strings, JSON trees and the builder all give the same AST."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from vecdb.errors import FilterError
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
    col,
    parse,
)
from vecdb.filters.sql import tokenize

# -- SQL: every construct -----------------------------------------------------------------

SQL_CASES: list[tuple[str, Expr]] = [
    ("year = 2020", Compare("year", "=", 2020)),
    ("year != 2020", Compare("year", "!=", 2020)),
    ("year <> 2020", Compare("year", "!=", 2020)),
    ("year < 2020", Compare("year", "<", 2020)),
    ("year <= 2020", Compare("year", "<=", 2020)),
    ("year > 2020", Compare("year", ">", 2020)),
    ("year>=2020", Compare("year", ">=", 2020)),
    ("x = -3", Compare("x", "=", -3)),
    ("x = 1.5", Compare("x", "=", 1.5)),
    ("x = -2.5e-3", Compare("x", "=", -0.0025)),
    ("x = 1E6", Compare("x", "=", 1e6)),
    ("x = .5", Compare("x", "=", 0.5)),
    ("x = 2.", Compare("x", "=", 2.0)),
    ("flag = TRUE", Compare("flag", "=", True)),
    ("flag = false", Compare("flag", "=", False)),
    ("name = 'it''s'", Compare("name", "=", "it's")),
    ("name = ''", Compare("name", "=", "")),
    ("name = 'a \"b\" c'", Compare("name", "=", 'a "b" c')),
    ('"weird col" = 1', Compare("weird col", "=", 1)),
    ('"say ""hi""" = 1', Compare('say "hi"', "=", 1)),
    ('"select" = 1', Compare("select", "=", 1)),
    ('"and" = 1', Compare("and", "=", 1)),
    ("d >= DATE '2025-03-18'", Compare("d", ">=", dt.date(2025, 3, 18))),
    ("t < TIMESTAMP '2025-03-18 12:30:00'", Compare("t", "<", dt.datetime(2025, 3, 18, 12, 30))),
    ("t < timestamp '2025-03-18 12:30:00.250000'", Compare("t", "<", dt.datetime(2025, 3, 18, 12, 30, 0, 250000))),
    ("2020 <= year", Compare("year", ">=", 2020)),
    ("2020 < year", Compare("year", ">", 2020)),
    ("2020 = year", Compare("year", "=", 2020)),
    ("2020 <> year", Compare("year", "!=", 2020)),
    ("'b' > name", Compare("name", "<", "b")),
    ("year BETWEEN 2020 AND 2022", Between("year", 2020, 2022)),
    ("year between -1 and 1.5", Between("year", -1, 1.5)),
    ("year NOT BETWEEN 1 AND 2", Not(Between("year", 1, 2))),
    ("c IN ('a', 'b')", In("c", ("a", "b"))),
    ("c IN ('a')", In("c", ("a",))),
    ("c IN ()", In("c", ())),
    ("c not in (1, 2, 3)", In("c", (1, 2, 3), True)),
    ("c IS NULL", IsNull("c")),
    ("c is not null", IsNull("c", True)),
    ("'cs.LG' IN categories", Contains("categories", "cs.LG")),
    ("'cs.LG' NOT IN categories", Not(Contains("categories", "cs.LG"))),
    ("array_contains(categories, 'cs.LG')", Contains("categories", "cs.LG")),
    ("ARRAY_CONTAINS(categories, 'cs.LG')", Contains("categories", "cs.LG")),
    ("list_contains(categories, 'cs.LG')", Contains("categories", "cs.LG")),
    ("array_contains_any(categories, ('a', 'b'))", ContainsAny("categories", ("a", "b"))),
    ("array_contains_all(categories, ('a','b'))", ContainsAll("categories", ("a", "b"))),
    ("array_contains_any(tags, ())", ContainsAny("tags", ())),
    ("NOT a = 1", Not(Compare("a", "=", 1))),
    ("NOT NOT a = 1", Not(Not(Compare("a", "=", 1)))),
    ("((a = 1))", Compare("a", "=", 1)),
    ("a = 1 AND b = 2 AND c = 3", And((Compare("a", "=", 1), Compare("b", "=", 2), Compare("c", "=", 3)))),
    ("a = 1 OR b = 2 OR c = 3", Or((Compare("a", "=", 1), Compare("b", "=", 2), Compare("c", "=", 3)))),
    ("a = 1 and (b = 2 and c = 3)", And((Compare("a", "=", 1), Compare("b", "=", 2), Compare("c", "=", 3)))),
    ("\n\ta = 1 \n", Compare("a", "=", 1)),
]


@pytest.mark.parametrize(("text", "expected"), SQL_CASES)
def test_sql_constructs(text: str, expected: Expr) -> None:
    got = parse(text)
    assert got == expected
    assert parse(str(got)) == got
    assert parse(got.to_json()) == got
    assert parse(json.dumps(got.to_json())) == got


def test_precedence_not_over_and_over_or() -> None:
    a, b, c = (Compare(n, "=", 1) for n in "abc")
    assert parse("a = 1 OR b = 1 AND c = 1") == Or((a, And((b, c))))
    assert parse("a = 1 AND b = 1 OR c = 1") == Or((And((a, b)), c))
    assert parse("NOT a = 1 AND b = 1") == And((Not(a), b))
    assert parse("NOT (a = 1 AND b = 1)") == Not(And((a, b)))
    assert parse("(a = 1 OR b = 1) AND c = 1") == And((Or((a, b)), c))
    assert parse("x BETWEEN 1 AND 2 AND y = 1") == And((Between("x", 1, 2), Compare("y", "=", 1)))


def test_keywords_are_case_insensitive() -> None:
    assert parse("a between 1 AND 2 Or b iS NoT nUlL") == parse("a BETWEEN 1 AND 2 OR b IS NOT NULL")


def test_literal_types_are_distinct() -> None:
    assert parse("x = 1") != parse("x = 1.0")
    assert parse("x = 1") != parse("x = TRUE")
    assert parse("x = '1'") != parse("x = 1")
    assert isinstance(parse("x = 1").value, int)  # type: ignore[union-attr]
    assert isinstance(parse("x = 1.0").value, float)  # type: ignore[union-attr]
    assert hash(parse("x = 1")) == hash(Compare("x", "=", 1))


# -- canonical printing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "'cs.CL' IN categories AND yyyymm BETWEEN 202512 AND 202605",
        "NOT ('cs.CY' IN categories) AND yyyymm BETWEEN 202603 AND 202606",
        "'cs.CR' IN categories OR 'cs.DB' IN categories",
        "primary_category = 'cs.MA' AND n_authors >= 5",
        "NOT ('cs.CV' IN categories)",
        "a = 1 OR (b = 2 AND c = 3)",
        "(a = 1 OR b = 2) AND c = 3",
        "NOT (a = 1 OR b = 2)",
        "x IN (1, 2.5, 'q') AND y NOT IN () AND z IS NOT NULL",
        "array_contains_any(tags, ('a', 'b')) OR array_contains_all(tags, ('c'))",
        "d >= DATE '2025-03-18' AND t < TIMESTAMP '2025-03-18 12:30:00'",
        "\"my col\" = 'it''s' AND \"or\" = FALSE",
    ],
)
def test_canonical_sql_is_stable(text: str) -> None:
    assert str(parse(text)) == text


def test_canonical_forms() -> None:
    assert str(parse("array_contains(categories, 'cs.LG')")) == "'cs.LG' IN categories"
    assert str(parse("2020 <= year")) == "year >= 2020"
    assert str(parse("x <> 1")) == "x != 1"
    assert str(parse("a NOT BETWEEN 1 AND 2")) == "NOT (a BETWEEN 1 AND 2)"
    assert str(parse("x = 1e20")) == "x = 1e+20"
    assert parse("x = 1e20") == Compare("x", "=", 1e20)


# -- errors: position and what was expected -----------------------------------------------

ERROR_CASES: list[tuple[str, int, str]] = [
    ("year >= ", 8, "expected a value after '>='"),
    ("year >= AND", 8, "expected a value after '>='"),
    ("(a = 1", 6, "expected ')'"),
    ("((a = 1) AND b = 2", 18, "expected ')'"),
    ("a = 1)", 5, "')' without a matching '('"),
    ("a = 1 b = 2", 6, "expected AND, OR or the end"),
    ("a = 'abc", 4, "unterminated string"),
    ('"abc = 1', 0, "unterminated quoted column"),
    ("a = NULL", 4, "IS NULL"),
    ("a IS 1", 5, "expected NULL"),
    ("a IN 1", 5, "expected '('"),
    ("a IN (1, 2", 10, "',' or ')'"),
    ("a IN (1,)", 8, "expected a value"),
    ("x ! 3", 2, "'!'"),
    ("x ~ 3", 2, "unexpected character '~'"),
    ("a BETWEEN 1 2", 12, "expected AND"),
    ("a BETWEEN 1", 11, "expected AND"),
    ("a NOT = 1", 6, "expected BETWEEN or IN"),
    ("2020abc = x", 0, "invalid number '2020abc'"),
    ("x = 1.2.3", 4, "invalid number"),
    ("x = 1e", 6, "exponent"),
    ("a 1", 2, "expected a comparison operator"),
    ("a b", 2, "expected a comparison operator"),
    ("= 1", 0, "expected a column"),
    ("NOT", 3, "expected a column"),
    ("a = 1 AND", 9, "expected a column"),
    ("a = 1 OR OR b = 2", 9, "expected a column"),
    ("'x' = 'y'", 6, "expected a column name"),
    ("'x' IN 'y'", 7, "expected a column name"),
    ("5", 1, "expected a comparison operator or IN"),
    ("NULL IS NULL", 0, "NULL can only be used"),
    ("foo(a, 1)", 0, "unknown function 'foo'"),
    ("array_contains(a 'x')", 17, "expected ','"),
    ("array_contains(a, 'x'", 21, "expected ')'"),
    ("array_contains_any(a, 'x')", 22, "expected '('"),
    ("array_contains('a', 'x')", 15, "expected a column name"),
    ("a = DATE 'x'", 9, "invalid DATE literal"),
    ("a = DATE 5", 9, "expected a quoted date"),
    ("a = TIMESTAMP '2025-13-01 00:00:00'", 14, "invalid TIMESTAMP literal"),
    ('"" = 1', 0, "empty quoted column name"),
    ("()", 1, "expected a column"),
]


@pytest.mark.parametrize(("text", "position", "message"), ERROR_CASES)
def test_sql_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(text)
    assert info.value.position == position
    assert info.value.text == text
    assert message in str(info.value)
    assert f"at offset {position}" in str(info.value)


def test_filter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse("a >=")


def test_tokenizer() -> None:
    tokens = tokenize("a>=-1.5e2 AND 'x''y' IN \"q\"")
    assert [t.kind for t in tokens] == ["IDENT", "OP", "NUMBER", "KEYWORD", "STRING", "KEYWORD", "QIDENT", "EOF"]
    assert tokens[2].value == -150.0
    assert tokens[4].text == "x'y"
    assert [t.pos for t in tokens] == [0, 1, 3, 10, 14, 21, 24, 27]


# -- parse() dispatch ---------------------------------------------------------------------


def test_parse_dispatch() -> None:
    e = Compare("a", "=", 1)
    assert parse(None) is None
    assert parse("") is None
    assert parse("   \n") is None
    assert parse("null") is None
    assert parse(e) is e
    assert parse({"eq": ["a", 1]}) == e
    assert parse('  {"eq": ["a", 1]}') == e
    with pytest.raises(FilterError, match="one filter per query"):  # a Python list is one filter per query
        parse([{"eq": ["a", 1]}, {"eq": ["b", 2]}])
    assert parse('[{"eq": ["a", 1]}, {"eq": ["b", 2]}]') == And((e, Compare("b", "=", 2)))  # JSON text: AND
    assert parse('[{"eq": ["a", 1]}]') == e
    with pytest.raises(TypeError, match="a filter must be"):
        parse(5)  # type: ignore[arg-type]


def test_parse_is_cached() -> None:
    text = "cached_col = 'cached value' AND z >= 3"
    assert parse(text) is parse(text)


# -- JSON trees ---------------------------------------------------------------------------


def test_json_every_node() -> None:
    tree = {
        "and": [
            {"eq": ["a", "x"]},
            {"ne": ["a", 1]},
            {"lt": ["a", 1.5]},
            {"le": ["a", True]},
            {"gt": ["d", {"date": "2025-01-02"}]},
            {"ge": ["t", {"timestamp": "2025-01-02 03:04:05"}]},
            {"between": ["y", 1, 2]},
            {"in": ["c", ["a", "b"]]},
            {"not_in": ["c", []]},
            {"is_null": ["c"]},
            {"is_not_null": ["c"]},
            {"contains": ["tags", "t"]},
            {"contains_any": ["tags", ["t", "u"]]},
            {"contains_all": ["tags", ["t"]]},
            {"or": [{"eq": ["a", 1]}, {"not": {"eq": ["b", 2]}}]},
        ]
    }
    expr = parse(tree)
    assert expr is not None
    assert expr.to_json() == tree
    assert parse(str(expr)) == expr
    assert expr.operands[4] == Compare("d", ">", dt.date(2025, 1, 2))  # type: ignore[union-attr]
    assert expr.operands[5] == Compare("t", ">=", dt.datetime(2025, 1, 2, 3, 4, 5))  # type: ignore[union-attr]
    assert expr.columns() == frozenset({"a", "c", "d", "t", "y", "tags", "b"})


def test_json_single_operand_and_not_list() -> None:
    assert parse({"and": [{"eq": ["a", 1]}]}) == Compare("a", "=", 1)
    assert parse({"not": [{"eq": ["a", 1]}]}) == Not(Compare("a", "=", 1))


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"equals": ["a", 1]}, "unknown filter node 'equals'"),
        ({"eq": ["a"]}, "expected [column, value] at filter.eq"),
        ({"eq": ["a", 1, 2]}, "expected [column, value]"),
        ({"eq": "a"}, "expected [column, value]"),
        ({"between": ["a", 1]}, "expected [column, low, high]"),
        ({"is_null": ["a", 1]}, "expected [column]"),
        ({"in": ["a", "b"]}, "expected a list of values at filter.in[1]"),
        ({"eq": [1, 1]}, "expected a column name (string) at filter.eq[0]"),
        ({"eq": ["a", None]}, "null value at filter.eq[1]"),
        ({"eq": ["a", [1]]}, "expected a value"),
        ({"eq": ["a", {"date": "nope"}]}, "invalid date 'nope'"),
        ({"and": []}, "non-empty list of filters"),
        ({"and": {"eq": ["a", 1]}}, "non-empty list of filters"),
        ({"and": [{"eq": ["a", 1]}, 5]}, "at filter.and[1]"),
        ({"or": [{"eq": ["a", 1]}, {"bogus": 1}]}, "unknown filter node 'bogus' at filter.or[1]"),
        ({"eq": ["a", 1], "ne": ["a", 2]}, "an object with one key"),
        ({}, "an object with one key"),
        ([], "one filter per query"),  # a Python list is one filter per query, never one filter
    ],
)
def test_json_errors(tree: object, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(tree)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_json_text_errors_have_positions() -> None:
    with pytest.raises(FilterError) as info:
        parse('{"eq": ["a", 1]')
    assert info.value.position == 15
    assert "invalid JSON" in str(info.value)


def test_json_nonfinite_rejected() -> None:
    with pytest.raises(FilterError, match="finite"):
        parse('{"eq": ["a", 1e999]}')


# -- builder ------------------------------------------------------------------------------


def test_builder_matches_parser() -> None:
    assert (col("year") >= 2020) == parse("year >= 2020")
    assert (2020 <= col("year")) == parse("year >= 2020")
    assert (col("a") == "x") == parse("a = 'x'")
    assert (col("a") != 1) == parse("a != 1")
    assert (col("a") < 1) == parse("a < 1")
    assert (col("a") <= 1) == parse("a <= 1")
    assert (col("a") > 1) == parse("a > 1")
    assert col("a").isin(["x", "y"]) == parse("a IN ('x', 'y')")
    assert col("a").isin({"y", "x"}) == parse("a IN ('x', 'y')")
    assert col("a").not_in([1]) == parse("a NOT IN (1)")
    assert col("a").between(1, 2) == parse("a BETWEEN 1 AND 2")
    assert col("a").is_null() == parse("a IS NULL")
    assert col("a").is_not_null() == parse("a IS NOT NULL")
    assert col("c").contains("cs.LG") == parse("'cs.LG' IN c")
    assert col("c").contains_any(["a", "b"]) == parse("array_contains_any(c, ('a', 'b'))")
    assert col("c").contains_all(("a",)) == parse("array_contains_all(c, ('a'))")
    assert col("d").between(dt.date(2025, 1, 1), dt.date(2025, 2, 1)) == parse(
        "d BETWEEN DATE '2025-01-01' AND DATE '2025-02-01'"
    )
    combined = (col("a") == 1) & (col("b") == 2) | ~(col("c") == 3)
    assert combined == parse("a = 1 AND b = 2 OR NOT c = 3")
    assert ((col("a") == 1) & (col("b") == 2) & (col("c") == 3)) == parse("a = 1 AND b = 2 AND c = 3")


def test_builder_numpy_scalars() -> None:
    assert (col("a") == np.int64(3)) == Compare("a", "=", 3)
    assert (col("a") == np.float32(0.5)) == Compare("a", "=", 0.5)
    assert col("a").isin(np.array([1, 2])) == In("a", (1, 2))


def test_expr_has_no_truth_value() -> None:
    expr = col("a") == 1
    with pytest.raises(TypeError, match=r"use|&"):
        bool(expr)
    with pytest.raises(TypeError, match="&"):
        if expr:  # noqa: SIM102
            pass
    with pytest.raises(TypeError, match="&"):
        _ = expr and (col("b") == 2)
    with pytest.raises(TypeError, match="&"):
        _ = not expr
    with pytest.raises(TypeError):
        bool(col("a"))


@pytest.mark.parametrize(
    ("make", "exc"),
    [
        (lambda: col("a") == None, FilterError),  # noqa: E711
        (lambda: col("a") == float("nan"), FilterError),
        (lambda: col("a") == [1, 2], FilterError),
        (lambda: col("a").isin("abc"), FilterError),
        (lambda: col("a").isin([1, None]), FilterError),
        (lambda: col(""), TypeError),
        (lambda: (col("a") == 1) & True, TypeError),
        (lambda: Compare("a", "=~", 1), FilterError),
        (lambda: And((Compare("a", "=", 1),)), FilterError),
    ],
)
def test_builder_errors(make: object, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        make()  # type: ignore[operator]


def test_columns() -> None:
    expr = parse("a = 1 AND ('x' IN tags OR NOT b IS NULL) AND c BETWEEN 1 AND 2")
    assert expr is not None
    assert expr.columns() == frozenset({"a", "tags", "b", "c"})


def test_repr_shows_sql() -> None:
    assert repr(col("a") == 1) == "<Compare a = 1>"
