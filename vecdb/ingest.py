"""Reading rows from tables: Parquet / Arrow IPC files (or directories of them), ``.npy`` vectors, and
in-memory tables (Arrow tables, record batches and readers, datasets, pandas and polars DataFrames),
read in record batches so that memory follows the batch size, not the input size. ``Collection.add`` /
``upsert`` (``vector_column=``, ``id_column=``) and ``vecdb build`` share this one reader.

A source yields ``Batch`` objects (vectors, attribute table, optional ids), validated per batch with
messages that name the file and row: a null vector, vectors of mixed length, a null id.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .errors import IngestError as CliError  # one error type for every input problem

TABLE_SUFFIXES = (".parquet", ".pq", ".arrow", ".feather", ".ipc", ".arrows")


@dataclasses.dataclass
class Batch:
    """Rows read together: ``vectors`` (n, dim) of any float dtype (with several vector fields, a dict of
    them by field name), attributes, ids (or ``None``)."""

    vectors: np.ndarray | dict[str, Any]  # by field: a matrix, or a list with None for rows without a value
    attributes: pa.Table | None
    ids: np.ndarray | None
    rows: int | None = None  # with a dict of vectors

    def __len__(self) -> int:
        return self.rows if self.rows is not None else self.vectors.shape[0]


class TableFile:
    """One Parquet or Arrow IPC (file or stream) file, recognised by its magic bytes.

    Opening reads only the schema and row count and closes the file again (a directory of thousands
    of files holds no descriptors open); ``iter_batches`` opens it for the time of the read.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            with open(path, "rb") as f:
                head = f.read(6)
            if head[:4] == b"PAR1":
                self.kind = "parquet"
                self.schema: pa.Schema = pq.read_schema(path)
                self.num_rows: int | None = pq.read_metadata(path).num_rows
            elif head == b"ARROW1":
                self.kind = "arrow"
                with pa.OSFile(str(path)) as source:
                    reader = ipc.open_file(source)
                    self.schema, self.num_rows = reader.schema, reader.count_rows()
            else:
                self.kind = "arrow-stream"
                with pa.OSFile(str(path)) as source:
                    self.schema, self.num_rows = ipc.open_stream(source).schema, None
        except (pa.ArrowException, OSError) as exc:
            raise CliError(f"cannot read {str(path)!r} as Parquet or Arrow IPC: {exc}") from exc

    def iter_batches(self, batch_size: int, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
        """Record batches of at most ``batch_size`` rows holding only ``columns``."""
        try:
            if self.kind == "parquet":
                with pq.ParquetFile(self.path) as pf:
                    yield from pf.iter_batches(batch_size=batch_size, columns=list(columns))
                return
            # read into memory owned by Arrow (not a memory map): the collection keeps the batches
            with pa.OSFile(str(self.path)) as source:
                if self.kind == "arrow":
                    reader = ipc.open_file(source)
                    batches: Iterator[pa.RecordBatch] = (reader.get_batch(i)
                                                         for i in range(reader.num_record_batches))
                else:
                    batches = iter(ipc.open_stream(source))
                for batch in batches:
                    batch = batch.select(list(columns))
                    for start in range(0, batch.num_rows, batch_size):
                        yield batch.slice(start, batch_size)
        except pa.ArrowException as exc:
            raise CliError(f"cannot read {str(self.path)!r}: {exc}") from exc


def list_table_files(path: Path, what: str = "SOURCE") -> list[Path]:
    """``path`` itself, or the Parquet / Arrow files of a directory in name order."""
    if not path.exists():
        raise CliError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES)
        if not files:
            raise CliError(f"directory {str(path)!r} holds no {'/'.join(TABLE_SUFFIXES)} files")
        return files
    return [path]


def is_vector_type(t: pa.DataType, *, strict: bool = True) -> bool:
    """``fixed_size_list<float>`` or ``list<float>`` (any float width; integers too when not strict)."""
    if not (pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)):
        return False
    value = t.value_type
    return pa.types.is_floating(value) or (not strict and pa.types.is_integer(value))


def _unknown(name: str, names: Sequence[str], where: str) -> CliError:
    close = difflib.get_close_matches(name, list(names), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"columns are {list(names)}"
    return CliError(f"unknown column {name!r} in {where}; {hint}")


def detect_vector_column(schema: pa.Schema, requested: str | None, where: str) -> str:
    """The vector column: ``requested`` (checked), or the only float-list column of ``schema``."""
    if requested is not None:
        if requested not in schema.names:
            raise _unknown(requested, schema.names, where)
        if not is_vector_type(schema.field(requested).type, strict=False):
            raise CliError(f"column {requested!r} in {where} has type {schema.field(requested).type}; "
                           f"a vector column is fixed_size_list<float> or list<float>")
        return requested
    found = [f.name for f in schema if is_vector_type(f.type)]
    if not found:
        raise CliError(f"no vector column in {where} (a fixed_size_list<float> or list<float> column); "
                       f"columns are {schema.names}; or give --vectors X.npy --attributes FILE")
    if len(found) > 1:
        raise CliError(f"several vector columns in {where}: {found}; choose one with --vector-column")
    return found[0]


def vector_columns(schema: pa.Schema, requested: str | Mapping[str, str] | None, where: str) -> dict[str | None, str]:
    """The vector column(s): ``{None: column}`` for one (``detect_vector_column``), or with several vector
    fields ``{field: column}`` as ``requested`` maps them, each checked."""
    if isinstance(requested, Mapping):
        if not requested:
            raise CliError("vector_column= maps fields to columns: give at least one")
        return {field: detect_vector_column(schema, column, where) for field, column in requested.items()}
    return {None: detect_vector_column(schema, requested, where)}


class _Columns:
    """What a table source reads: the vector column(s), the id column, the attribute columns."""

    def __init__(self, schema: pa.Schema, vector_column: str | Mapping[str, str] | None, id_column: str | None,
                 columns: Sequence[str] | None, where: str):
        self.vector_columns = vector_columns(schema, vector_column, where)
        self.id_column = _id_column(schema, id_column, where)
        if self.id_column in self.vector_columns.values():
            raise CliError(f"id column {id_column!r} is a vector column")
        vectors = set(self.vector_columns.values())
        self.columns = _attribute_columns(schema, columns, vectors | {self.id_column or ""}, where)
        self.read = list(dict.fromkeys(self.vector_columns.values())) + \
            ([self.id_column] if self.id_column else []) + self.columns
        self._dims: dict[str | None, int] = {}

    @property
    def vector_column(self) -> str:
        return next(iter(self.vector_columns.values()))

    def batch(self, rb: pa.RecordBatch, where: str, row0: int) -> Batch:
        vectors: dict[str | None, Any] = {}
        for field, column in self.vector_columns.items():
            arr = rb.column(column)
            if field is not None and arr.null_count:  # a named field: a null is a row without a value
                valid = arr.is_valid().to_numpy(zero_copy_only=False)
                if not valid.any():
                    vectors[field] = None
                    continue
                present = vectors_of(arr.filter(pa.array(valid)), column, where, row0, self._dims.get(field))
                self._dims[field] = present.shape[1]
                rows = iter(present)
                vectors[field] = [next(rows) if v else None for v in valid]
                continue
            vectors[field] = vectors_of(arr, column, where, row0, self._dims.get(field))
            self._dims[field] = vectors[field].shape[1]
        ids = ids_of(rb.column(self.id_column), self.id_column, where) if self.id_column else None
        attrs = pa.Table.from_batches([rb.select(self.columns)]) if self.columns else None
        return Batch(vectors[None], attrs, ids) if None in vectors else Batch(vectors, attrs, ids, rb.num_rows)


def vectors_of(column: pa.Array | pa.ChunkedArray, name: str, where: str, row0: int,
               dim: int | None) -> np.ndarray:
    """An (n, dim) matrix from a list column; refuses nulls and lengths other than ``dim``."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise CliError(f"vector column {name!r} in {where}: row {row0 + row} is null")
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        lengths = np.full(n, arr.type.list_size)
    else:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    want = dim if dim is not None else (int(lengths[0]) if n else 0)
    bad = np.flatnonzero(lengths != want)
    if bad.size:
        raise CliError(f"vectors of mixed length in column {name!r} of {where}: row {row0 + int(bad[0])} has "
                       f"{int(lengths[bad[0]])} values, earlier rows have {want}")
    values = arr.flatten()
    if values.null_count:
        raise CliError(f"vector column {name!r} in {where} holds null values inside vectors")
    if want == 0:
        raise CliError(f"vector column {name!r} in {where} holds empty vectors")
    return values.to_numpy(zero_copy_only=False).reshape(n, want)


def ids_of(column: pa.ChunkedArray | pa.Array, name: str, where: str) -> np.ndarray:
    """Integer or string ids from the id column (the collection checks their type, uniqueness, range)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        if column.null_count:
            raise CliError(f"id column {name!r} in {where} holds {column.null_count} null id(s)")
        return np.array(column.to_pylist(), dtype=str)
    if not pa.types.is_integer(column.type):
        raise CliError(f"id column {name!r} in {where} has type {column.type}; ids must be integers or strings")
    if column.null_count:
        raise CliError(f"id column {name!r} in {where} holds {column.null_count} null id(s)")
    return column.to_numpy(zero_copy_only=False) if isinstance(column, pa.Array) else \
        column.combine_chunks().to_numpy(zero_copy_only=False)


def rebatch(batches: Iterator[Batch], batch_size: int) -> Iterator[Batch]:
    """Join small batches (the tails of many small files) so each ``add`` writes a sizeable segment."""
    pending: list[Batch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += len(batch)
        if rows >= batch_size:
            yield _concat(pending)
            pending, rows = [], 0
    if pending:
        yield _concat(pending)


def _concat(parts: list[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    ids = None if parts[0].ids is None else np.concatenate([p.ids for p in parts])
    table = None
    if parts[0].attributes is not None:
        try:
            table = pa.concat_tables([p.attributes for p in parts], promote_options="permissive")
        except pa.ArrowException as exc:
            raise CliError(f"input files disagree on their attribute columns: {exc}") from exc
    if isinstance(parts[0].vectors, dict):  # by field: a matrix, or a list with None for rows without a value
        joined = {f: _join([p.vectors[f] for p in parts], [len(p) for p in parts]) for f in parts[0].vectors}
        return Batch(joined, table, ids, sum(len(p) for p in parts))
    dims = {p.vectors.shape[1] for p in parts}
    if len(dims) > 1:
        raise CliError(f"vectors of mixed length across input files: dims {sorted(dims)}")
    return Batch(np.concatenate([p.vectors for p in parts]), table, ids)


def _join(values: list, counts: list[int]) -> Any:
    """One field's values over several batches: a matrix, or a list holding None for rows without one."""
    if all(isinstance(v, np.ndarray) for v in values):
        return np.concatenate(values)
    out: list = []
    for v, n in zip(values, counts):
        out.extend([None] * n if v is None else list(v))
    return out


def _id_column(schema: pa.Schema, requested: str | None, where: str) -> str | None:
    """``--id-column``, else a column named ``id`` when there is one, else none (ids 0, 1, 2, ...)."""
    if requested is not None:
        if requested not in schema.names:
            raise _unknown(requested, schema.names, where)
        return requested
    return "id" if "id" in schema.names else None


def _attribute_columns(schema: pa.Schema, requested: Sequence[str] | None, exclude: set[str],
                       where: str) -> list[str]:
    """``--columns`` (checked against the schema), else every column but the vector and id columns."""
    if requested is None:
        return [name for name in schema.names if name not in exclude]
    for name in requested:
        if name not in schema.names:
            raise _unknown(name, schema.names, where)
    return [name for name in dict.fromkeys(requested) if name not in exclude]


def _open_files(path: Path, what: str) -> list[TableFile]:
    return [TableFile(p) for p in list_table_files(path, what)]


def _check_columns(files: list[TableFile], needed: Sequence[str]) -> None:
    for f in files[1:]:
        missing = [name for name in needed if name not in f.schema.names]
        if missing:
            raise CliError(f"{str(f.path)!r} lacks column(s) {missing} that {str(files[0].path)!r} has")


def _total(files: list[TableFile]) -> int | None:
    counts = [f.num_rows for f in files]
    return None if any(c is None for c in counts) else sum(counts)  # type: ignore[misc]


class TableSource:
    """Vectors in a list column of Parquet / Arrow files, beside the attribute columns."""

    def __init__(self, path: Path, *, vector_column: str | Mapping[str, str] | None, id_column: str | None,
                 columns: Sequence[str] | None):
        self.files = _open_files(path, "SOURCE")
        self.reading = _Columns(self.files[0].schema, vector_column, id_column, columns, repr(str(self.files[0].path)))
        self.vector_column, self.id_column = self.reading.vector_column, self.reading.id_column
        _check_columns(self.files, self.reading.read)
        self.total_rows = _total(self.files)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        for f in self.files:
            where, row0 = repr(str(f.path)), 0
            for rb in f.iter_batches(batch_size, self.reading.read):
                yield self.reading.batch(rb, where, row0)
                row0 += rb.num_rows


class NpySource:
    """Vectors from a ``.npy`` file (memory-mapped), attributes row-aligned from Parquet / Arrow files."""

    def __init__(self, vectors: Path, attributes: Path | None, *, id_column: str | None,
                 columns: Sequence[str] | None):
        if not vectors.exists():
            raise CliError(f"--vectors {str(vectors)!r} does not exist")
        try:
            self.vectors = np.load(vectors, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise CliError(f"cannot read {str(vectors)!r} as a .npy array: {exc}") from exc
        self.path = vectors
        if self.vectors.ndim != 2 or self.vectors.shape[1] == 0:
            raise CliError(f"{str(vectors)!r} holds an array of shape {self.vectors.shape}; expected (rows, dim)")
        if self.vectors.dtype.kind not in "fiu":
            raise CliError(f"{str(vectors)!r} holds {self.vectors.dtype} values; vectors must be numbers")
        self.total_rows = int(self.vectors.shape[0])
        self.files: list[TableFile] = []
        self.id_column, self.columns = None, []
        if attributes is None:
            if id_column is not None or columns is not None:
                raise CliError("--id-column and --columns need --attributes (or a SOURCE table)")
            return
        self.files = _open_files(attributes, "--attributes")
        first = self.files[0]
        where = repr(str(first.path))
        self.id_column = _id_column(first.schema, id_column, where)
        self.columns = _attribute_columns(first.schema, columns, {self.id_column or ""}, where)
        _check_columns(self.files, ([self.id_column] if self.id_column else []) + self.columns)
        rows = _total(self.files)
        if rows is not None and rows != self.total_rows:
            raise CliError(f"{str(vectors)!r} has {self.total_rows} vectors but --attributes "
                           f"{str(attributes)!r} has {rows} rows")

    def batches(self, batch_size: int) -> Iterator[Batch]:
        n = self.total_rows
        if not self.files:
            for start in range(0, n, batch_size):
                yield Batch(np.asarray(self.vectors[start:start + batch_size]), None, None)
            return
        read = ([self.id_column] if self.id_column else []) + self.columns
        offset = 0
        for f in self.files:
            where = repr(str(f.path))
            for rb in f.iter_batches(batch_size, read):
                if offset + rb.num_rows > n:
                    raise CliError(f"the attributes have more rows than the {n} vectors of {str(self.path)!r}")
                vectors = np.asarray(self.vectors[offset:offset + rb.num_rows])
                ids = ids_of(rb.column(self.id_column), self.id_column, where) if self.id_column else None
                attrs = pa.Table.from_batches([rb.select(self.columns)]) if self.columns else None
                offset += rb.num_rows
                yield Batch(vectors, attrs, ids)
        if offset != n:
            raise CliError(f"{str(self.path)!r} has {n} vectors but the attributes have {offset} rows")


class ArrowSource:
    """Vectors in a list column of an in-memory table (or a stream of record batches), beside the
    attribute columns; ``what`` names it in messages."""

    def __init__(self, schema: pa.Schema, batches: Callable[[int], Iterator[pa.RecordBatch]], total: int | None, *,
                 vector_column: str | Mapping[str, str] | None, id_column: str | None, columns: Sequence[str] | None,
                 what: str = "the table"):
        self.schema, self._batches, self.total_rows, self.where = schema, batches, total, what
        self.reading = _Columns(schema, vector_column, id_column, columns, what)
        self.vector_column, self.id_column = self.reading.vector_column, self.reading.id_column

    def batches(self, batch_size: int) -> Iterator[Batch]:
        row0 = 0
        for rb in self._batches(batch_size):
            yield self.reading.batch(rb.select(self.reading.read), self.where, row0)
            row0 += rb.num_rows


def is_table(data: Any) -> bool:
    """Whether ``data`` is a table ``open_source`` reads (rather than vectors)."""
    import pyarrow.dataset as ds

    return (isinstance(data, (str, Path, pa.Table, pa.RecordBatch, pa.RecordBatchReader, ds.Dataset))
            or type(data).__module__.split(".")[0] in ("pandas", "polars") and type(data).__name__ == "DataFrame")


def open_source(data: Any, *, vector_column: str | Mapping[str, str] | None = None, id_column: str | None = None,
                columns: Sequence[str] | None = None) -> "TableSource | ArrowSource":
    """A source over a Parquet / Arrow file or directory (a path), an Arrow table, record batch or reader,
    a ``pyarrow.dataset.Dataset``, or a pandas / polars DataFrame."""
    import pyarrow.dataset as ds

    if isinstance(data, (str, Path)):
        return TableSource(Path(data), vector_column=vector_column, id_column=id_column, columns=columns)
    if isinstance(data, ds.Dataset):
        return ArrowSource(data.schema, lambda n: data.to_batches(batch_size=n), data.count_rows(),
                           vector_column=vector_column, id_column=id_column, columns=columns, what="the dataset")
    if isinstance(data, pa.RecordBatchReader):
        return ArrowSource(data.schema, lambda n: (b.slice(i, n) for b in data for i in range(0, b.num_rows, n)),
                           None, vector_column=vector_column, id_column=id_column, columns=columns,
                           what="the record batches")
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    elif not isinstance(data, pa.Table):  # pandas / polars
        try:
            data = data.to_arrow() if type(data).__module__.startswith("polars") else \
                pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise CliError(f"cannot turn the DataFrame into Arrow: {exc}") from exc
    table = data
    return ArrowSource(table.schema, lambda n: iter(table.to_batches(max_chunksize=n)), table.num_rows,
                       vector_column=vector_column, id_column=id_column, columns=columns)
