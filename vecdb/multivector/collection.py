"""A multi-vector collection: each row holds a variable-length set of vectors, scored by Chamfer
similarity (late interaction, ColBERT-style), searched through MUVERA fixed-dimensional encodings.

Layout on disk (same manifest, durability and garbage collection as ``vecdb.collection``; the manifest
has ``"multivector": true``):
``seg-NNNNNN.tokens.npy`` all vectors of the rows one ``add_multi`` wrote, concatenated (memory-mappable);
``seg-NNNNNN.offsets.npy`` row i owns ``tokens[offsets[i]:offsets[i + 1]]``; ``.ids.npy``, ``.attrs.arrow``;
``deleted-NNNNNN.npy`` deleted row numbers; ``index-NNNNNN.fde.npy`` the rows' FDE vectors (one file per
build, plus one per later ``add_multi``) and ``index-NNNNNN.*`` the inner single-vector index over them;
``index-NNNNNN.attr-<column>.*`` the attribute indexes saved with it (``storage/attribute_indexes.py``).

Search: encode the query set, let the planner pick exact scan / index / post-filter over the FDE matrix
with the filter's row mask, take ``candidates`` rows, rerank them by exact Chamfer (numba), keep k.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from .. import planner
from ..errors import CollectionExistsError, InvalidParameterError, SchemaError, UnknownIdError
from ..filters import parse
from ..indexes.base import check_metric, index_class, pop_params
from ..result import SearchResult
from ..rowstore import RowStore, schema_to_json
from ..storage import attributes as attrs_mod
from ..storage.files import describe_file, read_npy, verify, write_npy
from ..storage.manifest import FORMAT, FORMAT_VERSION, write_manifest
from ..vectors import check_k
from .chamfer import as_sets, chamfer_topk, rerank
from .fde import FDEConfig, FDEEncoder

METRICS = ("ip", "cosine")
DEFAULT_CANDIDATES = 150  # recall@10 0.97 on ../shared/data/arxiv-tokens with the default FDE (fde.py)


class MultiVectorCollection(RowStore):
    """Use ``vecdb.create(..., multivector=True)`` / ``vecdb.open``; the constructor is internal."""

    @property
    def index_info(self) -> dict[str, Any] | None:
        """The MUVERA index: FDE config and dimension, inner index kind/config, rows covered, or None."""
        spec = self._manifest.get("index")
        if spec is None:
            return None
        config = {**spec["fde"], "candidates": spec["candidates"], "inner": spec["inner"]["kind"]}
        return {"kind": spec["kind"], "config": config, "device": "cpu",
                "fde": dict(spec["fde"]), "fde_dim": self._encoder.dim,
                "fde_bytes_per_row": 4 * self._encoder.dim, "candidates": spec["candidates"],
                "inner": {"kind": spec["inner"]["kind"], "config": spec["inner"]["config"]}, "rows": spec["rows"]}

    def __repr__(self) -> str:
        kind = self._manifest["index"]["kind"] if self._manifest.get("index") else None
        return (f"MultiVectorCollection({str(self.root)!r}, rows={len(self)}, vectors={self._tokens.shape[0]}, "
                f"dim={self.dim}, metric={self.metric!r}, index={kind!r})")

    # ----------------------------------------------------------------- loading
    def _load(self) -> None:
        m = self._manifest
        self._load_rows()
        tokens, offsets = [], [np.zeros(1, np.int64)]
        for seg in m["segments"]:
            tokens.append(read_npy(self.root, seg["tokens"]))
            local = read_npy(self.root, seg["offsets"], mmap=False)
            offsets.append(local[1:] + offsets[-1][-1])
        self._tokens = (tokens[0] if len(tokens) == 1 else
                        np.concatenate(tokens) if tokens else np.empty((0, self.dim), np.float32))
        self._offsets = np.concatenate(offsets)
        self._encoder: FDEEncoder | None = None
        self._inner: Any = None
        self._fde = np.empty((0, 0), np.float32)
        spec = m.get("index")
        if spec:
            self._encoder = FDEEncoder(FDEConfig.from_json(spec["fde"]))
            parts = [read_npy(self.root, entry) for entry in spec["fde_files"]]
            self._fde = parts[0] if len(parts) == 1 else np.concatenate(parts)
            inner = spec["inner"]
            paths = [verify(self.root, entry) for entry in inner["files"]]
            self._inner = index_class(inner["kind"]).load(paths, self._encoder.dim, "ip", inner["config"],
                                                          self._fde[: spec["rows"]])

    def add_multi(self, vectors: Any, attributes: Any = None, ids: Any = None) -> np.ndarray:
        """Append rows, each a set of vectors; returns their ids. Validates everything before writing.

        ``vectors``: a list of ``(n_i, dim)`` arrays, a tuple ``(vectors, offsets)`` (row i owns
        ``vectors[offsets[i]:offsets[i + 1]]``), one ``(n, dim)`` array (one row) or an ``(rows, n, dim)``
        array. Every set needs at least one vector. Rows added after ``build_index`` are encoded at once.
        """
        with self._lock:
            x, offsets = as_sets(vectors, self.dim, normalize=self.metric == "cosine")
            n = offsets.shape[0] - 1
            new_ids = self._new_ids(ids, n)
            table = attrs_mod.to_table(attributes, n)
            if "vectors" in table.column_names:
                raise SchemaError("attribute column name 'vectors' is reserved in a multi-vector collection")
            schema = self._schema
            if len(schema) == 0 and table.num_columns:
                schema = attrs_mod.merge_schema(schema, table)
            table = attrs_mod.conform(table, schema)
            if n == 0:
                return new_ids
            fde = self._encoder.encode_documents(x, offsets) if self._encoder is not None else None

            manifest = self._next_manifest()

            def write(written: list[Path]) -> None:
                self._append_segment(manifest, {"tokens": (".tokens.npy", x), "offsets": (".offsets.npy", offsets)},
                                     table, new_ids, schema, written)
                if fde is not None:
                    written.append(self.root / f"index-{manifest['version']:06d}.fde.npy")
                    manifest["index"]["fde_files"].append(write_npy(written[-1], fde))

            self._write_version(manifest, write)
            # memory follows the disk only once the new version is durable
            self._offsets = np.concatenate([self._offsets, offsets[1:] + self._offsets[-1]])
            self._tokens = np.concatenate([self._tokens, x]) if self._tokens.size else x
            if fde is not None:
                self._fde = np.concatenate([self._fde, fde])
            self._adopt_rows(table, schema, new_ids)
            return new_ids

    def build_index(self, kind: str = "muvera", *, r_reps: int = 3, k_sim: int = 2, d_proj: int | None = None,
                    d_final: int | None = None, seed: int = 0, fill_empty: bool = True, inner: str = "flat",
                    candidates: int = DEFAULT_CANDIDATES, **inner_options: Any) -> None:
        """Encode every row as a MUVERA FDE and index the FDEs with ``inner`` (replacing any earlier index).

        FDE options: ``r_reps`` repetitions, ``k_sim`` SimHash bits (``2 ** k_sim`` buckets), ``d_proj``
        inner projection dims (default ``min(128, dim)``; ``== dim``: none), ``d_final`` final Count Sketch
        dims (None: none), ``seed``, ``fill_empty``. The FDE has ``r_reps * 2 ** k_sim * d_proj`` (or
        ``d_final``) dims. ``inner``: any single-vector index kind (``flat``, ``hnsw``, ``hnswlib``, ``ivf``)
        with its own options (``M``, ``ef_search``, ``nprobe``, ...). ``candidates``: the default number of
        rows ``search_multi`` reranks.
        Everything is saved in the manifest, so ``open`` rebuilds nothing.
        """
        with self._lock:
            if kind != "muvera":
                raise InvalidParameterError(f"unknown multi-vector index {kind!r}; expected 'muvera'")
            candidates = check_k(candidates)
            config = FDEConfig(dim=self.dim, r_reps=r_reps, k_sim=k_sim, d_proj=d_proj, d_final=d_final,
                               seed=seed, fill_empty=bool(fill_empty))
            cls = index_class(inner)
            accepted = [n for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY]
            unknown = sorted(set(inner_options) - set(accepted))
            if unknown:
                raise InvalidParameterError(f"unknown option(s) {unknown} for inner index {inner!r}; expected "
                                            f"{', '.join(accepted + ['r_reps', 'k_sim', 'd_proj', 'd_final'])}")
            encoder = FDEEncoder(config)
            fde = encoder.encode_documents(self._tokens, self._offsets)
            index = cls(encoder.dim, "ip", **inner_options)
            index.build(fde)
            manifest = self._next_manifest()

            def write(stem: Path, written: list[Path]) -> None:
                written.append(stem.with_name(stem.name + ".fde.npy"))
                fde_entry = write_npy(written[0], fde)
                written += index.save(stem)
                manifest["index"] = {
                    "kind": "muvera", "fde": config.to_json(), "fde_files": [fde_entry], "candidates": candidates,
                    "rows": int(fde.shape[0]),
                    "inner": {"kind": index.kind, "config": index.config(),
                              "files": [describe_file(p) for p in written[1:]]},
                }

            self._write_index_version(manifest, write)
            self._encoder, self._inner, self._fde = encoder, index, fde

    def optimize(self) -> None:
        """Add the rows appended since ``build_index`` to the inner index (until then they are scanned),
        and save the attribute indexes of every row with it (also when only those are behind)."""
        with self._lock:
            spec = self._manifest.get("index")
            if spec is None:
                return
            behind = spec["rows"] != self._fde.shape[0]
            if not behind and not self._attribute_indexes_stale():
                return
            if behind:
                self._inner.add(self._fde[spec["rows"]:])
            manifest = self._next_manifest()

            def write(stem: Path, written: list[Path]) -> None:
                if behind:
                    written += self._inner.save(stem)
                    manifest["index"]["rows"] = int(self._fde.shape[0])
                    manifest["index"]["inner"]["files"] = [describe_file(p) for p in written]

            self._write_index_version(manifest, write)

    # ----------------------------------------------------------------- reading
    def get(self, ids: Any, columns: Sequence[str] | None = None, *, with_vectors: bool = True) -> pa.Table:
        """Rows by id, in the order given: ``id``, ``vectors`` (list of ``dim``-float lists), attributes."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        rows, found = self._rows_of(ids)
        if not found.all():
            raise UnknownIdError(f"unknown id(s): {ids[~found][:10].tolist()}")
        names = self._check_columns(columns)
        out = {"id": pa.array(ids)}
        if with_vectors:
            lengths = self._offsets[rows + 1] - self._offsets[rows]
            flat = (np.concatenate([self._tokens[self._offsets[r]: self._offsets[r + 1]] for r in rows])
                    if rows.size else np.empty((0, self.dim), np.float32)).astype(np.float32, copy=False)
            inner = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), self.dim)
            list_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            out["vectors"] = pa.ListArray.from_arrays(pa.array(list_offsets), inner)
        taken = self._table.select(names).take(pa.array(rows)) if names else None
        for name in names:
            out[name] = taken.column(name)
        return pa.table(out)

    def _run_groups(self, where: Any, nq: int, fn: Callable[[Any, list[int], np.ndarray | None], Any]) -> None:
        """``fn(expr, members, mask)`` per distinct filter (``mask``: rows passing it and not deleted, None:
        every row); on threads when there are several, as the kernels release the GIL. The masks are
        evaluated first, on this thread (the attribute index is built lazily and is not thread-safe)."""
        groups = list(self._groups(where, nq).items())
        everything = self._live.all()
        masks = [None if expr is None and everything else self._filter_mask(expr) & self._live for expr, _ in groups]
        threads = min(len(groups), self._planner.threads or os.cpu_count() or 1)
        if threads <= 1:
            for (expr, members), mask in zip(groups, masks):
                fn(expr, members, mask)
            return
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda args: fn(*args[0], args[1]), zip(groups, masks)))

    def _plan(self, expr: Any, candidates: int, params: dict[str, Any],
              mask: np.ndarray | None = None) -> tuple[planner.Plan, np.ndarray | None]:
        """The plan for one filter's FDE stage, and the filter's row mask (None: every row passes);
        ``mask``: the rows passing the filter and not deleted, when the caller has it already.

        When no more rows pass than ``candidates`` (and no plan is forced), all of them are reranked
        exactly (plan ``chamfer_exact``): the FDE stage could only return the same rows.
        """
        forced = params.pop("plan", None)
        params = pop_params(params, getattr(self._inner, "search_options", {}),
                            f"search_multi with inner index {self._inner.kind!r}")
        filtered = expr is not None or not self._live.all()
        if mask is None and filtered:
            mask = self._filter_mask(expr) & self._live
        matches = int(mask.sum()) if mask is not None else len(self._ids)
        if mask is not None and matches == len(self._ids):  # every row passes: search unfiltered
            mask, filtered = None, False
        if matches <= candidates and forced in (None, "auto"):
            plan = planner.Plan("chamfer_exact", matches, len(self),
                                f"{matches} matching rows <= candidates={candidates}: all are reranked exactly")
        else:
            plan = planner.choose(index=self._inner, matches=matches, total=len(self), k=candidates,
                                  filtered=filtered, forced=forced, params=params, config=self._planner)
        return dataclasses.replace(plan, filter=None if expr is None else str(expr),
                                   tail_rows=len(self._ids) - self._manifest["index"]["rows"]), mask

    def search_multi(self, queries: Any, k: int = 10, where: Any = None, *, candidates: int | None = None,
                     **params: Any) -> SearchResult:
        """The k rows with the highest Chamfer similarity per query set, among the rows passing ``where``.

        ``queries``: one ``(n, dim)`` array (one query), a list of them, or ``(vectors, offsets)``.
        ``where``: SQL-like string, ``vecdb.col`` expression, JSON tree, or a list with one per query.
        ``candidates``: rows fetched through the FDE index and reranked exactly (default: the index's).
        ``params``: ``plan="auto"`` or a planner plan forced for the FDE stage (``"index"``,
        ``"filtered_graph"``, ``"post_filter"``); ``plan="exact"`` is the exact Chamfer scan (the oracle,
        also ``chamfer_exact``); and the inner index's search options (``ef``, ``nprobe``).
        Scores are exact Chamfer similarities; ``plans`` name the FDE plan followed by ``+rerank``, or
        ``chamfer_exact`` where no more rows pass the filter than ``candidates`` (all are reranked).
        """
        k = check_k(k)
        q, q_offsets = as_sets(queries, self.dim, normalize=self.metric == "cosine", what="queries")
        if params.get("plan") == "exact" or self._inner is None:
            params.pop("plan", None)
            pop_params(params, {}, "exact Chamfer search")
            return self.chamfer_exact((q, q_offsets), k, where)
        n_cand = max(k, check_k(candidates if candidates is not None else self._manifest["index"]["candidates"]))
        g = self._encoder.encode_queries(q, q_offsets)
        nq = g.shape[0]
        cand = np.full((nq, n_cand), -1, dtype=np.int64)  # every query's candidates, reranked in one call
        plans = [""] * nq

        def fde_stage(expr: Any, members: list[int], mask: np.ndarray | None) -> None:
            plan, mask = self._plan(expr, n_cand, dict(params), mask)
            if plan.name == "chamfer_exact":
                allowed = np.flatnonzero(mask) if mask is not None else np.arange(len(self._ids))
                cand[np.ix_(members, np.arange(allowed.size))] = allowed
            else:
                hits = planner.run(plan, vectors=self._fde, index=self._inner, config=self._planner,
                                   index_rows=self._manifest["index"]["rows"], queries=g[members], k=n_cand,
                                   selection=mask, metric="ip")
                cand[members] = hits.rows
            for i in members:
                plans[i] = plan.name if plan.name == "chamfer_exact" else plan.name + "+rerank"

        self._run_groups(where, nq, fde_stage)
        best = rerank(q, q_offsets, np.arange(nq), self._tokens, self._offsets, cand, k)
        return self._result(best.rows, best.scores, plans)

    def chamfer_exact(self, queries: Any, k: int = 10, where: Any = None) -> SearchResult:
        """The exact answer: Chamfer similarity of every row passing ``where`` (numba scan), top k."""
        k = check_k(k)
        q, q_offsets = as_sets(queries, self.dim, normalize=self.metric == "cosine", what="queries")
        nq = q_offsets.shape[0] - 1
        rows = np.full((nq, k), -1, dtype=np.int64)
        scores = np.full((nq, k), -np.inf, dtype=np.float32)

        def scan(expr: Any, members: list[int], mask: np.ndarray | None) -> None:
            allowed = np.arange(len(self._ids)) if mask is None else np.flatnonzero(mask)
            best = chamfer_topk(q, q_offsets, np.asarray(members), self._tokens, self._offsets, allowed, k)
            scores[members], rows[members] = best.scores, best.rows

        self._run_groups(where, nq, scan)
        return self._result(rows, scores, ["chamfer_exact"] * nq)

    def explain(self, query: Any = None, where: Any = None, k: int = 10, *, candidates: int | None = None,
                **params: Any) -> planner.Plan:
        """The plan ``search_multi`` would run for this filter (its FDE stage), the selectivity, and why."""
        k = check_k(k)
        if query is not None:
            as_sets(query, self.dim, what="queries")
        if self._inner is None:
            mask = self._filter_mask(parse(where)) & self._live
            return planner.Plan("chamfer_exact", int(mask.sum()), len(self), "no MUVERA index is built")
        n_cand = max(k, check_k(candidates if candidates is not None else self._manifest["index"]["candidates"]))
        return self._plan(parse(where), n_cand, dict(params))[0]

    def _result(self, rows: np.ndarray, scores: np.ndarray, plans: list[str]) -> SearchResult:
        found = rows >= 0
        ids = np.full(rows.shape, -1, dtype=np.int64)
        ids[found] = self._ids[rows[found]]
        return SearchResult(ids, scores, found.sum(axis=1).astype(np.int64), tuple(plans), self)


def create_multivector(path: str | Path, dim: int, metric: str = "ip", *,
                       schema: pa.Schema | None = None) -> MultiVectorCollection:
    """Make a new, empty multi-vector collection directory at ``path`` (which must not exist)."""
    root = Path(path)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise InvalidParameterError(f"dim must be a positive integer; got {dim!r}")
    check_metric(metric)
    if metric not in METRICS:
        raise InvalidParameterError(f"metric {metric!r} is not supported for multi-vector collections; "
                                    f"expected one of {', '.join(METRICS)} (Chamfer sums inner products)")
    if root.exists():
        raise CollectionExistsError(f"{str(root)!r} already exists; open it with vecdb.open or choose a new path")
    root.mkdir(parents=True)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "multivector": True, "version": 0,
        "dim": int(dim), "metric": metric, "next_id": 0,
        "schema": schema_to_json(schema if schema is not None else pa.schema([])),
        "segments": [], "deleted": None, "index": None,
    }
    write_manifest(root, manifest)
    return MultiVectorCollection(root, manifest)


def open_multivector(path: str | Path, manifest: dict[str, Any]) -> MultiVectorCollection:
    """Open a collection whose manifest (already read with ``read_manifest``) says ``"multivector": true``."""
    if not manifest.get("multivector"):
        raise InvalidParameterError(f"{str(path)!r} holds a single-vector collection; open it with vecdb.open")
    return MultiVectorCollection(Path(path), manifest)
