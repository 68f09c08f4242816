"""The attribute indexes answer every filter exactly as the pyarrow evaluator does (three-valued logic)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings

from vecdb.filters import bind, parse
from vecdb.filters.attribute_index import AttributeIndex

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
