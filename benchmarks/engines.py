"""The engine registry: one small wrapper per engine, all behind the same four calls.

Every engine gets the dataset's vectors, the same SQL-like filter per query and the same thread count,
and **evaluates the filter inside its own query time** (the raw FAISS / hnswlib / numpy engines turn
the WHERE string into a row mask with vecdb's evaluator on every query; vecdb does so inside
``search``). Scores returned are higher-is-better (inner product, or negated squared distance); the
metrics recompute them from the vectors anyway.

Engines of one ``family`` share one build per build setting (the four vecdb engines use one collection).
Core engines: ``vecdb`` (planner on automatic), ``vecdb-exact``, ``vecdb-index``, ``vecdb-graph``,
``vecdb-post-filter``, ``vecdb-binary``
(each plan forced), ``faiss-hnsw``, ``faiss-ivf``, ``hnswlib``, ``exact`` (numpy pre-filter scan).
Optional peers (``benchmarks.peers``): ``lancedb``, ``chroma``, ``qdrant``, ``usearch``.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .datasets import Dataset

Result = tuple[np.ndarray, np.ndarray]  # (ids (nq, k) int64 padded -1, scores (nq, k) float32 padded -inf)
EFS_FULL = (32, 48, 64, 96, 128, 256, 512)
RECALL_TARGETS = (0.9, 0.95, 0.99)  # vecdb's ``target_recall`` settings in the full grid (report: "Recall targets")


class UnsupportedFilter(ValueError):
    """The engine cannot express this filter; the query is recorded as unanswered, not silently dropped."""


class FilterEvaluator:
    """WHERE string -> numpy bool mask over the base rows, with vecdb's evaluator (bound once per filter)."""

    def __init__(self, ds: Dataset):
        self.table = ds.attributes
        self.n = ds.n
        self._bound: dict[str, Any] = {}

    def mask(self, where: str | None) -> np.ndarray | None:
        if where is None:
            return None
        bound = self._bound.get(where)
        if bound is None:
            from vecdb.filters import bind, parse

            if self.table is None:
                raise UnsupportedFilter(f"dataset has no attributes for filter {where!r}")
            bound = self._bound[where] = bind(parse(where), self.table.schema)
        return bound.evaluate(self.table)


class Engine:
    """Base class: ``build`` (or ``attach`` to a sibling's build), ``search`` one query, ``search_batch``."""

    name: ClassVar[str]
    family: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    note: ClassVar[str] = ""
    calibrates: ClassVar[bool] = False  # its builds take {"calibrate": "sample"} (``--calibrate-sample``)
    build_grid: ClassVar[dict[str, list[dict]]] = {"smoke": [{}], "full": [{}]}
    search_grid: ClassVar[dict[str, list[dict]]] = {"smoke": [{}], "full": [{}]}
    default_search: ClassVar[dict] = {}

    def __init__(self, ds: Dataset):
        self.ds = ds
        self.filters = FilterEvaluator(ds)
        self.state: Any = None

    @classmethod
    def available(cls) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        """Build the index for ``params`` under ``workdir`` (measured: time, RSS, bytes written)."""
        raise NotImplementedError

    def attach(self, state: Any) -> None:
        self.state = state

    def reopen(self, workdir: Path) -> Any:
        """The build saved under ``workdir`` opened as a user would, for ``benchmarks.memory`` (None: this
        engine keeps nothing of its own on disk, and is not measured there)."""
        return None

    def release(self) -> None:
        self.state = None

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        """All ``queries`` share ``where``: evaluate it once, then search."""
        raise NotImplementedError

    def search(self, query: np.ndarray, k: int, where: str | None, params: dict) -> Result:
        """One query, one thread (the latency measurement)."""
        return self.search_group(query[None, :], k, where, params, 1)

    def search_batch(self, queries: np.ndarray, wheres: list[str | None], k: int, params: dict,
                     threads: int) -> Result:
        """A batch: one ``search_group`` per distinct filter, with ``threads`` threads."""
        ids = np.full((len(wheres), k), -1, np.int64)
        scores = np.full((len(wheres), k), -np.inf, np.float32)
        groups: dict[str | None, list[int]] = {}
        for i, w in enumerate(wheres):
            groups.setdefault(w, []).append(i)
        for where, members in groups.items():
            ids[members], scores[members] = self.search_group(queries[members], k, where, params, threads)
        return ids, scores


def pad(ids: np.ndarray, scores: np.ndarray, k: int) -> Result:
    """``(nq, <=k)`` -> ``(nq, k)`` int64 / float32 with -1 / -inf padding, invalid ids masked."""
    ids = np.atleast_2d(np.asarray(ids, dtype=np.int64))
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float32)).reshape(ids.shape)
    out_i = np.full((ids.shape[0], k), -1, np.int64)
    out_s = np.full((ids.shape[0], k), -np.inf, np.float32)
    w = min(k, ids.shape[1])
    ok = ids[:, :w] >= 0
    out_i[:, :w] = np.where(ok, ids[:, :w], -1)
    out_s[:, :w] = np.where(ok, scores[:, :w], -np.inf)
    return out_i, out_s


def _faiss_metric(metric: str) -> int:
    import faiss

    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


# ----------------------------------------------------------------------------- vecdb
class Vecdb(Engine):
    """vecdb's collection with its planner on automatic (``plan`` forced in the subclasses)."""

    name = "vecdb"
    family = "vecdb"
    plan = "auto"
    calibrates = True
    build_grid = {"smoke": [{"index": "hnsw", "M": 16, "ef_construction": 100}],
                  "full": [{"index": "hnsw", "M": 32, "ef_construction": 200}]}
    # {} = vecdb's own defaults (the planner picks the beam per plan); the ef values trace the curve; the recall
    # targets check what each delivers per band (``report.targets_table``)
    search_grid = {"smoke": [{}, {"ef": 16}, {"ef": 64}, {"target_recall": 0.9}],
                   "full": [{}] + [{"ef": e} for e in EFS_FULL] + [{"target_recall": t} for t in RECALL_TARGETS]}
    default_search: dict = {}

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        import vecdb

        coll = vecdb.create(workdir / "collection.vdb", dim=self.ds.dim, metric=self.ds.metric)
        coll.add(self.ds.base, self.ds.attributes)
        opts = dict(params)
        calibrate = opts.pop("calibrate", None)
        coll.build_index(opts.pop("index"), **opts)
        if calibrate == "sample":  # the runner's --calibrate-sample
            if self.ds.sample_queries is None:
                raise ValueError(f"dataset {self.ds.name} has no sample queries to calibrate on")
            coll.calibrate(self.ds.sample_queries, where=self.ds.sample_filters)
        self.state = coll
        return coll

    def reopen(self, workdir: Path) -> Any:
        import vecdb

        return vecdb.open(workdir / "collection.vdb")

    def _kwargs(self, params: dict) -> dict:
        return dict(params) if self.plan == "auto" else {**params, "plan": self.plan}

    def _convert(self, res: Any, k: int) -> Result:
        scores = -res.scores if self.ds.metric == "l2" else res.scores
        return pad(res.ids, scores, k)

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        return self._convert(self.state.search(queries, k, where=where, threads=threads, **self._kwargs(params)), k)

    def search_batch(self, queries: np.ndarray, wheres: list[str | None], k: int, params: dict,
                     threads: int) -> Result:
        """vecdb's own batch API: one filter per query (it groups equal filters itself)."""
        return self._convert(self.state.search(queries, k, where=list(wheres), threads=threads,
                                               **self._kwargs(params)), k)


class VecdbExact(Vecdb):
    name = "vecdb-exact"
    plan = "exact"
    search_grid = {"smoke": [{}], "full": [{}]}
    default_search = {}


class VecdbIndex(Vecdb):
    name = "vecdb-index"
    plan = "index"


class VecdbPostFilter(Vecdb):
    """Forced over-fetch + post-filter: at low selectivity it fetches ~k / selectivity rows whatever ef
    is, so the full grid keeps three ef values."""

    name = "vecdb-post-filter"
    plan = "post_filter"
    search_grid = {"smoke": [{"ef": 16}, {"ef": 64}], "full": [{"ef": e} for e in (32, 128, 512)]}


class VecdbGraph(Vecdb):
    """The numba filtered traversal of the HNSW graph forced at every selectivity."""

    name = "vecdb-graph"
    plan = "filtered_graph"


class VecdbBinary(Vecdb):
    """The ``binary`` index (multi-bit codes, numba scan, float rerank) under the automatic planner."""

    name = "vecdb-binary"
    family = "vecdb-binary"
    build_grid = {"smoke": [{"index": "binary", "bits": 2}],
                  "full": [{"index": "binary", "bits": 1}, {"index": "binary", "bits": 2},
                           {"index": "binary", "bits": 4}]}
    search_grid = {"smoke": [{}, {"candidates": 50}],
                   "full": [{}] + [{"candidates": c} for c in (20, 50, 100, 200, 500, 1000)]}
    default_search: dict = {}


class VecdbIndexes(Vecdb):
    """One field holding two indexes, FAISS HNSW and 2-bit binary codes: the planner picks one (or the
    exact scan) per filter by cost (``planner.cost``). The ``-hnsw`` / ``-binary`` siblings force one
    index on the same build (``index=``), so the bands show whether the pick is the fast one."""

    name = "vecdb-indexes"
    family = "vecdb-indexes"
    index: ClassVar[str | None] = None
    build_grid = {"smoke": [{"indexes": [["hnsw", {"M": 16, "ef_construction": 100}], ["binary", {"bits": 2}]]}],
                  "full": [{"indexes": [["hnsw", {"M": 32, "ef_construction": 200}], ["binary", {"bits": 2}]]}]}
    search_grid = {"smoke": [{}], "full": [{}]}

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        import vecdb

        coll = vecdb.create(workdir / "collection.vdb", dim=self.ds.dim, metric=self.ds.metric)
        coll.add(self.ds.base, self.ds.attributes)
        for kind, options in params["indexes"]:
            coll.build_index(kind, **options)
        self.attach(coll)
        return coll

    def attach(self, state: Any) -> None:
        self.root, self.state = state.root, None  # opened at the engine's first search (``_cold``)

    def _cold(self) -> None:
        """The build's collection reopened cold when this engine starts, so none finds filters parsed and
        bound, or the attribute index made, by the sibling before it (the run order would decide the ratios
        otherwise); each first loads the batch kernels with a small batch, as the first would in its run."""
        import vecdb
        from vecdb.filters import _parse_text

        filtered = [j for j, f in enumerate(self.ds.filters) if f is not None][:8]
        for warm in (True, False):
            _parse_text.cache_clear()
            self.state = vecdb.open(self.root)
            if warm and filtered:
                self.state.search(self.ds.queries[filtered], 10, where=[self.ds.filters[j] for j in filtered],
                                  **self._kwargs({}))

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        if self.state is None:
            self._cold()
        return super().search_group(queries, k, where, params, threads)

    def search_batch(self, queries: np.ndarray, wheres: list[str | None], k: int, params: dict,
                     threads: int) -> Result:
        if self.state is None:
            self._cold()
        return super().search_batch(queries, wheres, k, params, threads)

    def _kwargs(self, params: dict) -> dict:
        return {**params, **({} if self.index is None else {"index": self.index}),
                **({} if self.plan == "auto" else {"plan": self.plan})}


class VecdbIndexesHnsw(VecdbIndexes):
    name = "vecdb-indexes-hnsw"
    index = "hnsw"


class VecdbIndexesBinary(VecdbIndexes):
    name = "vecdb-indexes-binary"
    index = "binary"


class VecdbIndexesExact(VecdbIndexes):
    name = "vecdb-indexes-exact"
    plan = "exact"


# ----------------------------------------------------------------------------- raw FAISS
class FaissHNSW(Engine):
    """``IndexHNSWFlat`` searched with ``SearchParametersHNSW(sel=IDSelectorBitmap, efSearch=ef)``."""

    name = "faiss-hnsw"
    family = "faiss-hnsw"
    requires = ("faiss",)
    build_grid = {"smoke": [{"M": 16, "ef_construction": 100}], "full": [{"M": 32, "ef_construction": 200}]}
    search_grid = {"smoke": [{"ef": 16}, {"ef": 64}], "full": [{"ef": e} for e in EFS_FULL]}
    default_search = {"ef": 128}

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        import faiss

        index = faiss.IndexHNSWFlat(self.ds.dim, int(params["M"]), _faiss_metric(self.ds.metric))
        index.hnsw.efConstruction = int(params["ef_construction"])
        index.add(self.ds.base)
        faiss.write_index(index, str(workdir / "index.faiss"))
        self.state = index
        return index

    def reopen(self, workdir: Path) -> Any:
        import faiss

        return faiss.read_index(str(workdir / "index.faiss"))

    def _selector(self, where: str | None) -> tuple[Any, Any]:
        import faiss

        mask = self.filters.mask(where)
        if mask is None:
            return None, None
        bits = np.packbits(mask, bitorder="little")
        return faiss.IDSelectorBitmap(mask.shape[0], faiss.swig_ptr(bits)), bits

    def _result(self, D: np.ndarray, I: np.ndarray, k: int) -> Result:
        return pad(I, -D if self.ds.metric == "l2" else D, k)

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        import faiss

        sel, bits = self._selector(where)
        sp = faiss.SearchParametersHNSW(efSearch=max(int(params.get("ef", 128)), k), sel=sel)
        D, I = self.state.search(queries, k, params=sp)
        del bits
        return self._result(D, I, k)


class FaissIVF(FaissHNSW):
    """``IndexIVFFlat`` (``nlist`` ~ 4 sqrt(N)) searched with ``SearchParametersIVF(sel=..., nprobe=...)``."""

    name = "faiss-ivf"
    family = "faiss-ivf"
    build_grid = {"smoke": [{"nlist": "auto"}], "full": [{"nlist": "auto"}]}
    search_grid = {"smoke": [{"nprobe": 4}, {"nprobe": 16}],
                   "full": [{"nprobe": p} for p in (4, 8, 16, 32, 64, 128)]}
    default_search = {"nprobe": 32}

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        import faiss

        n = self.ds.n
        nlist = params["nlist"]
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39)) if nlist == "auto" else int(nlist)
        quantizer = faiss.IndexFlat(self.ds.dim, _faiss_metric(self.ds.metric))
        index = faiss.IndexIVFFlat(quantizer, self.ds.dim, nlist, _faiss_metric(self.ds.metric))
        index.own_fields = True
        quantizer.this.disown()
        rng = np.random.default_rng(1234)
        train = self.ds.base if n <= 64 * nlist else self.ds.base[np.sort(rng.choice(n, 64 * nlist, replace=False))]
        index.train(np.ascontiguousarray(train))
        index.add(self.ds.base)
        faiss.write_index(index, str(workdir / "index.faiss"))
        self.state = index
        return index

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        import faiss

        sel, bits = self._selector(where)
        sp = faiss.SearchParametersIVF(nprobe=int(params.get("nprobe", 32)), sel=sel)
        D, I = self.state.search(queries, k, params=sp)
        del bits
        return self._result(D, I, k)


# ----------------------------------------------------------------------------- raw hnswlib
class Hnswlib(Engine):
    """hnswlib with its filter callable: ``mask.tobytes().__getitem__`` (C-level, no Python frame per
    candidate; builds in O(N / 8) per query, unlike a ``set`` of allowed ids)."""

    name = "hnswlib"
    family = "hnswlib"
    requires = ("hnswlib",)
    build_grid = FaissHNSW.build_grid
    # a filtered search visits nodes until ef of them pass, calling the filter on each: at low
    # selectivity that is most of the graph whatever ef is, so the full grid keeps three values
    search_grid = {"smoke": [{"ef": 16}, {"ef": 64}], "full": [{"ef": e} for e in (32, 128, 512)]}
    default_search = {"ef": 128}

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        import hnswlib

        index = hnswlib.Index(space="l2" if self.ds.metric == "l2" else "ip", dim=self.ds.dim)
        index.init_index(max_elements=self.ds.n, M=int(params["M"]),
                         ef_construction=int(params["ef_construction"]), random_seed=100)
        index.add_items(self.ds.base, np.arange(self.ds.n), num_threads=threads)
        index.save_index(str(workdir / "index.hnswlib"))
        self.state = index
        return index

    def reopen(self, workdir: Path) -> Any:
        import hnswlib

        index = hnswlib.Index(space="l2" if self.ds.metric == "l2" else "ip", dim=self.ds.dim)
        index.load_index(str(workdir / "index.hnswlib"), max_elements=self.ds.n)
        return index

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        mask = self.filters.mask(where)
        allowed = self.ds.n if mask is None else int(mask.sum())
        kk = min(k, allowed)
        if kk == 0:
            return pad(np.full((len(queries), 0), -1), np.zeros((len(queries), 0)), k)
        filt = None if mask is None else mask.tobytes().__getitem__
        self.state.set_ef(max(int(params.get("ef", 128)), kk))
        try:
            labels, dist = self.state.knn_query(queries, k=kk, num_threads=threads, filter=filt)
        except RuntimeError:  # fewer than kk reachable: ask again per query with fewer
            return self._one_by_one(queries, kk, filt, k)
        return pad(labels, self._scores(dist), k)

    def _scores(self, dist: np.ndarray) -> np.ndarray:
        return -dist if self.ds.metric == "l2" else 1.0 - dist

    def _one_by_one(self, queries: np.ndarray, kk: int, filt: Any, k: int) -> Result:
        ids = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        for i, q in enumerate(queries):
            want = kk
            while want > 0:
                try:
                    labels, dist = self.state.knn_query(q, k=want, num_threads=1, filter=filt)
                except RuntimeError:
                    want //= 2
                    continue
                ids[i], scores[i] = (a[0] for a in pad(labels, self._scores(dist), k))
                break
        return ids, scores


# ----------------------------------------------------------------------------- exact pre-filter scan
class Exact(Engine):
    """The baseline: filter -> mask (vecdb's evaluator) -> gather the matching rows -> one matmul -> top-k
    (when more than a third of the rows pass, one matmul over all rows with the others masked out)."""

    name = "exact"
    family = "exact"

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        base = self.ds.base
        self.state = (base, np.einsum("ij,ij->i", base, base) if self.ds.metric == "l2" else None)
        return self.state

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        base, norms = self.state
        mask = self.filters.mask(where)
        # Gathering rows costs more than scanning them once a third of the rows pass: scan all, mask out.
        dense = mask is not None and int(mask.sum()) * 3 > mask.shape[0]
        rows = None if mask is None or dense else np.flatnonzero(mask)
        block = base if rows is None else base[rows]
        s = queries @ block.T
        if norms is not None:
            s = 2.0 * s - (norms if rows is None else norms[rows])[None, :] - np.einsum("ij,ij->i", queries, queries)[:, None]
        if dense:
            s[:, ~mask] = -np.inf
            if int(mask.sum()) < k:
                s = s[:, mask]
                rows = np.flatnonzero(mask)
        kk = min(k, s.shape[1])
        if kk == 0:
            return pad(np.full((len(queries), 0), -1), np.zeros((len(queries), 0)), k)
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if s.shape[1] > kk else np.tile(np.arange(kk), (len(s), 1))
        top = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        part, top = np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1)
        ids = part if rows is None else rows[part]
        return pad(ids, top, k)


CORE: list[type[Engine]] = [Vecdb, VecdbExact, VecdbIndex, VecdbGraph, VecdbPostFilter, VecdbBinary, FaissHNSW,
                            FaissIVF, Hnswlib, Exact]
# several indexes on one field, the planner's pick against each forced (``--engines indexes``)
INDEXES: list[type[Engine]] = [VecdbIndexes, VecdbIndexesHnsw, VecdbIndexesBinary, VecdbIndexesExact]


def registry() -> dict[str, type[Engine]]:
    """Every engine by name, core first, then the optional peers."""
    from .peers import PEERS

    return {cls.name: cls for cls in CORE + INDEXES + PEERS}


ALIASES = {
    "core": [c.name for c in CORE],
    "vecdb-all": ["vecdb", "vecdb-exact", "vecdb-index", "vecdb-graph", "vecdb-post-filter", "vecdb-binary"],
    "indexes": ["vecdb-indexes", "vecdb-indexes-hnsw", "vecdb-indexes-binary", "vecdb-indexes-exact"],
    "baselines": ["faiss-hnsw", "faiss-ivf", "hnswlib", "exact"],
    "peers": ["lancedb", "chroma", "qdrant", "usearch"],
}


def resolve(names: str) -> list[str]:
    """``"vecdb,faiss-hnsw,exact"`` or aliases (``core``, ``vecdb-all``, ``baselines``, ``peers``, ``all``)."""
    known = registry()
    out: list[str] = []
    for raw in (n.strip() for n in names.split(",") if n.strip()):
        expanded = list(known) if raw == "all" else ALIASES.get(raw, [raw])
        for name in expanded:
            if name not in known:
                raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(known)} "
                                 f"or an alias ({', '.join(ALIASES)}, all)")
            if name not in out:
                out.append(name)
    return out
