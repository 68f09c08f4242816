"""Binding filters to a schema and evaluating them on Arrow tables (three-valued logic)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vecdb.errors import FilterError
from vecdb.filters import BoundFilter, bind, col, parse

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

D = dt.date


def make_table() -> pa.Table:
    return pa.table(
        {
            "i": pa.array([1, 2, None, 4, 5, 6], pa.int32()),
            "f": pa.array([0.5, -1.0, 2.5, None, 3.0, 1e10], pa.float32()),
            "b": pa.array([True, False, None, True, False, True]),
            "s": pa.array(["a", "b", None, "B", "ab", "it's"]),
            "d": pa.array([D(2025, 1, 1), D(2025, 1, 2), D(2025, 2, 1), None, D(2024, 12, 31), D(2025, 1, 1)]),
            "t": pa.array(
                [dt.datetime(2025, 1, 1, 12), None, dt.datetime(2025, 1, 1), dt.datetime(2024, 1, 1), None,
                 dt.datetime(2026, 1, 1)],
                pa.timestamp("s"),
            ),
            "tags": pa.array([["x", "y"], [], None, ["y", None], ["z", "x", "x"], [None]], pa.list_(pa.string())),
            "nums": pa.array([[1, 2], [3], None, [], [2, 2], [5]], pa.large_list(pa.int64())),
        }
    )


def mask(where: str, table: pa.Table | pa.RecordBatch | None = None) -> list[bool]:
    table = make_table() if table is None else table
    result = bind(parse(where), table.schema).evaluate(table)
    assert isinstance(result, np.ndarray)
    assert result.dtype == np.bool_ and result.flags.c_contiguous and result.shape == (table.num_rows,)
    return result.tolist()


def three_valued(where: str, table: pa.Table | None = None) -> list[bool | None]:
    table = make_table() if table is None else table
    return bind(parse(where), table.schema).evaluate_arrow(table).to_pylist()


T, F, N = True, False, None


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("i = 2", [F, T, N, F, F, F]),
        ("i != 2", [T, F, N, T, T, T]),
        ("i > 2", [F, F, N, T, T, T]),
        ("i >= 2.5", [F, F, N, T, T, T]),
        ("2 >= i", [T, T, N, F, F, F]),
        ("i < 1000000000000", [T, T, N, T, T, T]),
        ("i = 2.5", [F, F, N, F, F, F]),
        ("i BETWEEN 2 AND 4", [F, T, N, T, F, F]),
        ("i IN (1, 5, 99, 2.0, 2.5)", [T, T, N, F, T, F]),
        ("i NOT IN (1, 5)", [F, T, N, T, F, T]),
        ("i IN ()", [F, F, N, F, F, F]),
        ("i NOT IN ()", [T, T, N, T, T, T]),
        ("i IS NULL", [F, F, T, F, F, F]),
        ("i IS NOT NULL", [T, T, F, T, T, T]),
        ("f > 0", [T, F, T, N, T, T]),
        ("f = 0.5", [T, F, F, N, F, F]),
        ("f IN (3, 0.5)", [T, F, F, N, T, F]),
        ("f BETWEEN -1 AND 2.5", [T, T, T, N, F, F]),
        ("b = TRUE", [T, F, N, T, F, T]),
        ("b != TRUE", [F, T, N, F, T, F]),
        ("b IN (FALSE)", [F, T, N, F, T, F]),
        ("s = 'a'", [T, F, N, F, F, F]),
        ("s = 'A'", [F, F, N, F, F, F]),
        ("s < 'b'", [T, F, N, T, T, F]),
        ("s >= 'a'", [T, T, N, F, T, T]),
        ("s = 'it''s'", [F, F, N, F, F, T]),
        ("s IN ('b', 'B')", [F, T, N, T, F, F]),
        ("d = DATE '2025-01-01'", [T, F, F, N, F, T]),
        ("d = '2025-01-01'", [T, F, F, N, F, T]),
        ("d < '2025-01-02'", [T, F, F, N, T, T]),
        ("d BETWEEN '2025-01-01' AND DATE '2025-01-31'", [T, T, F, N, F, T]),
        ("d IN ('2025-01-02', DATE '2024-12-31', TIMESTAMP '2025-01-01 00:00:00')", [T, T, F, N, T, T]),
        ("d >= TIMESTAMP '2025-01-01 06:00:00'", [F, T, T, N, F, F]),
        ("t >= TIMESTAMP '2025-01-01 00:00:00'", [T, N, T, F, N, T]),
        ("t >= '2025-01-01 06:00:00'", [T, N, F, F, N, T]),
        ("t < DATE '2025-01-01'", [F, N, F, T, N, F]),
        ("t IN ('2025-01-01', TIMESTAMP '2026-01-01 00:00:00')", [F, N, T, F, N, T]),
        ("t > TIMESTAMP '2025-01-01 00:00:00.5'", [T, N, F, F, N, T]),
        ("'x' IN tags", [T, F, N, F, T, F]),
        ("array_contains(tags, 'y')", [T, F, N, T, F, F]),
        ("'q' IN tags", [F, F, N, F, F, F]),
        ("'x' NOT IN tags", [F, T, N, T, F, T]),
        ("array_contains_any(tags, ('y', 'z'))", [T, F, N, T, T, F]),
        ("array_contains_any(tags, ('a', 'b', 'c', 'd', 'e', 'x'))", [T, F, N, F, T, F]),
        ("array_contains_any(tags, ())", [F, F, N, F, F, F]),
        ("array_contains_all(tags, ('x', 'y'))", [T, F, N, F, F, F]),
        ("array_contains_all(tags, ('x', 'x'))", [T, F, N, F, T, F]),
        ("array_contains_all(tags, ())", [T, T, N, T, T, T]),
        ("tags IS NULL", [F, F, T, F, F, F]),
        ("2 IN nums", [T, F, N, F, T, F]),
        ("array_contains_any(nums, (3, 5.0, 2.5))", [F, T, N, F, F, T]),
        ("array_contains_all(nums, (1, 2))", [T, F, N, F, F, F]),
        # three-valued logic
        ("i = 2 OR s = 'a'", [T, T, N, F, F, F]),
        ("i > 100 AND s = 'a'", [F, F, N, F, F, F]),
        ("i > 100 AND s = 'b'", [F, F, N, F, F, F]),
        ("i > 100 AND b = TRUE", [F, F, N, F, F, F]),
        ("i > 0 AND b IS NOT NULL", [T, T, F, T, T, T]),
        ("i < 100 AND s IS NULL", [F, F, N, F, F, F]),
        ("i < 100 OR s IS NULL", [T, T, T, T, T, T]),
        ("NOT (i = 2)", [T, F, N, T, T, T]),
        ("NOT (i = 2 OR f > 2)", [T, F, F, N, F, F]),
        ("NOT ('x' IN tags) AND i > 1", [F, T, N, T, F, T]),
    ],
)
def test_semantics(where: str, expected: list[bool | None]) -> None:
    assert three_valued(where) == expected
    assert mask(where) == [v is True for v in expected]


def test_chunked_dictionary_and_sliced_tables_agree() -> None:
    table = make_table()
    dict_s = table.set_column(table.schema.get_field_index("s"), "s", table.column("s").dictionary_encode())
    chunked = pa.concat_tables([dict_s.slice(0, 2), dict_s.slice(2, 1), dict_s.slice(3)])
    assert chunked.column("tags").num_chunks == 3
    batch = chunked.combine_chunks().to_batches()[0]
    wheres = [
        "s = 'a' OR 'x' IN tags",
        "s IN ('b', 'B') AND NOT (2 IN nums)",
        "s < 'b' OR array_contains_all(tags, ('x', 'y'))",
        "s IS NULL OR i IN ()",
        "array_contains_any(tags, ('y', 'z')) AND s IS NOT NULL",
    ]
    for where in wheres:
        expected = mask(where)
        assert mask(where, dict_s) == expected
        assert mask(where, chunked) == expected
        assert mask(where, batch) == expected
    # sliced list arrays keep their offsets
    sliced = make_table().slice(2, 3)
    assert mask("'x' IN tags OR 'y' IN tags", sliced) == [False, True, True]
    assert three_valued("array_contains_all(tags, ('x', 'z'))", sliced) == [None, False, True]


def test_dictionary_encoded_list_elements() -> None:
    tags = pa.array([["a", "b"], None, ["c"], ["b", None]], pa.list_(pa.dictionary(pa.int32(), pa.string())))
    table = pa.table({"tags": tags})
    assert three_valued("'b' IN tags", table) == [True, None, False, True]
    assert three_valued("array_contains_all(tags, ('a', 'b'))", table) == [True, None, False, False]


def test_empty_table() -> None:
    table = make_table().slice(0, 0)
    for where in ["i = 1", "'x' IN tags", "i IN ()", "s = 'a' AND NOT (f > 1)"]:
        assert mask(where, table) == []


def test_fixed_size_list() -> None:
    table = pa.table({"p": pa.array([[1, 2], [3, 4], None], pa.list_(pa.int32(), 2))})
    assert three_valued("3 IN p", table) == [False, True, None]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("yaer = 1", "unknown column 'yaer'; did you mean 'year'?"),
        ("zzzz = 1", "unknown column 'zzzz'; columns are: year, primary_category"),
        ("primary_category = 5", "cannot compare string column 'primary_category' with number 5"),
        ("year = 'x'", "cannot compare integer column 'year' with string 'x'"),
        ("year = TRUE", "cannot compare integer column 'year' with boolean TRUE"),
        ("flag = 1", "cannot compare bool column 'flag' with number 1"),
        ("score > 'high'", "cannot compare float column 'score' with string 'high'"),
        ("day = 5", "cannot compare date column 'day' with number 5"),
        ("day = 'yesterday'", "cannot compare date column 'day' with string 'yesterday'"),
        ("ts < DATE '2025-01-01' OR ts = 1", "cannot compare timestamp column 'ts' with number 1"),
        ("year IN (1, 'x')", "cannot compare integer column 'year' with string 'x'"),
        ("categories >= 'cs.LG'", "cannot use '>=' on list column 'categories'"),
        ("categories BETWEEN 'a' AND 'b'", "cannot use BETWEEN on list column 'categories'"),
        ("categories IN ('a')", "cannot use IN (...) on list column 'categories'"),
        ("'cs.LG' IN primary_category", "'primary_category' is a string column; use primary_category = 'cs.LG'"),
        ("array_contains_any(year, (1))", "'year' is a integer column"),
        ("array_contains(categories, 5)", "cannot compare list<string> column 'categories' with number 5"),
        ("blob IS NULL", "column 'blob' has type binary, which filters do not support"),
    ],
)
def test_bind_errors(where: str, message: str) -> None:
    schema = pa.schema(
        [
            ("year", pa.int32()),
            ("primary_category", pa.dictionary(pa.int32(), pa.string())),
            ("categories", pa.list_(pa.string())),
            ("flag", pa.bool_()),
            ("score", pa.float64()),
            ("day", pa.date32()),
            ("ts", pa.timestamp("ms", tz="UTC")),
            ("blob", pa.binary()),
        ]
    )
    with pytest.raises(FilterError) as info:
        bind(parse(where), schema)
    assert message in str(info.value)


def test_bind_accepts_strings_and_tables() -> None:
    table = make_table()
    bound = bind("i > 2", table)
    assert isinstance(bound, BoundFilter)
    assert bound.columns == frozenset({"i"})
    assert bound.evaluate(table).tolist() == [False, False, False, True, True, True]
    with pytest.raises(TypeError, match="needs a filter"):
        bind("", table.schema)


def test_evaluate_checks_the_table() -> None:
    bound = bind(col("i") > 2, make_table().schema)
    with pytest.raises(FilterError, match="has no column 'i'"):
        bound.evaluate(pa.table({"j": [1]}))
    with pytest.raises(FilterError, match="column 'i' is string"):
        bound.evaluate(pa.table({"i": ["x"]}))
    # another integer width is fine
    assert bound.evaluate(pa.table({"i": pa.array([1, 3], pa.int8())})).tolist() == [False, True]


def test_builder_evaluates() -> None:
    expr = (col("i") >= 2) & col("tags").contains("x") | col("s").is_null()
    assert mask(str(expr)) == bind(expr, make_table().schema).evaluate(make_table()).tolist()
    assert mask(str(expr)) == [False, False, True, False, True, False]


def test_timezone_timestamps() -> None:
    table = pa.table({"ts": pa.array([0, 3600, None], pa.timestamp("s", tz="UTC"))})
    assert three_valued("ts >= TIMESTAMP '1970-01-01 01:00:00'", table) == [False, True, None]
    assert three_valued("ts IN (TIMESTAMP '1970-01-01 01:00:00')", table) == [False, True, None]


@pytest.mark.shared
@pytest.mark.skipif(not (SHARED_DATA / "arxiv").is_dir(), reason="needs ../shared/data")
def test_arxiv_queries_match_counts() -> None:
    queries = pq.read_table(SHARED_DATA / "arxiv" / "queries.parquet").to_pylist()
    attrs = pq.read_table(SHARED_DATA / "arxiv" / "attributes.parquet")
    encoded = pq.read_table(
        SHARED_DATA / "arxiv" / "attributes.parquet",
        read_dictionary=["primary_category", "categories.list.element"],
    )
    assert len(queries) == 1000
    for q in queries:
        from_sql = parse(q["filter_sql"])
        from_json = parse(json.loads(q["filter_json"]))
        assert from_sql == from_json == parse(q["filter_json"]), q["filter_sql"]
        if from_sql is None:
            assert q["match_count"] == attrs.num_rows
            continue
        assert str(from_sql) == q["filter_sql"]
        assert from_sql.to_json() == json.loads(q["filter_json"])
        selected = bind(from_sql, attrs.schema).evaluate(attrs)
        assert int(selected.sum()) == q["match_count"], q["filter_sql"]
        if q["qid"] % 10 == 0:
            assert np.array_equal(bind(from_sql, encoded.schema).evaluate(encoded), selected)
