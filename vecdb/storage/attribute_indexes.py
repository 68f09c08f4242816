"""The attribute indexes on disk: written with the collection's vector index, memory-mapped on open.

Every column index of an ``AttributeIndex`` (``vecdb.filters.attribute_index``) is saved beside the
vector index under the same owned stem, so the manifest's garbage collection handles them:
``index-NNNNNN.attr-<position>.<part>`` with ``<position>`` the column's place in the schema.

- ``InvertedIndex``: ``.offsets.npy`` and ``.rows.npy`` (int64), ``.nulls.npy`` (bool, only when the
  column holds nulls), ``.keys.arrow``: an Arrow IPC file with the keys as a typed array (the column's
  value type) beside their int64 codes, so strings, booleans, numbers and dates come back as the same
  Python values;
- ``SortedIndex``: ``.values.npy`` (int64 or float64), ``.rows.npy``, ``.nulls.npy`` as above, and
  ``.type.arrow``: an empty Arrow IPC file whose one field ``type`` carries the index's Arrow type;
- a column whose index is None (left to pyarrow, e.g. floats holding NaN) is recorded as ``"none"``, so
  opening does not try to build it again.

Arrays are written with ``allow_pickle=False`` and read back memory-mapped; nothing is pickled.

Manifest entry (``manifest["attributes_index"]``)::

    {"format": 1, "rows": <rows covered>, "segments": [<sha256 of each segment's attribute file>],
     "columns": {<name>: {"position": i, "column_type": "<arrow type>", "kind": "inverted" | "sorted" | "none",
                          <part>: {"file", "bytes", "sha256"} | null, ...}}}

They are used on open only when they cover exactly the current rows (same row count and the same segment
attribute files, in order); otherwise (rows added since) the indexes are built in memory on first use as
before. Deletions do not touch them: deleted rows are masked out separately.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from ..errors import CorruptCollectionError
from ..filters.attribute_index import AttributeIndex, InvertedIndex, SortedIndex
from .files import read_arrow, read_npy, verify, write_arrow, write_npy

if TYPE_CHECKING:
    from .manifest import Segment

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the meaning of the saved arrays changes: older files are then rebuilt, not misread
KEY = "attributes_index"

Index = InvertedIndex | SortedIndex | None


def fingerprint(segments: Sequence[Segment]) -> list[str]:
    """What the saved indexes were built over: the checksum of every segment's attribute file."""
    return [seg.attributes.sha256 for seg in segments]


def covers(spec: dict[str, Any] | None, segments: Sequence[Segment], rows: int) -> bool:
    """Whether the saved indexes ``spec`` cover exactly these rows (and are in the format read here)."""
    return (isinstance(spec, dict) and spec.get("format") == FORMAT and spec.get("rows") == rows
            and spec.get("segments") == fingerprint(segments))


# ---------------------------------------------------------------------------------------------- saving
def _key_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type of an inverted index's keys: the column's (list element's) value type, decoded."""
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        t = t.value_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    return t


def _keys_table(index: InvertedIndex, t: pa.DataType) -> pa.Table | None:
    """The keys as a typed Arrow column beside their codes, or None where they would not come back
    exactly (e.g. NaN keys of a list<float> column): such a column is left out and built on first use."""
    keys = list(index.keys)
    codes = np.fromiter(index.keys.values(), dtype=np.int64, count=len(keys))
    try:
        array = pa.array(keys, type=_key_type(t))
        back = array.to_pylist()
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    if back != keys or any(type(a) is not type(b) for a, b in zip(back, keys)):
        return None
    return pa.table({"key": array, "code": pa.array(codes, pa.int64())})


def save(index: AttributeIndex, stem: Path, written: list[Path], segments: Sequence[Segment]) -> dict[str, Any]:
    """Build every column of ``index`` (``build_all``) and write it under ``stem``; return the manifest entry.

    Every path written is appended to ``written`` first, so a failed write can remove it.
    """
    built = index.build_all()
    columns: dict[str, Any] = {}
    for position, field in enumerate(index.table.schema):
        if field.name not in built:
            continue  # a type filters do not support: nothing to save
        column = built[field.name]
        base = f"{stem.name}.attr-{position}"

        def npy(part: str, array: np.ndarray | None) -> dict[str, Any] | None:
            if array is None:
                return None
            written.append(stem.with_name(f"{base}.{part}.npy"))
            return write_npy(written[-1], array)

        def arrow(part: str, table: pa.Table) -> dict[str, Any]:
            written.append(stem.with_name(f"{base}.{part}.arrow"))
            return write_arrow(written[-1], table)

        entry: dict[str, Any] = {"position": position, "column_type": str(field.type)}
        if column is None:
            entry["kind"] = "none"
        elif isinstance(column, InvertedIndex):
            keys = _keys_table(column, field.type)
            if keys is None:
                log.info("attribute index of column %r not saved: its keys do not round-trip through Arrow",
                         field.name)
                continue
            entry.update(kind="inverted", keys=arrow("keys", keys),
                         offsets=npy("offsets", np.asarray(column.offsets, dtype=np.int64)),
                         rows=npy("rows", np.asarray(column.rows, dtype=np.int64)),
                         nulls=npy("nulls", None if column.nulls is None else np.asarray(column.nulls, dtype=bool)))
        elif isinstance(column, SortedIndex):
            if column.values.dtype not in (np.int64, np.float64):
                continue
            entry.update(kind="sorted", type=arrow("type", pa.table({"type": pa.array([], type=column.type)})),
                         values=npy("values", column.values),
                         rows=npy("rows", np.asarray(column.rows, dtype=np.int64)),
                         nulls=npy("nulls", None if column.nulls is None else np.asarray(column.nulls, dtype=bool)))
        else:  # an index kind this module does not know how to save: built on first use
            continue
        columns[field.name] = entry
    return {"format": FORMAT, "rows": index.n, "segments": fingerprint(segments), "columns": columns}


# --------------------------------------------------------------------------------------------- loading
class StoredColumns(dict):
    """The column indexes of a saved ``AttributeIndex``: every file is checked and mapped on open, the
    Python side of a column (its key dict) is made on first access, so opening costs no more than the
    columns the filters use."""

    def __init__(self, pending: dict[str, Callable[[], Index]]):
        super().__init__()
        self._pending = pending

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._pending

    def __missing__(self, name: str) -> Index:
        make = self._pending.get(name)
        if make is None:
            if dict.__contains__(self, name):  # made meanwhile on another thread (search runs filters on threads)
                return dict.__getitem__(self, name)
            raise KeyError(name)
        value = make()
        self[name] = value  # before leaving ``_pending``, so a column is always in one of the two
        self._pending.pop(name, None)
        return value


def _corrupt(root: Path, entry: dict[str, Any], why: str) -> CorruptCollectionError:
    return CorruptCollectionError(f"attribute index file {str(root / entry['file'])!r} {why}")


def _array(root: Path, entry: dict[str, Any], dtypes: tuple[Any, ...], length: int | None = None) -> np.ndarray:
    array = read_npy(root, entry).view(np.ndarray)  # a plain array over the map
    if array.ndim != 1 or array.dtype not in dtypes:
        raise _corrupt(root, entry, f"holds a {array.dtype} array of shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise _corrupt(root, entry, f"holds {array.shape[0]} values, expected {length}")
    return array


def _nulls(root: Path, entry: dict[str, Any] | None, n: int) -> np.ndarray | None:
    return None if entry is None else _array(root, entry, (np.dtype(bool),), n)


def _open_inverted(root: Path, spec: dict[str, Any], n: int) -> Callable[[], InvertedIndex]:
    offsets = _array(root, spec["offsets"], (np.dtype(np.int64),))
    rows = _array(root, spec["rows"], (np.dtype(np.int64),))
    nulls = _nulls(root, spec["nulls"], n)
    if offsets.shape[0] < 1 or int(offsets[-1]) != rows.shape[0]:
        raise _corrupt(root, spec["offsets"], f"does not end at the {rows.shape[0]} rows of its index")
    keys_table = read_arrow(root, spec["keys"])
    if keys_table.column_names != ["key", "code"] or keys_table.schema.field("code").type != pa.int64():
        raise _corrupt(root, spec["keys"], f"has columns {keys_table.schema}, expected key and code (int64)")

    def make() -> InvertedIndex:
        codes = keys_table.column("code").to_numpy()
        if codes.size and (codes.min() < 0 or codes.max() >= offsets.shape[0] - 1):
            raise _corrupt(root, spec["keys"], "has codes outside its offsets")
        keys = dict(zip(keys_table.column("key").to_pylist(), codes.tolist()))
        return InvertedIndex(keys, offsets, rows, nulls)

    return make


def _open_sorted(root: Path, spec: dict[str, Any], n: int) -> Callable[[], SortedIndex]:
    values = _array(root, spec["values"], (np.dtype(np.int64), np.dtype(np.float64)))
    rows = _array(root, spec["rows"], (np.dtype(np.int64),), values.shape[0])
    nulls = _nulls(root, spec["nulls"], n)
    schema = read_arrow(root, spec["type"]).schema
    if schema.names != ["type"]:
        raise _corrupt(root, spec["type"], f"has fields {schema.names}, expected one named 'type'")
    index = SortedIndex(values, rows, nulls, schema.field("type").type)
    return lambda: index


def verify_all(root: Path, spec: dict[str, Any]) -> None:
    """Check every file ``spec`` names against its size and sha256 (CorruptCollectionError otherwise)."""
    for column in spec.get("columns", {}).values():
        for value in column.values():
            if isinstance(value, dict) and "file" in value:
                verify(root, value)


def load(root: Path, spec: dict[str, Any] | None, table: pa.Table,
         segments: Sequence[Segment]) -> AttributeIndex | None:
    """The saved attribute indexes over ``table`` (memory-mapped), or None when there are none or they do
    not cover exactly these rows (then they are built in memory on first use, as without them).

    Every file named is checked either way, so a damaged file raises CorruptCollectionError on open."""
    if not spec:
        return None
    if not covers(spec, segments, table.num_rows):
        verify_all(root, spec)
        return None
    schema = table.schema
    pending: dict[str, Callable[[], Index]] = {}
    for name, column in spec["columns"].items():  # reading a file checks it (read_npy / read_arrow)
        position = schema.get_field_index(name)
        if position != column.get("position") or str(schema.field(name).type) != column.get("column_type"):
            log.warning("attribute index of column %r does not match the schema; built in memory instead", name)
            verify_all(root, {"columns": {name: column}})
            continue
        kind = column.get("kind")
        if kind == "none":
            pending[name] = lambda: None
        elif kind == "inverted":
            pending[name] = _open_inverted(root, column, table.num_rows)
        elif kind == "sorted":
            pending[name] = _open_sorted(root, column, table.num_rows)
        else:
            raise CorruptCollectionError(f"unknown attribute index kind {kind!r} for column {name!r} in the manifest")
    return AttributeIndex(table, columns=StoredColumns(pending))


__all__ = ["FORMAT", "KEY", "StoredColumns", "covers", "fingerprint", "load", "save", "verify_all"]
