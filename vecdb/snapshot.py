"""One committed version of a collection, as one immutable object: everything a search reads.

A ``Snapshot`` holds the typed manifest, the ids and their order, the live mask, the attribute table
(and its attribute indexes, made once on first use), the vector fields (``fields.Field``: each its rows
and indexes), and the planner's configuration. Nothing in it changes after it is made: a writer makes the next snapshot beside it and
the collection publishes that with one reference swap once the commit is durable (Lucene's
``SearcherManager``). ``search`` / ``get`` / ``explain`` take the current snapshot once and read only it,
so a search running while a writer commits answers from the version it started on.
"""

from __future__ import annotations

import dataclasses
import difflib
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from .errors import DuplicateIdError, InvalidParameterError, SchemaError, UnknownIdError
from .filters import Expr, parse
from .filters.attribute_index import AttributeIndex, RowSet
from .planner import PlannerConfig
from .storage.files import Deferred
from .storage.manifest import Manifest
from .vectors import as_ids, as_string_ids
from .fields import Field
from .vectorstore import VectorStore


def _ascending(a: np.ndarray) -> bool:
    return a.shape[0] < 2 or bool((a[1:] > a[:-1]).all())


def unknown_column(name: str, names: Sequence[str]) -> Exception:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; columns are {list(names)}"
    return SchemaError(f"unknown column {name!r}{hint}")


class _Attributes:
    """The attribute indexes of one snapshot's table, made (or grown from the previous snapshot's) once,
    on the first filter, under a lock of their own; and the filters bound to them."""

    def __init__(self, table: pa.Table, base: AttributeIndex | None, bound: dict[Expr, Any]):
        self._table, self._base, self.bound = table, base, bound
        self._index: AttributeIndex | None = base if base is not None and base.n == table.num_rows else None
        self._lock = threading.Lock()

    def index(self) -> AttributeIndex:
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    base = self._base
                    self._index = AttributeIndex(self._table) if base is None else base.extended(self._table)
                    self._base = None
                index = self._index
        return index

    def made(self) -> AttributeIndex | None:
        """The index if it exists already (without making it)."""
        return self._index if self._index is not None else self._base


class Pending:
    """Files of a version only size-checked when it was opened (memory-mapped arrays): hashed once, before
    the first read of the data (``Snapshot.verified``), so opening reads no more than it maps while no
    damaged byte ever reaches an answer. ``known`` is the handle's set of file names already checked;
    the checks read through files opened with the maps, so a version removed meanwhile still checks."""

    def __init__(self, checks: Sequence[Deferred], known: set[str]):
        self.known = known
        self.checks = []
        for check in checks:
            if check.name in known:
                check.close()
            else:
                self.checks.append(check)
        self._lock = threading.Lock()

    def check(self) -> None:
        if not self.checks:
            return
        with self._lock:
            while self.checks:
                self.checks[-1].check()
                self.known.add(self.checks.pop().name)


@dataclasses.dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything one version of a collection holds; see the module docstring. Use ``Collection.snapshot``."""

    root: Path
    manifest: Manifest
    ids: np.ndarray          # user id of each stored row
    live: np.ndarray         # False where a row is deleted
    table: pa.Table          # attributes, one row per stored row
    fields: Mapping[str, Field]  # the vector fields, in their declared order
    planner: PlannerConfig
    attributes: _Attributes = dataclasses.field(repr=False)
    pending: Pending = dataclasses.field(repr=False)
    id_order: np.ndarray = dataclasses.field(init=False, repr=False)
    id_sorted: np.ndarray = dataclasses.field(init=False, repr=False)
    n_live: int = dataclasses.field(init=False)
    ids_are_rows: bool = dataclasses.field(init=False, repr=False)  # ids[r] == r for every row: rows need no lookup
    # plans chosen on this snapshot (``batch.search_groups``): the same counts, options and store get the same
    # plan, batch after batch; at most ``batch.PLANS_KEPT``, then begun again
    plans: dict[tuple, Any] = dataclasses.field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        # ids -> rows over the live rows only: a deleted id may come back in a later row
        live_rows = np.flatnonzero(self.live)
        ascending = _ascending(self.ids)
        order = live_rows if live_rows.size == self.ids.shape[0] and ascending else \
            live_rows[np.argsort(self.ids[live_rows], kind="stable")]
        n = self.ids.shape[0]  # distinct integers rising from 0 to n - 1 are 0, 1, ..., n - 1
        object.__setattr__(self, "ids_are_rows", self.ids.dtype == np.int64 and ascending
                           and (n == 0 or (int(self.ids[0]) == 0 and int(self.ids[-1]) == n - 1)))
        object.__setattr__(self, "id_order", order)
        object.__setattr__(self, "id_sorted", self.ids[order])
        object.__setattr__(self, "n_live", int(np.count_nonzero(self.live)))
        for array in (self.ids, self.live, order, self.id_sorted):
            array.flags.writeable = False

    @classmethod
    def make(cls, root: Path, manifest: Manifest, ids: np.ndarray, live: np.ndarray, table: pa.Table,
             fields: Mapping[str, Field], pending: Pending, *, attributes: AttributeIndex | None = None,
             bound: dict[Expr, Any] | None = None) -> "Snapshot":
        """A snapshot; ``pending``: its files still to hash before use; ``attributes``: saved or previous
        attribute indexes to use or grow, ``bound``: the previous snapshot's bound filters (valid while
        the schema is the same). Each field's spec is the manifest's."""
        fields = {f.name: fields[f.name].with_spec(f) for f in manifest.fields}
        return cls(root, manifest, ids, live, table, fields, PlannerConfig(**manifest.planner),
                   _Attributes(table, attributes, {} if bound is None else bound), pending)

    @classmethod
    def load(cls, root: Path, manifest: Manifest, known: set[str]) -> "Snapshot":
        """The snapshot of a committed version: rows, attributes, deletions, the vector store and its index.
        Files read whole are hashed now; memory-mapped ones before their first use (``verified``);
        ``known``: the files the handle has checked already."""
        from .storage import attribute_indexes as attr_files
        from .storage import attributes as attrs_mod
        from .storage.files import read_arrow, read_npy

        ids, tables = [], []
        for seg in manifest.segments:
            ids.append(read_npy(root, seg.ids, mmap=False))
            tables.append(attrs_mod.conform(attrs_mod.to_table(read_arrow(root, seg.attributes), seg.rows),
                                            manifest.schema))
        all_ids = np.concatenate(ids) if ids else np.empty(0, "<U1" if manifest.id_type == "string" else np.int64)
        table = pa.concat_tables(tables) if tables and len(manifest.schema) else \
            attrs_mod.null_table(manifest.schema, len(all_ids))
        live = np.ones(len(all_ids), dtype=bool)
        if manifest.deleted:
            live[read_npy(root, manifest.deleted, mmap=False)] = False
        lazy: list = []
        fields = {spec.name: Field.load(root, manifest.segments, spec, lazy) for spec in manifest.fields}
        # attribute indexes saved with the vector index: mapped when they cover exactly these rows,
        # otherwise (rows added since, or none saved) built in memory on the first filter
        saved = attr_files.load(root, manifest.attributes_index, table, manifest.segments)
        return cls.make(root, manifest, all_ids, live, table, fields, Pending(lazy, known), attributes=saved)

    def successor(self, manifest: Manifest, *, ids: np.ndarray | None = None, live: np.ndarray | None = None,
                  table: pa.Table | None = None, fields: Mapping[str, Field] | None = None,
                  attributes: AttributeIndex | None = None, rewritten: bool = False) -> "Snapshot":
        """The snapshot of the version after this one: what changed is given, the rest carried over.
        ``rewritten``: the attribute values of existing rows changed (their indexes are made anew)."""
        table = self.table if table is None else table
        same_schema = table.schema == self.table.schema and not rewritten
        base = attributes if attributes is not None else self.attributes.made() if same_schema else None
        return Snapshot.make(self.root, manifest, self.ids if ids is None else ids,
                             self.live if live is None else live, table,
                             {**self.fields, **(fields or {})}, self.pending, attributes=base,
                             bound=self.attributes.bound if same_schema and attributes is None else None)

    def verified(self) -> "Snapshot":
        """This snapshot, once every file it reads has been hashed (CorruptCollectionError otherwise)."""
        self.pending.check()
        return self

    # ----------------------------------------------------------------- properties
    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def schema(self) -> pa.Schema:
        return self.manifest.schema

    @property
    def stored(self) -> int:
        return int(self.ids.shape[0])

    @property
    def store(self) -> VectorStore:
        """The first field's rows, through its newest index if it has one (what one-field code reads)."""
        return next(iter(self.fields.values())).reader

    @property
    def index(self) -> Any:
        return self.store.index

    # ----------------------------------------------------------------- ids and rows
    def rows_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers of ``ids`` and a mask of which are present (and not deleted)."""
        if self.id_sorted.size == 0:
            return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
        pos = np.clip(np.searchsorted(self.id_sorted, ids), 0, self.id_sorted.size - 1)
        rows = self.id_order[pos]
        return rows, (self.id_sorted[pos] == ids) & self.live[rows]

    @property
    def string_ids(self) -> bool:
        return self.manifest.id_type == "string"

    def id_array(self, ids: Any) -> np.ndarray:
        """User ids (one or several) in the collection's id type."""
        if self.string_ids:
            return as_string_ids(ids)
        return np.atleast_1d(np.asarray(ids, dtype=np.int64))

    def new_ids(self, ids: Any, n: int, *, replace: bool = False) -> np.ndarray:
        """The ids of ``n`` new rows: the next free ones, or the caller's, checked unique within the call
        and (unless ``replace``: upsert) not live in the collection. Deleted ids may come back."""
        if ids is None:
            if self.string_ids:
                raise InvalidParameterError("this collection's ids are strings: give ids=...")
            return np.arange(self.manifest.next_id, self.manifest.next_id + n, dtype=np.int64)
        new_ids = as_string_ids(ids, n) if self.string_ids else as_ids(ids, n)
        if not replace:
            _, present = self.rows_of(new_ids)
            if present.any():
                raise DuplicateIdError(f"ids already present in the collection: {new_ids[present][:10].tolist()} "
                                       f"(upsert replaces rows)")
        return new_ids

    def check_columns(self, columns: Sequence[str] | None) -> list[str]:
        names = self.schema.names if columns is None else list(columns)
        for name in names:
            if name not in self.schema.names:
                raise unknown_column(name, self.schema.names)
        return names

    def get(self, ids: Any, columns: Sequence[str] | None = None, *, with_vectors: bool = True) -> pa.Table:
        """Rows by id, in the order given (``Collection.get``)."""
        ids = self.id_array(ids)
        rows, found = self.rows_of(ids)
        if not found.all():
            raise UnknownIdError(f"unknown id(s): {ids[~found][:10].tolist()}")
        names = self.check_columns(columns)
        out = {"id": pa.array(ids)}
        if with_vectors:
            out.update((name, field.vectors_of(rows)) for name, field in self.fields.items())
        if names:
            taken = self.table.select(names).take(pa.array(rows))
            out.update((name, taken.column(name)) for name in names)
        return pa.table(out)

    # ----------------------------------------------------------------- filters
    def attribute_index(self) -> AttributeIndex:
        return self.attributes.index()

    def select(self, where: Any) -> RowSet:
        """Rows passing ``where`` (anything ``parse`` takes), deleted ones included, as a ``RowSet``."""
        expr = parse(where)
        if expr is None:
            return RowSet.all(self.stored)
        index = self.attributes.index()
        bound = self.attributes.bound.get(expr)
        if bound is None:
            bound = self.attributes.bound[expr] = index.bind(expr)
        return index.select(bound)

    def live_selection(self, expr: Expr | None, field: Field | None = None) -> RowSet | None:
        """The live rows passing ``expr`` (and holding a value of ``field``, if given); None when that is
        every stored row (nothing to filter)."""
        valid = None if field is None else field.valid
        if expr is None and self.n_live == self.stored and valid is None:
            return None
        selected = self.select(expr)
        if self.n_live < self.stored:
            selected = selected & self.live
        if valid is not None:
            selected = selected & valid
        return None if selected.count == self.stored else selected
