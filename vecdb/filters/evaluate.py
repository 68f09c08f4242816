"""Binding a filter to an Arrow schema, then evaluating it into a numpy bool mask.

``bind(expr, schema)`` checks every column and literal once (unknown column -> the closest
name; type mismatch -> which column and which value) and converts the literals to Arrow scalars
of the column's type. ``BoundFilter.evaluate(table)`` then runs only pyarrow.compute kernels
(and a few numpy scatters for list membership), never a Python loop over rows.

Semantics are SQL's three-valued logic: a comparison with NULL is NULL, AND/OR are Kleene,
``NOT NULL`` is NULL, and the final mask maps NULL to False. List membership on a NULL list is
NULL; NULL elements inside a list are ignored (DuckDB's ``list_contains``). ``x IN ()`` is false
and ``x NOT IN ()`` true for a non-NULL ``x``, NULL for a NULL one (as in DuckDB). Numbers compare
exactly and NaN is greater than every number and equal to itself (``vecdb.filters.numbers``).
Dictionary-encoded columns are evaluated on the dictionary, then gathered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecdb.errors import FilterError
from vecdb.filters import numbers
from vecdb.filters.ast import (
    And,
    Between,
    ColumnCompare,
    Compare,
    Contains,
    ContainsAll,
    ContainsAny,
    Expr,
    In,
    IsBool,
    IsNull,
    Length,
    Like,
    Not,
    Or,
    Scalar,
    deep_recursion,
    literal_sql,
)
from vecdb.filters.like import like_regex

Data = Union[pa.Table, pa.RecordBatch]
Bools = Union[pa.Array, pa.ChunkedArray]
Kernel = Callable[[Data], Bools]

_COMPARE = {
    "=": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}
@functools.cache
def _null_bool() -> pa.Scalar:
    """A NULL boolean, made on first use: ``pa.scalar`` loads pandas when installed (~0.2 s at import)."""
    return pa.scalar(None, pa.bool_())
_SHALLOW = 64  # trees at most this deep are walked without raising the recursion limit


_NOTHING = contextlib.nullcontext()  # (stateless: one for every shallow walk)


def deep(expr: Expr) -> contextlib.AbstractContextManager[None]:
    """``deep_recursion()`` for a deep tree, a no-op for the usual shallow one."""
    return deep_recursion() if expr.depth > _SHALLOW else _NOTHING


def _is_number(value: Scalar) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
_MAX_SCALARS = 65536  # literals a binder remembers before it starts over


def _kind(t: pa.DataType) -> str | None:
    """The scalar kind of an Arrow type: int, float, bool, string, date, timestamp (or None)."""
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return None


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


@dataclass(frozen=True)
class _Column:
    """What binding needs to know about one column."""

    name: str
    type: pa.DataType
    is_list: bool
    kind: str  # of the scalar, or of the list element
    value_type: pa.DataType  # dictionary value type / list element type, undecoded

    @property
    def describe(self) -> str:
        kind = {"int": "integer"}.get(self.kind, self.kind)
        return f"list<{kind}>" if self.is_list else kind


def _describe_literal(value: Scalar) -> str:
    if isinstance(value, bool):
        kind = "boolean"
    elif isinstance(value, (int, float)):
        kind = "number"
    elif isinstance(value, str):
        kind = "string"
    elif isinstance(value, dt.datetime):
        kind = "timestamp"
    else:
        kind = "date"
    return f"{kind} {literal_sql(value)}"


def _mismatch(info: _Column, value: Scalar) -> FilterError:
    return FilterError(f"cannot compare {info.describe} column '{info.name}' with {_describe_literal(value)}")


def _as_time(info: _Column, value: Scalar) -> dt.date:
    """A date/timestamp literal (or an ISO string) for a date or timestamp column."""
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        for convert in (dt.date.fromisoformat, dt.datetime.fromisoformat):
            try:
                return convert(value)
            except ValueError:
                pass
    raise _mismatch(info, value)


def _scalar(info: _Column, value: Scalar) -> pa.Scalar:
    """``value`` as an Arrow scalar comparable with the column (pyarrow casts the rest)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        if info.kind in ("int", "float") and is_number:  # a stand-in: comparisons use ``numbers``
            if info.kind == "int" and isinstance(value, int):
                lo, hi = numbers.int_range(info.value_type)
                if lo <= value <= hi:
                    return pa.scalar(value, info.value_type)
            try:
                return pa.scalar(float(value), pa.float64())
            except OverflowError:
                return pa.scalar(math.copysign(math.inf, value), pa.float64())
        if info.kind == "bool" and isinstance(value, bool):
            return pa.scalar(value, pa.bool_())
        if info.kind == "string" and isinstance(value, str):
            return pa.scalar(value, info.value_type)
        if info.kind == "date":
            when = _as_time(info, value)
            if isinstance(when, dt.datetime):
                return pa.scalar(when, pa.timestamp("us"))
            return pa.scalar(when, pa.date32())
        if info.kind == "timestamp":
            when = _as_time(info, value)
            if not isinstance(when, dt.datetime):
                when = dt.datetime.combine(when, dt.time())
            unit = "ns" if info.value_type.unit == "ns" else "us"
            return pa.scalar(when, pa.timestamp(unit, tz=info.value_type.tz))
    except FilterError:
        raise
    except (ValueError, OverflowError, pa.ArrowException) as exc:
        raise FilterError(f"cannot use {_describe_literal(value)} with column '{info.name}': {exc}") from None
    raise _mismatch(info, value)


def _value_set(info: _Column, values: tuple[Scalar, ...]) -> tuple[pa.Array, pa.DataType | None]:
    """The values of IN / membership as one Arrow array, and the type to cast the column to."""
    scalars = [_scalar(info, v) for v in values]  # validates every value
    if info.kind == "int":  # only integers in the column's range can equal an element
        fits = []
        for v in values:
            if isinstance(v, float) and not v.is_integer():
                continue
            try:
                fits.append(pa.scalar(int(v), info.value_type).as_py())
            except (ValueError, OverflowError):
                pass
        return pa.array(fits, info.value_type), None
    if info.kind == "float":  # only the numbers a double holds exactly can equal an element
        cast = None if pa.types.is_float64(info.value_type) else pa.float64()
        exact = [m for m in (numbers.member("float", info.value_type, v) for v in values) if m is not None]
        if 0.0 in exact:  # -0.0 = 0.0, but Arrow's hash lookup tells them apart
            exact += [0.0, -0.0]
        return pa.array(exact, pa.float64()), cast
    if info.kind == "date":  # a timestamp equals a date only at midnight
        days = []
        for s in scalars:
            day = s.as_py()
            if isinstance(day, dt.datetime):
                if day.time() != dt.time():
                    continue
                day = day.date()
            days.append(day)
        return pa.array(days, pa.date32()), None if pa.types.is_date32(info.value_type) else pa.date32()
    if info.kind == "timestamp":
        target = scalars[0].type if scalars else info.value_type
        cast = None if info.value_type == target else target
        return pa.array([s.as_py() for s in scalars], target), cast
    return pa.array([s.as_py() for s in scalars], info.value_type), None


def _apply(data: Bools, fn: Callable[[pa.Array], pa.Array]) -> Bools:
    """Run ``fn`` per chunk; on a dictionary array run it on the dictionary and gather."""
    if isinstance(data, pa.ChunkedArray):
        return pa.chunked_array([_apply(chunk, fn) for chunk in data.chunks], type=pa.bool_())
    if pa.types.is_dictionary(data.type):
        return pc.take(fn(data.dictionary), data.indices)
    return fn(data)


def _null_where_null(source: pa.Array, result: pa.Array) -> pa.Array:
    """``result`` with NULL wherever ``source`` is NULL."""
    if source.null_count == 0:
        return result
    return pc.if_else(pc.is_null(source), _null_bool(), result)


def _element_hits(elements: pa.Array, values: pa.Array) -> pa.Array:
    """Which list elements equal one of ``values`` (NULL elements count as no match)."""
    if len(values) > 4:
        return pc.fill_null(pc.is_in(elements, value_set=values), False)
    hit = pa.array(np.zeros(len(elements), dtype=bool))
    for i, value in enumerate(values):  # a few equality scans beat hashing every element
        equal = pc.fill_null(pc.equal(elements, value), False)
        hit = equal if i == 0 else pc.or_(hit, equal)
    return hit


def _rows_with_hits(chunk: pa.Array, values: pa.Array, cast: pa.DataType | None) -> np.ndarray:
    """Per list row: does it hold at least one of ``values`` (NULL rows: unspecified)."""
    n = len(chunk)
    if pa.types.is_fixed_size_list(chunk.type):
        elements, starts = pc.list_flatten(chunk), None
    else:
        starts = chunk.offsets.to_numpy()
        elements = chunk.values.slice(starts[0], starts[-1] - starts[0])
    if pa.types.is_dictionary(elements.type):  # test the dictionary once, gather per element
        dictionary = elements.dictionary if cast is None else pc.cast(elements.dictionary, cast)
        hits = pc.fill_null(pc.take(_element_hits(dictionary, values), elements.indices), False)
    else:
        hits = _element_hits(elements if cast is None else pc.cast(elements, cast), values)
    hit = np.flatnonzero(hits.to_numpy(zero_copy_only=False))
    if starts is None:
        rows = pc.list_parent_indices(chunk).to_numpy()[hit]
    else:
        rows = np.searchsorted(starts, hit + starts[0], side="right") - 1
    out = np.zeros(n, dtype=bool)
    out[rows] = True
    return out


def _membership(chunk: pa.Array, values: pa.Array, cast: pa.DataType | None, require_all: bool) -> pa.Array:
    """Per list row: holds any of ``values`` (or all of them); NULL lists give NULL."""
    if not require_all:
        out = _rows_with_hits(chunk, values, cast)
    else:
        out = np.ones(len(chunk), dtype=bool)
        for i in range(len(values)):
            out &= _rows_with_hits(chunk, values.slice(i, 1), cast)
    if chunk.null_count:
        return pa.array(out, mask=chunk.is_null().to_numpy(zero_copy_only=False))
    return pa.array(out)


def _sides_mask(a: pa.Array, sides: numbers.Sides, t: pa.DataType, is_float: bool) -> pa.Array:
    """Where ``a`` (ints of type ``t``, or floats) satisfies ``sides`` (``vecdb.filters.numbers``)."""
    if isinstance(sides, bool):
        return _null_where_null(a, pa.array(np.full(len(a), sides)))
    result = None
    for op, v in sides:
        part = _COMPARE[op](a, pa.scalar(v, pa.float64() if is_float else t))
        result = part if result is None else pc.and_kleene(result, part)
    if is_float and not numbers.bounded_above(sides):  # NaN is above every number
        result = pc.or_kleene(result, pc.is_nan(a))
    return result


def _numeric_kernel(info: "_Column", op: str, sides: numbers.Sides, lengths: bool = False) -> Kernel:
    """``op`` is ``!=`` when ``sides`` hold the ``=`` and the result is to be negated."""
    is_float = info.kind == "float" and not lengths
    t = pa.int64() if lengths else info.value_type

    def fn(a: pa.Array) -> pa.Array:
        if lengths:
            a = pc.cast(pc.list_value_length(a), pa.int64())
        hit = _sides_mask(a, sides, t, is_float)
        return pc.invert(hit) if op == "!=" else hit

    return lambda data: _apply(data.column(info.name), fn)


def _like_kernel(info: "_Column", expr: Like) -> Kernel:
    regex = like_regex(expr.pattern, expr.escape)

    def fn(a: pa.Array) -> pa.Array:
        hit = pc.match_substring_regex(a, pattern=regex, ignore_case=expr.case_insensitive)
        return pc.invert(hit) if expr.negated else hit

    return lambda data: _apply(data.column(info.name), fn)


def _whole(column: Bools) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


class _Binder:
    """Turns an expression into a kernel, validating it against the schema."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self._columns: dict[str, _Column] = {}
        self._scalars: dict[tuple, pa.Scalar] = {}

    def scalar(self, info: _Column, value: Scalar) -> pa.Scalar:
        """``_scalar``, once per column and literal (typed: ``1``, ``1.0`` and ``True`` stay apart): a
        binder lives as long as its table, and filters repeat their literals."""
        memo = (info.name, type(value), value)
        out = self._scalars.get(memo)
        if out is None:
            if len(self._scalars) >= _MAX_SCALARS:
                self._scalars.clear()
            out = self._scalars[memo] = _scalar(info, value)
        return out

    def check(self, info: _Column, value: Scalar) -> None:
        """Raise FilterError unless ``value`` can be compared with ``info``'s column. A literal of the
        column's own kind (a number for a number column, a string for a string column, a bool for a
        bool column) always can: no Arrow scalar is made for it (binding is on the path of every
        filter a search sees for the first time)."""
        kind = info.kind
        if (isinstance(value, str) and kind == "string") or (isinstance(value, bool) and kind == "bool") or (
                kind in ("int", "float") and _is_number(value)):
            return
        self.scalar(info, value)

    def column(self, name: str) -> _Column:
        info = self._columns.get(name)
        if info is None:
            info = self._columns[name] = self._column(name)
        return info

    def _column(self, name: str) -> _Column:
        position = self.schema.get_field_index(name)  # -1 when absent (a lookup, not a list of names)
        if position < 0 and name not in self.schema.names:
            close = difflib.get_close_matches(name, self.schema.names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"columns are: {', '.join(self.schema.names)}"
            raise FilterError(f"unknown column '{name}'; {hint}")
        t = (self.schema.field(position) if position >= 0 else self.schema.field(name)).type
        is_list = _is_list(t)
        value_type = t.value_type if is_list or pa.types.is_dictionary(t) else t
        kind = _kind(value_type)
        if kind is None:
            raise FilterError(f"column '{name}' has type {t}, which filters do not support")
        if pa.types.is_dictionary(value_type):
            value_type = value_type.value_type
        return _Column(name, t, is_list, kind, value_type)

    def scalar_column(self, name: str, what: str) -> _Column:
        info = self.column(name)
        if info.is_list:
            raise FilterError(
                f"cannot use {what} on list column '{name}' ({info.describe}); use 'value' IN {name}, "
                f"array_contains_any({name}, (...)) or array_contains_all({name}, (...))"
            )
        return info

    def bind(self, expr: Expr) -> Kernel:
        if isinstance(expr, And):
            kernels = [self.bind(op) for op in expr.operands]
            combine = pc.or_kleene if isinstance(expr, Or) else pc.and_kleene

            def logical(data: Data) -> Bools:
                result = kernels[0](data)
                for kernel in kernels[1:]:
                    result = combine(result, kernel(data))
                return result

            return logical
        if isinstance(expr, Not):
            inner = self.bind(expr.operand)
            return lambda data: pc.invert(inner(data))
        if isinstance(expr, Compare):
            info = self.scalar_column(expr.column, f"'{expr.op}'")
            self.check(info, expr.value)
            if info.kind in ("int", "float") and _is_number(expr.value):
                op = "=" if expr.op == "!=" else expr.op
                return _numeric_kernel(info, expr.op, numbers.sides(info.kind, info.value_type, op, expr.value))
            fn, value = _COMPARE[expr.op], expr.value
            return lambda data: _apply(data.column(info.name), lambda a: fn(a, self.scalar(info, value)))
        if isinstance(expr, Between):
            if expr.symmetric:
                return self.bind(expr.asymmetric())
            info = self.scalar_column(expr.column, "BETWEEN")
            self.check(info, expr.low)
            self.check(info, expr.high)
            if info.kind in ("int", "float") and _is_number(expr.low) and _is_number(expr.high):
                bounds = numbers.between_sides(info.kind, info.value_type, expr.low, expr.high)  # type: ignore[arg-type]
                return _numeric_kernel(info, "BETWEEN", bounds)
            low, high = expr.low, expr.high
            return lambda data: _apply(
                data.column(info.name),
                lambda a: pc.and_kleene(pc.greater_equal(a, self.scalar(info, low)),
                                        pc.less_equal(a, self.scalar(info, high))),
            )
        if isinstance(expr, Like):
            info = self.scalar_column(expr.column, "LIKE")
            if info.kind != "string":
                raise FilterError(f"LIKE needs a string column, but '{info.name}' is a {info.describe} column")
            return _like_kernel(info, expr)
        if isinstance(expr, IsBool):
            info = self.scalar_column(expr.column, "IS TRUE / IS FALSE")
            if info.kind != "bool":
                raise FilterError(f"IS [NOT] TRUE|FALSE needs a boolean column, but '{info.name}' is a "
                                  f"{info.describe} column")
            value = pa.scalar(expr.value)

            def is_bool(data: Data) -> Bools:
                hit = pc.fill_null(pc.equal(data.column(info.name), value), False)
                return pc.invert(hit) if expr.negated else hit

            return is_bool
        if isinstance(expr, Length):
            info = self.column(expr.column)
            if not info.is_list:
                raise FilterError(f"len() needs a list column, but '{info.name}' is a {info.describe} column")
            op = "=" if expr.op == "!=" else expr.op
            return _numeric_kernel(info, expr.op, numbers.sides("int", pa.int64(), op, expr.value), lengths=True)
        if isinstance(expr, ColumnCompare):
            return self.bind_columns(expr)
        if isinstance(expr, IsNull):
            self.column(expr.column)
            test = pc.is_valid if expr.negated else pc.is_null
            return lambda data: test(data.column(expr.column))
        if isinstance(expr, In):
            return self.bind_in(expr)
        if isinstance(expr, (Contains, ContainsAny)):
            return self.bind_membership(expr)
        raise FilterError(f"cannot evaluate filter node {type(expr).__name__}")

    def value_set(self, info: _Column, values: tuple[Scalar, ...]) -> Callable[[], tuple[pa.Array, pa.DataType | None]]:
        """Validate ``values`` now; the ``_value_set`` arrays are built on first use (the attribute
        indexes answer most filters without them)."""
        for v in values:
            self.check(info, v)
        made: list[tuple[pa.Array, pa.DataType | None]] = []

        def value_set() -> tuple[pa.Array, pa.DataType | None]:  # functools.cache's wrapper cost ~5 us a bind
            if not made:
                made.append(_value_set(info, values))
            return made[0]

        return value_set

    def bind_in(self, expr: In) -> Kernel:
        info = self.scalar_column(expr.column, "IN (...)")
        value_set = self.value_set(info, expr.values)
        if not expr.values:  # NULL stays NULL, as in DuckDB
            return lambda data: _apply(
                data.column(info.name), lambda a: _null_where_null(a, pa.array(np.full(len(a), expr.negated)))
            )

        def is_in(a: pa.Array) -> pa.Array:
            values, cast = value_set()
            hit = pc.is_in(pc.cast(a, cast) if cast is not None else a, value_set=values)
            return _null_where_null(a, pc.invert(hit) if expr.negated else hit)

        return lambda data: _apply(data.column(info.name), is_in)

    def bind_columns(self, expr: ColumnCompare) -> Kernel:
        left = self.scalar_column(expr.left, f"'{expr.op}'")
        try:
            right = self.scalar_column(expr.right, f"'{expr.op}'")
        except FilterError as exc:
            if expr.right in self.schema.names:
                raise
            raise FilterError(f"{exc} (double quotes name a column; write a string in single quotes: "
                              f"{expr.left} {expr.op} {literal_sql(expr.right)})") from None
        kinds = {left.kind, right.kind}
        if kinds <= {"int", "float"}:
            return lambda data: numbers.compare_columns(
                expr.op, _whole(data.column(left.name)).dictionary_decode()
                if pa.types.is_dictionary(left.type) else _whole(data.column(left.name)),
                _whole(data.column(right.name)).dictionary_decode()
                if pa.types.is_dictionary(right.type) else _whole(data.column(right.name)),
            )
        if len(kinds) > 1 and kinds != {"date", "timestamp"}:
            raise FilterError(f"cannot compare {left.describe} column '{left.name}' with {right.describe} "
                              f"column '{right.name}'")
        fn = _COMPARE[expr.op]

        def compare(data: Data) -> Bools:
            a, b = _whole(data.column(left.name)), _whole(data.column(right.name))
            a = a.dictionary_decode() if pa.types.is_dictionary(a.type) else a
            b = b.dictionary_decode() if pa.types.is_dictionary(b.type) else b
            if pa.types.is_date(a.type) and pa.types.is_timestamp(b.type):
                a = pc.cast(a, b.type)
            elif pa.types.is_timestamp(a.type) and pa.types.is_date(b.type):
                b = pc.cast(b, a.type)
            return fn(a, b)

        return compare

    def bind_membership(self, expr: Contains | ContainsAny) -> Kernel:
        info = self.column(expr.column)
        single = isinstance(expr, Contains)
        if not info.is_list:
            sql = literal_sql(expr.value) if isinstance(expr, Contains) else "..."
            hint = f"use {expr.column} = {sql}" if single else f"use {expr.column} IN (...)"
            raise FilterError(
                f"list membership needs a list column, but '{expr.column}' is a {info.describe} column; "
                f"{hint}"
            )
        raw = (expr.value,) if isinstance(expr, Contains) else expr.values
        value_set = self.value_set(info, raw)
        require_all = isinstance(expr, ContainsAll)

        def member(data: Data) -> Bools:
            values, cast = value_set()
            if require_all:
                values = pc.unique(values)
            column = data.column(info.name)
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            parts = [_membership(c, values, cast, require_all) for c in chunks]
            return pa.chunked_array(parts, type=pa.bool_())

        return member


class BoundFilter:
    """A filter checked against a schema; ``evaluate`` turns a table into a bool mask."""

    def __init__(self, expr: Expr, schema: pa.Schema, binder: _Binder | None = None):
        """``binder``: one kept for ``schema`` (it remembers columns and literals), else a new one."""
        self.expr = expr
        self.schema = schema
        self.columns: frozenset[str] = expr.columns()
        with deep(expr):
            self._kernel = (binder or _Binder(schema)).bind(expr)

    def __repr__(self) -> str:
        return f"BoundFilter({self.expr.to_sql()!r})"

    def _check(self, table: Data) -> None:
        for name in self.columns:
            if name not in table.schema.names:
                raise FilterError(f"the table has no column '{name}' (the filter's schema has it)")
            bound, given = self.schema.field(name).type, table.schema.field(name).type
            if bound != given and (_kind(bound), _is_list(bound)) != (_kind(given), _is_list(given)):
                raise FilterError(f"column '{name}' is {given} in the table but {bound} in the bound schema")

    def evaluate_arrow(self, table: Data) -> pa.BooleanArray:
        """The three-valued result: a boolean array of ``table.num_rows`` with NULLs."""
        self._check(table)
        with deep(self.expr):
            result = self._kernel(table)
        if isinstance(result, pa.ChunkedArray):
            result = result.combine_chunks() if result.num_chunks else pa.array([], pa.bool_())
        return result

    def evaluate(self, table: Data) -> np.ndarray:
        """A C-contiguous numpy bool mask of ``table.num_rows`` (NULL counts as False)."""
        self._check(table)
        with deep(self.expr):
            result = self._kernel(table)
        mask = pc.fill_null(result, False).to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(mask, dtype=bool)


def bind(expr: Any, schema: pa.Schema | pa.Table | pa.RecordBatch) -> BoundFilter:
    """Validate ``expr`` (an Expr, or anything ``parse`` accepts) against ``schema``."""
    from vecdb.filters import parse

    parsed = parse(expr)
    if parsed is None:
        raise TypeError("bind() needs a filter, got no filter (None or an empty string)")
    if not isinstance(schema, pa.Schema):
        schema = schema.schema
    return BoundFilter(parsed, schema)
