"""Strict attribute types: a value of the wrong type is a SchemaError, never a silent cast.

The policy is the table in ``vecdb/storage/attributes.py``'s docstring; the property test at the end
checks it against an independent Python oracle: stored values equal the inputs exactly, or SchemaError,
and SchemaError exactly when the oracle says a value cannot be stored.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import vecdb
from vecdb.errors import SchemaError
from vecdb.storage.attributes import conform, to_table


def store(values, source: pa.DataType, target: pa.DataType) -> list:
    table = pa.table({"col": pa.array(values, type=source)})
    out = conform(table, pa.schema([("col", target)]))
    assert out.schema.field("col").type == target
    return out.column("col").to_pylist()


REFUSED = [
    # (values, given type, column type, the row named)
    (["a", "b", "5"], pa.string(), pa.int64(), 0),
    ([None, "5"], pa.string(), pa.int64(), 1),
    ([1, 123], pa.int64(), pa.string(), 0),
    ([1, 2], pa.int64(), pa.bool_(), 0),
    ([0, 2], pa.int8(), pa.bool_(), 0),
    (["false"], pa.string(), pa.bool_(), 0),
    ([True], pa.bool_(), pa.int64(), 0),
    ([5.0], pa.float64(), pa.int64(), 0),
    ([None, 1.5], pa.float32(), pa.int32(), 1),
    (["2020-01-01"], pa.string(), pa.date32(), 0),
    ([dt.date(2020, 1, 1)], pa.date32(), pa.timestamp("us"), 0),
    ([dt.datetime(2020, 1, 1)], pa.timestamp("us", tz="UTC"), pa.date32(), 0),
    ([dt.datetime(2020, 1, 1)], pa.timestamp("us"), pa.timestamp("us", tz="UTC"), 0),
    ([[1]], pa.list_(pa.int64()), pa.list_(pa.string()), 0),
    ([1], pa.int64(), pa.list_(pa.int64()), 0),
    # values that the column's type cannot hold exactly
    ([1, 2, 3, 3_000_000_000], pa.int64(), pa.int32(), 3),
    ([1, -1], pa.int64(), pa.uint8(), 1),
    ([2**63 - 1], pa.uint64(), pa.int32(), 0),
    ([0, 2**53 + 1], pa.int64(), pa.float64(), 1),
    ([2**24 + 1], pa.int32(), pa.float32(), 0),
    ([0.5, 0.1], pa.float64(), pa.float32(), 1),
    ([dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 2, 3)], pa.timestamp("ns"), pa.date32(), 1),
    ([dt.datetime(2020, 1, 1, 0, 0, 0, 5)], pa.timestamp("us"), pa.timestamp("ms"), 0),
    ([86_400_000 + 5], pa.date64(), pa.date32(), 0),
    ([10**12], pa.timestamp("s"), pa.timestamp("ns"), 0),
    ([[1, 2], [3, 300]], pa.list_(pa.int64()), pa.list_(pa.int8()), 1),
    ([None, None], pa.string(), pa.int64(), None),  # a type mismatch even with no values
]


@pytest.mark.parametrize("values, source, target, row", REFUSED,
                         ids=[f"{s}->{t}" for _, s, t, _ in REFUSED])
def test_refused(values, source, target, row):
    with pytest.raises(SchemaError) as info:
        store(values, source, target)
    message = str(info.value)
    assert "column 'col'" in message and str(target) in message and str(source) in message
    if row is not None:
        assert f"at row {row} " in message
    else:
        assert "all null" in message


ACCEPTED = [
    # (values, given type, column type, values stored)
    ([1, None, -3], pa.int8(), pa.int64(), [1, None, -3]),
    ([1, 2**31 - 1], pa.int32(), pa.int64(), [1, 2**31 - 1]),
    ([255, 2**32 - 1], pa.uint32(), pa.int64(), [255, 2**32 - 1]),
    ([1, -2**31], pa.int64(), pa.int32(), [1, -2**31]),  # narrowing: every value fits
    ([0, 255], pa.int64(), pa.uint8(), [0, 255]),
    ([3, -2**53], pa.int64(), pa.float64(), [3.0, -2.0**53]),
    ([3, 2**24], pa.int32(), pa.float32(), [3.0, 2.0**24]),
    ([0.1, None], pa.float32(), pa.float64(), [float(np.float32(0.1)), None]),
    ([0.5, float("inf"), None], pa.float64(), pa.float32(), [0.5, float("inf"), None]),
    ([dt.date(2020, 2, 29)], pa.date32(), pa.date64(), [dt.date(2020, 2, 29)]),
    ([dt.date(2020, 2, 29)], pa.date64(), pa.date32(), [dt.date(2020, 2, 29)]),
    ([dt.datetime(2020, 2, 29), None], pa.timestamp("ns"), pa.date32(), [dt.date(2020, 2, 29), None]),
    ([dt.datetime(2020, 2, 29)], pa.timestamp("s"), pa.date64(), [dt.date(2020, 2, 29)]),
    ([dt.datetime(2020, 1, 1, 0, 0, 1)], pa.timestamp("ns"), pa.timestamp("ms"),
     [dt.datetime(2020, 1, 1, 0, 0, 1)]),
    ([dt.datetime(2020, 1, 1, 0, 0, 1)], pa.timestamp("s", tz="UTC"), pa.timestamp("us", tz="UTC"),
     [dt.datetime(2020, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc)]),
    (["a", None, "é"], pa.string(), pa.large_string(), ["a", None, "é"]),
    (["a"], pa.large_string(), pa.string(), ["a"]),
    (["a"], pa.string_view(), pa.string(), ["a"]),
    ([b"\x00"], pa.binary(), pa.large_binary(), [b"\x00"]),
    ([["a"], None, []], pa.list_(pa.string()), pa.list_(pa.large_string()), [["a"], None, []]),
    ([["a"], []], pa.large_list(pa.large_string()), pa.list_(pa.string()), [["a"], []]),
    ([[], []], pa.list_(pa.null()), pa.list_(pa.string()), [[], []]),
    ([[1, 2]], pa.list_(pa.int64()), pa.list_(pa.int16()), [[1, 2]]),
    ([None, None], pa.null(), pa.int64(), [None, None]),
    ([None], pa.null(), pa.list_(pa.string()), [None]),
    ([None], pa.null(), pa.struct([("a", pa.int64())]), [None]),
]


@pytest.mark.parametrize("values, source, target, expected", ACCEPTED,
                         ids=[f"{s}->{t}" for _, s, t, _ in ACCEPTED])
def test_accepted(values, source, target, expected):
    got = store(values, source, target)
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]


def test_nan_stays_nan():
    got = store([float("nan"), 1.0], pa.float64(), pa.float32())
    assert math.isnan(got[0]) and got[1] == 1.0


def test_dictionary_to_string():
    values = pa.array(["x", "y", "x", None]).dictionary_encode()
    table = to_table(pa.table({"col": values}), 4)
    assert conform(table, pa.schema([("col", pa.string())])).column(0).to_pylist() == ["x", "y", "x", None]
    # conform alone decodes too (a table that did not pass through to_table)
    out = conform(pa.table({"col": values}), pa.schema([("col", pa.large_string())]))
    assert out.column(0).to_pylist() == ["x", "y", "x", None]
    with pytest.raises(SchemaError, match="'col'"):
        conform(pa.table({"col": values}), pa.schema([("col", pa.int64())]))


def test_chunked_column_row_is_counted_across_chunks():
    column = pa.chunked_array([pa.array([1, 2], pa.int64()), pa.array([3, 300], pa.int64())])
    with pytest.raises(SchemaError, match="at row 3 "):
        conform(pa.table({"col": column}), pa.schema([("col", pa.int8())]))


def test_missing_and_unknown_columns_unchanged():
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    out = conform(pa.table({"a": [1, 2]}), schema)
    assert out.column("b").to_pylist() == [None, None]
    with pytest.raises(SchemaError, match="unknown attribute column"):
        conform(pa.table({"zz": [1]}), schema)


# ---------------------------------------------------------------------- through a collection
def test_collection_add_refuses_and_writes_nothing(tmp_path):
    coll = vecdb.create(tmp_path / "c", dim=4)
    coll.add(np.ones((2, 4)), {"year": [2020, 2021], "name": ["a", "b"], "ok": [True, False]})
    version = coll.version
    for bad in ({"year": ["5"]}, {"name": [123]}, {"ok": [2]}, {"ok": ["false"]}, {"year": [5.0]}):
        with pytest.raises(SchemaError, match=f"column '{next(iter(bad))}'"):
            coll.add(np.ones((1, 4)), bad)
    assert coll.version == version and len(coll) == 2
    ids = coll.add(np.ones((1, 4)), {"year": np.array([2022], dtype=np.int16)})  # widening: accepted
    assert coll.get(ids)["year"].to_pylist() == [2022]


def test_pandas_datetimes_into_a_date_column(tmp_path):
    pd = pytest.importorskip("pandas")
    coll = vecdb.create(tmp_path / "c", dim=4)
    coll.add(np.ones((1, 4)), {"day": [dt.date(2020, 1, 1)]})
    ids = coll.add(np.ones((2, 4)), pd.DataFrame({"day": pd.to_datetime(["2021-03-04", "2021-03-05"])}))
    assert coll.get(ids)["day"].to_pylist() == [dt.date(2021, 3, 4), dt.date(2021, 3, 5)]
    with pytest.raises(SchemaError, match="column 'day' .* at row 1 "):
        coll.add(np.ones((2, 4)), pd.DataFrame({"day": pd.to_datetime(["2021-03-04 00:00", "2021-03-05 12:00"])}))
    with pytest.raises(SchemaError, match="Int64"):  # a pandas int column with a gap is float64
        coll2 = vecdb.create(tmp_path / "d", dim=4)
        coll2.add(np.ones((1, 4)), {"n": [1]})
        coll2.add(np.ones((2, 4)), pd.DataFrame({"n": [1, None]}))


def test_pandas_mixed_object_column_is_a_schema_error():
    pd = pytest.importorskip("pandas")
    with pytest.raises(SchemaError, match="pandas"):
        to_table(pd.DataFrame({"x": [1, "a"]}), 2)


def test_polars_large_string_and_categorical(tmp_path):
    pl = pytest.importorskip("polars")
    coll = vecdb.create(tmp_path / "c", dim=4)
    coll.add(np.ones((1, 4)), {"name": ["a"], "n": [1]})
    frame = pl.DataFrame({"name": pl.Series(["b", "c"], dtype=pl.Categorical), "n": pl.Series([2, 3], dtype=pl.Int32)})
    ids = coll.add(np.ones((2, 4)), frame)
    got = coll.get(ids)
    assert got["name"].to_pylist() == ["b", "c"] and got["n"].to_pylist() == [2, 3]
    with pytest.raises(SchemaError, match="column 'n'"):
        coll.add(np.ones((1, 4)), pl.DataFrame({"name": ["d"], "n": ["4"]}))


# ---------------------------------------------------------------------- property: exact or refused
def _int_type(bits, signed):
    return getattr(pa, f"{'' if signed else 'u'}int{bits}")()


INT_TYPES = [_int_type(b, s) for b in (8, 16, 32, 64) for s in (True, False)]
TYPES = INT_TYPES + [
    pa.float32(), pa.float64(), pa.bool_(), pa.string(), pa.large_string(), pa.date32(), pa.date64(),
    pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us"), pa.timestamp("ns"),
    pa.timestamp("us", tz="UTC"), pa.list_(pa.int64()), pa.list_(pa.int8()), pa.list_(pa.string()),
    pa.large_list(pa.large_string()), pa.list_(pa.float32()), pa.list_(pa.float64()), pa.null(),
]
NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
DAY_NS = 86_400 * 10**9


def _range(t):
    bits = t.bit_width
    return (0, 2**bits - 1) if pa.types.is_unsigned_integer(t) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _is_str(t):
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_list(t):
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def values_of(t: pa.DataType):
    """Values of type ``t``, biased towards the edges where casts lose things. Timestamps are integers
    in their unit (no Python datetime can hold nanoseconds without pandas)."""
    if pa.types.is_null(t):
        return st.none()
    if pa.types.is_integer(t):
        lo, hi = _range(t)
        edges = [x for x in (lo, hi, 0, 1, 255, 256, 2**24, 2**24 + 1, 2**53, 2**53 + 1, 2**31) if lo <= x <= hi]
        v = st.one_of(st.integers(lo, hi), st.sampled_from(edges))
    elif pa.types.is_floating(t):
        v = st.one_of(st.floats(width=t.bit_width), st.sampled_from([0.5, 0.1, 3.0, 2.0**60, -0.0]))
        if pa.types.is_float32(t):
            v = v.map(lambda x: float(np.float32(x)))
    elif pa.types.is_boolean(t):
        v = st.booleans()
    elif _is_str(t):
        v = st.one_of(st.text(max_size=5), st.sampled_from(["5", "false", "2020-01-01"]))
    elif pa.types.is_date(t):
        v = st.dates(dt.date(1900, 1, 1), dt.date(2200, 1, 1))
    elif pa.types.is_timestamp(t):
        per = NS[t.unit]
        v = st.one_of(st.integers(-2**62 // per, 2**62 // per),
                      st.integers(-10**5, 10**5).map(lambda d: d * DAY_NS // per),
                      st.integers(-10**9, 10**9).map(lambda s: s * 10**9 // per))
    elif _is_list(t):
        v = st.lists(values_of(t.value_type), max_size=3)
    else:
        raise AssertionError(t)
    return st.one_of(st.none(), v)


def make(values: list, t: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(t):
        return pa.array(values, pa.int64()).cast(t)
    return pa.array(values, t)


def canon(array: pa.Array) -> list:
    """Python values to compare: dates and timestamps as integer nanoseconds since the epoch (UTC)."""
    t = array.type
    if pa.types.is_timestamp(t):
        return [None if v is None else v * NS[t.unit] for v in array.cast(pa.int64()).to_pylist()]
    if pa.types.is_date32(t):
        return [None if v is None else v * DAY_NS for v in array.cast(pa.int32()).to_pylist()]
    if pa.types.is_date64(t):
        return [None if v is None else v * 10**6 for v in array.cast(pa.int64()).to_pylist()]
    return array.to_pylist()


def equal(stored, given) -> bool:
    if given is None or stored is None:
        return given is None and stored is None
    if isinstance(given, list):
        return isinstance(stored, list) and len(stored) == len(given) and all(map(equal, stored, given))
    if isinstance(given, float) and math.isnan(given):
        return isinstance(stored, float) and math.isnan(stored)
    if isinstance(given, bool) != isinstance(stored, bool) or isinstance(given, str) != isinstance(stored, str):
        return False
    return stored == given


def kinds_allow(source: pa.DataType, target: pa.DataType) -> bool:
    """The oracle, type level: which pairs get as far as a look at their values."""
    if pa.types.is_null(source) or source == target:
        return True
    if pa.types.is_integer(source):
        return pa.types.is_integer(target) or pa.types.is_floating(target)
    if pa.types.is_floating(source):
        return pa.types.is_floating(target)
    if _is_str(source):
        return _is_str(target)
    if pa.types.is_date(source):
        return pa.types.is_date(target)
    if pa.types.is_timestamp(source):
        return (pa.types.is_date(target) and source.tz is None) or (
            pa.types.is_timestamp(target) and source.tz == target.tz)
    if _is_list(source):
        return _is_list(target) and kinds_allow(source.value_type, target.value_type)
    return False


def value_allowed(v, source: pa.DataType, target: pa.DataType) -> bool:
    """The oracle, value level (the pair already passed ``kinds_allow``): can ``v`` be stored exactly?"""
    if v is None or pa.types.is_null(source) or source == target:
        return True
    if pa.types.is_integer(source):
        if pa.types.is_integer(target):
            lo, hi = _range(target)
            return lo <= v <= hi
        return abs(v) <= (2**24 if pa.types.is_float32(target) else 2**53)  # Arrow's exact-integer range
    if pa.types.is_floating(source):
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: not equal
            return pa.types.is_float64(target) or math.isnan(v) or float(np.float32(v)) == v
    if pa.types.is_date64(source):
        return v == v  # Python dates are whole days
    if pa.types.is_timestamp(source):
        ns = v * NS[source.unit]
        if pa.types.is_date(target):
            return ns % DAY_NS == 0
        return ns % NS[target.unit] == 0  # generated values stay within timestamp[ns]'s range
    if _is_list(source):
        return all(value_allowed(x, source.value_type, target.value_type) for x in v)
    return True


@st.composite
def cases(draw):
    source = draw(st.sampled_from(TYPES))
    targets = [t for t in TYPES if not pa.types.is_null(t)]
    near = [t for t in targets if kinds_allow(source, t)]  # half the time a pair that gets to the values
    target = draw(st.sampled_from(near if near and draw(st.booleans()) else targets))
    values = draw(st.lists(values_of(source), max_size=6))
    return source, target, values


@settings(max_examples=500, deadline=None)
@given(cases())
def test_stored_exactly_or_refused(case):
    source, target, values = case
    given_array = make(values, source)
    try:
        out = conform(pa.table({"col": given_array}), pa.schema([("col", target)]))
    except SchemaError as exc:
        assert "column 'col'" in str(exc) and str(target) in str(exc)
        refused = True
    else:
        refused = False
        stored = out.column("col").combine_chunks()
        assert stored.type == target
        got, want = canon(stored), canon(given_array)
        assert len(got) == len(want)
        for s, g in zip(got, want):
            assert equal(s, g), (s, g)
    expected_ok = kinds_allow(source, target) and all(value_allowed(v, source, target) for v in values)
    event(f"{'same type' if source == target else 'cast'}: {'refused' if refused else 'stored'}")
    assert refused == (not expected_ok), (source, target, values)
