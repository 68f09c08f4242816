"""The attribute indexes answer every filter exactly as the pyarrow evaluator does (three-valued logic)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecdb.filters import bind, parse
from vecdb.filters.attribute_index import SPARSE_RATIO, AttributeIndex, RowSet, _and, _or

from .conftest import SHARED, SLICE
from .test_filters_properties import exprs, tables


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), exprs)
def test_index_equals_pyarrow_on_random_filters(table_rows: tuple[pa.Table, list[dict[str, Any]]], expr) -> None:
    table, _ = table_rows
    bound = bind(expr, table.schema)
    index = AttributeIndex(table)
    np.testing.assert_array_equal(index.evaluate(bound), bound.evaluate(table), err_msg=str(expr))
    assert 0.0 <= index.estimate(expr) <= 1.0


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), exprs, st.floats(0, 1), st.floats(0, 1))
def test_index_extended_by_appended_rows_equals_pyarrow(table_rows, expr, first: float, second: float) -> None:
    """After adds, the column indexes grow by the new rows (twice here) instead of being rebuilt, and
    still answer every filter exactly as pyarrow does over the whole table."""
    table, _ = table_rows
    n = table.num_rows
    a = int(first * n)
    b = a + int(second * (n - a))
    index = AttributeIndex(table.slice(0, a))
    index.build_all()
    grown = index.extended(table.slice(0, b)).extended(table)
    bound = bind(expr, table.schema)
    np.testing.assert_array_equal(grown.evaluate(bound), bound.evaluate(table), err_msg=f"{expr} at {a}, {b}")
    # every column made before the adds is carried (extended), none is left to be rebuilt on first use
    assert set(dict.keys(grown._columns)) >= set(dict.keys(index._columns)) == set(table.column_names)


def _row_set(mask: np.ndarray, sparse: bool) -> RowSet:
    return RowSet(mask.shape[0], rows=np.flatnonzero(mask)) if sparse else RowSet(mask.shape[0], mask=mask.copy())


@pytest.mark.parametrize("seed", range(20))
def test_row_sets_combine_like_masks_in_either_form(seed: int) -> None:
    """AND / OR over row lists, masks and a mix of both equal the mask arithmetic, and never touch their
    operands (masks may be shared with the column indexes)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    masks = [rng.random(n) < p for p in rng.choice([0.0, 0.001, 0.01, 0.2, 0.9, 1.0], size=int(rng.integers(1, 5)))]
    forms = rng.random(len(masks)) < 0.5
    sets = [_row_set(m, bool(f)) for m, f in zip(masks, forms)]
    want_and, want_or = np.logical_and.reduce(masks), np.logical_or.reduce(masks)
    got_and, _ = _and([(s, None) for s in sets], n)
    got_or, _ = _or([(s, None) for s in sets], n)
    np.testing.assert_array_equal(got_and.mask, want_and)
    np.testing.assert_array_equal(got_and.rows, np.flatnonzero(want_and))
    np.testing.assert_array_equal(got_or.mask, want_or)
    np.testing.assert_array_equal(got_or.rows, np.flatnonzero(want_or))
    assert got_and.count == int(want_and.sum()) and got_or.count == int(want_or.sum())
    live = rng.random(n) < 0.7
    np.testing.assert_array_equal((got_and & live).mask, want_and & live)
    for s, m in zip(sets, masks):
        np.testing.assert_array_equal(s.mask, m)


@settings(max_examples=100, deadline=None, database=None)  # (the first example compiles the kernel)
@given(st.lists(st.integers(0, 50), max_size=60), st.sampled_from([np.int64, np.int32]))
def test_distinct_rows_equals_numpy_unique(values: list[int], dtype: type) -> None:
    """The one-call sort-and-dedupe an OR of row lists goes through, duplicates, empty and one row included;
    the caller's array is left as it was."""
    from vecdb.kernels.masks import distinct_rows

    rows = np.asarray(values, dtype=dtype)
    before = rows.copy()
    got = distinct_rows(rows)
    np.testing.assert_array_equal(got, np.unique(rows))
    assert got.dtype == dtype
    np.testing.assert_array_equal(rows, before)


def test_few_matching_rows_stay_row_numbers() -> None:
    """A selective filter is answered as sorted row numbers, without an N-long mask."""
    n = 10_000
    table = pa.table({"label": pa.array([f"l{i % 500}" for i in range(n)]), "value": pa.array(np.arange(n))})
    index = AttributeIndex(table)
    selected = index.select(bind(parse("label = 'l7' AND value < 5000"), table.schema))
    assert selected.sparse and selected.count * SPARSE_RATIO <= n
    np.testing.assert_array_equal(selected.rows, np.arange(7, 5000, 500))


@pytest.mark.parametrize("where", ["value BETWEEN 100 AND 9000", "value >= 40", "value < 9.5", "value != 7",
                                   "value BETWEEN 3 AND 3", "value > 1e9", "NOT (value BETWEEN 10 AND 9990)",
                                   "value >= 500 AND value <= 7000 AND label = 'l3'",
                                   "tag = 't7' AND value BETWEEN 100 AND 9000", "'t3' = tag AND value < 2.5e3"])
def test_wide_ranges_are_masks_by_rank_equal_to_pyarrow(where: str) -> None:
    """A range holding more than 1/SPARSE_RATIO of the rows is a span of ranks, read as a mask or
    packed into bits straight from the ranks (``SortedIndex.span``, ``RowSet.bits``), and under an AND
    with a narrow operand (``tag``: 100 rows) that operand's rows are tested by rank
    (``_RangeLeaf.keep``); NULL rows (rank -1) and NaN (sorted last) fall where pyarrow puts them."""
    rng = np.random.default_rng(5)
    n = 10_000
    values = rng.permutation(n).astype(np.float64)
    values[rng.random(n) < 0.05] = np.nan
    nulls = rng.random(n) < 0.1
    table = pa.table({"value": pa.array(values, mask=nulls),
                      "label": pa.array([f"l{i % 8}" for i in range(n)]),
                      "tag": pa.array([f"t{i % 100}" for i in range(n)])})
    bound = bind(parse(where), table.schema)
    got = AttributeIndex(table).select(bound)
    np.testing.assert_array_equal(got.mask, bound.evaluate(table), err_msg=where)
    assert got.count == int(bound.evaluate(table).sum())
    for n_bits in (n, n - 3):  # a batch's walk packs the index's rows (fewer when rows were added since)
        bits = np.full((n_bits + 7) // 8, 0xAA, np.uint8)
        AttributeIndex(table).select(bound).bits(n_bits, bits)  # a fresh set: packed from the ranks
        np.testing.assert_array_equal(bits, np.packbits(bound.evaluate(table)[:n_bits], bitorder="little"))
    if where == "value BETWEEN 100 AND 9000":
        assert not got.sparse  # the span of ranks, not a list of 7,000 rows
    if where.startswith("tag"):
        assert got.sparse  # the tag's rows, kept by rank


def test_index_equals_pyarrow_on_the_slice_queries():
    attrs = pq.read_table(SLICE / "attributes.parquet")
    index = AttributeIndex(attrs)
    for where in pq.read_table(SLICE / "queries.parquet").column("filter_sql").to_pylist():
        if not where:
            continue
        bound = bind(parse(where), attrs.schema)
        np.testing.assert_array_equal(index.evaluate(bound), bound.evaluate(attrs), err_msg=where)


@pytest.mark.shared
def test_index_counts_match_the_arxiv_match_counts():
    attrs = pq.read_table(SHARED / "arxiv" / "attributes.parquet")
    queries = pq.read_table(SHARED / "arxiv" / "queries.parquet")
    index = AttributeIndex(attrs)
    for where, count in zip(queries.column("filter_json").to_pylist(), queries.column("match_count").to_pylist()):
        expr = parse(where)
        if expr is None:
            continue
        assert int(index.evaluate(bind(expr, attrs.schema)).sum()) == count, where


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), exprs)
def test_prepared_filters_answer_as_the_walk(table_rows: tuple[pa.Table, list[dict[str, Any]]], expr) -> None:
    """A filter of the usual shapes runs as a prepared call (``AttributeIndex._prepare``) from its first
    evaluation on: each call, the first and the next, returns the rows the AST walk returns, in the
    same form (row numbers or mask, in the same order)."""
    table, _ = table_rows
    index = AttributeIndex(table)
    bound = bind(expr, table.schema)
    walked = index._eval(expr, False)[0]
    for got in (index.select(bound), index.select(bound)):
        assert got.sparse == walked.sparse, str(expr)
        np.testing.assert_array_equal(got.listed(), walked.listed(), err_msg=str(expr))
        np.testing.assert_array_equal(got.mask, walked.mask, err_msg=str(expr))
        assert got.count == walked.count


def test_usual_shapes_are_prepared_and_look_their_keys_up_each_call(monkeypatch) -> None:
    table = pa.table({"cat": ["a", "b", None, "a", "c", "b"] * 50, "tags": [["t", "u"], [], None, ["u"], ["t"], ["v"]] * 50,
                      "x": pa.array([1, 5, 3, None, 2, 4] * 50, pa.int32())})
    index = AttributeIndex(table)
    shapes = {"cat = 'a'": True, "'t' IN tags": True, "cat IN ('a', 'c')": True, "x BETWEEN 2 AND 4": True,
              "x >= 2 AND cat = 'a'": True, "cat = 'b' OR x < 2": True, "(cat = 'a' OR cat = 'b') AND x > 1": True,
              "'t' IN tags OR cat = 'b'": True, "cat IN ('a', 'b') OR 'u' IN tags": True,
              "NOT cat = 'a'": False, "cat != 'a'": False, "cat LIKE 'a%'": False, "x IS NULL": False,
              "cat NOT IN ('a')": False, "x IN (1, 2)": False, "cat = 'a' OR x IS NULL": False}
    lookups = []
    cat = index.column("cat")
    real = cat.lookup
    monkeypatch.setattr(cat, "lookup", lambda key: lookups.append(key) or real(key))
    for where, prepared in shapes.items():
        expr = parse(where)
        bound = bind(expr, table.schema)
        first = index.select(bound).mask
        assert (index._prepared[expr] is not None) == prepared, where
        np.testing.assert_array_equal(first, bound.evaluate(table), err_msg=where)
        np.testing.assert_array_equal(index.select(bound).mask, first, err_msg=where)
    lookups.clear()
    for _ in range(3):
        index.select(bind(parse("cat = 'a' OR cat = 'c'"), table.schema))
    assert lookups == ["a", "c"] * 3  # nothing read from the rows is kept between calls


def test_prepared_filters_keep_no_cycle_through_the_index() -> None:
    """An attribute index that prepared filters is freed when its snapshot drops it, without waiting for
    the cycle collector (its prepared calls hold its column indexes, not it)."""
    import gc
    import weakref

    table = pa.table({"cat": ["a", "b", "c"] * 40, "x": pa.array(list(range(120)), pa.int64())})
    index = AttributeIndex(table)
    for where in ("x >= 2 AND cat = 'a'", "cat = 'a' OR x < 5", "x BETWEEN 3 AND 9", "cat IN ('a', 'b')"):
        index.select(bind(parse(where), table.schema))
    assert all(run is not None for run in index._prepared.values())
    ref = weakref.ref(index)
    gc.disable()
    try:
        del index
        assert ref() is None
    finally:
        gc.enable()
