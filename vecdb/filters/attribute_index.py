"""Attribute indexes: a filter costs about the number of rows it touches, not a pass over every column.

Per column, built on first use over the collection's table:

- ``InvertedIndex`` for strings, booleans and list columns (``list<string>`` labels): value -> sorted
  row ids in one CSR layout (``keys``, ``offsets``, ``rows``);
- ``SortedIndex`` for integers, floats, dates and timestamps: the non-null values sorted with their
  rows, so a range is two binary searches and a slice.

``AttributeIndex.evaluate(bound)`` walks the bound filter's AST in SQL's three-valued logic, carrying
for each node the rows that are TRUE and the rows that are UNKNOWN (NULL); leaves no index can answer
(string ranges, NaN-holding floats) fall back to pyarrow for that leaf alone. ``estimate`` gives a
selectivity from the same structures without evaluating anything (for ``explain``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecdb.errors import FilterError
from vecdb.filters.ast import And, Between, Compare, Contains, ContainsAll, ContainsAny, Expr, In, IsNull, Not, Or
from vecdb.filters.evaluate import BoundFilter, _Binder, _Column, _scalar, bind

Tri = tuple[np.ndarray, "np.ndarray | None"]  # (TRUE rows mask, UNKNOWN rows mask or None)


def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _null_mask(array: pa.Array) -> np.ndarray | None:
    if array.null_count == 0:
        return None
    return np.ascontiguousarray(pc.is_null(array).to_numpy(zero_copy_only=False), dtype=bool)


@dataclasses.dataclass
class InvertedIndex:
    """value -> rows holding it (for lists: rows whose list holds it), rows sorted per value."""

    keys: dict[Any, int]
    offsets: np.ndarray
    rows: np.ndarray
    nulls: np.ndarray | None

    @classmethod
    def build(cls, array: pa.Array) -> "InvertedIndex":
        n = len(array)
        is_list = pa.types.is_list(array.type) or pa.types.is_large_list(array.type) \
            or pa.types.is_fixed_size_list(array.type)
        values = pc.list_flatten(array) if is_list else array
        parents = (pc.list_parent_indices(array).to_numpy() if is_list else np.arange(n)).astype(np.int64)
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if pa.types.is_boolean(values.type):
            dictionary = [False, True]
            codes = pc.cast(values, pa.int8()).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            encoded = pc.dictionary_encode(values)
            dictionary = encoded.dictionary.to_pylist()
            codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        keep = codes >= 0
        pair = np.unique(codes[keep] * max(n, 1) + parents[keep])  # sorted by value, then row; deduped
        code, rows = np.divmod(pair, max(n, 1))
        offsets = np.zeros(len(dictionary) + 1, dtype=np.int64)
        np.cumsum(np.bincount(code, minlength=len(dictionary)), out=offsets[1:])
        return cls({v: i for i, v in enumerate(dictionary)}, offsets, rows, _null_mask(array))

    def lookup(self, value: Any) -> np.ndarray:
        code = self.keys.get(value)
        if code is None:
            return self.rows[:0]
        return self.rows[self.offsets[code]: self.offsets[code + 1]]

    def count(self, value: Any) -> int:
        code = self.keys.get(value)
        return 0 if code is None else int(self.offsets[code + 1] - self.offsets[code])


@dataclasses.dataclass
class SortedIndex:
    """Non-null values sorted, with their rows: a range is two binary searches."""

    values: np.ndarray
    rows: np.ndarray
    nulls: np.ndarray | None
    type: pa.DataType

    @classmethod
    def build(cls, array: pa.Array) -> "SortedIndex | None":
        t = array.type
        if pa.types.is_dictionary(t):
            array, t = array.dictionary_decode(), t.value_type
        if pa.types.is_date32(t) or pa.types.is_date64(t) or pa.types.is_timestamp(t):
            numbers = pc.cast(pc.cast(array, pa.int64()) if not pa.types.is_date32(t) else pc.cast(array, pa.int32()),
                              pa.int64())
        elif pa.types.is_floating(t):
            numbers = pc.cast(array, pa.float64())
        else:
            numbers = pc.cast(array, pa.int64())
        nulls = _null_mask(array)
        valid_rows = np.flatnonzero(~nulls) if nulls is not None else np.arange(len(array))
        vals = numbers.drop_null().to_numpy(zero_copy_only=False)
        if vals.dtype.kind == "f" and np.isnan(vals).any():
            return None  # NaN ordering differs between numpy and Arrow: leave this column to pyarrow
        order = np.argsort(vals, kind="stable")
        return cls(vals[order], valid_rows[order], nulls, t)

    def number(self, scalar: pa.Scalar) -> float | int | None:
        """The literal in the index's number space, or None when it cannot be compared exactly."""
        t = self.type
        if pa.types.is_temporal(t):
            if scalar.type != t:
                return None  # e.g. a date column against a timestamp literal: pyarrow decides
            return int(pc.cast(pa.array([scalar.as_py()], t), pa.int64() if not pa.types.is_date32(t)
                               else pa.int32())[0].as_py())
        value = scalar.as_py()
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def range(self, low: Any, low_inclusive: bool, high: Any, high_inclusive: bool) -> np.ndarray:
        a = 0 if low is None else np.searchsorted(self.values, low, "left" if low_inclusive else "right")
        b = len(self.values) if high is None else np.searchsorted(self.values, high,
                                                                  "right" if high_inclusive else "left")
        return self.rows[a:b] if b > a else self.rows[:0]


_RANGES = {"=": (True, True), "<": (None, False), "<=": (None, True), ">": (False, None), ">=": (True, None)}


class AttributeIndex:
    """Lazily built per-column indexes over one table (rebuild it when the table changes)."""

    def __init__(self, table: pa.Table, columns: dict[str, InvertedIndex | SortedIndex | None] | None = None):
        """``columns``: column indexes already at hand (read from disk, see
        ``vecdb.storage.attribute_indexes``), used as the cache as given (not copied: a dict subclass
        that materialises a column on first access keeps loading lazy); None for a column means
        "left to pyarrow". Columns it lacks are built on first use as usual."""
        self.table = table
        self.n = table.num_rows
        self._binder = _Binder(table.schema)
        self._columns: dict[str, InvertedIndex | SortedIndex | None] = {} if columns is None else columns

    def column(self, name: str) -> InvertedIndex | SortedIndex | None:
        if name not in self._columns:
            info = self._binder.column(name)
            array = _array(self.table.column(name))
            if info.is_list or info.kind in ("string", "bool"):
                self._columns[name] = InvertedIndex.build(array)
            else:
                self._columns[name] = SortedIndex.build(array)
        return self._columns[name]

    def build_all(self) -> dict[str, InvertedIndex | SortedIndex | None]:
        """Build every column's index now instead of on first use (to save them with the collection's
        indexes); returns them by column name. Columns filters cannot use (unsupported types, or an
        index Arrow cannot build) are left out, and stay as they were: an error when a filter names them."""
        built: dict[str, InvertedIndex | SortedIndex | None] = {}
        for name in self.table.column_names:
            try:
                built[name] = self.column(name)
            except (FilterError, pa.ArrowException):
                continue
        return built

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, bound: BoundFilter) -> np.ndarray:
        """The filter's rows as a bool mask (NULL -> False), equal to ``bound.evaluate(table)``."""
        true, _ = self._eval(bound.expr)
        return true

    def _mask(self, rows: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.n, dtype=bool)
        mask[rows] = True
        return mask

    def _fallback(self, expr: Expr) -> Tri:
        result = bind(expr, self.table.schema).evaluate_arrow(self.table)
        true = np.ascontiguousarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)
        return true, _null_mask(result)

    def _eval(self, expr: Expr) -> Tri:
        if isinstance(expr, And):  # And and Or (Or subclasses And)
            parts = [self._eval(op) for op in expr.operands]
            return _or(parts) if isinstance(expr, Or) else _and(parts)
        if isinstance(expr, Not):
            true, unknown = self._eval(expr.operand)
            false = ~true if unknown is None else ~(true | unknown)
            return false, unknown
        if isinstance(expr, IsNull):
            self._binder.column(expr.column)
            nulls = _null_mask(_array(self.table.column(expr.column)))
            nulls = np.zeros(self.n, bool) if nulls is None else nulls
            return (~nulls if expr.negated else nulls), None
        info = self._binder.column(expr.column)
        if isinstance(expr, In) and not expr.values:  # x IN () is false, x NOT IN () true, even for NULL
            return np.full(self.n, expr.negated), None
        index = self.column(expr.column)
        if index is None:
            return self._fallback(expr)
        rows = self._rows(expr, info, index)
        if rows is None:
            return self._fallback(expr)
        true, negate = rows
        if negate:  # != / NOT IN: the non-null rows that are not in ``true``
            true = ~true if index.nulls is None else ~(true | index.nulls)
        return true, index.nulls

    def _rows(self, expr: Expr, info: _Column, index: InvertedIndex | SortedIndex) -> tuple[np.ndarray, bool] | None:
        """(mask of rows matching the positive form of ``expr``, whether to negate) or None (fallback)."""
        if isinstance(index, InvertedIndex):
            if isinstance(expr, Compare) and expr.op in ("=", "!="):
                return self._mask(index.lookup(_scalar(info, expr.value).as_py())), expr.op == "!="
            if isinstance(expr, In):
                keys = [_scalar(info, v).as_py() for v in expr.values]
                return self._mask(np.concatenate([index.lookup(k) for k in keys] or [index.rows[:0]])), expr.negated
            if isinstance(expr, ContainsAll):
                keys = list(dict.fromkeys(_scalar(info, v).as_py() for v in expr.values))
                if not keys:
                    valid = np.ones(self.n, bool) if index.nulls is None else ~index.nulls
                    return valid, False
                mask = self._mask(index.lookup(keys[0]))
                for key in keys[1:]:
                    mask &= self._mask(index.lookup(key))
                return mask, False
            if isinstance(expr, (Contains, ContainsAny)):
                values = (expr.value,) if isinstance(expr, Contains) else expr.values
                keys = [_scalar(info, v).as_py() for v in values]
                return self._mask(np.concatenate([index.lookup(k) for k in keys] or [index.rows[:0]])), False
            return None
        if isinstance(expr, Between):
            low, high = index.number(_scalar(info, expr.low)), index.number(_scalar(info, expr.high))
            if low is None or high is None:
                return None
            return self._mask(index.range(low, True, high, True)), False
        if isinstance(expr, Compare):
            value = index.number(_scalar(info, expr.value))
            if value is None:
                return None
            op, negate = ("=", True) if expr.op == "!=" else (expr.op, False)
            low_inc, high_inc = _RANGES[op]
            low = value if low_inc is not None else None
            high = value if high_inc is not None else None
            return self._mask(index.range(low, bool(low_inc), high, bool(high_inc))), negate
        if isinstance(expr, In):
            mask = np.zeros(self.n, bool)
            for v in expr.values:
                value = index.number(_scalar(info, v))
                if value is None:
                    return None
                mask[index.range(value, True, value, True)] = True
            return mask, expr.negated
        return None

    # ------------------------------------------------------------------ estimation
    def estimate(self, expr: Expr) -> float:
        """Estimated fraction of rows passing, from counts in the indexes (independence for AND/OR)."""
        if self.n == 0:
            return 0.0
        if isinstance(expr, Or):
            miss = 1.0
            for op in expr.operands:
                miss *= 1.0 - self.estimate(op)
            return 1.0 - miss
        if isinstance(expr, And):
            return float(np.prod([self.estimate(op) for op in expr.operands]))
        if isinstance(expr, Not):
            return 1.0 - self.estimate(expr.operand)
        try:
            index = self.column(expr.column) if not isinstance(expr, IsNull) else None
            info = self._binder.column(expr.column)
        except Exception:  # noqa: BLE001 - an estimate never raises; binding reports errors
            return 0.5
        if isinstance(index, InvertedIndex):
            if isinstance(expr, Compare) and expr.op in ("=", "!="):
                f = index.count(_scalar(info, expr.value).as_py()) / self.n
                return 1.0 - f if expr.op == "!=" else f
            if isinstance(expr, (Contains, ContainsAny, In)):
                values = (expr.value,) if isinstance(expr, Contains) else expr.values
                f = min(1.0, sum(index.count(_scalar(info, v).as_py()) for v in values) / self.n)
                return 1.0 - f if isinstance(expr, In) and expr.negated else f
        if isinstance(index, SortedIndex) and isinstance(expr, (Between, Compare)):
            try:
                return self._eval(expr)[0].mean()
            except Exception:  # noqa: BLE001
                return 0.5
        return 1.0 / 3.0


def _and(parts: list[Tri]) -> Tri:
    true = parts[0][0].copy()
    for t, _ in parts[1:]:
        true &= t
    if all(u is None for _, u in parts):
        return true, None
    false = np.zeros_like(true)
    for t, u in parts:
        false |= ~t if u is None else ~(t | u)
    return true, ~(true | false)


def _or(parts: list[Tri]) -> Tri:
    true = parts[0][0].copy()
    for t, _ in parts[1:]:
        true |= t
    if all(u is None for _, u in parts):
        return true, None
    unknown = np.zeros_like(true)
    for _, u in parts:
        if u is not None:
            unknown |= u
    return true, unknown & ~true


__all__ = ["AttributeIndex", "InvertedIndex", "SortedIndex"]
