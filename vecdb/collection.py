"""A collection: rows of vectors (one per row, or a set per row) beside Arrow attribute columns, one
vector index, a planner, a directory on disk.

Every committed version is one immutable ``Snapshot`` (``vecdb/snapshot.py``). A search, ``get`` or
``explain`` takes the current snapshot once and reads only it; a write builds the next snapshot beside
it and publishes it with one reference swap after its commit is durable. Writes on one handle are
serialised by the handle's lock; searches take no lock.

Layout on disk (every name carries the version that wrote it, nothing is ever overwritten):
``manifest.json`` names the current version's files with their sizes and sha256 (``storage/manifest.py``);
``seg-NNNNNN.*`` the rows one write added (the vector store's arrays, ``.ids.npy``, ``.attrs.arrow``);
``deleted-NNNNNN.npy`` the deleted row numbers; ``index-NNNNNN.*`` the vector index's files and the
attribute indexes saved with it (``storage/attribute_indexes.py``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa

from . import batch, parallel
from . import fields as fields_mod
from . import fusion as fusion_mod
from . import planner as planner_mod
from .errors import (ClosedCollectionError, CollectionExistsError, CorruptCollectionError, InvalidParameterError,
                     NotACollectionError, ReadOnlyCollectionError)
from .fields import MULTI_METRICS, Field, VectorField
from .filters import Expr, parse
from .indexes.base import Hits
from .result import SearchResult
from .snapshot import Snapshot
from .storage import attribute_indexes as attr_files
from .storage.files import verify
from .storage.lock import WriterLock
from .storage import manifest as manifests
from .storage.manifest import (MANIFEST, Manifest, collect_garbage, legacy_field_name, read_manifest, retained_files,
                               write_manifest)
from .vectors import check_k
from .writes import Writes

log = logging.getLogger(__name__)
OPEN_RETRIES = 5


REFRESH = ("manual", "auto")


class Collection(Writes):
    """Use ``vecdb.create`` / ``vecdb.open``; the constructor is internal. The write verbs are in
    ``vecdb/writes.py``.

    A handle reads the version it opened (or last moved to) until ``refresh()``; with
    ``refresh="auto"`` every read first checks, with one ``stat``, whether another handle or process
    committed, and moves to the newest version if so. Writes always apply on the newest version: each
    takes the collection's writer lock (``storage/lock.py``), re-reads the manifest under it and catches
    up first. No write's meaning depends on the version the handle read, so none raises
    ``CommitConflictError`` today (``delete(where=...)`` deletes what passes on the newest version).
    """

    def __init__(self, root: Path, snapshot: Snapshot, known: set[str], *, lock_timeout: float = 10.0,
                 refresh: str = "manual", read_only: bool = False):
        if refresh not in REFRESH:
            raise InvalidParameterError(f"refresh must be one of {', '.join(REFRESH)}; got {refresh!r}")
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)):
            raise InvalidParameterError(f"lock_timeout must be a number of seconds; got {lock_timeout!r}")
        self.root = root
        self._snapshot = snapshot
        self._known = known  # files of this collection this handle has checked or written
        self._write_lock = threading.RLock()
        self._writer = WriterLock(root, float(lock_timeout))
        self._refresh = refresh
        self._read_only = read_only
        self._stamp = _stamp(root)
        self._closed = False
        self._threads: int | None = None

    @property
    def threads(self) -> int | None:
        """Threads this handle's searches use when ``search`` gets no ``threads=`` (None: the planner
        config's non-zero ``threads``, else ``vecdb.set_threads``, else every core)."""
        return self._threads

    @threads.setter
    def threads(self, value: int | None) -> None:
        self._threads = parallel.check_threads(value, "Collection.threads")

    # ----------------------------------------------------------------- versions
    def _read(self) -> Snapshot:
        """The snapshot a read uses: the newest version under ``refresh="auto"``, its files checked."""
        if self._closed:
            raise ClosedCollectionError(f"collection {str(self.root)!r} is closed")
        if self._refresh == "auto" and _stamp(self.root) != self._stamp:
            self.refresh()
        return self._snapshot.verified()

    def refresh(self) -> bool:
        """Move this handle to the newest committed version; returns whether it moved. Searches already
        running finish on the version they started on."""
        if self._read_only:
            return False
        with self._write_lock:
            stamp = _stamp(self.root)
            latest = read_manifest(self.root)
            moved = latest.version != self._snapshot.version
            if moved:
                self._publish(Snapshot.load(self.root, latest, self._known))
            self._stamp = stamp
            return moved

    def close(self) -> None:
        """Drop this handle's snapshot (and its memory maps); later calls raise ClosedCollectionError."""
        with self._write_lock:
            self._closed = True

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def verify(self) -> int:
        """Hash every file of the current version against the manifest (``vecdb verify``); returns how many
        files were checked. Raises CorruptCollectionError naming the first damaged file."""
        snap = self._read()
        names = sorted(snap.manifest.files())
        entries = {e.file: e for seg in snap.manifest.segments for e in seg.files()}
        entries |= {e.file: e for e in snap.manifest.index_files()}
        if snap.manifest.deleted:
            entries[snap.manifest.deleted.file] = snap.manifest.deleted
        for name in names:
            if name in entries:
                verify(self.root, entries[name])
        attr_files.verify_all(self.root, snap.manifest.attributes_index or {})
        return len(names)

    def versions(self) -> list[dict[str, Any]]:
        """The retained versions, oldest first: number, commit time (Unix seconds), operation, live rows."""
        out = []
        for number in manifests.versions(self.root):
            try:
                m = read_manifest(self.root, number)
            except (CorruptCollectionError, NotACollectionError):
                continue  # removed by a concurrent cleanup
            out.append({"version": m.version, "timestamp": m.timestamp, "operation": m.operation,
                        "stored_rows": m.stored_rows})
        return out

    def stats(self) -> dict[str, Any]:
        """Live and deleted rows, segments, versions kept, and bytes on disk: this version's and all."""
        snap = self._read()
        m = snap.manifest
        mine = sum((self.root / name).stat().st_size for name in m.files())
        return {"version": m.version, "rows": snap.n_live, "deleted_rows": snap.stored - snap.n_live,
                "segments": len(m.segments), "versions": len(manifests.versions(self.root)),
                "index_rows": m.index.rows if m.index else 0, "bytes": mine,
                "bytes_on_disk": sum(e.stat().st_size for e in os.scandir(self.root) if e.is_file())}

    def footprint(self) -> dict[str, Any]:
        """Bytes on disk and resident in this process, by part (vectors, index, attributes, attribute
        indexes, ids and deletions), with totals and the process' resident set (``vecdb/footprint.py``)."""
        from .footprint import footprint

        return footprint(self._read())

    @property
    def snapshot(self) -> Snapshot:
        """The current version, immutable: hold it to keep reading one version while writers go on."""
        return self._read()

    @property
    def fields(self) -> dict[str, VectorField]:
        """The vector fields by name, in their declared order (one named ``vector``, or ``vectors`` for
        sets of vectors, in a collection made with ``dim=``)."""
        return {f.name: VectorField(f.dim, f.metric, f.multi) for f in self._snapshot.manifest.fields}

    def _only_field(self) -> VectorField:
        fields = self.fields
        if len(fields) > 1:
            raise InvalidParameterError(f"this collection has several vector fields ({', '.join(fields)}); "
                                        f"see Collection.fields")
        return next(iter(fields.values()))

    @property
    def dim(self) -> int:
        """The dimension of the only vector field."""
        return self._only_field().dim

    @property
    def metric(self) -> str:
        """The metric of the only vector field."""
        return self._only_field().metric

    @property
    def multivector(self) -> bool:
        """Whether each row of the only field holds a set of vectors (searched by Chamfer similarity)."""
        return self._only_field().multi

    def indexes(self) -> list[dict[str, Any]]:
        """Every vector index: ``name``, ``field``, ``kind``, ``rows`` covered, build ``config``, ``device``."""
        return [info for field in self._read().fields.values() for info in field.index_list()]

    @property
    def schema(self) -> pa.Schema:
        """The attribute columns (without ``id`` and the vectors)."""
        return self._snapshot.schema

    @property
    def version(self) -> int:
        return self._snapshot.version

    @property
    def index_info(self) -> dict[str, Any] | None:
        """Kind, options, rows covered and device of the first field's newest index, or None
        (``indexes()`` lists them all)."""
        snap = self._snapshot
        return snap.store.index_info(snap.manifest.index)

    def __len__(self) -> int:
        return self._snapshot.n_live

    def __repr__(self) -> str:
        snap = self._snapshot
        fields = snap.manifest.fields
        if len(fields) == 1:
            f = fields[0]
            kind = f.indexes[-1].label if f.indexes else None
            return (f"Collection({str(self.root)!r}, rows={snap.n_live}, {'sets of vectors' if f.multi else 'vectors'}, "
                    f"dim={f.dim}, metric={f.metric!r}, index={kind!r}, version={snap.version})")
        described = ", ".join(f"{f.name}: {'sets of ' if f.multi else ''}{f.dim}-d {f.metric}"
                              f"{' [' + ', '.join(s.label for s in f.indexes) + ']' if f.indexes else ''}"
                              for f in fields)
        return f"Collection({str(self.root)!r}, rows={snap.n_live}, fields={{{described}}}, version={snap.version})"

    # ----------------------------------------------------------------- writing
    @contextlib.contextmanager
    def _writing(self) -> Iterator[Snapshot]:
        """One write: this handle's lock, then the collection's writer lock (other handles and processes),
        then the newest committed version (caught up to if another writer committed); yields it."""
        if self._closed:
            raise ClosedCollectionError(f"collection {str(self.root)!r} is closed")
        if self._read_only:
            raise ReadOnlyCollectionError(f"this handle reads version {self._snapshot.version} of "
                                          f"{str(self.root)!r}; open the collection without version= to write")
        with self._write_lock, self._writer.held():
            latest = read_manifest(self.root)
            if latest.version != self._snapshot.version:
                self._publish(Snapshot.load(self.root, latest, self._known))
            yield self._snapshot.verified()

    @contextlib.contextmanager
    def locked(self) -> Iterator["Collection"]:
        """Hold the writer lock across several writes (other writers, in any process, wait until the
        block ends); each write inside still commits its own version."""
        with self._writing():
            yield self

    def _commit(self, snap: Snapshot, operation: str,
                build: Callable[[Manifest, list[Path]], Manifest]) -> Manifest:
        """Write the next version: ``build(draft, written)`` writes its files (listing each in ``written``)
        and returns the manifest to commit; on any failure every file written is removed and the
        collection stays at ``snap``'s version. Called under the writer lock."""
        # a crashed write's files would collide with ours; nothing a retained version needs is touched
        collect_garbage(self.root, retained_files(self.root, snap.manifest))
        written: list[Path] = []
        try:
            manifest = build(snap.manifest.next(operation), written)
            write_manifest(self.root, manifest)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        self._known.update(path.name for path in written)
        return manifest

    def _publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot  # one reference swap: searches from here on read the new version
        self._stamp = _stamp(self.root)

    # ----------------------------------------------------------------- reading
    def get(self, ids: Any = None, columns: Sequence[str] | None = None, *, with_vectors: bool = True,
            where: Any = None) -> pa.Table:
        """Rows by id, in the order given (or every live row passing ``where``, as ``query``): ``id``, the
        vectors (``vector``, as stored: unit length for cosine; ``vectors`` in a multi-vector collection:
        a list of vectors per row), attributes."""
        if (ids is None) == (where is None):
            raise InvalidParameterError("get takes ids or where=..., exactly one of them")
        if where is not None:
            return self.query(where, columns=columns, with_vectors=with_vectors)
        return self._read().get(ids, columns, with_vectors=with_vectors)

    def to_arrow(self, columns: Sequence[str] | None = None, *, with_vectors: bool = False) -> pa.Table:
        """Every live row: ``id``, optionally the vectors, and the attribute columns (all by default)."""
        snap = self._read()
        return snap.get(snap.ids[snap.live], columns=columns, with_vectors=with_vectors)

    def search(self, queries: Any, k: int = 10, where: Any = None, *, field: str | None = None,
               index: str | None = None, weights: Mapping[str, float] | None = None, fusion: str = "rrf",
               offset: int = 0, score_threshold: float | None = None, with_vectors: bool = False,
               planner: planner_mod.PlannerConfig | None = None, **params: Any) -> SearchResult:
        """The k nearest rows per query among those passing ``where``.

        ``queries``: an ``(nq, dim)`` array (1-D: one query); in a multi-vector collection one ``(n, dim)``
        array is one query set (a list of them, ``(vectors, offsets)`` or an ``(nq, n, dim)`` array are
        several), scored by exact Chamfer similarity. ``field``: the vector field searched (needed when
        the collection has several); ``index``: run through this index of the field (default: the
        planner picks among the field's indexes and the exact scan by cost, see ``explain``).
        A dict ``{field: queries}`` searches several fields and fuses their rankings (``fusion``:
        ``"rrf"``, reciprocal rank fusion, a row scoring ``sum(weight / (60 + rank))`` over the fields
        whose top ``fusion.FETCH * (offset + k)`` holds it; or ``"weighted"``, the weighted sum of the
        fields' exact similarities of every row one of them found, a field where the row holds no value
        adding nothing); ``weights``: per field, default 1. Every hit passes ``where`` either way.
        ``where``: SQL-like string, ``vecdb.col`` expression, JSON tree, or a list or tuple with one
        filter per query (a list is always one per query; combine filters with AND).
        ``offset``: skip the best ``offset`` hits (paging: with an exact plan, pages concatenate to the
        ranking of one search for ``offset + k``, within one version). ``score_threshold``: keep only hits
        scoring at least this (``l2``: at most this squared distance): a range search, up to ``k``.
        ``with_vectors``: the hits' stored vectors in ``result.vectors``. ``planner``: a ``PlannerConfig``
        for this search instead of the collection's.
        ``params``: ``plan="auto"|"exact"|"index"|"filtered_graph"|"post_filter"``; ``target_recall``
        (HNSW: the beam width calibrated at build time to reach it); ``candidates`` (multi-vector: rows
        reranked exactly); the index's search options (``ef`` for HNSW, ``nprobe`` for IVF).
        ``threads``: threads this search may use (default: ``Collection.threads``, else the planner
        config's, else ``vecdb.set_threads``, else every core; ``1`` for callers that parallelise
        themselves). Exact plans return identical results for any thread count.
        The result has at most ``k`` columns and no more than there are rows.
        """
        snap = self._read()
        k = check_k(k)
        if type(queries) is np.ndarray and queries.ndim == 1 and where is None and "threads" not in params \
                and field is None and index is None and planner is None and not offset and score_threshold is None \
                and not with_vectors and weights is None:  # one unfiltered query: the plain path, nothing around it
            target = snap.fields[next(iter(snap.fields))] if len(snap.fields) == 1 else None
            run = target and target.plain_search(k, snap.n_live, snap, None, params)
            if run is not None:
                hits = run(target.store.prepare_queries(queries))
                if hits.rows[0, -1] >= 0:
                    return self._result(snap, target, hits, ("index",))
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
            raise InvalidParameterError(f"offset must be a non-negative integer; got {offset!r}")
        if score_threshold is not None and (isinstance(score_threshold, bool)
                                            or not isinstance(score_threshold, (int, float, np.floating))):
            raise InvalidParameterError(f"score_threshold must be a number; got {score_threshold!r}")
        if planner is not None and not isinstance(planner, planner_mod.PlannerConfig):
            raise InvalidParameterError(f"planner must be a vecdb.PlannerConfig; got {type(planner).__name__}")
        threads = parallel.resolve(parallel.check_threads(params.pop("threads", None)), self.threads,
                                   (planner or snap.planner).threads)
        want = k + int(offset)
        if isinstance(queries, Mapping):
            if field is not None or index is not None:
                raise InvalidParameterError("a dict of queries names its fields; field= and index= are for one field")
            if with_vectors:
                raise InvalidParameterError("with_vectors=True needs one field; get(ids) returns every field's values")
            hits, plans = fusion_mod.fused(
                lambda target, q, n, p: self._field_hits(snap, target, q, n, where, None, planner, p, threads),
                snap, queries, want, weights, fusion, params)
            return self._result(snap, None, hits, plans, offset, score_threshold, False)
        if weights is not None:
            raise InvalidParameterError("weights= fuses several fields: give queries as a dict {field: queries}")
        target = fields_mod.resolve(snap.fields, field)
        hits, plans = self._field_hits(snap, target, target.store.prepare_queries(queries), want, where, index,
                                       planner, params, threads)
        return self._result(snap, target, hits, plans, offset, score_threshold, with_vectors)

    def _field_hits(self, snap: Snapshot, target: Field, q: Any, want: int, where: Any, index: str | None,
                    planner: planner_mod.PlannerConfig | None, params: dict[str, Any],
                    threads: int) -> tuple[Hits, tuple[str, ...]]:
        """The ``want`` best rows of field ``target`` per query (``q``: its store's ``prepare_queries``)
        among those passing ``where``, and the plans."""
        nq = len(q)
        # the plain path, what the planner would run without its bookkeeping: no filter, and no options but
        # a recall target or the index's own (the store and beam the planner would pick, set up once)
        unfiltered = where is None or (isinstance(where, (list, tuple)) and len(where) == nq
                                       and all(w is None for w in where))  # one "no filter" per query
        run = target.plain_search(want, snap.n_live, snap, index, params) if unfiltered and planner is None \
            else None
        stores, search_params = (None, None) if run is not None else target.search_params(index, params)
        if run is not None:
            with parallel.omp_threads(threads) if nq > 1 else contextlib.nullcontext():  # FAISS' batch threads
                hits = run(q)
            last = hits.rows[:, -1]  # padding comes last: k hits each when the last column has none
            if (last[0] >= 0) if nq == 1 else (last.min() >= 0):
                return hits, ("index",) * nq
            if stores is None:
                stores, search_params = target.search_params(index, params)
        if planner is not None:
            search_params = dataclasses.replace(search_params, config=planner)
        want = min(want, max(snap.n_live, 1))
        groups = list(_groups(where, nq).items())
        if any(expr is not None for expr, _ in groups):
            snap.attribute_index()  # made once, before any thread needs it
        if target.store.batched and nq > 1:  # kernels over chunks of queries on threads (vecdb/batch.py)
            return _assemble(batch.search_groups(snap, target, stores, q, groups, want, search_params, threads),
                             nq, want)

        def run_group(group: tuple[Expr | None, list[int]], pool: bool) -> batch.Done:
            expr, members = group
            selection = snap.live_selection(expr, target)
            matches = selection.count if selection is not None else snap.n_live
            deleted_only = expr is None and selection is not None
            store, plan = target.choose_store(stores, snap, want, selection, matches, search_params, deleted_only,
                                              len(members))
            plan, hits = store.search(snap, q, members, want, selection, matches, search_params, pool=pool,
                                      deleted_only=deleted_only, plan=plan)
            return members, plan.name, hits

        # one filter per query: groups run on threads (the kernels release the GIL)
        pooled = threads > 1 and len(groups) > 1
        return _assemble(parallel.run_all(lambda group: run_group(group, pooled), groups, threads), nq, want)

    def search_multi(self, queries: Any, k: int = 10, where: Any = None, **params: Any) -> SearchResult:
        """``search`` under the name multi-vector collections had in earlier releases."""
        return self.search(queries, k, where, **params)

    def chamfer_exact(self, queries: Any, k: int = 10, where: Any = None) -> SearchResult:
        """The exact answer of a multi-vector collection (Chamfer of every passing row): ``plan="exact"``."""
        return self.search(queries, k, where, plan="exact")

    def _result(self, snap: Snapshot, target: Field | None, hits: Hits, plans: tuple[str, ...], offset: int = 0,
                threshold: float | None = None, with_vectors: bool = False) -> SearchResult:
        """The page after ``offset`` above ``threshold``; rows to user ids; l2 scores of field ``target``
        back to squared distances (the one place the sign turns; None: fused scores, higher is better)."""
        l2 = target is not None and target.spec.metric == "l2"
        scores, rows = (hits.scores[:, offset:], hits.rows[:, offset:]) if offset else (hits.scores, hits.rows)
        if rows.shape[1] == 0:  # a page past the end
            scores, rows = np.full((rows.shape[0], 1), -np.inf, np.float32), np.full((rows.shape[0], 1), -1)
        if threshold is not None:
            limit = -float(threshold) if l2 else float(threshold)
            below = scores < np.float32(limit)
            scores, rows = np.where(below, -np.inf, scores).astype(np.float32), np.where(below, -1, rows)
        vectors = target.reader.hit_vectors(rows) if with_vectors else None
        last = rows[:, -1]  # padding comes last: a query is full when its last column is a row
        if not snap.string_ids and ((last[0] >= 0) if last.shape[0] == 1 else (last.min() >= 0)):
            # the usual case; rows are the ids when they were given as 0, 1, 2, ... (the lookup, scattered
            # over the id column, ran ~0.1 ms for 1,000 x 10 hits on 1M rows once scans had taken the cache)
            return SearchResult(rows.copy() if snap.ids_are_rows else snap.ids[rows], -scores if l2 else scores,
                                np.full(rows.shape[0], rows.shape[1], np.int64), plans, snap, vectors=vectors)
        found = rows >= 0
        ids = np.full(rows.shape, None, dtype=object) if snap.string_ids else np.full(rows.shape, -1, np.int64)
        ids[found] = snap.ids[rows[found]]
        if l2:
            scores = np.where(found, -scores, np.inf).astype(np.float32)
        return SearchResult(ids, scores, found.sum(axis=1).astype(np.int64), plans, snap, vectors=vectors)

    # ----------------------------------------------------------------- filter-only access
    def count(self, where: Any = None) -> int:
        """How many live rows pass ``where`` (all of them for None)."""
        snap = self._read()
        selection = snap.live_selection(parse(where))
        return snap.n_live if selection is None else selection.count

    def query(self, where: Any = None, *, columns: Sequence[str] | None = None, limit: int | None = None,
              offset: int = 0, with_vectors: bool = False) -> pa.Table:
        """The live rows passing ``where`` (no vector search), in storage order: ``id``, optionally the
        vectors, the attribute ``columns`` (all by default); ``limit`` / ``offset`` page through them."""
        for name, value in (("limit", limit), ("offset", offset)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 0):
                raise InvalidParameterError(f"{name} must be a non-negative integer; got {value!r}")
        snap = self._read()
        selection = snap.live_selection(parse(where))
        rows = np.flatnonzero(snap.live) if selection is None else selection.rows
        rows = rows[offset: None if limit is None else offset + limit]
        return snap.get(snap.ids[rows], columns, with_vectors=with_vectors)

    def explain(self, query: Any = None, where: Any = None, k: int = 10, *, field: str | None = None,
                index: str | None = None, **params: Any) -> planner_mod.Plan | list[planner_mod.Plan]:
        """The plan ``search`` would run for this filter, the selectivity, the index (of ``field``) and
        why; with a list of filters (one per query, as in ``search``), one plan per filter."""
        snap = self._read()
        target = fields_mod.resolve(snap.fields, field)
        k = check_k(k)
        nq = 1
        if query is not None:
            nq = len(target.store.prepare_queries(query))
            if isinstance(where, (list, tuple)) and len(where) != nq:
                raise InvalidParameterError(f"got {len(where)} filters for {nq} queries; give one per query")
        stores, search_params = target.search_params(index, params)
        if isinstance(where, (list, tuple)):  # each filter's plan is for the queries sharing it, as search groups them
            exprs = [parse(w) for w in where]
            sharing = collections.Counter(str(e) for e in exprs)
            return [self._explain_one(snap, target, stores, e, k, search_params, sharing[str(e)]) for e in exprs]
        return self._explain_one(snap, target, stores, parse(where), k, search_params, nq)

    def _explain_one(self, snap: Snapshot, target: Field, stores: list, expr: Expr | None, k: int,
                     search_params: planner_mod.SearchParams, nq: int) -> planner_mod.Plan:
        selection = snap.live_selection(expr, target)
        matches = selection.count if selection is not None else snap.n_live
        k = min(k, max(snap.n_live, 1))
        deleted_only = expr is None and selection is not None
        chosen, _ = target.choose_store(stores, snap, k, selection, matches, search_params, deleted_only, nq)
        name = target.name_of(chosen)
        spec = target.spec.index(name) if name is not None else None
        describe = {"filter": None if expr is None else str(expr),
                    "tail_rows": snap.stored - spec.rows if spec is not None else 0,
                    "estimated_matches": None if expr is None else
                    round(snap.attribute_index().estimate(expr) * snap.stored)}
        plan, _ = chosen.search(snap, None, range(nq), k, selection, matches, search_params, pool=False,
                                deleted_only=deleted_only, describe=describe)
        if len(stores) > 1:
            costs = target.costs(stores, snap, k, selection, matches, search_params, deleted_only, nq)
            plan = dataclasses.replace(plan, reason=f"{plan.reason}; cheapest of the field's indexes by the planner's "
                                                    f"cost (floats read a query): {costs}")
        if name is not None and plan.index is not None and name != plan.index:
            plan = dataclasses.replace(plan, index=name)
        return plan


def _assemble(done: list, nq: int, want: int) -> tuple[Hits, tuple[str, ...]]:
    """One ``Hits`` and the plan names from ``(queries, plan name, hits)`` entries (``batch.Done``)."""
    if len(done) == 1 and len(done[0][0]) == nq:  # one group holding every query, in order
        members, name, hits = done[0]
        if members == list(range(nq)):
            return hits, (name,) * nq
    scores = np.full((nq, want), -np.inf, dtype=np.float32)
    rows = np.full((nq, want), -1, dtype=np.int64)
    plans = [""] * nq
    if done:  # one scatter for all the entries (one per group cost ~2.5 us each: 0.5 ms for 200 filters)
        order = np.fromiter(itertools.chain.from_iterable(members for members, _, _ in done), np.int64)
        scores[order] = np.concatenate([hits.scores for _, _, hits in done])
        rows[order] = np.concatenate([hits.rows for _, _, hits in done])
    for members, name, _ in done:
        for i in members:
            plans[i] = name
    return Hits(scores, rows), tuple(plans)


def _groups(where: Any, nq: int) -> dict[Expr | None, list[int]]:
    """Queries grouped by their (parsed) filter, so each distinct filter is evaluated once. A list or
    tuple holds one filter per query."""
    if isinstance(where, (list, tuple)):
        if len(where) != nq:
            raise InvalidParameterError(f"got {len(where)} filters for {nq} queries; give one per query")
        groups: dict[Expr | None, list[int]] = {}
        texts: dict[str, list[int]] = {}  # a string's group (a str keeps its hash: an Expr's is recomputed)
        for i, w in enumerate(where):
            if type(w) is str:
                members = texts.get(w)
                if members is None:
                    members = texts[w] = groups.setdefault(parse(w), [])
                members.append(i)
            else:
                groups.setdefault(parse(w), []).append(i)
        return groups
    return {parse(where): list(range(nq))}


def _stamp(root: Path) -> tuple[int, int, int] | None:
    """What changes when a commit replaces the manifest (one ``stat``)."""
    try:
        st = os.stat(root / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def create(path: str | Path, dim: int | None = None, metric: str = "cosine", *, schema: pa.Schema | None = None,
           multivector: bool = False, id_type: str = "int64",
           vectors: Mapping[str, VectorField] | None = None) -> Collection:
    """Make a new, empty collection directory at ``path`` (which must not exist).

    ``dim`` / ``metric``: one vector field, named ``vector`` (``vectors`` with ``multivector=True``).
    ``vectors``: several named fields instead, e.g. ``{"title": vecdb.VectorField(384), "tokens":
    vecdb.VectorField(128, "ip", multi=True)}``; each has its own indexes, all share the attributes.

    ``id_type``: ``"int64"`` (ids default to the next free integers) or ``"string"`` (any non-empty
    strings, e.g. document keys or UUIDs, given with every add; results carry them, padded with None).

    ``multivector=True``: each row holds a set of vectors (late interaction), searched with MUVERA
    encodings and an exact Chamfer rerank (metrics ``ip`` and ``cosine``).
    """
    root = Path(path)
    if vectors is None:
        if dim is None:
            raise InvalidParameterError("give dim= (one vector field) or vectors={name: vecdb.VectorField(...)}")
        if multivector and metric not in MULTI_METRICS:  # Chamfer sums inner products
            raise InvalidParameterError(f"metric {metric!r} is not supported for multi-vector collections; "
                                        f"expected one of {', '.join(MULTI_METRICS)} (Chamfer sums inner products)")
        specs = (VectorField(dim, metric, bool(multivector)).spec(legacy_field_name(bool(multivector))),)
    else:
        if dim is not None or multivector:
            raise InvalidParameterError("vectors= declares the fields: leave out dim= and multivector=")
        if not isinstance(vectors, Mapping) or not vectors or \
                not all(isinstance(v, VectorField) for v in vectors.values()):
            raise InvalidParameterError("vectors= takes a non-empty dict {field name: vecdb.VectorField(...)}")
        specs = tuple(field.spec(name) for name, field in vectors.items())
        clash = sorted(set(vectors) & set(schema.names if schema is not None else ()) | set(vectors) & {"id"})
        if clash:
            raise InvalidParameterError(f"vector field name(s) {clash} clash with attribute columns or 'id'")
    if id_type not in ("int64", "string"):
        raise InvalidParameterError(f"id_type must be 'int64' or 'string'; got {id_type!r}")
    if root.exists():
        raise CollectionExistsError(f"{str(root)!r} already exists; open it with vecdb.open or choose a new path")
    root.mkdir(parents=True)
    manifest = Manifest(version=0, fields=specs, schema=schema if schema is not None else pa.schema([]),
                        timestamp=time.time(), id_type=id_type)
    write_manifest(root, manifest)
    known: set[str] = set()
    return Collection(root, Snapshot.load(root, manifest, known), known)


def open_collection(path: str | Path, *, version: int | None = None, refresh: str = "manual",
                    lock_timeout: float = 10.0) -> Collection:
    """Open an existing collection (no arguments needed: everything is in its manifest).

    ``version``: a retained older version, read-only (``Collection.versions``). ``refresh``: ``"manual"``
    (the handle reads one version until ``refresh()``) or ``"auto"`` (each read first moves to the
    newest version, at the cost of one ``stat``). ``lock_timeout``: seconds a write waits for another
    writer before ``WriterLockedError``. Opening checks the manifest's checksum and every file's size;
    files read whole are hashed now, memory-mapped ones before their first use (``verify()`` hashes all).
    An open that races a commit (a file of the version it read removed meanwhile) retries on the newer one.
    """
    root = Path(path)
    known: set[str] = set()
    for attempt in range(OPEN_RETRIES):
        manifest = read_manifest(root, version)
        try:
            snapshot = Snapshot.load(root, manifest, known)
            break
        except CorruptCollectionError:
            if version is not None or attempt == OPEN_RETRIES - 1 or read_manifest(root).version == manifest.version:
                raise  # the version it read is still the current one: the damage is real
    return Collection(root, snapshot, known, lock_timeout=lock_timeout, refresh=refresh,
                      read_only=version is not None)
