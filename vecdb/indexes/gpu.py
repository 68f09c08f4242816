"""GPU index kinds and the GPU's filtered-search strategies, behind the same protocol as the CPU ones.

Kinds (all take ``device="auto"|"cpu"|"gpu"``, all save FAISS' CPU form, so a collection built on a GPU
opens anywhere, and all search on either device per call: ``search(..., device=...)``):

- ``flat`` (``indexes.flat``): exact. On a GPU it keeps a copy of the rows there; the planner's exact plan
  searches that copy with over-fetch, or gathers the passing rows into one FAISS brute-force call
  (``exact_plan``, ``gathered_exact``), when the cost model says the GPU beats the CPU scan.
- ``ivf`` (``faiss_indexes``): IVF-Flat, trained and filled on the GPU.
- ``ivf_pq``: IVF-PQ (``m`` sub-quantizers of ``nbits``), trained and filled on the GPU.
- ``cagra``: built by cuVS' CAGRA on the GPU where the installed FAISS has it (``faiss.GpuIndexCagra``),
  saved as the ``IndexHNSWCagra`` FAISS converts it to (CAGRA's graph as HNSW's base level), so on the
  CPU it is an HNSW index: filtered searches walk it with vecdb's filtered traversal. Without a GPU
  (``auto``) the same ``IndexHNSWCagra`` is built by FAISS' CPU HNSW.

Filters on the GPU keep the CPU's guarantees (k hits when k rows match, every hit passes): a row bitmap
where the GPU index honours a selector (cuVS builds), every GPU hit checked against the mask anyway;
otherwise the planner's ``exact`` plan (``exact_plan`` on the GPU) or ``post_filter`` (many matches:
over-fetch on the GPU, then the exact refill), as ``planner.run`` does for any index. Measured on an
H200: ``benchmarks/reports/gpu-h200/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from ..errors import DeviceError, InvalidParameterError
from . import device as _device
from ._faiss import faiss
from ..topk import finish, merge
from .base import Hits, pop_params, register
from .device import GPU_MAX_K, cagra_available, gpu_lock, gpu_selectors, resolve_device, to_gpu
from .device_costs import exact_on_gpu, place
from .faiss_indexes import HNSWIndex, IVFIndex, _faiss_metric, _Selector
from .flat import knn_hits

log = logging.getLogger(__name__)

# FAISS' GPU IVF-PQ: sub-quantizer counts it implements, and dimensions per sub-quantizer
GPU_PQ_M = (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96)
GPU_PQ_DSUB = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28, 32)
CAGRA_MAX_K = 512  # larger k (or beams) run on the CPU form


def gathered_exact(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str, rows: np.ndarray | None,
                   *, knn: _device.Knn | None = None) -> Hits:
    """Exact k-NN over ``rows`` of ``vectors`` (None: all) in one brute-force call: the passing rows are
    gathered (one copy), searched with ``knn`` (default FAISS' ``knn_gpu``; tests pass ``cpu_knn``, the
    same code path on the CPU) and mapped back to row numbers. Padded with ``-inf`` / ``-1``."""
    knn = knn or _device.gpu_knn
    nq = queries.shape[0]
    xb = vectors if rows is None else vectors[rows]
    n = xb.shape[0]
    if n == 0 or nq == 0:
        return Hits.empty(nq, k)
    D, I = knn(np.ascontiguousarray(queries, dtype=np.float32), np.ascontiguousarray(xb, dtype=np.float32),
               min(k, n), _faiss_metric(metric))
    return knn_hits(D, I, rows, metric, k)


def exact_plan(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str, *, index: Any, index_rows: int,
               matches: int, mask: np.ndarray | None, rows: Callable[[], np.ndarray | None]) -> Hits:
    """The exact plan's batch on the GPU, exact either way (``device_costs.exact_on_gpu`` picks):
    gathered (the passing ``rows()`` copied into one brute-force call) or resident (the index's GPU copy
    of its ``index_rows`` rows searched for ``fetch`` hits, the ones ``mask`` rejects dropped: a query
    keeping k of them has its exact answer, since every row not fetched scores below all of them; rows
    added since the index was built are gathered and merged; queries left short are gathered whole)."""
    nq, dim = queries.shape
    _, strategy, fetch = exact_on_gpu(index, nq=nq, k=k, matches=matches, dim=dim)
    if strategy == "gathered":
        return gathered_exact(vectors, queries, k, metric, rows())
    hits = index.search_resident(queries, fetch).passing(mask)
    hits = finish(hits.scores, hits.rows, k)
    short = np.flatnonzero(np.count_nonzero(hits.rows >= 0, axis=1) < min(k, matches))
    if vectors.shape[0] > index_rows:  # rows added since the index was built
        tail = np.arange(index_rows, vectors.shape[0], dtype=np.int64)
        tail = tail if mask is None else tail[mask[index_rows:vectors.shape[0]]]
        more = gathered_exact(vectors, queries, k, metric, tail)
        hits = finish(*merge(hits.scores, hits.rows, more.scores, more.rows, k), k)
    if short.size:  # fewer than k passing rows among the fetched: all passing rows, gathered
        redo = gathered_exact(vectors, queries[short], k, metric, rows())
        hits.scores[short], hits.rows[short] = redo.scores, redo.rows
    return hits


def default_pq_m(dim: int) -> int:
    """About four dimensions per sub-quantizer, among the counts FAISS' GPU IVF-PQ implements."""
    fits = [m for m in GPU_PQ_M if dim % m == 0 and dim // m in GPU_PQ_DSUB]
    if not fits:
        return 1
    return min(fits, key=lambda m: (abs(dim // m - 4), -m))


@register
class IVFPQIndex(IVFIndex):
    """IVF with product-quantized rows (FAISS ``IndexIVFPQ`` / ``GpuIndexIVFPQ``). Options: ``nlist``,
    ``nprobe``, ``m`` (sub-quantizers; default ~dim/4 among the GPU's counts), ``nbits`` (8), ``device``.
    Hits are found on PQ codes and rescored with the collection's float32 rows (exact scores and order)."""

    kind: ClassVar[str] = "ivf_pq"
    _float16_tables: ClassVar[bool] = True  # the GPU keeps lookup tables in half precision (m up to 96)

    def __init__(self, dim: int, metric: str, *, nlist: int | None = None, nprobe: int = 32, m: int | None = None,
                 nbits: int = 8, device: str = "auto", seed: int = 1234):
        super().__init__(dim, metric, nlist=nlist, nprobe=nprobe, device=device, seed=seed)
        m = default_pq_m(dim) if m is None else m
        pop_params({"m": m, "nbits": nbits}, {"m": int, "nbits": int}, "the ivf_pq index")
        if dim % m:
            raise InvalidParameterError(f"ivf_pq: m={m} must divide dim {dim}")
        if self.device == "gpu" and (m not in GPU_PQ_M or dim // m not in GPU_PQ_DSUB or nbits != 8):
            raise DeviceError(f"ivf_pq: FAISS' GPU IVF-PQ has no m={m} over dim {dim} with nbits={nbits} "
                              f"(m in {GPU_PQ_M}, dim/m in {GPU_PQ_DSUB}, nbits 8)")
        self.m, self.nbits = int(m), int(nbits)
        self._float = np.empty((0, dim), dtype=np.float32)  # the collection's rows, for exact rescoring

    def config(self) -> dict[str, Any]:
        return {**super().config(), "m": self.m, "nbits": self.nbits}

    def build(self, vectors: np.ndarray) -> None:
        n = vectors.shape[0]
        if 0 < n < (1 << self.nbits):  # PQ's k-means needs a point per centroid
            nbits = max(1, int(np.log2(n)))
            log.warning("ivf_pq: nbits=%d lowered to %d for the %d rows there are%s", self.nbits, nbits, n,
                        "; built on the CPU (the GPU takes nbits=8 only)" if self.device == "gpu" else "")
            self.nbits = nbits
            if self.device == "gpu":
                self.device, self.filters_inside = "cpu", True
        self._float = np.asarray(vectors)
        super().build(vectors)

    def add(self, vectors: np.ndarray) -> None:
        super().add(vectors)
        self._float = np.concatenate([self._float, vectors]) if len(self._float) else np.asarray(vectors)

    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **params: Any) -> Hits:
        """The PQ hits rescored with the float32 rows: exact scores, in exact order."""
        from ..kernels.exact import rescore_rows

        hits = super().search(queries, k, allow=allow, **params)
        return Hits(*rescore_rows(self._float, hits.rows, np.ascontiguousarray(queries, dtype=np.float32),
                                  self.metric == "l2"))

    @classmethod
    def load(cls, paths: list[Path], dim: int, metric: str, config: dict[str, Any], vectors: np.ndarray) -> "IVFPQIndex":
        index = super().load(paths, dim, metric, config, vectors)
        index._float = np.asarray(vectors[: index.ntotal])
        return index

    def _new(self, nlist: int) -> "faiss.Index":
        quantizer = faiss.IndexFlat(self.dim, _faiss_metric(self.metric))
        index = faiss.IndexIVFPQ(quantizer, self.dim, nlist, self.m, self.nbits, _faiss_metric(self.metric))
        index.own_fields = True
        quantizer.this.disown()
        index.cp.seed = self.seed
        return index

    def work_per_query(self, k: int, params: Mapping[str, Any]) -> float:
        nlist = self.nlist or 1
        nprobe = min(params.get("nprobe", self.nprobe), nlist)
        tables = nprobe * (1 << self.nbits) * self.dim * 2.0
        return 2.0 * self.dim * nlist + tables + self.ntotal * nprobe / nlist * self.m


@register
class CagraIndex(HNSWIndex):
    """CAGRA on the GPU (cuVS), HNSW on the CPU. Options: ``graph_degree`` (64; the CPU form's base level
    holds as many neighbours, ``M = graph_degree / 2``), ``intermediate_graph_degree`` (128),
    ``ef_search`` (the CPU beam; ``itopk_size`` on the GPU), ``ef_construction`` (CPU builds), ``device``."""

    kind: ClassVar[str] = "cagra"
    search_options: ClassVar[dict[str, type]] = {"ef": int, "device": str}

    def __init__(self, dim: int, metric: str, *, graph_degree: int = 64, intermediate_graph_degree: int = 128,
                 ef_search: int = 128, ef_construction: int = 200, device: str = "auto"):
        pop_params({"graph_degree": graph_degree, "intermediate_graph_degree": intermediate_graph_degree},
                   {"graph_degree": int, "intermediate_graph_degree": int}, "the cagra index")
        if graph_degree < 4 or intermediate_graph_degree < graph_degree:
            raise InvalidParameterError(f"cagra: need 4 <= graph_degree <= intermediate_graph_degree; got "
                                        f"{graph_degree}, {intermediate_graph_degree}")
        super().__init__(dim, metric, M=graph_degree // 2, ef_construction=ef_construction, ef_search=ef_search,
                         storage="flat", device="cpu")
        self.graph_degree, self.intermediate_graph_degree = int(graph_degree), int(intermediate_graph_degree)
        self.requested_device = device
        self.device = resolve_device(device, supported_on_gpu=cagra_available(), what="index 'cagra' (needs cuVS)")
        self.index = faiss.IndexHNSWCagra(dim, self.M, _faiss_metric(self.metric))
        self.index.hnsw.efConstruction = self.ef_construction
        self.index.hnsw.efSearch = self.ef_search
        self.gpu_index = None

    def config(self) -> dict[str, Any]:
        return {"graph_degree": self.graph_degree, "intermediate_graph_degree": self.intermediate_graph_degree,
                "ef_search": self.ef_search, "ef_construction": self.ef_construction, "device": self.requested_device}

    def build(self, vectors: np.ndarray) -> None:
        if self.device != "gpu":
            super().build(vectors)
            return
        config = faiss.GpuIndexCagraConfig()
        config.graph_degree = self.graph_degree
        config.intermediate_graph_degree = self.intermediate_graph_degree
        with gpu_lock:
            gpu = faiss.GpuIndexCagra(_device.resources(), self.dim, _faiss_metric(self.metric), config)
            gpu.train(np.ascontiguousarray(vectors, dtype=np.float32))  # CAGRA builds its graph in train
            self.index = faiss.index_gpu_to_cpu(gpu)  # IndexHNSWCagra: CAGRA's graph + HNSW upper levels
        self.gpu_index = gpu
        self.index.hnsw.efSearch = self.ef_search
        self._graph = None
        self._huge_pages()

    def add(self, vectors: np.ndarray) -> None:
        super().add(vectors)  # FAISS' CPU HNSW insertion (CAGRA itself cannot add); the GPU copy is remade
        if self.device == "gpu":
            with gpu_lock:
                self.gpu_index = to_gpu(self.index)

    def work_per_query(self, k: int, params: Mapping[str, Any]) -> float:
        return 4.0 * self.dim * self.graph_degree * max(params.get("ef", self.ef_search), k)

    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **params: Any) -> Hits:
        p = pop_params(params, self.search_options, "cagra search")
        device = p.pop("device", "auto")
        if device == "auto":
            device, _ = place(plan="index", index=self, nq=len(queries), k=k, matches=self.ntotal, dim=self.dim)
        elif device == "gpu" and self.gpu_index is None:
            raise DeviceError("device='gpu' asked for, but this cagra index has no GPU copy (built or opened "
                              "on the CPU)")
        elif device not in ("cpu", "gpu"):
            raise InvalidParameterError(f"unknown device {device!r}; expected one of auto, cpu, gpu")
        ef = max(p.get("ef", self.ef_search), k)
        if device == "gpu" and ef <= CAGRA_MAX_K and k <= GPU_MAX_K:
            return self._search_gpu(queries, k, allow, ef)
        return super().search(queries, k, allow=allow, **p)

    def _search_gpu(self, queries: np.ndarray, k: int, allow: np.ndarray | None, ef: int) -> Hits:
        sp = faiss.SearchParametersCagra()
        sp.itopk_size = ef
        sel = _Selector(allow) if allow is not None and gpu_selectors() else None
        if sel is not None:
            sp.sel = sel.sel
        with gpu_lock:
            D, I = self.gpu_index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=sp)
        return self._hits(D, I).passing(allow)

    @classmethod
    def load(cls, paths: list[Path], dim: int, metric: str, config: dict[str, Any], vectors: np.ndarray) -> "CagraIndex":
        requested = config.get("device", "auto")
        device = resolve_device(requested, supported_on_gpu=cagra_available(), strict=False)
        index = cls(dim, metric, **{**config, "device": device})
        index.requested_device = requested
        index.index = cls._read(paths)
        index.index.hnsw.efSearch = index.ef_search
        index._huge_pages()
        if index.device == "gpu":
            with gpu_lock:
                index.gpu_index = to_gpu(index.index)
        return index
