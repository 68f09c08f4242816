"""What each write does to a collection version, as one mechanism: a ``Change`` writes its files and
names them in the next manifest (``build``), then gives the snapshot of that version (``after``).

``Collection`` takes the writer lock, catches up, asks for a change and commits it (``_apply``); the
functions here never touch the current snapshot, so a failed write leaves nothing changed in memory.

- ``append``: a new segment (``add``; ``upsert`` also marks the rows it replaces as deleted, in the same
  commit, so the old row disappears from every plan exactly when the new one appears);
- ``delete``: the deleted rows' file;
- ``rewrite_attributes``: new attribute files for every segment, vectors and row numbers untouched
  (``update``, ``add_columns``, ``drop_columns``, ``rename_column``: the vector index stays valid);
- ``compact``: one segment of the live rows, the index rebuilt with the same options;
- ``index``: a field's vector index (``build_index``, ``optimize``) and the attribute indexes of every
  row; ``drop_index``: a version without one of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from .filters.attribute_index import AttributeIndex
from .snapshot import Pending, Snapshot
from .storage import attribute_indexes as attr_files
from .storage import attributes as attrs_mod
from .storage.files import write_arrow, write_npy
from .fields import Field
from .storage.manifest import FileEntry, Manifest, Segment
from .vectorstore import Batch, IndexSaver, file_entry

Build = Callable[[Manifest, "list[Path]"], Manifest]


@dataclasses.dataclass(frozen=True)
class Change:
    operation: str
    build: Build
    after: Callable[[Manifest], Snapshot]


def write_segment(root: Path, stem: str, batches: dict[str, Batch], ids: np.ndarray, table: pa.Table,
                  written: list[Path]) -> Segment:
    """One segment's files: per field the store's arrays by role, ids, attributes."""
    fields: dict[str, dict[str, FileEntry]] = {}
    for name, batch in batches.items():
        files = fields[name] = {}
        for role, array in batch.arrays.items():
            if role in Segment.ROLES:
                written.append(root / f"{stem}.{name}.{role}.npy")
                files[role] = file_entry(write_npy(written[-1], array))
    written.append(root / f"{stem}.ids.npy")
    ids_entry = file_entry(write_npy(written[-1], ids))
    written.append(root / f"{stem}.attrs.arrow")
    attrs_entry = file_entry(write_arrow(written[-1], attrs_mod.encode_for_disk(table)))
    return Segment(len(ids), ids_entry, attrs_entry, fields)


def write_deleted(root: Path, version: int, live: np.ndarray, written: list[Path]) -> FileEntry | None:
    dead = np.flatnonzero(~live).astype(np.int64)
    if dead.size == 0:
        return None
    written.append(root / f"deleted-{version:06d}.npy")
    return file_entry(write_npy(written[-1], dead))


def full_table(snap: Snapshot, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Every stored row's attributes with ``table``'s rows appended (earlier rows get nulls for columns
    that arrive with the first attributes)."""
    if not len(schema):
        return attrs_mod.null_table(schema, snap.stored + table.num_rows)
    old = snap.table if len(snap.schema) else attrs_mod.null_table(schema, snap.stored)
    return pa.concat_tables([old, table])


def append(snap: Snapshot, batches: dict[str, Batch], table: pa.Table, schema: pa.Schema, ids: np.ndarray, *,
           replaces: np.ndarray | None = None, operation: str = "add") -> Change:
    """New rows (``batches``: every field's) in a new segment; ``replaces``: rows deleted in the same
    commit (upsert)."""
    live = np.concatenate([snap.live, np.ones(len(ids), bool)])
    if replaces is not None and replaces.size:
        live[replaces] = False

    def build(draft: Manifest, written: list[Path]) -> Manifest:
        stem = f"seg-{draft.version:06d}"
        segment = write_segment(snap.root, stem, batches, ids, table, written)
        for field in snap.fields.values():  # indexes that keep data per row (MUVERA's encodings) write it
            spec = draft.field(field.name)
            specs = tuple(field.views[s.label].index_spec_after_add(s, batches[field.name],
                                                                    snap.root / f"{stem}.{field.name}", written)
                          for s in spec.indexes)
            draft = draft.with_field(dataclasses.replace(spec, indexes=specs))
        deleted = draft.deleted
        if replaces is not None and replaces.size:
            deleted = write_deleted(snap.root, draft.version, live, written)
        next_id = draft.next_id if ids.dtype.kind == "U" else int(max(draft.next_id, int(ids.max()) + 1))
        return dataclasses.replace(draft, segments=(*draft.segments, segment), deleted=deleted, schema=schema,
                                   next_id=next_id)

    def after(manifest: Manifest) -> Snapshot:
        fields = {name: field.appended(batches[name]) for name, field in snap.fields.items()}
        return snap.successor(manifest, ids=np.concatenate([snap.ids, ids]), live=live,
                              table=full_table(snap, table, schema), fields=fields)

    return Change(operation, build, after)


def delete(snap: Snapshot, rows: np.ndarray) -> Change:
    live = snap.live.copy()
    live[rows] = False

    def build(draft: Manifest, written: list[Path]) -> Manifest:
        return dataclasses.replace(draft, deleted=write_deleted(snap.root, draft.version, live, written))

    return Change("delete", build, lambda manifest: snap.successor(manifest, live=live))


def rewrite_attributes(snap: Snapshot, table: pa.Table, operation: str) -> Change:
    """``table`` (one row per stored row, its schema the new one) becomes every segment's attributes."""

    def build(draft: Manifest, written: list[Path]) -> Manifest:
        segments, start = [], 0
        for i, seg in enumerate(draft.segments):
            written.append(snap.root / f"seg-{draft.version:06d}.{i}.attrs.arrow")
            part = attrs_mod.encode_for_disk(table.slice(start, seg.rows))
            segments.append(dataclasses.replace(seg, attributes=file_entry(write_arrow(written[-1], part))))
            start += seg.rows
        return dataclasses.replace(draft, segments=tuple(segments), schema=table.schema)

    return Change(operation, build, lambda manifest: snap.successor(manifest, table=table, rewritten=True))


def index(snap: Snapshot, field: Field, save: IndexSaver, operation: str, *, replaces: str | None = None) -> Change:
    """A version naming the index of ``field`` that ``save`` writes (in place of index ``replaces``, or of
    the one of the same name) and the attribute indexes of every row (written in the same commit unless
    the saved ones still cover every row)."""
    return indexes(snap, [(field, save)], operation, replaces=replaces)


def indexes(snap: Snapshot, updates: list[tuple[Field, IndexSaver]], operation: str, *,
            replaces: str | None = None) -> Change:
    """One version with every index ``updates`` saves (each ``(field after, saver)``; several of one field
    come in order, the field after the last), so a verb touching several indexes (``optimize``) is one
    commit."""
    fresh: list[Any] = []

    def build(draft: Manifest, written: list[Path]) -> Manifest:
        stem = snap.root / f"index-{draft.version:06d}"
        for i, (field, save) in enumerate(updates):
            spec = save(stem if len(updates) == 1 else stem.with_name(f"{stem.name}.{field.name}.{i}"), written)
            current = draft.field(field.name)
            if replaces is not None and replaces != spec.label:
                current = dataclasses.replace(current, indexes=tuple(s for s in current.indexes if s.label != replaces))
            draft = draft.with_field(current.with_index(spec))
        return dataclasses.replace(draft, attributes_index=_attribute_indexes(snap, draft, stem, written, fresh))

    after = {field.name: field for field, _ in updates}  # the last of each field holds all its changes
    return Change(operation, build, lambda manifest: snap.successor(manifest, fields=after,
                                                                      attributes=fresh[0] if fresh else None))


def drop_index(snap: Snapshot, field: Field, name: str) -> Change:
    def build(draft: Manifest, written: list[Path]) -> Manifest:
        spec = draft.field(field.name)
        return draft.with_field(dataclasses.replace(spec, indexes=tuple(s for s in spec.indexes if s.label != name)))

    return Change("drop_index", build,
                  lambda manifest: snap.successor(manifest, fields={field.name: field.dropped(name)}))


def _attribute_indexes(snap: Snapshot, draft: Manifest, stem: Path, written: list[Path], fresh: list) -> Any:
    """The attribute indexes saved beside a vector index: the saved ones if they cover every row, else
    those of every row, written under ``stem``."""
    attrs = draft.attributes_index
    if not attr_files.covers(attrs, draft.segments, snap.stored):
        fresh.append(snap.attribute_index())
        attrs = attr_files.save(fresh[0], stem, written, draft.segments)
    return attrs


def compact(snap: Snapshot) -> Change:
    """The live rows as one new segment (row numbers from 0), every index rebuilt with the same options,
    no deleted rows; ids and attributes unchanged. Files of older versions go with their retention."""
    rows = np.flatnonzero(snap.live)
    batches = {name: field.taken(rows) for name, field in snap.fields.items()}
    ids = snap.ids[rows]
    table = snap.table.take(pa.array(rows)) if len(snap.schema) else attrs_mod.null_table(snap.schema, rows.size)
    rebuilt = {name: field.compacted(batches[name]) for name, field in snap.fields.items()}
    attributes = AttributeIndex(table)

    def build(draft: Manifest, written: list[Path]) -> Manifest:
        segments = (write_segment(snap.root, f"seg-{draft.version:06d}", batches, ids, table, written),) \
            if rows.size else ()
        stem = snap.root / f"index-{draft.version:06d}"
        fields, any_index = [], False
        for spec in draft.fields:
            _, savers = rebuilt[spec.name]
            specs = []
            for i, (_, saver) in enumerate(savers):
                specs.append(saver(stem.with_name(f"{stem.name}.{spec.name}.{i}"), written))
                any_index = True
            fields.append(dataclasses.replace(spec, indexes=tuple(specs)))
        # as build_index does: the attribute indexes beside the vector indexes
        attrs = attr_files.save(attributes, stem, written, segments) if any_index else None
        return dataclasses.replace(draft, fields=tuple(fields), segments=segments, deleted=None, attributes_index=attrs)

    def after(manifest: Manifest) -> Snapshot:
        return Snapshot.make(snap.root, manifest, ids, np.ones(rows.size, bool), table,
                             {name: field for name, (field, _) in rebuilt.items()},
                             Pending([], snap.pending.known), attributes=attributes)

    return Change("compact", build, after)
