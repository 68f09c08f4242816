"""Exact numeric comparison, shared by the pyarrow evaluator and the attribute index.

Integer columns are compared with integer and float literals exactly: no literal is rounded onto a
column value and no column value is rounded to a float (``v = 9007199254740992.0`` does not hold for
9007199254740993; a literal outside the column's range compares as greater or less than every value).
Float columns are compared with integer literals exactly too. NaN is ordered as DuckDB and PostgreSQL
order it: greater than every number (infinity included) and equal to itself.

A comparison ``column op literal`` (op one of ``= < <= > >=``) becomes ``Sides``: ``True`` (every
non-NULL row), ``False`` (no row), or a tuple of one-sided bounds ``(op, v)`` all of which must hold,
with ``v`` a value of the column's own number space (an int in the column type's range, or a float).
For a float column a NaN row satisfies the bounds exactly when none of them bounds it from above.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import pyarrow as pa

Number = Union[int, float]
Sides = Union[bool, tuple[tuple[str, Number], ...]]


def _bounds_of(t: pa.DataType) -> tuple[int, int]:
    bits = t.bit_width
    return (0, 2**bits - 1) if pa.types.is_unsigned_integer(t) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


# by Arrow type id: binding a filter asks once per integer literal and bound (np.iinfo cost ~1 us a call)
_INT_RANGES = {t.id: _bounds_of(t) for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(),
                                              pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())}


def int_range(t: pa.DataType) -> tuple[int, int]:
    """Smallest and largest value of an Arrow integer type."""
    bounds = _INT_RANGES.get(t.id)
    return bounds if bounds is not None else _bounds_of(t)


def _int_sides(t: pa.DataType, op: str, value: Number) -> Sides:
    lo, hi = int_range(t)
    if isinstance(value, float) and not value.is_integer():
        if op == "=":
            return False
        op = "<=" if op in ("<", "<=") else ">="
        value = math.floor(value) if op == "<=" else math.ceil(value)
    v = int(value)
    if op == "<":
        op, v = "<=", v - 1
    elif op == ">":
        op, v = ">=", v + 1
    if op == "=":
        return ((">=", v), ("<=", v)) if lo <= v <= hi else False
    if op == "<=":
        return True if v >= hi else False if v < lo else (("<=", v),)
    return True if v <= lo else False if v > hi else ((">=", v),)


def _float_sides(op: str, value: Number) -> Sides:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            g = float(value)
        except OverflowError:
            g = math.inf if value > 0 else -math.inf
        if g != value:  # not a double: bound by the nearest doubles on each side
            if op == "=":
                return False
            if op in ("<", "<="):
                return (("<=", g if g < value else math.nextafter(g, -math.inf)),)
            return ((">=", g if g > value else math.nextafter(g, math.inf)),)
        value = g
    value = float(value)
    return ((">=", value), ("<=", value)) if op == "=" else ((op, value),)


def sides(kind: str, t: pa.DataType, op: str, value: Number) -> Sides:
    """``column op value`` on an int / float column (``kind``) of Arrow type ``t``, op not ``!=``."""
    return _int_sides(t, op, value) if kind == "int" else _float_sides(op, value)


def both(a: Sides, b: Sides) -> Sides:
    """The conjunction of two ``Sides``."""
    if a is False or b is False:
        return False
    if a is True:
        return b
    if b is True:
        return a
    return a + b  # type: ignore[operator]


def between_sides(kind: str, t: pa.DataType, low: Number, high: Number) -> Sides:
    return both(sides(kind, t, ">=", low), sides(kind, t, "<=", high))


def member(kind: str, t: pa.DataType, value: Number) -> Number | None:
    """The column value equal to ``value`` (for IN lists), or None when no value of the type is."""
    if kind == "float":
        if isinstance(value, float):
            return value
        try:
            g = float(value)
        except OverflowError:
            return None
        return g if g == value else None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    lo, hi = int_range(t)
    return value if lo <= value <= hi else None


def bounded_above(s: Sides) -> bool:
    return isinstance(s, tuple) and any(op in ("<", "<=") for op, _ in s)


# ------------------------------------------------------------------------- column against column
def _numpy(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values with NULLs filled, validity mask) of a numeric Arrow array."""
    valid = np.ones(len(array), bool) if array.null_count == 0 else \
        np.asarray(array.is_valid().to_numpy(zero_copy_only=False), bool)
    filled = array.fill_null(pa.scalar(0, array.type)) if array.null_count else array
    return np.asarray(filled.to_numpy(zero_copy_only=False)), valid


def _sign(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x > y).astype(np.int8) - (x < y).astype(np.int8)


def _sign_ints(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if (x.dtype == np.uint64) == (y.dtype == np.uint64):
        dtype = np.uint64 if x.dtype == np.uint64 else np.int64
        return _sign(x.astype(dtype, copy=False), y.astype(dtype, copy=False))
    if x.dtype != np.uint64:
        return -_sign_ints(y, x)
    negative = y < 0
    s = _sign(x, np.where(negative, 0, y).astype(np.uint64))
    s[negative] = 1
    return s


def _sign_int_float(i: np.ndarray, f: np.ndarray) -> np.ndarray:
    unsigned = i.dtype == np.uint64
    i = i if unsigned else i.astype(np.int64, copy=False)
    lo, hi = (0.0, 2.0**64) if unsigned else (-(2.0**63), 2.0**63)
    nan = np.isnan(f)
    with np.errstate(invalid="ignore"):
        floor = np.floor(f)
        below, above = floor < lo, floor >= hi
        inside = ~(below | above | nan)
        whole = np.where(inside, floor, 0).astype(i.dtype)
        s = _sign(i, whole)
        s[inside & (s == 0) & (f != floor)] = -1  # i = floor(f) < f
    s[below] = 1
    s[above | nan] = -1
    return s


def _sign_floats(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)
    s = _sign(x, y)
    nx, ny = np.isnan(x), np.isnan(y)
    s[nx & ~ny] = 1
    s[ny & ~nx] = -1
    s[nx & ny] = 0
    return s


_FROM_SIGN = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
              ">=": np.greater_equal}


def compare_columns(op: str, a: pa.Array, b: pa.Array) -> pa.Array:
    """``a op b`` for two numeric arrays of equal length, exactly (NULL where either is NULL)."""
    x, vx = _numpy(a)
    y, vy = _numpy(b)
    fx, fy = x.dtype.kind == "f", y.dtype.kind == "f"
    if fx and fy:
        s = _sign_floats(x, y)
    elif not fx and not fy:
        s = _sign_ints(x, y)
    elif fy:
        s = _sign_int_float(x, y)
    else:
        s = -_sign_int_float(y, x)
    out = _FROM_SIGN[op](s, 0)
    valid = vx & vy
    return pa.array(out, mask=None if valid.all() else ~valid)


__all__ = ["Sides", "between_sides", "both", "bounded_above", "compare_columns", "int_range", "member", "sides"]
