"""What every collection kind shares: the manifest and its versioned writes, ids <-> rows, deletions,
the attribute table and its filters. ``Collection`` (one vector per row) and
``multivector.MultiVectorCollection`` (a set of vectors per row) add their own vectors and indexes.
"""

from __future__ import annotations

import base64
import copy
import difflib
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa

from . import planner
from .errors import DuplicateIdError, InvalidParameterError, SchemaError
from .filters import Expr, parse
from .filters.attribute_index import AttributeIndex, RowSet
from .storage import attribute_indexes as attr_files
from .storage import attributes as attrs_mod
from .storage.files import read_arrow, read_npy, write_arrow, write_npy
from .storage.manifest import collect_garbage, write_manifest
from .vectors import as_ids


def schema_to_json(schema: pa.Schema) -> dict:
    return {
        "arrow_ipc": base64.b64encode(schema.serialize().to_pybytes()).decode(),
        "columns": [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema],
    }


def schema_from_json(data: dict) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["arrow_ipc"])))


def unknown_column(name: str, names: Sequence[str]) -> Exception:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; columns are {list(names)}"
    return SchemaError(f"unknown column {name!r}{hint}")


class RowStore:
    """Base of the collection kinds; subclasses implement ``_load`` and ``get``."""

    _ids: np.ndarray
    _live: np.ndarray
    _schema: pa.Schema
    _table: pa.Table

    def __init__(self, root: Path, manifest: dict[str, Any]):
        self.root = root
        self._manifest = manifest
        self._lock = threading.RLock()
        self._planner = planner.PlannerConfig(**manifest.get("planner", {}))
        self._bound: dict[Expr, Any] = {}
        self._attr_index: AttributeIndex | None = None  # see ``_attributes``
        self._load()
        self._n_live = int(self._live.sum())

    def _load(self) -> None:
        raise NotImplementedError

    def _load_rows(self) -> None:
        """Schema, ids, attributes and deletions of every segment (each kind reads its own vectors)."""
        m = self._manifest
        self._schema = schema_from_json(m["schema"])
        ids, tables = [], []
        for seg in m["segments"]:
            ids.append(read_npy(self.root, seg["ids"], mmap=False))
            tables.append(attrs_mod.conform(attrs_mod.to_table(read_arrow(self.root, seg["attributes"]),
                                                               seg["rows"]), self._schema))
        self._ids = np.concatenate(ids) if ids else np.empty(0, np.int64)
        self._table = (pa.concat_tables(tables) if len(self._schema) else
                       attrs_mod.null_table(self._schema, len(self._ids)))
        self._live = np.ones(len(self._ids), dtype=bool)
        if m.get("deleted"):
            self._live[read_npy(self.root, m["deleted"], mmap=False)] = False
        self._reindex_ids()
        # attribute indexes saved with the vector index: mapped when they cover exactly these rows,
        # otherwise (rows added since, or none saved) built in memory on the first filter
        self._attr_index = attr_files.load(self.root, m.get(attr_files.KEY), self._table, m["segments"])

    def get(self, ids: Any, columns: Sequence[str] | None = None, *, with_vectors: bool = True) -> pa.Table:
        raise NotImplementedError

    # ----------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        return int(self._manifest["dim"])

    @property
    def metric(self) -> str:
        return self._manifest["metric"]

    @property
    def schema(self) -> pa.Schema:
        """The attribute columns (without ``id`` and the vectors)."""
        return self._schema

    @property
    def version(self) -> int:
        return int(self._manifest["version"])

    def __len__(self) -> int:
        return self._n_live

    def to_arrow(self, columns: Sequence[str] | None = None, *, with_vectors: bool = False) -> pa.Table:
        """Every live row: ``id``, optionally the vectors, and the attribute columns (all by default)."""
        return self.get(self._ids[self._live], columns=columns, with_vectors=with_vectors)

    # ----------------------------------------------------------------- ids and rows
    def _reindex_ids(self) -> None:
        self._id_order = np.argsort(self._ids, kind="stable")
        self._id_sorted = self._ids[self._id_order]

    def _rows_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers of ``ids`` and a mask of which are present (and not deleted)."""
        if self._id_sorted.size == 0:
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
        pos = np.clip(np.searchsorted(self._id_sorted, ids), 0, self._id_sorted.size - 1)
        rows = self._id_order[pos]
        return rows, (self._id_sorted[pos] == ids) & self._live[rows]

    def _new_ids(self, ids: Any, n: int) -> np.ndarray:
        """The ids of ``n`` new rows: the next free ones, or the caller's, checked unique and unused."""
        if ids is None:
            return np.arange(self._manifest["next_id"], self._manifest["next_id"] + n, dtype=np.int64)
        new_ids = as_ids(ids, n)
        _, present = self._rows_of(new_ids)
        if present.any():
            raise DuplicateIdError(f"ids already present in the collection: {new_ids[present][:10].tolist()} "
                                   f"(use upsert to replace rows)")
        if self._id_sorted.size:  # a deleted id may not come back through add either: its old row holds it
            pos = np.clip(np.searchsorted(self._id_sorted, new_ids), 0, self._id_sorted.size - 1)
            taken = self._id_sorted[pos] == new_ids
            if taken.any():
                raise DuplicateIdError(f"ids used by deleted rows: {new_ids[taken][:10].tolist()}")
        return new_ids

    def _check_columns(self, columns: Sequence[str] | None) -> list[str]:
        names = self._schema.names if columns is None else list(columns)
        for name in names:
            if name not in self._schema.names:
                raise unknown_column(name, self._schema.names)
        return names

    # ----------------------------------------------------------------- writing
    def _next_manifest(self) -> dict[str, Any]:
        # files of a write that crashed before its commit point would collide with this one's names
        collect_garbage(self.root, self._manifest)
        manifest = copy.deepcopy(self._manifest)
        manifest["version"] = self.version + 1
        return manifest

    def _commit(self, manifest: dict[str, Any], new_files: Iterable[Path]) -> None:
        """Swap in ``manifest``; on failure remove what this write created and leave the old version."""
        try:
            write_manifest(self.root, manifest)
        except BaseException:
            for path in new_files:
                path.unlink(missing_ok=True)
            raise
        self._manifest = manifest

    def _append_segment(self, manifest: dict[str, Any], arrays: dict[str, tuple[str, np.ndarray]],
                        table: pa.Table, new_ids: np.ndarray, schema: pa.Schema, written: list[Path]) -> None:
        """Write one ``add``'s segment (its arrays, ids, attributes) and name it in ``manifest``.

        ``arrays`` maps manifest keys to (file suffix, array); every path written is appended to
        ``written`` so that a failed write can remove them (see ``_write_version``).
        """
        stem = f"seg-{manifest['version']:06d}"
        seg: dict[str, Any] = {"rows": len(new_ids)}
        files = [(key, suffix, write_npy, array) for key, (suffix, array) in arrays.items()]
        files += [("ids", ".ids.npy", write_npy, new_ids),
                  ("attributes", ".attrs.arrow", write_arrow, attrs_mod.encode_for_disk(table))]
        for key, suffix, writer, value in files:
            written.append(self.root / (stem + suffix))
            seg[key] = writer(written[-1], value)
        manifest["segments"].append(seg)
        manifest["next_id"] = int(max(manifest["next_id"], int(new_ids.max()) + 1))
        manifest["schema"] = schema_to_json(schema)

    def _write_version(self, manifest: dict[str, Any], write: Callable[[list[Path]], None]) -> None:
        """Run ``write(written)`` then commit ``manifest``; on any failure remove every file written."""
        written: list[Path] = []
        try:
            write(written)
            self._commit(manifest, written)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise

    def _write_index_version(self, manifest: dict[str, Any], write: Callable[[Path, list[Path]], None]) -> None:
        """``_write_version`` for a version that changes the indexes: ``write(stem, written)`` saves the
        vector index under ``stem`` (``index-NNNNNN``) and names it in ``manifest``; the attribute indexes
        of every row join the same commit, and the collection uses them once it is committed."""
        stem = self.root / f"index-{manifest['version']:06d}"
        saved: list[AttributeIndex | None] = []

        def write_all(written: list[Path]) -> None:
            write(stem, written)
            saved.append(self._save_attribute_indexes(manifest, stem, written))

        self._write_version(manifest, write_all)
        if saved[0] is not None:
            self._attr_index = saved[0]

    def _save_attribute_indexes(self, manifest: dict[str, Any], stem: Path,
                                written: list[Path]) -> AttributeIndex | None:
        """Name in ``manifest`` the attribute indexes of every current row, written beside the vector index
        (``stem``: its ``index-NNNNNN`` stem) unless the ones it names already cover these rows; returns the
        index to use once ``manifest`` is committed (None: keep the current one)."""
        if attr_files.covers(manifest.get(attr_files.KEY), manifest["segments"], len(self._ids)):
            return None  # still exact (deletions do not change them): the next version names the same files
        index = self._attributes()
        manifest[attr_files.KEY] = attr_files.save(index, stem, written, manifest["segments"])
        return index

    def _attribute_indexes_stale(self) -> bool:
        """Whether the saved attribute indexes miss rows (or were never saved)."""
        return not attr_files.covers(self._manifest.get(attr_files.KEY), self._manifest["segments"], len(self._ids))

    def _adopt_rows(self, table: pa.Table, schema: pa.Schema, new_ids: np.ndarray) -> None:
        """After a committed add: the new rows' attributes, ids and liveness join the in-memory state."""
        n = len(new_ids)
        same_schema = schema == self._schema
        if not len(schema):
            self._table = attrs_mod.null_table(schema, len(self._ids) + n)
        else:
            if not same_schema:  # the first attributes arrive: earlier rows get nulls
                self._table = attrs_mod.null_table(schema, len(self._ids))
            self._table = pa.concat_tables([self._table, table])
        self._schema = schema
        self._ids = np.concatenate([self._ids, new_ids])
        self._live = np.concatenate([self._live, np.ones(n, bool)])
        self._n_live += n
        self._reindex_ids()
        if not same_schema:  # otherwise bound filters stay valid, and ``_attributes`` grows the indexes
            self._bound.clear()
            self._attr_index = None

    def delete(self, ids: Any = None, *, where: Any = None) -> int:
        """Delete rows by id or by filter (exactly one of the two); returns how many were deleted."""
        with self._lock:
            if (ids is None) == (where is None):
                raise InvalidParameterError("delete takes ids=... or where=..., exactly one of them")
            if ids is not None:
                rows, found = self._rows_of(np.atleast_1d(np.asarray(ids, dtype=np.int64)))
                rows = np.unique(rows[found])
            else:
                rows = np.flatnonzero(self._filter_mask(where) & self._live)
            if rows.size == 0:
                return 0
            live = self._live.copy()
            live[rows] = False
            manifest = self._next_manifest()
            path = self.root / f"deleted-{manifest['version']:06d}.npy"
            manifest["deleted"] = write_npy(path, np.flatnonzero(~live).astype(np.int64))
            self._commit(manifest, [path])
            self._live = live
            self._n_live = int(live.sum())
            return int(rows.size)

    # ----------------------------------------------------------------- filters
    def _filter_mask(self, where: Any) -> np.ndarray:
        """Rows passing ``where`` (anything ``parse`` takes), deleted ones included; all rows for None."""
        return self._select(where).mask

    def _select(self, where: Any) -> RowSet:
        """Rows passing ``where``, deleted ones included, as a ``RowSet`` (sorted rows while few pass)."""
        expr = parse(where)
        if expr is None:
            return RowSet.all(len(self._ids))
        index = self._attributes()
        bound = self._bound.get(expr)
        if bound is None:
            bound = self._bound[expr] = index.bind(expr)
        return index.select(bound)

    def _attributes(self) -> AttributeIndex:
        """The attribute indexes of the current table: made on first use; after adds, the column indexes
        made so far are extended by the rows added since (once, however many adds there were)."""
        index = self._attr_index
        if index is None:
            index = self._attr_index = AttributeIndex(self._table)
        elif index.n < self._table.num_rows:
            index = self._attr_index = index.extended(self._table)
        return index

    def _live_selection(self, expr: Any) -> RowSet | None:
        """The live rows passing ``expr``; None when that is every row (nothing to filter)."""
        if expr is None and self._n_live == len(self._ids):
            return None
        selected = self._select(expr)
        if self._n_live < len(self._ids):
            selected = selected & self._live
        return None if selected.count == len(self._ids) else selected

    def _groups(self, where: Any, nq: int) -> dict[Any, list[int]]:
        """Queries grouped by their (parsed) filter, so each distinct filter is evaluated once."""
        if isinstance(where, (list, tuple)):
            if len(where) != nq:
                raise InvalidParameterError(f"got {len(where)} filters for {nq} queries; give one per query")
            groups: dict[Any, list[int]] = {}
            for i, w in enumerate(where):
                groups.setdefault(parse(w), []).append(i)
            return groups
        return {parse(where): list(range(nq))}
