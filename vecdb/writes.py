"""The verbs that change a collection: add, upsert, update, delete, build_index, optimize, compact,
schema evolution, restore and cleanup. Each validates everything first, then, under the writer lock
and on the newest version (``Collection._writing``), commits one ``changes.Change``.

Part of ``Collection`` (a mixin, kept apart so each file reads in one sitting).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import calibration, changes, fields as fields_mod, ingest
from .errors import InvalidParameterError, SchemaError, UnknownIdError
from .filters import Expr
from .filters.builder import Column
from .indexes.base import BeamIndex, supports
from .snapshot import Snapshot
from .storage import attributes as attrs_mod
from .storage.manifest import GRACE_SECONDS, KEEP_VERSIONS, collect_garbage, read_manifest, retained_files, valid_name
from .vectorstore import Batch

if TYPE_CHECKING:
    from .collection import Collection

# optimize() compacts instead of extending the index once this share of the stored rows is deleted
# (graph indexes cannot drop rows: dead ones still cost every walk)
REBUILD_DEAD_FRACTION = 0.2


class Writes:
    """The write verbs of ``Collection``."""

    def _apply(self: "Collection", snap: Snapshot, change: changes.Change) -> Snapshot:
        manifest = self._commit(snap, change.operation, change.build)
        self._publish(change.after(manifest))
        return self._snapshot

    def _rows(self: "Collection", snap: Snapshot, vectors: Any, attributes: Any, ids: Any, *,
              replace: bool, carried: np.ndarray | None = None) -> tuple[dict[str, Batch], pa.Table, pa.Schema, np.ndarray]:
        """Validated rows for a write: every field's vectors (a field given no values holds none in these
        rows, or, with ``carried``, the values rows ``carried`` hold now), attributes conformed to the
        schema, ids."""
        batches = fields_mod.encode_all(snap.fields, fields_mod.split_values(snap.fields, vectors), carried)
        n = next(iter(batches.values())).n
        new_ids = snap.new_ids(ids, n, replace=replace)
        table = attrs_mod.to_table(attributes, n)
        clash = sorted(set(table.column_names) & set(snap.fields))
        if clash:
            raise SchemaError(f"attribute column name(s) {clash} are reserved: the vector fields' names")
        schema = snap.schema
        if len(schema) == 0 and table.num_columns:
            schema = attrs_mod.merge_schema(schema, table)
        return batches, attrs_mod.conform(table, schema), schema, new_ids

    def add(self: "Collection", vectors: Any, attributes: Any = None, ids: Any = None, *,
            vector_column: str | None = None, id_column: str | None = None,
            batch_size: int = 65536) -> np.ndarray:
        """Append rows; returns their ids (default: the next free ones). An id may not be live already
        (``upsert`` replaces rows); a deleted id may be used again. Validates everything before writing.

        ``vectors``: an ``(n, dim)`` array (a 1-D array is one row); in a multi-vector collection, the
        rows' sets: a list of ``(n_i, dim)`` arrays, ``(vectors, offsets)``, one ``(n, dim)`` array (one
        row) or an ``(rows, n, dim)`` array. With several vector fields, a dict by field name of those;
        a field left out (or None) holds no value in these rows, and a list may hold None for single
        rows: such rows are not found by searches on that field. Or a table holding everything: an Arrow table, record batch
        or reader, a ``pyarrow.dataset.Dataset``, a pandas or polars DataFrame, or the path of a Parquet /
        Arrow file or directory, with ``vector_column=`` (a list-of-floats column or a column of arrays;
        found by itself when there is one) and ``id_column=`` (default: a column named ``id``, if any);
        its other columns are the attributes. A table is read in batches of ``batch_size`` rows, each
        committed as it comes under one writer lock; if one fails, the version from before is restored.
        """
        if vector_column is not None or id_column is not None or ingest.is_table(vectors):
            return self._add_table(vectors, attributes, ids, vector_column, id_column, batch_size, replace=False)
        with self._writing() as snap:
            batches, table, schema, new_ids = self._rows(snap, vectors, attributes, ids, replace=False)
            if new_ids.size:
                self._apply(snap, changes.append(snap, batches, table, schema, new_ids))
            return new_ids

    add_multi = add  # the multi-vector spelling of earlier releases

    def upsert(self: "Collection", vectors: Any, attributes: Any = None, ids: Any = None, *,
               vector_column: str | None = None, id_column: str | None = None,
               batch_size: int = 65536) -> np.ndarray:
        """Insert or replace whole rows by id, atomically: in one commit the old rows stop being returned
        by every plan and the new ones appear. ``ids`` are required; returns them. Takes a table as
        ``add`` does (its id column is then required)."""
        if vector_column is not None or id_column is not None or ingest.is_table(vectors):
            return self._add_table(vectors, attributes, ids, vector_column, id_column, batch_size, replace=True)
        if ids is None:
            raise InvalidParameterError("upsert needs ids=...: the rows to insert or replace")
        with self._writing() as snap:
            batches, table, schema, new_ids = self._rows(snap, vectors, attributes, ids, replace=True)
            rows, found = snap.rows_of(new_ids)
            if new_ids.size:
                self._apply(snap, changes.append(snap, batches, table, schema, new_ids, replaces=rows[found],
                                                 operation="upsert"))
            return new_ids

    def _add_table(self: "Collection", data: Any, attributes: Any, ids: Any, vector_column: str | None,
                   id_column: str | None, batch_size: int, *, replace: bool) -> np.ndarray:
        if attributes is not None or ids is not None:
            raise InvalidParameterError("a table carries its own attributes and ids; name its columns with "
                                        "vector_column= and id_column= instead of passing attributes= / ids=")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InvalidParameterError(f"batch_size must be a positive integer; got {batch_size!r}")
        source = ingest.open_source(data, vector_column=vector_column, id_column=id_column)
        if replace and source.id_column is None:
            raise InvalidParameterError("upsert needs an id column: give id_column=")
        write = self.upsert if replace else self.add
        out = []
        with self.locked():
            before = self.version
            try:
                for batch in ingest.rebatch(source.batches(batch_size), batch_size):
                    out.append(write(batch.vectors, batch.attributes, ids=batch.ids))
            except BaseException:
                if self.version != before:
                    self.restore(before)
                raise
        return np.concatenate(out) if out else np.empty(0, np.int64)

    def update_vectors(self: "Collection", ids: Any, vectors: Any) -> None:
        """New vectors for existing rows, attributes kept (an upsert of the same rows). With several
        vector fields, ``vectors`` is a dict by field name; the fields left out keep their values."""
        with self._writing() as snap:
            ids = snap.id_array(ids)
            current = snap.get(ids, with_vectors=False).drop(["id"])
            rows, _ = snap.rows_of(ids)
            batches, table, schema, new_ids = self._rows(snap, vectors, current if current.num_columns else None,
                                                         ids, replace=True, carried=rows)
            if new_ids.size:
                self._apply(snap, changes.append(snap, batches, table, schema, new_ids, replaces=rows,
                                                 operation="update_vectors"))

    def update(self: "Collection", ids: Any = None, *, where: Any = None,
               values: Mapping[str, Any]) -> int:
        """Set attribute columns of the rows given by ``ids`` or passing ``where`` (exactly one); returns
        how many rows changed. No vector is rewritten and the vector index stays valid.

        ``values``: column -> a value (checked against the column's type, as ``add`` does; None is null),
        ``vecdb.col("other")`` (that column's value), or a filter (``vecdb.col("year") >= 2025``, a SQL or
        JSON filter as ``Expr``: True where the row passes it, False otherwise, as ``where`` evaluates).
        """
        with self._writing() as snap:
            mask = self._chosen(snap, ids, where)
            if not values:
                raise InvalidParameterError("update needs values={column: value, ...}")
            count = int(np.count_nonzero(mask))
            if count == 0:
                return 0
            table = snap.table
            chosen = pa.array(mask)
            for name, value in values.items():
                position = table.schema.get_field_index(name)
                if position < 0:
                    snap.check_columns([name])
                field = table.schema.field(position)
                new = _column_value(snap, field, value)
                table = table.set_column(position, field, pc.if_else(chosen, new, table.column(position)))
            self._apply(snap, changes.rewrite_attributes(snap, table, "update"))
            return count

    def delete(self: "Collection", ids: Any = None, *, where: Any = None) -> int:
        """Delete rows by id or by filter (exactly one of the two); returns how many were deleted."""
        with self._writing() as snap:
            rows = np.flatnonzero(self._chosen(snap, ids, where, missing_ok=True))
            if rows.size:
                self._apply(snap, changes.delete(snap, rows))
            return int(rows.size)

    @staticmethod
    def _chosen(snap: Snapshot, ids: Any, where: Any, *, missing_ok: bool = False) -> np.ndarray:
        """The live rows given by ``ids`` or passing ``where`` (exactly one), as a mask."""
        if (ids is None) == (where is None):
            raise InvalidParameterError("give ids=... or where=..., exactly one of them")
        if where is not None:
            return snap.select(where).mask & snap.live
        ids = snap.id_array(ids)
        rows, found = snap.rows_of(ids)
        if not missing_ok and not found.all():
            raise UnknownIdError(f"unknown id(s): {ids[~found][:10].tolist()}")
        mask = np.zeros(snap.stored, dtype=bool)
        mask[rows[found]] = True
        return mask

    # ----------------------------------------------------------------- indexes and space
    def build_index(self: "Collection", kind: str | None = None, *, field: str | None = None, name: str | None = None,
                    **options: Any) -> None:
        """Build a vector index of ``field`` (default: the only field) over every row and save it, as
        index ``name`` (default: its kind), replacing the field's index of that name if there is one. A
        field may hold several indexes (say ``hnsw`` and ``binary``): each search runs through the one the
        planner says is cheapest for its filter (``explain`` says which and why; ``index=`` forces one).

        Kinds: ``flat`` (exact), ``hnsw`` (FAISS; ``engine="hnswlib"`` for hnswlib), ``hnswlib``, ``ivf``,
        ``binary`` (packed multi-bit codes scanned with numba, reranked with the float vectors); for
        multi-vector rows ``muvera`` (the default there, one per field): FDE options ``r_reps``, ``k_sim``,
        ``d_proj``, ``d_final``, ``seed``, ``fill_empty``, ``candidates`` (rows reranked by default) and
        ``inner`` (any single-vector kind, with its own options). Options are saved in the manifest, so
        ``open`` rebuilds nothing.
        """
        with self._writing() as snap:
            target = fields_mod.resolve(snap.fields, field)
            kind = kind or ("muvera" if target.spec.multi else "hnsw")
            engine = options.pop("engine", None)
            if kind == "hnsw" and engine not in (None, "faiss"):
                if engine != "hnswlib":
                    raise InvalidParameterError(f"unknown hnsw engine {engine!r}; expected 'faiss' or 'hnswlib'")
                kind = "hnswlib"
            name = kind if name is None else name
            if not valid_name(name):
                raise InvalidParameterError(f"index name {name!r} is not an identifier (letters, digits, _ . -)")
            # a multi-vector field holds one index: a new one takes the place of the old
            replaces = next(iter(target.views), None) if target.spec.multi else None
            built, save = (target.dropped(replaces) if replaces else target).built(kind, options, name)
            self._apply(snap, changes.index(snap, built, save, "build_index", replaces=replaces))

    def calibrate(self: "Collection", queries: Any, *, where: Any = None, field: str | None = None,
                  index: str | None = None) -> dict[str, Any]:
        """Measure the recall curves that ``target_recall`` and the default beam read on a sample of your
        own queries (at least ``calibration.MIN_SAMPLE``; up to ``calibration.SAMPLE_MAX`` are used),
        instead of the build-time ones made from stored rows moved off the data (``vecdb/calibration.py``
        says how those miss on data whose queries sit closer to it). ``where``: the filters the sample's
        queries carried, as in ``search`` (one for all, or a list with one per query, None for none);
        each band of selectivity that ``calibration.MIN_SAMPLE`` of them fill is measured under those
        filters (``calibration.own_bands``), the others under made-up masks, half following the content
        and half scattered. Saved as a new version (the index's files are unchanged); returns the
        curves. ``index``: which of ``field``'s indexes (default: the only HNSW one)."""
        with self._writing() as snap:
            target = fields_mod.resolve(snap.fields, field)
            if index is None:
                beams = [name for name, view in target.views.items() if supports(view.index, BeamIndex)]
                if len(beams) != 1:
                    raise InvalidParameterError(
                        f"field {target.name!r} has {len(beams)} indexes with a beam ({beams}); name one: index=")
                index = beams[0]
            target.view(index)  # an unknown name is refused before the queries are read
            q = target.store.prepare_queries(queries)
            if len(q) < calibration.MIN_SAMPLE:
                raise InvalidParameterError(
                    f"calibrate needs at least {calibration.MIN_SAMPLE} queries; got {len(q)}")
            after, save = target.recalibrated(index, q, _sample_filters(snap, target, where, len(q)))
            self._apply(snap, changes.index(snap, after, save, "calibrate"))
            return dict(after.views[index].calibration)

    def drop_index(self: "Collection", name: str, *, field: str | None = None) -> None:
        """Remove index ``name`` of ``field`` (default: the only field); searches scan exactly or use the
        field's other indexes."""
        with self._writing() as snap:
            target = fields_mod.resolve(snap.fields, field)
            target.view(name)  # an unknown name lists the field's indexes
            self._apply(snap, changes.drop_index(snap, target, name))

    def optimize(self: "Collection") -> None:
        """Fold the rows added or replaced since each index was built into it (they are scanned exactly
        until then) and save the attribute indexes of every row with them. Once more than
        ``REBUILD_DEAD_FRACTION`` of the stored rows are deleted, ``compact()`` instead: every index is
        rebuilt over the live rows."""
        with self._writing() as snap:
            specs = [(f.name, spec) for f in snap.manifest.fields for spec in f.indexes]
            if not specs:
                return
            if snap.stored and 1 - snap.n_live / snap.stored > REBUILD_DEAD_FRACTION:
                self._apply(snap, changes.compact(snap))
                return
            updates, fields = [], dict(snap.fields)
            for name, spec in specs:  # every index extended by its new rows, all in one commit
                done = fields[name].optimized(self.root, spec)
                if done is not None:
                    fields[name] = done[0]
                    updates.append(done)
            if updates:
                self._apply(snap, changes.indexes(snap, updates, "optimize"))
            elif not changes.attr_files.covers(snap.manifest.attributes_index, snap.manifest.segments, snap.stored):
                name, spec = specs[0]
                self._apply(snap, changes.index(snap, snap.fields[name], lambda stem, written: spec, "optimize"))

    def compact(self: "Collection") -> None:
        """Rewrite the live rows as one segment (dropping deleted rows, merging small segments) and rebuild
        the index with the same options. Handles reading the previous version keep working until they
        refresh; its files go once no retained version needs them (``cleanup(keep_last=1, older_than=0)`` reclaims them now)."""
        with self._writing() as snap:
            self._apply(snap, changes.compact(snap))

    # ----------------------------------------------------------------- schema
    def add_columns(self: "Collection", columns: Mapping[str, Any]) -> None:
        """New attribute columns: name -> an Arrow type (all null), ``vecdb.col("other")`` (a copy), a
        filter (``Expr`` or JSON tree: True where a row passes it), or one value for every row."""
        with self._writing() as snap:
            table = snap.table
            for name, spec in columns.items():
                if name in table.column_names or name in attrs_mod.RESERVED or name in snap.fields:
                    raise SchemaError(f"column {name!r} exists or is reserved")
                if isinstance(spec, pa.DataType):
                    column = pa.nulls(snap.stored, spec)
                elif isinstance(spec, Column):
                    snap.check_columns([spec.name])
                    column = table.column(spec.name)
                elif isinstance(spec, (Expr, dict)):
                    column = pa.array(snap.select(spec).mask)
                else:
                    column = pa.repeat(pa.scalar(spec), snap.stored)
                table = table.append_column(pa.field(name, column.type), column)
            self._apply(snap, changes.rewrite_attributes(snap, table, "add_columns"))

    def drop_columns(self: "Collection", names: Sequence[str]) -> None:
        """Remove attribute columns."""
        with self._writing() as snap:
            snap.check_columns(list(names))
            self._apply(snap, changes.rewrite_attributes(snap, snap.table.drop_columns(list(names)), "drop_columns"))

    def rename_column(self: "Collection", old: str, new: str) -> None:
        with self._writing() as snap:
            snap.check_columns([old])
            if new in snap.table.column_names or new in attrs_mod.RESERVED or new in snap.fields:
                raise SchemaError(f"column {new!r} exists or is reserved")
            names = [new if name == old else name for name in snap.table.column_names]
            self._apply(snap, changes.rewrite_attributes(snap, snap.table.rename_columns(names), "rename_column"))

    # ----------------------------------------------------------------- versions
    def restore(self: "Collection", version: int) -> int:
        """Make a retained older ``version`` current again, as a new version (returned); nothing in
        between is lost from history while it is retained."""
        with self._writing() as snap:
            old = read_manifest(self.root, version)
            manifest = self._commit(snap, f"restore {version}", lambda draft, written: dataclasses.replace(
                old, version=draft.version, timestamp=draft.timestamp, operation=draft.operation,
                format_version=draft.format_version, next_id=max(old.next_id, snap.manifest.next_id)))
            self._publish(Snapshot.load(self.root, manifest, self._known))
            return manifest.version

    def cleanup(self: "Collection", *, keep_last: int = KEEP_VERSIONS, older_than: float = GRACE_SECONDS) -> int:
        """Remove the files of versions no longer kept: all but the newest ``keep_last``, except those
        superseded less than ``older_than`` seconds ago (the default keeps what readers in flight may still
        open; ``older_than=0`` removes them now). Returns how many files were removed. Every commit already
        does this with the defaults of ``storage/manifest.py``."""
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise InvalidParameterError(f"keep_last must be a positive integer; got {keep_last!r}")
        with self._writing() as snap:
            before = {p.name for p in self.root.iterdir()}
            collect_garbage(self.root, retained_files(self.root, snap.manifest, keep=keep_last, grace=older_than))
            return len(before - {p.name for p in self.root.iterdir()})


def _column_value(snap: Snapshot, field: pa.Field, value: Any) -> pa.Array | pa.Scalar:
    """What ``update`` writes into ``field``: a checked scalar, another column, or a filter's truth."""
    if isinstance(value, Column):
        snap.check_columns([value.name])
        source = snap.table.select([value.name]).rename_columns([field.name])
        return attrs_mod.conform(source, pa.schema([field])).column(0).combine_chunks()
    if isinstance(value, Expr):
        return attrs_mod.conform(pa.table({field.name: snap.select(value).mask}), pa.schema([field])).column(0)\
            .combine_chunks()
    return attrs_mod.conform(pa.table({field.name: pa.array([value])}), pa.schema([field])).column(0)[0]


def _sample_filters(snap: Snapshot, target: fields_mod.Field, where: Any,
                    nq: int) -> list[calibration.SampleFilter]:
    """A calibration sample's filters (``where`` as ``search`` takes it), each distinct one evaluated now
    for its count and again when its band is measured for its mask (not kept meanwhile: a sample of
    distinct ranges over 1M rows would hold a megabyte each)."""
    from .collection import _groups

    if where is None:
        return []
    out = []
    for expr, members in _groups(where, nq).items():
        if expr is None:
            continue
        selection = snap.live_selection(expr, target)
        if selection is None:
            continue  # every row passes: an unfiltered query

        def mask(n: int, expr: Expr = expr) -> np.ndarray:
            return np.ascontiguousarray(snap.live_selection(expr, target).mask[:n])

        out.append(calibration.SampleFilter(np.asarray(members, np.int64), selection.count / max(1, snap.n_live),
                                            mask))
    return out
