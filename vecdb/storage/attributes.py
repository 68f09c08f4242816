"""Attribute tables: accept what users have (Arrow, pandas, polars, dicts), check them against the schema.

Types are strict. A column's values are stored only when their Arrow type is the column's type, or when
turning them into it is lossless and unsurprising; anything else is a ``SchemaError`` naming the column,
both types and the first offending row (0-based, within the attributes given). Nothing is cast silently.

==========================================  =====================================================
given (source) -> column (target)           rule
==========================================  =====================================================
same type                                   stored as given
null (a column of nulls only)               accepted into any column
dictionary<T> (pandas/polars categorical)   decoded to T, then these rules for T
int* / uint* -> wider int                   accepted (int8/16/32 -> int64, uint8/16/32 -> int64, ...)
int* / uint* -> narrower int                accepted only when every value fits (int64 -> int32
                                            for an int32 column; one value out of range refuses
                                            the whole batch)
int* / uint* -> float32 / float64           accepted only when every value is exactly representable
                                            (|v| <= 2**24 for float32, 2**53 for float64)
float16 / float32 -> float64                accepted
float64 -> float32                          accepted only when every value is exactly a float32
                                            (0.5 yes, 0.1 no); NaN and infinities pass
string / large_string / string_view         interchangeable
binary / large_binary / binary_view         interchangeable
date32 <-> date64                           accepted when nothing is lost (date64 at midnight)
timestamp (no time zone) -> date32/date64   accepted only when every value is at midnight
                                            (a pandas datetime column of dates)
timestamp -> timestamp, same time zone      accepted when the unit change loses nothing and
                                            nothing overflows (ns -> us only for whole us)
list<T> / large_list<T> -> list<U> /        accepted when T -> U is, element by element
large_list<U>                               (list<string> <-> list<large_string>, list<null> ...)
anything else                               refused: float -> int (even 5.0), int/str -> bool,
                                            int -> str, str -> int/float/date, bool -> int,
                                            date -> timestamp, tz-aware timestamp -> date, a
                                            time zone change, structs/decimals of another type
==========================================  =====================================================

"Accepted when every value ..." is checked by casting with Arrow's ``safe=True`` and then casting back:
the values stored must equal the values given. A column of another type holding only nulls is still
refused (the rule is about types, so a batch is not accepted or refused by luck of its values).
pandas integer columns with missing values arrive as float64: use pandas' nullable ``Int64`` dtype.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import RowCountError, SchemaError

RESERVED = ("id", "vector", "score")


def to_table(attributes: Any, n_rows: int) -> pa.Table:
    """User attributes as a ``pa.Table`` of ``n_rows`` rows (``None`` -> no columns).

    Each column keeps the Arrow type its source gives it (dictionaries decoded); fitting those types to a
    collection's schema is ``conform``'s job, under the module docstring's policy.
    """
    if attributes is None:
        return null_table(pa.schema([]), n_rows)
    if isinstance(attributes, pa.RecordBatch):
        table = pa.Table.from_batches([attributes])
    elif isinstance(attributes, pa.Table):
        table = attributes
    elif isinstance(attributes, dict):
        try:
            table = pa.table(attributes)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise SchemaError(f"cannot turn the attribute columns into Arrow: {exc}") from exc
    elif hasattr(attributes, "to_arrow"):  # polars DataFrame
        table = attributes.to_arrow()
    elif type(attributes).__module__.startswith("pandas"):
        try:  # an object column of mixed Python types is refused here, not guessed at
            table = pa.Table.from_pandas(attributes, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(f"cannot turn the pandas attribute columns into Arrow: {exc}") from exc
    else:
        raise SchemaError(
            f"attributes must be a pyarrow Table, a pandas or polars DataFrame, or a dict of columns; "
            f"got {type(attributes).__name__}")
    if table.num_rows != n_rows:
        raise RowCountError(f"attributes have {table.num_rows} rows but {n_rows} vectors were given")
    for name in table.column_names:
        if name in RESERVED:
            raise SchemaError(f"attribute column name {name!r} is reserved ({', '.join(RESERVED)})")
    if len(set(table.column_names)) != len(table.column_names):
        raise SchemaError(f"attribute column names repeat: {table.column_names}")
    return _decode_dictionaries(table)


def _decode_dictionaries(table: pa.Table) -> pa.Table:
    """Store logical types in memory (dictionary encoding is a storage detail, see ``encode_for_disk``)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table


def null_table(schema: pa.Schema, n_rows: int) -> pa.Table:
    """``n_rows`` rows of nulls (a table with no columns still keeps its row count)."""
    if len(schema) == 0:
        return pa.table({"_": pa.nulls(n_rows)}).drop_columns(["_"])
    return pa.Table.from_arrays([pa.nulls(n_rows, f.type) for f in schema], schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Fit ``table`` to ``schema``: missing columns become nulls; extra columns or bad types raise.

    A column whose type differs from the schema's is stored only as the module docstring's table allows.
    """
    extra = [name for name in table.column_names if schema.get_field_index(name) < 0]
    if extra:
        raise SchemaError(
            f"unknown attribute column(s) {extra}; the collection's columns are {schema.names}")
    if len(schema) == 0:
        return table
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            columns.append(conform_column(field.name, table.column(field.name), field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def conform_column(name: str, column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """``column`` as ``target`` when the type policy allows it, else a ``SchemaError``."""
    source = column.type
    if source == target:
        return column
    if pa.types.is_dictionary(source):
        return conform_column(name, column.cast(source.value_type), target)
    if pa.types.is_null(source):
        return pa.chunked_array([pa.nulls(len(column), target)], type=target)
    if not _allowed(source, target):
        raise _type_error(name, column, target)
    if _widens(source, target):
        return column.cast(target, safe=True)
    out = _exact_cast(column, target)
    if out is None:
        raise _value_error(name, column, target)
    return out


# ------------------------------------------------------------------ the policy, by type
_STRINGS = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
_BINARIES = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view)
_FLOATS = (pa.types.is_float16, pa.types.is_float32, pa.types.is_float64)


def _is(t: pa.DataType, family: tuple) -> bool:
    return any(test(t) for test in family)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _allowed(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether values of ``source`` may go into a ``target`` column at all (values checked later)."""
    if source == target or pa.types.is_null(source):
        return True
    if pa.types.is_dictionary(source):
        return _allowed(source.value_type, target)
    if pa.types.is_integer(source):
        return pa.types.is_integer(target) or pa.types.is_float32(target) or pa.types.is_float64(target)
    if _is(source, _FLOATS):
        return pa.types.is_float32(target) or pa.types.is_float64(target)
    if _is(source, _STRINGS):
        return _is(target, _STRINGS)
    if _is(source, _BINARIES):
        return _is(target, _BINARIES)
    if pa.types.is_date(source):
        return pa.types.is_date(target)
    if pa.types.is_timestamp(source):
        if pa.types.is_date(target):
            return source.tz is None
        return pa.types.is_timestamp(target) and source.tz == target.tz
    if _is_list(source):
        return _is_list(target) and _allowed(source.value_type, target.value_type)
    return False


def _int_range(t: pa.DataType) -> tuple[int, int]:
    bits = t.bit_width
    return (0, 2**bits - 1) if pa.types.is_unsigned_integer(t) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _widens(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether every ``source`` value is a ``target`` value (no need to look at the values)."""
    if pa.types.is_null(source) or (_is(source, _STRINGS) and _is(target, _STRINGS)) or (
            _is(source, _BINARIES) and _is(target, _BINARIES)):
        return True
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        lo, hi = _int_range(source)
        tlo, thi = _int_range(target)
        return tlo <= lo and hi <= thi
    if pa.types.is_float64(target):
        return pa.types.is_float16(source) or pa.types.is_float32(source)
    if pa.types.is_date32(source):
        return pa.types.is_date64(target)
    if _is_list(source) and _is_list(target):
        return _widens(source.value_type, target.value_type)
    return False


# ------------------------------------------------------------------ checking values
def _exact_cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray | None:
    """``column`` cast to ``target`` if that cast, and the cast back, give exactly the values given."""
    if _is_list(column.type):
        # a sliced list array keeps its whole child array, and Arrow casts (and checks) all of it
        column = column.take(pa.array(range(len(column)), pa.int64()))
    try:
        out = column.cast(target, safe=True)
        back = out.cast(column.type, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return out if _same(column, back) else None


def _same(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> bool:
    """Equal values and nulls, NaN equal to NaN (Arrow's ``equals`` says NaN != NaN)."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    if isinstance(b, pa.ChunkedArray):
        b = b.combine_chunks()
    if a.equals(b):
        return True
    if len(a) != len(b) or not a.is_null().equals(b.is_null()):
        return False
    if _is(a.type, _FLOATS):
        equal = pc.or_kleene(pc.equal(a, b), pc.and_(pc.is_nan(a), pc.is_nan(b)))
        return bool(pc.all(equal).as_py() is not False)
    if _is_list(a.type):
        return (pc.list_value_length(a).equals(pc.list_value_length(b))
                and _same(a.flatten(), b.flatten()))
    return False


def _first_bad_row(column: pa.ChunkedArray, target: pa.DataType) -> int:
    """The first row whose value cannot be stored exactly (the whole column cannot): a binary search
    over prefixes, so a refusal costs O(n log n) and an accepted batch nothing extra."""
    lo, hi = 0, len(column)  # the first ``lo`` rows fit, the first ``hi`` do not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _exact_cast(column.slice(0, mid), target) is None:
            hi = mid
        else:
            lo = mid
    return hi - 1


def _show(column: pa.ChunkedArray, row: int) -> str:
    """One value for a message (Arrow's own printing where Python cannot hold it: a far-off timestamp)."""
    try:
        text = repr(column[row].as_py())
    except (ValueError, OverflowError):
        text = column.slice(row, 1).combine_chunks().to_string(skip_new_lines=True).strip("[]")
    return text if len(text) <= 60 else text[:57] + "..."


def _type_error(name: str, column: pa.ChunkedArray, target: pa.DataType) -> SchemaError:
    hint = ""
    if pa.types.is_floating(column.type) and pa.types.is_integer(target):
        hint = ("; an integer column with missing values arrives from pandas as float64: "
                "use pandas' nullable 'Int64' dtype")
    row = pc.index(pc.is_valid(column), True).as_py() if len(column) else -1
    if row < 0:
        return SchemaError(f"column {name!r} expects {target}, got {column.type} "
                           f"({len(column)} values, all null){hint}")
    return SchemaError(f"column {name!r} expects {target}, got {column.type} at row {row} "
                       f"({_show(column, row)}){hint}")


def _value_error(name: str, column: pa.ChunkedArray, target: pa.DataType) -> SchemaError:
    row = _first_bad_row(column, target)
    return SchemaError(f"column {name!r} expects {target}, got {column.type} at row {row} "
                       f"({_show(column, row)}), which {target} cannot hold exactly")


def merge_schema(schema: pa.Schema, table: pa.Table) -> pa.Schema:
    """The schema after a first batch of attributes arrives in a collection that had none."""
    if len(schema) == 0:  # logical types: large and view variants are storage details
        return pa.schema([pa.field(f.name, _plain_type(f.type), f.nullable) for f in table.schema])
    return schema


def _plain_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(_plain_type(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(_plain_type(t.value_type))
    return t


def encode_for_disk(table: pa.Table) -> pa.Table:
    """Dictionary-encode string columns where it pays (at most half as many distinct values as rows)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            column = table.column(i)
            if table.num_rows and pc.count_distinct(column).as_py() * 2 <= table.num_rows:
                table = table.set_column(i, field.name, pc.dictionary_encode(column))
    return table
