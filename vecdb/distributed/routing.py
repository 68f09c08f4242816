"""Which shard owns a row: by a hash of its id (the default), by a hash of a partition column's value
(strings, booleans: a tenant, a category), or by ranges of an ordered partition column (numbers, dates:
boundaries taken from the quantiles of the data at build time).

Every function here is deterministic across processes and machines (no Python ``hash()``, whose seed
differs per process), so a driver and the build tasks route the same row to the same shard.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecdb.errors import InvalidParameterError, SchemaError

KINDS = ("hash", "value", "range")
_EPOCH = dt.date(1970, 1, 1)


@dataclasses.dataclass(frozen=True)
class Sharding:
    """How rows map to ``shards`` shards: ``kind`` ``"hash"`` (of the id), ``"value"`` (hash of ``column``'s
    value) or ``"range"`` (``bounds``: ``shards - 1`` ascending boundaries of ``column``; shard i holds
    ``bounds[i-1] <= v < bounds[i]``). Rows whose partition value is null go to shard 0."""

    kind: str
    shards: int
    column: str | None = None
    bounds: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidParameterError(f"sharding kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if isinstance(self.shards, bool) or not isinstance(self.shards, int) or self.shards < 1:
            raise InvalidParameterError(f"shards must be a positive integer; got {self.shards!r}")
        if (self.kind == "hash") != (self.column is None):
            raise InvalidParameterError(f"sharding {self.kind!r} {'takes no' if self.kind == 'hash' else 'needs a'} column")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "shards": self.shards}
        if self.column is not None:
            out["column"] = self.column
        if self.kind == "range":
            out["bounds"] = [_json_value(b) for b in self.bounds]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Sharding":
        return cls(data["kind"], int(data["shards"]), data.get("column"),
                   tuple(_from_json_value(b) for b in data.get("bounds", ())))

    def route(self, ids: np.ndarray, table: pa.Table | None) -> np.ndarray:
        """The shard of each row (int64), from its id and (for partitioned sharding) its attributes."""
        if self.shards == 1:
            return np.zeros(len(ids), np.int64)
        if self.kind == "hash":
            return hash_ids(ids, self.shards)
        if table is None or self.column not in table.column_names:
            raise SchemaError(f"rows are sharded by column {self.column!r}; every write must give it")
        column = table.column(self.column)
        if self.kind == "value":
            return _route_values(column, self.shards)
        return _route_ranges(column, self.bounds)


def hash_ids(ids: np.ndarray, shards: int) -> np.ndarray:
    """splitmix64's finaliser of each id, modulo ``shards``: consecutive ids spread evenly."""
    z = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(shards)).astype(np.int64)


def value_shard(value: Any, shards: int) -> int:
    """The shard of one partition value (``"value"`` sharding): blake2b of its typed text."""
    if value is None:
        return 0
    digest = hashlib.blake2b(f"{type(value).__name__}:{value}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


def _route_values(column: pa.ChunkedArray, shards: int) -> np.ndarray:
    encoded = pc.dictionary_encode(column).combine_chunks()
    targets = np.array([value_shard(v, shards) for v in encoded.dictionary.to_pylist()] + [0], np.int64)
    codes = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return targets[codes]


def _ordered_numbers(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """An ordered column as float64 numbers (dates as days since 1970) and its null mask."""
    t = column.type
    if pa.types.is_date(t):
        column = column.cast(pa.date32()).cast(pa.int32())
    elif pa.types.is_timestamp(t):
        column = column.cast(pa.int64())
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        raise SchemaError(f"range sharding needs a numeric, date or timestamp column; got {t}")
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    return column.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64), nulls


def _route_ranges(column: pa.ChunkedArray, bounds: tuple[Any, ...]) -> np.ndarray:
    values, nulls = _ordered_numbers(column)
    edges = np.array([_as_number(b) for b in bounds], np.float64)
    out = np.searchsorted(edges, values, side="right").astype(np.int64)
    out[nulls] = 0
    return out


def range_bounds(column: pa.ChunkedArray | pa.Array, shards: int) -> tuple[Any, ...]:
    """``shards - 1`` boundaries at the quantiles of the column's values (fewer when values repeat)."""
    values, nulls = _ordered_numbers(column)
    values = values[~nulls]
    if values.size == 0 or shards == 1:
        return ()
    cuts = np.unique(np.quantile(values, np.arange(1, shards) / shards, method="higher"))
    cuts = cuts[cuts > values.min()]  # a cut at the minimum would leave shard 0 empty
    if pa.types.is_date(column.type):
        return tuple(_EPOCH + dt.timedelta(days=int(c)) for c in cuts)
    if pa.types.is_integer(column.type) or pa.types.is_timestamp(column.type):
        return tuple(int(c) for c in cuts)
    return tuple(float(c) for c in cuts)


def _as_number(value: Any) -> float:
    if isinstance(value, dt.datetime):
        raise SchemaError("range bounds on timestamps are stored as integers")
    if isinstance(value, dt.date):
        return float((value - _EPOCH).days)
    return float(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return {"date": value.isoformat()}
    return value


def _from_json_value(value: Any) -> Any:
    if isinstance(value, dict) and "date" in value:
        return dt.date.fromisoformat(value["date"])
    return value
