"""A collection: vectors beside Arrow attribute columns, one vector index, a planner, a directory on disk.

Layout on disk (every name carries the version that wrote it, nothing is ever overwritten):
``manifest.json`` names the current version's files with their sizes and sha256;
``seg-NNNNNN.vectors.npy`` / ``.ids.npy`` / ``.attrs.arrow`` hold the rows one ``add`` wrote;
``deleted-NNNNNN.npy`` the deleted row numbers; ``index-NNNNNN.*`` the engine's native index file, and
``index-NNNNNN.attr-<column>.*`` the attribute indexes saved with it (``storage/attribute_indexes.py``).
"""

from __future__ import annotations

import inspect
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from . import planner
from .calibration import calibrate, ef_for
from .errors import CollectionExistsError, InvalidParameterError, UnknownIdError
from .filters import parse
from .filters.attribute_index import RowSet
from .indexes.base import Hits, check_metric, index_class, pop_params
from .result import SearchResult
from .rowstore import RowStore, schema_to_json
from .storage import attributes as attrs_mod
from .storage.files import describe_file, read_npy, verify
from .storage.manifest import FORMAT, FORMAT_VERSION, read_manifest, write_manifest
from .vectors import as_matrix, check_k, normalize

log = logging.getLogger(__name__)
_CPUS = os.cpu_count() or 1


class Collection(RowStore):
    """Use ``vecdb.create`` / ``vecdb.open``; the constructor is internal."""

    # ----------------------------------------------------------------- properties
    @property
    def index_info(self) -> dict[str, Any] | None:
        """Kind, options and rows covered of the vector index, or None."""
        spec = self._manifest.get("index")
        return None if spec is None else {"kind": spec["kind"], "config": spec["config"], "rows": spec["rows"],
                                          "device": getattr(self._index, "device", "cpu")}

    def __repr__(self) -> str:
        kind = self._manifest["index"]["kind"] if self._manifest.get("index") else None
        return (f"Collection({str(self.root)!r}, rows={len(self)}, dim={self.dim}, metric={self.metric!r}, "
                f"index={kind!r})")

    # ----------------------------------------------------------------- loading
    def _load(self) -> None:
        m = self._manifest
        self._load_rows()
        vectors = [read_npy(self.root, seg["vectors"]).view(np.ndarray)  # plain arrays over the maps
                   for seg in m["segments"]]
        self._vectors = (vectors[0] if len(vectors) == 1 else
                         np.concatenate(vectors) if vectors else np.empty((0, self.dim), np.float32))
        self._index = None
        if m.get("index"):
            spec = m["index"]
            paths = [verify(self.root, entry) for entry in spec["files"]]
            self._index = index_class(spec["kind"]).load(paths, self.dim, self.metric, spec["config"],
                                                         self._vectors[: spec["rows"]])

    def add(self, vectors: Any, attributes: Any = None, ids: Any = None) -> np.ndarray:
        """Append rows; returns their ids. Validates everything before writing anything."""
        with self._lock:
            x = as_matrix(vectors, self.dim)
            n = x.shape[0]
            if self.metric == "cosine":
                x = normalize(x)
            new_ids = self._new_ids(ids, n)
            table = attrs_mod.to_table(attributes, n)
            schema = self._schema
            if len(schema) == 0 and table.num_columns:
                schema = attrs_mod.merge_schema(schema, table)
            table = attrs_mod.conform(table, schema)
            if n == 0:
                return new_ids

            manifest = self._next_manifest()
            self._write_version(manifest, lambda written: self._append_segment(
                manifest, {"vectors": (".vectors.npy", x)}, table, new_ids, schema, written))
            # memory follows the disk only once the new version is durable
            self._vectors = self._append_vectors(x)
            self._adopt_rows(table, schema, new_ids)
            return new_ids

    def _append_vectors(self, x: np.ndarray) -> np.ndarray:
        """The row matrix with ``x`` appended; capacity doubles, so streaming adds copy O(n) in all."""
        n, m = self._vectors.shape[0], x.shape[0]
        buf = getattr(self, "_vector_buffer", None)
        if buf is None or buf.shape[0] < n + m or not np.shares_memory(buf[:1], self._vectors[:1]):
            buf = np.empty((max(n + m, 2 * n, 1024), self.dim), dtype=np.float32)
            buf[:n] = self._vectors
            self._vector_buffer = buf
        buf[n:n + m] = x
        return buf[: n + m]

    def build_index(self, kind: str = "hnsw", **options: Any) -> None:
        """Build the vector index over every row (replacing any earlier one) and save it.

        Kinds: ``flat`` (exact), ``hnsw`` (FAISS; ``engine="hnswlib"`` for hnswlib), ``hnswlib``, ``ivf``,
        ``binary`` (packed multi-bit codes scanned with numba, reranked with the float vectors).
        Options are the index's own (``M``, ``ef_construction``, ``ef_search``; ``nlist``, ``nprobe``;
        ``device``), saved in the manifest so ``open`` rebuilds nothing.
        """
        with self._lock:
            engine = options.pop("engine", None)
            if kind == "hnsw" and engine not in (None, "faiss"):
                if engine != "hnswlib":
                    raise InvalidParameterError(f"unknown hnsw engine {engine!r}; expected 'faiss' or 'hnswlib'")
                kind = "hnswlib"
            cls = index_class(kind)
            params = inspect.signature(cls.__init__).parameters
            accepted = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
            unknown = sorted(set(options) - set(accepted))
            if unknown:
                raise InvalidParameterError(
                    f"unknown option(s) {unknown} for index {kind!r}; expected {', '.join(accepted) or 'none'}")
            index = cls(self.dim, self.metric, **options)
            rows = self._vectors.shape[0]
            index.build(self._vectors)
            self._save_index(index, rows, calibrate(index, self._vectors, self.metric))

    def optimize(self) -> None:
        """Add the rows appended since ``build_index`` to the index (they are scanned exactly until then),
        and save the attribute indexes of every row with it (also when only those are behind)."""
        with self._lock:
            spec = self._manifest.get("index")
            if self._index is None:
                return
            if spec["rows"] == self._vectors.shape[0]:
                if self._attribute_indexes_stale():  # e.g. a collection written before they were saved
                    self._save_index(self._index, spec["rows"], files=spec["files"])
                return
            self._index.add(self._vectors[spec["rows"]:])
            self._save_index(self._index, self._vectors.shape[0])

    def _save_index(self, index: Any, rows: int, calibration: dict[str, Any] | None = None, *,
                    files: list[dict[str, Any]] | None = None) -> None:
        """Commit a version naming ``index`` (saved now, or already saved as ``files``) and the attribute
        indexes of every row (written in the same commit unless the saved ones still cover every row)."""
        manifest = self._next_manifest()
        if calibration is None:
            calibration = (self._manifest.get("index") or {}).get("calibration", {})

        def write(stem: Path, written: list[Path]) -> None:
            nonlocal files
            if files is None:
                written += index.save(stem)
                files = [describe_file(p) for p in written]
            manifest["index"] = {"kind": index.kind, "config": index.config(), "rows": rows,
                                 "files": files, "calibration": calibration}

        self._write_index_version(manifest, write)
        self._index = index

    # ----------------------------------------------------------------- reading
    def get(self, ids: Any, columns: Sequence[str] | None = None, *, with_vectors: bool = True) -> pa.Table:
        """Rows by id, in the order given: ``id``, ``vector`` (as stored; unit length for cosine), attributes."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        rows, found = self._rows_of(ids)
        if not found.all():
            raise UnknownIdError(f"unknown id(s): {ids[~found][:10].tolist()}")
        names = self._check_columns(columns)
        out = {"id": pa.array(ids)}
        if with_vectors:
            vec = np.ascontiguousarray(self._vectors[rows], dtype=np.float32)
            out["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), self.dim)
        taken = self._table.select(names).take(pa.array(rows)) if names else None
        for name in names:
            out[name] = taken.column(name)
        return pa.table(out)

    def _prepare_queries(self, queries: Any) -> np.ndarray:
        return as_matrix(queries, self.dim, what="queries", unit=self.metric == "cosine")

    def _plan(self, expr: Any, k: int, params: dict[str, Any], *,
              explain: bool = False) -> tuple[planner.Plan, RowSet | None]:
        forced = params.pop("plan", None)
        target = params.pop("target_recall", None)
        if target is not None and not (isinstance(target, (int, float)) and 0 < target <= 1):
            raise InvalidParameterError(f"target_recall must be in (0, 1]; got {target!r}")
        allowed = getattr(self._index, "search_options", {})
        pop_params(params, allowed, f"search with index {getattr(self._index, 'kind', None)!r}")
        selection = self._live_selection(expr)
        matches = selection.count if selection is not None else len(self._ids)
        index_rows = self._manifest["index"]["rows"] if self._index is not None else 0
        plan = planner.choose(index=self._index, matches=matches, total=len(self), k=k,
                              filtered=selection is not None, forced=forced, params=params, config=self._planner)
        if target is not None and "ef" not in params and plan.name in ("index", "filtered_graph"):
            ef = ef_for((self._manifest.get("index") or {}).get("calibration", {}), plan.name, float(target))
            if ef is not None:
                plan = planner.dataclasses.replace(plan, params={**plan.params, "ef": ef})
        if explain:
            estimate = None
            if expr is not None:
                estimate = round(self._attributes().estimate(expr) * len(self._ids))
            tail = len(self._ids) - index_rows if self._index else 0
            plan = planner.dataclasses.replace(plan, filter=None if expr is None else str(expr), tail_rows=tail,
                                               estimated_matches=estimate)
        return plan, selection

    def search(self, queries: Any, k: int = 10, where: Any = None, **params: Any) -> SearchResult:
        """The k nearest rows per query among those passing ``where``.

        ``where``: SQL-like string, ``vecdb.col`` expression, JSON tree, or a list with one per query.
        ``params``: ``plan="auto"|"exact"|"index"|"filtered_graph"|"post_filter"``; ``target_recall``
        (HNSW: the beam width calibrated at build time to reach it); the index's search options
        (``ef`` for HNSW, ``nprobe`` for IVF).
        """
        k = check_k(k)
        q = self._prepare_queries(queries)
        nq = q.shape[0]
        if where is None and "plan" not in params and "target_recall" not in params and self._plain_index_ready(k):
            hits = self._index.search(q, k, **params)  # what the planner would run: skip its bookkeeping
            last = hits.rows[:, -1]  # padding comes last: k hits each when the last column has none
            if (last[0] >= 0) if nq == 1 else (last.min() >= 0):
                scores = -hits.scores if self.metric == "l2" else hits.scores
                return SearchResult(self._ids[hits.rows], scores, np.full(nq, k, dtype=np.int64), ("index",) * nq,
                                    self)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        rows = np.full((nq, k), -1, dtype=np.int64)
        plans = [""] * nq
        index_rows = self._manifest["index"]["rows"] if self._index is not None else 0
        groups = list(self._groups(where, nq).items())
        if any(expr is not None for expr, _ in groups):
            self._attributes()  # made or grown once, before any thread needs it

        def run_group(group: tuple[Any, list[int]]) -> tuple[list[int], planner.Plan, Hits]:
            expr, members = group
            plan, selection = self._plan(expr, k, dict(params))
            hits = planner.run(plan, vectors=self._vectors, index=self._index, index_rows=index_rows,
                               queries=q[members], k=k, selection=selection, metric=self.metric,
                               config=self._planner)
            return members, plan, hits

        threads = 1 if len(groups) == 1 else min(len(groups), self._planner.threads or _CPUS)
        if threads > 1:  # one filter per query: groups run on threads (the kernels release the GIL)
            with ThreadPoolExecutor(threads) as pool:
                done = list(pool.map(run_group, groups))
        else:
            done = [run_group(group) for group in groups]
        for members, plan, hits in done:
            scores[members] = hits.scores
            rows[members] = hits.rows
            for i in members:
                plans[i] = plan.name
        return self._result(scores, rows, tuple(plans))

    def _plain_index_ready(self, k: int) -> bool:
        """An unfiltered search would run the approximate index as is: nothing deleted, no rows beyond it."""
        return (self._index is not None and not self._index.exact and self._n_live == len(self._ids)
                and self._manifest["index"]["rows"] == len(self._ids) and len(self._ids) >= k)

    def _result(self, scores: np.ndarray, rows: np.ndarray, plans: tuple[str, ...]) -> SearchResult:
        """Rows to user ids; l2 scores back to squared distances."""
        found = rows >= 0
        ids = np.where(found, self._ids[np.maximum(rows, 0)], -1)
        if self.metric == "l2":
            scores = np.where(found, -scores, np.inf).astype(np.float32)
        return SearchResult(ids, scores, found.sum(axis=1).astype(np.int64), plans, self)

    def explain(self, query: Any = None, where: Any = None, k: int = 10, **params: Any) -> planner.Plan:
        """The plan ``search`` would run for this filter, the selectivity, and why."""
        k = check_k(k)
        if query is not None:
            self._prepare_queries(query)
        plan, _ = self._plan(parse(where), k, dict(params), explain=True)
        return plan


def create(path: str | Path, dim: int, metric: str = "cosine", *, schema: pa.Schema | None = None,
           multivector: bool = False) -> Collection:
    """Make a new, empty collection directory at ``path`` (which must not exist).

    ``multivector=True`` makes a collection whose rows are sets of vectors (late interaction), searched
    with MUVERA encodings and an exact Chamfer rerank (``vecdb.multivector``).
    """
    if multivector:
        from .multivector.collection import create_multivector  # lazy: it imports this module

        return create_multivector(path, dim, metric, schema=schema)
    root = Path(path)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise InvalidParameterError(f"dim must be a positive integer; got {dim!r}")
    check_metric(metric)
    if root.exists():
        raise CollectionExistsError(f"{str(root)!r} already exists; open it with vecdb.open or choose a new path")
    root.mkdir(parents=True)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "version": 0,
        "dim": int(dim), "metric": metric, "next_id": 0,
        "schema": schema_to_json(schema if schema is not None else pa.schema([])),
        "segments": [], "deleted": None, "index": None,
    }
    write_manifest(root, manifest)
    return Collection(root, manifest)


def open_collection(path: str | Path) -> Collection:
    """Open an existing collection; checks every file against the manifest's checksums."""
    root = Path(path)
    manifest = read_manifest(root)
    if manifest.get("multivector"):
        from .multivector.collection import open_multivector

        return open_multivector(root, manifest)
    return Collection(root, manifest)
