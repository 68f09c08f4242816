"""Attribute tables: accept what users have (Arrow, pandas, polars, dicts), check them against the schema."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import RowCountError, SchemaError

RESERVED = ("id", "vector", "score")


def to_table(attributes: Any, n_rows: int) -> pa.Table:
    """Coerce user attributes into a ``pa.Table`` of ``n_rows`` rows (``None`` -> no columns)."""
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
        table = pa.Table.from_pandas(attributes, preserve_index=False)
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
    """Cast ``table`` to ``schema``: missing columns become nulls; extra columns or bad types raise."""
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
            continue
        column = table.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise SchemaError(
                    f"column {field.name!r} has type {column.type}, the collection's schema says {field.type}: {exc}"
                ) from exc
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def merge_schema(schema: pa.Schema, table: pa.Table) -> pa.Schema:
    """The schema after a first batch of attributes arrives in a collection that had none."""
    if len(schema) == 0:
        return table.schema.remove_metadata()
    return schema


def encode_for_disk(table: pa.Table) -> pa.Table:
    """Dictionary-encode string columns where it pays (at most half as many distinct values as rows)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            column = table.column(i)
            if table.num_rows and pc.count_distinct(column).as_py() * 2 <= table.num_rows:
                table = table.set_column(i, field.name, pc.dictionary_encode(column))
    return table
