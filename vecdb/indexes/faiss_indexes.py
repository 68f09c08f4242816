"""FAISS indexes: HNSW (``IndexHNSWFlat``) and IVF (``IndexIVFFlat``).

Filters reach FAISS as an ``IDSelectorBitmap`` over rows, so no Python runs per candidate.
IVF goes through the device seam (GPU when present); FAISS has no GPU HNSW, so HNSW stays on the CPU
(``indexes.gpu``: IVF-PQ and CAGRA).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from ._faiss import faiss
import numpy as np

from ..errors import DeviceError, InvalidParameterError, StorageError
from ..pages import back_with_huge_pages
from ..storage.files import write_stream_durable
from .base import Hits, borrowed, check_metric, pop_params, register
from .build_progress import add_in_chunks
from .device import GPU_MAX_K, gpu_lock, gpu_selectors, resolve_device, to_cpu, to_gpu
from .device_costs import place


log = logging.getLogger(__name__)

STORAGES = ("flat", "fp16")  # HNSW vector storage: FAISS' float32 rows, or half-precision ones


def _faiss_metric(metric: str) -> int:
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


class _Selector:
    """A row mask packed for ``IDSelectorBitmap``; keeps the bits alive as long as the selector."""

    def __init__(self, allow: np.ndarray):
        self.bits = np.packbits(allow, bitorder="little")
        self.sel = faiss.IDSelectorBitmap(len(allow), faiss.swig_ptr(self.bits))


_THREAD = threading.local()


def _visited(n: int) -> np.ndarray:
    """This thread's visited marks for the filtered traversal (one byte per row, see ``filtered_search_grouped``);
    ``_THREAD.mark`` is the last query number used on it."""
    visited = getattr(_THREAD, "visited", None)
    if visited is None or visited.shape[0] < n:
        visited = _THREAD.visited = np.zeros(max(n, 1), dtype=np.uint8)
        _THREAD.mark = 0
    return visited


class _FaissIndex:
    filters_inside: bool = True
    walks_graph: ClassVar[bool] = False
    exact: ClassVar[bool] = False
    _file_suffix: ClassVar[str] = ".faiss"

    index: "faiss.Index"

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def _hits(self, D: np.ndarray, I: np.ndarray) -> Hits:
        scores = -D if self.metric == "l2" else D
        # padding (FAISS leaves +-FLT_MAX there, vecdb wants -inf) comes last in each query's row
        if I.shape[1] and (I[0, -1] < 0 if I.shape[0] == 1 else I[:, -1].min() < 0):
            scores = np.where(I >= 0, scores, np.float32(-np.inf))
        return Hits(scores, I)

    def _search(self, queries: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
        """``index.search`` minus the wrapper's per-call Python (a few microseconds of a ~100 us query)."""
        x = np.ascontiguousarray(queries, dtype=np.float32)
        n = x.shape[0]
        D = np.empty((n, k), dtype=np.float32)
        I = np.empty((n, k), dtype=np.int64)
        self.index.search_c(n, faiss.swig_ptr(x), k, faiss.swig_ptr(D), faiss.swig_ptr(I), params)
        return D, I

    def save(self, path: Path) -> list[Path]:
        """Stream the index through Python into a new fsynced file. Not ``faiss.write_index(index, path)``:
        FAISS only prints a failed ``fclose`` (the last buffered bytes on a full disk) and returns, leaving
        a short file; through Python every failed write is a ``StorageError`` with its errno."""
        path = path.with_name(path.name + self._file_suffix)
        index = to_cpu(self.index)
        try:
            write_stream_durable(path, lambda f: faiss.write_index(index, faiss.PyCallbackIOWriter(f.write)))
        except RuntimeError as exc:  # FAISS' own I/O checks ("write error in ...: (No space left on device)")
            path.unlink(missing_ok=True)
            message = str(exc)
            if not any(s in message for s in ("write error", "fwrite", "could not open", "No space left")):
                raise
            code = errno.ENOSPC if "No space left on device" in message else errno.EIO
            raise StorageError(code, os.strerror(code), str(path)) from exc
        return [path]

    @classmethod
    def _read(cls, paths: list[Path]) -> "faiss.Index":
        return faiss.read_index(str(paths[0]))


@register
class HNSWIndex(_FaissIndex):
    """Graph index on FAISS. Options: ``M`` (links per node), ``ef_construction``, ``ef_search``,
    ``storage``: ``"flat"`` (default: FAISS' float32 rows, which the collection then reads instead of a
    copy of its own: one float32 copy resident) or ``"fp16"`` (the graph is walked on half-precision
    copies, the hits rescored with the collection's float32 rows: half-precision beside float32, more
    memory in all; on arxiv the walk is 4-7% faster and the rescore gives that back)."""

    kind: ClassVar[str] = "hnsw"
    walks_graph: ClassVar[bool] = True
    search_options: ClassVar[dict[str, type]] = {"ef": int}

    def __init__(self, dim: int, metric: str, *, M: int = 32, ef_construction: int = 200,
                 ef_search: int = 128, storage: str = "flat", device: str = "cpu"):
        pop_params({"M": M, "ef_construction": ef_construction, "ef_search": ef_search, "storage": storage},
                   {"M": int, "ef_construction": int, "ef_search": int, "storage": str}, "the hnsw index")
        if storage not in STORAGES:
            raise InvalidParameterError(f"unknown hnsw storage {storage!r}; expected one of {', '.join(STORAGES)}")
        self.dim, self.metric = dim, check_metric(metric)
        self.M, self.ef_construction, self.ef_search = int(M), int(ef_construction), int(ef_search)
        self.storage = storage
        self.device = resolve_device(device, supported_on_gpu=False)
        if storage == "fp16":  # the graph walks half the bytes; hits are rescored with the float32 rows
            self.index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, self.M, _faiss_metric(self.metric))
        else:
            self.index = faiss.IndexHNSWFlat(dim, self.M, _faiss_metric(self.metric))
        self.index.hnsw.efConstruction = self.ef_construction
        self.index.hnsw.efSearch = self.ef_search
        self._float = np.empty((0, dim), dtype=np.float32)  # fp16 storage: the collection's float32 rows
        self._params_by_ef: dict[int, Any] = {}
        self._graph: tuple | None = None

    def config(self) -> dict[str, Any]:
        return {"M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search,
                "storage": self.storage}

    def build(self, vectors: np.ndarray) -> None:
        if not self.index.is_trained:
            self.index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        add_in_chunks(super().add, vectors)  # FAISS' add (in chunks while a progress listener is set)
        if self.storage != "flat":
            self._float = np.asarray(vectors)
        self._graph = None
        self._huge_pages()

    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **params: Any) -> Hits:
        if allow is None:
            return self.prepared(k, **params)(queries)
        sel = _Selector(allow)  # holds the bits FAISS reads until the search returns
        search_params = faiss.SearchParametersHNSW(efSearch=self._ef(k, params), sel=sel.sel)
        return self._finish(queries, *self._search(queries, k, search_params))

    def prepared(self, k: int, **params: Any) -> Callable[[np.ndarray], Hits]:
        search_params = self._plain_params(self._ef(k, params))  # made once per beam (FAISS only reads it)
        if self.storage == "flat":
            return lambda queries: self._hits(*self._search(queries, k, search_params))
        return lambda queries: self._finish(queries, *self._search(queries, k, search_params))

    def _ef(self, k: int, params: dict[str, Any]) -> int:
        ef = pop_params(params, self.search_options, "hnsw search").get("ef", self.ef_search) if params else \
            self.ef_search
        return max(ef, k)

    def _finish(self, queries: np.ndarray, D: np.ndarray, I: np.ndarray) -> Hits:
        if self.storage == "flat":
            return self._hits(D, I)
        from ..kernels.exact import rescore_rows  # numba loads on first use

        # fp16 walk: exact float32 scores (and their order) for the rows it found
        return Hits(*rescore_rows(self._float, I, np.ascontiguousarray(queries, dtype=np.float32),
                                  self.metric == "l2"))

    def _plain_params(self, ef: int) -> "faiss.SearchParametersHNSW":
        """Unfiltered search parameters, made once per beam width (FAISS only reads them)."""
        params = self._params_by_ef.get(ef)
        if params is None:
            params = self._params_by_ef[ef] = faiss.SearchParametersHNSW(efSearch=ef)
        return params

    def add(self, vectors: np.ndarray) -> None:
        super().add(vectors)
        if self.storage != "flat":
            self._float = np.concatenate([self._float, vectors]) if len(self._float) else np.asarray(vectors)
        self._graph = None
        self._huge_pages()

    def _huge_pages(self) -> None:
        """FAISS' neighbour lists and float32 rows, which every walk reads at random, on huge pages
        (``vecdb.pages``: 1.10x QPS on arxiv). Rows added later may move them: advised again then."""
        back_with_huge_pages(self._neighbors())
        rows = self.held_rows()
        if rows is not None:
            back_with_huge_pages(rows)

    def _neighbors(self) -> np.ndarray:
        """FAISS' neighbour lists (every level, int32), viewed in place: the view dies with the next add."""
        h = self.index.hnsw
        return faiss.rev_swig_ptr(h.neighbors.data(), h.neighbors.size()) if h.neighbors.size() else \
            np.empty(0, np.int32)

    def graph_arrays(self) -> tuple:
        """FAISS' graph as numpy arrays (the neighbour lists a view, the rest copied; cached until rows are
        added) and its float32 vectors."""
        if self._graph is None:
            h = self.index.hnsw
            n = self.ntotal
            xb = self.held_rows()
            if xb is None:
                xb = np.ascontiguousarray(self._float[:n], dtype=np.float32)
            # FAISS' own neighbour lists, not a copy: the graph walks, filtered or not, share one
            # 4 * 2M bytes a row in the CPU caches. The view dies with the next add (``_graph = None``).
            self._graph = (xb, self._neighbors(),
                           faiss.vector_to_array(h.offsets).astype(np.int64),
                           faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int64),
                           int(h.entry_point), int(h.max_level))
        return self._graph

    def held_rows(self) -> np.ndarray | None:
        """FAISS' own float32 rows (``storage="flat"``), viewed in place; None for fp16 storage."""
        if self.storage != "flat":
            return None
        n, d = self.ntotal, self.dim
        if not n:
            return np.empty((0, d), np.float32)
        xb = faiss.rev_swig_ptr(faiss.downcast_index(self.index.storage).get_xb(), n * d)
        return borrowed(self.index, xb.__array_interface__["data"][0], (n, d))

    def search_filtered_graph(self, queries: np.ndarray, k: int, allow: np.ndarray, *, ef: int | None = None,
                              budget: int | None = None, gather: int | None = None) -> tuple[Hits, np.ndarray]:
        """ACORN-style traversal in numba with the bitmap inside the kernel (see kernels.hnsw_filtered).

        Returns the hits and a bool per query: False where the traversal examined more than ``budget``
        rows and stopped (the caller answers those exactly).
        """
        nq = queries.shape[0]
        mask = np.ascontiguousarray(allow[: self.ntotal], dtype=bool)[None]  # bool: uint8 would read as packed bits
        return self.search_filtered_graph_grouped(
            queries, k, mask, np.zeros(nq, np.int64), np.full(nq, ef or self.ef_search, np.int64),
            np.full(nq, budget if budget is not None else allow.shape[0], np.int64),
            np.full(nq, gather or 2 * self.M, np.int64))

    def search_filtered_graph_grouped(self, queries: np.ndarray, k: int, masks: np.ndarray, group_of: np.ndarray,
                                      efs: np.ndarray, budgets: np.ndarray,
                                      gathers: np.ndarray) -> tuple[Hits, np.ndarray]:
        """``search_filtered_graph`` for queries with different filters in one kernel call: query i
        walks with ``masks[group_of[i]]`` (``(filters, ntotal)`` bool, or ``(filters, ceil(ntotal / 8))``
        uint8: the same packed little-endian) and its own beam, budget and gather width. Serial on the calling thread (``vecdb/batch.py`` runs chunks on threads)."""
        from ..kernels.hnsw_filtered import filtered_search_grouped

        xb, neighbors, offsets, cum, entry, max_level = self.graph_arrays()
        n = xb.shape[0]
        width = {np.dtype(np.bool_): n, np.dtype(np.uint8): (n + 7) // 8}.get(masks.dtype)
        if masks.ndim != 2 or masks.shape[1] != width:  # the kernel reads without bounds checks
            raise ValueError(f"masks of shape {masks.shape} and dtype {masks.dtype} for an index of {n} rows")
        visited = _visited(n)
        scores, rows, complete, _THREAD.mark = filtered_search_grouped(
            xb, neighbors, offsets, cum, entry, max_level, np.ascontiguousarray(queries, np.float32), masks,
            group_of, k, efs, budgets, gathers, self.metric == "l2", visited, _THREAD.mark)
        return Hits(scores, rows), complete

    @classmethod
    def load(cls, paths: list[Path], dim: int, metric: str, config: dict[str, Any], vectors: np.ndarray) -> "HNSWIndex":
        # collections written before ``storage`` existed hold float32 graphs: the file decides
        index = cls(dim, metric, **{"storage": "flat", **config})
        index.index = cls._read(paths)
        index.index.hnsw.efSearch = index.ef_search
        index.storage = "fp16" if isinstance(index.index, faiss.IndexHNSWSQ) else "flat"
        if index.storage != "flat":
            index._float = np.asarray(vectors[: index.ntotal])  # a plain array: numba types it fastest
        index._huge_pages()
        return index


def default_nlist(n: int) -> int:
    """About 4 * sqrt(n) lists, with at least 39 training points per list (FAISS' own minimum)."""
    return max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39 or 1))


@register
class IVFIndex(_FaissIndex):
    """Inverted-file index on FAISS. Options: ``nlist`` (default ~4*sqrt(n)), ``nprobe``, ``device``.

    On a GPU it is trained and filled there, and keeps the GPU copy beside the CPU form (the one saved):
    each search runs where ``device`` says (``auto``: the cost model of ``device_costs.place``). The GPU
    copy takes a row bitmap only where FAISS' cuVS kernels honour it (``device.gpu_selectors``); elsewhere
    ``filters_inside`` is False and the planner post-filters or gathers the passing rows."""

    kind: ClassVar[str] = "ivf"
    search_options: ClassVar[dict[str, type]] = {"nprobe": int, "device": str}
    _float16_tables: ClassVar[bool] = False

    def __init__(self, dim: int, metric: str, *, nlist: int | None = None, nprobe: int = 32,
                 device: str = "auto", seed: int = 1234):
        opts = {"nprobe": nprobe, "seed": seed} | ({"nlist": nlist} if nlist is not None else {})
        pop_params(opts, {"nlist": int, "nprobe": int, "seed": int}, f"the {self.kind} index")
        self.dim, self.metric = dim, check_metric(metric)
        self.nlist, self.nprobe, self.seed = nlist, int(nprobe), int(seed)
        self.requested_device = device
        self.device = resolve_device(device, what=f"index {self.kind!r}")
        self.filters_inside = self.device != "gpu" or gpu_selectors()
        self.index = None       # the CPU form: saved, and searched on the CPU
        self.gpu_index = None   # the GPU copy (device == "gpu")

    def config(self) -> dict[str, Any]:
        return {"nlist": self.nlist, "nprobe": self.nprobe, "seed": self.seed, "device": self.requested_device}

    def _new(self, nlist: int) -> "faiss.Index":
        quantizer = faiss.IndexFlat(self.dim, _faiss_metric(self.metric))
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, _faiss_metric(self.metric))
        index.own_fields = True
        quantizer.this.disown()
        index.cp.seed = self.seed
        return index

    def build(self, vectors: np.ndarray) -> None:
        n = vectors.shape[0]
        if n == 0:
            raise InvalidParameterError(f"cannot build an {self.kind} index over an empty collection")
        if self.nlist is None:
            self.nlist = default_nlist(n)
        elif self.nlist > n:  # k-means needs a point per list (e.g. compaction left few rows)
            log.warning("%s: nlist=%d lowered to the %d rows there are", self.kind, self.nlist, n)
            self.nlist = n
        index = self._new(self.nlist)
        rng = np.random.default_rng(self.seed)
        sample_size = min(n, 256 * self.nlist)
        sample = vectors if sample_size == n else vectors[np.sort(rng.choice(n, sample_size, replace=False))]
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        if self.device == "gpu":  # k-means and the adds on the GPU; the CPU form copied back once
            with gpu_lock:
                self.gpu_index = to_gpu(index, float16_tables=self._float16_tables)
                self.gpu_index.train(sample)
            add_in_chunks(self._add_gpu, vectors)
            with gpu_lock:
                self.index = to_cpu(self.gpu_index)
            return
        index.train(sample)
        self.index = index
        add_in_chunks(self.add, vectors)

    def _add_gpu(self, vectors: np.ndarray) -> None:
        with gpu_lock:
            self.gpu_index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def add(self, vectors: np.ndarray) -> None:
        super().add(vectors)
        if self.gpu_index is not None:
            self._add_gpu(vectors)

    def work_per_query(self, k: int, params: Mapping[str, Any]) -> float:
        """Coarse assignment over ``nlist`` centroids, then the rows of ``nprobe`` lists."""
        nlist = self.nlist or 1
        nprobe = min(params.get("nprobe", self.nprobe), nlist)
        return 2.0 * self.dim * (nlist + self.ntotal * nprobe / nlist)

    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **params: Any) -> Hits:
        p = pop_params(params, self.search_options, f"{self.kind} search")
        nprobe = min(p.get("nprobe", self.nprobe), self.nlist or 1)
        device = p.get("device", "auto")
        if device == "auto":
            device, _ = place(plan="index", index=self, nq=len(queries), k=k, matches=self.ntotal, dim=self.dim)
        elif device == "gpu" and self.gpu_index is None:
            raise DeviceError(f"device='gpu' asked for, but this {self.kind} index has no GPU copy "
                              f"(built or opened on the CPU)")
        elif device not in ("cpu", "gpu"):
            raise InvalidParameterError(f"unknown device {device!r}; expected one of auto, cpu, gpu")
        if device == "gpu" and max(k, nprobe) <= GPU_MAX_K:
            return self._search_gpu(queries, k, allow, nprobe)
        sel = _Selector(allow) if allow is not None else None
        sp = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel.sel if sel else None)
        D, I = self.index.search(queries, k, params=sp)
        return self._hits(D, I)

    def _search_gpu(self, queries: np.ndarray, k: int, allow: np.ndarray | None, nprobe: int) -> Hits:
        sel = _Selector(allow) if allow is not None and gpu_selectors() else None
        sp = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel.sel if sel else None)
        with gpu_lock:
            D, I = self.gpu_index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=sp)
        return self._hits(D, I).passing(allow)  # every hit checked: without cuVS the GPU kernels ignore the selector

    @classmethod
    def load(cls, paths: list[Path], dim: int, metric: str, config: dict[str, Any], vectors: np.ndarray) -> "IVFIndex":
        requested = config.get("device", "auto")  # saved on a GPU machine, opened anywhere:
        index = cls(dim, metric, **{**config, "device": resolve_device(requested, strict=False)})
        index.requested_device = requested
        index.index = cls._read(paths)
        if index.device == "gpu":
            with gpu_lock:
                index.gpu_index = to_gpu(index.index, float16_tables=cls._float16_tables)
        return index
