"""Exact search: blocked matrix products over all rows, or over only the allowed ones.

This is the oracle for every approximate path, and the planner's "exact scan" plan. Both of its paths
(BLAS over blocks of rows, their scores offered to numba k-heaps, or the fused numba scan over a row
list) break ties by ``kernels.topk``'s rule, the smaller row first, so they return the same rows whenever
they compute the same scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import parallel
from .base import Hits, check_metric, pop_params, register

BLOCK_ROWS = 32768
FUSED_MAX_WORK = 200_000  # queries x rows below which the numba kernel scans (no gather, no BLAS call)
SPLIT_MIN_WORK = 1 << 24  # queries x rows x dim from which a scan given several threads splits its rows
SPLIT_MIN_ROWS = 1024  # ... into spans of at least this many rows
_NONE = np.empty(0, np.float32)  # the norms an inner-product scan does not use


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str, *,
                 rows: np.ndarray | None = None, allow: np.ndarray | None = None, threads: int = 1) -> Hits:
    """The exact k best rows per query (higher score is better; l2 scores are negated squared distances).

    ``rows`` restricts the scan to those row numbers; ``allow`` (a boolean mask over all rows) does the
    same. Only the rows scanned are read, so the cost is proportional to how many pass the filter.
    ``threads``: a large scan is split into spans of rows, one thread each (BLAS on one thread in each),
    their k best merged; the heaps' order is total, so the result is the same for any count.
    """
    nq = queries.shape[0]
    # When most rows pass, one pass over all of them with the rest masked beats gathering them.
    dense = allow is not None and rows is None and np.count_nonzero(allow) * 3 > allow.shape[0]
    if allow is not None and not dense:
        allowed = np.flatnonzero(allow)
        rows = allowed if rows is None else rows[allow[rows]]
    n = vectors.shape[0] if rows is None else rows.shape[0]
    if rows is not None and nq * n <= FUSED_MAX_WORK:
        # few rows, few queries: one fused pass in numba beats gathering the rows for BLAS
        from ..kernels.exact import topk_rows

        s, r = topk_rows(vectors, np.ascontiguousarray(rows, dtype=np.int64),
                         np.ascontiguousarray(queries, dtype=np.float32), k, metric == "l2")
        return Hits(s, r)  # sorted and padded in the kernel
    from ..kernels.exact import offer_scores, sorted_heaps

    l2 = metric == "l2"
    q_norms = np.einsum("ij,ij->i", queries, queries) if l2 else _NONE

    def scan(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k-heaps of rows ``span`` of the scan (by position in ``rows``, or row numbers)."""
        heap_s, heap_r, sizes = np.empty((nq, k), np.float32), np.empty((nq, k), np.int64), np.zeros(nq, np.int64)
        for start in range(span[0], span[1], BLOCK_ROWS):
            stop = min(span[1], start + BLOCK_ROWS)
            if rows is None:
                block = vectors[start:stop]
                block_rows = np.arange(start, stop, dtype=np.int64)
            else:
                block_rows = rows[start:stop].astype(np.int64, copy=False)
                block = vectors[block_rows]
            s = (queries @ block.T).astype(np.float32, copy=False)
            if dense:
                s[:, ~allow[start:stop]] = -np.inf
            offer_scores(s, block_rows, k, heap_s, heap_r, sizes,
                         np.einsum("ij,ij->i", block, block) if l2 else _NONE, q_norms, l2)
        return heap_s, heap_r, sizes

    if threads <= 1 or nq * n * vectors.shape[1] < SPLIT_MIN_WORK or parallel.in_worker():
        return Hits(*sorted_heaps(*scan((0, n))))
    from ..kernels.topk import topk_of

    spans = parallel.chunks(n, threads, min_size=SPLIT_MIN_ROWS, per_thread=2)
    with parallel.blas_threads(1):  # the spans are the parallelism
        parts = [sorted_heaps(*heaps) for heaps in parallel.run_all(scan, spans, threads)]
    if len(parts) == 1:
        return Hits(*parts[0])
    return Hits(*topk_of(np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1),
                         k))


def knn_hits(D: np.ndarray, I: np.ndarray, rows: np.ndarray | None, metric: str, k: int) -> Hits:
    """FAISS brute-force output ``(D, I)`` as ``Hits`` of width ``k``: scores higher-is-better (l2: negated
    squared distances), ``I`` mapped through ``rows`` (the rows searched; None: all), padded with
    ``-inf`` / ``-1``."""
    out = Hits.empty(I.shape[0], k)
    kk = I.shape[1]
    ok = I >= 0
    found = I if rows is None else rows[np.maximum(I, 0)]
    scores = np.minimum(-D, 0.0) if metric == "l2" else D
    out.scores[:, :kk] = np.where(ok, scores, -np.inf)
    out.rows[:, :kk] = np.where(ok, found, -1)
    return out


def faiss_flat(dim: int, metric: int) -> Any:
    """An empty FAISS flat index (``metric``: FAISS' constant), for a copy of the rows on the GPU."""
    from ._faiss import faiss

    return faiss.IndexFlat(dim, metric)


@register
class FlatIndex:
    """Exact search over the collection's own vectors: no copy, no file of its own."""

    kind: ClassVar[str] = "flat"
    filters_inside: ClassVar[bool] = True
    walks_graph: ClassVar[bool] = False
    search_options: ClassVar[dict[str, type]] = {}
    exact: ClassVar[bool] = True

    def __init__(self, dim: int, metric: str, *, device: str = "auto"):
        from .device import resolve_device

        self.dim = dim
        self.metric = check_metric(metric)
        self.requested_device = device
        # on a GPU the rows are copied there too (``gpu_rows``): the planner's exact plan searches them in
        # place, or gathers the passing rows into one FAISS GPU call when few pass (``gpu.exact_plan``)
        self.device = resolve_device(device, what="index 'flat'")
        self._vectors = np.empty((0, dim), dtype=np.float32)
        self.gpu_rows: Any = None

    @property
    def ntotal(self) -> int:
        return self._vectors.shape[0]

    def config(self) -> dict[str, Any]:
        return {} if self.requested_device == "auto" else {"device": self.requested_device}

    def build(self, vectors: np.ndarray) -> None:
        """Use the collection's row-aligned vectors (shared, not copied); on a GPU, copy them there."""
        self._vectors = vectors
        self.gpu_rows = None
        if self.device == "gpu":
            from . import device
            from .faiss_indexes import _faiss_metric

            with device.gpu_lock:
                self.gpu_rows = device.to_gpu(faiss_flat(self.dim, _faiss_metric(self.metric)))
            self._upload(vectors)

    def add(self, vectors: np.ndarray) -> None:
        self._vectors = np.concatenate([self._vectors, vectors])
        self._upload(vectors)

    def _upload(self, vectors: np.ndarray, chunk: int = 1 << 16) -> None:
        """Append rows to the GPU copy, a chunk at a time (float32 on the host for one chunk only)."""
        if self.gpu_rows is None:
            return
        from .device import gpu_lock

        for lo in range(0, vectors.shape[0], chunk):
            part = np.ascontiguousarray(vectors[lo:lo + chunk], dtype=np.float32)
            with gpu_lock:
                self.gpu_rows.add(part)

    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **params: Any) -> Hits:
        pop_params(params, self.search_options, "flat search")
        return exact_search(self._vectors, queries, k, self.metric, allow=allow)

    def search_resident(self, queries: np.ndarray, k: int) -> Hits:
        """The ``k`` nearest of all rows, by FAISS on the GPU copy (``device_costs.ResidentRows``)."""
        from .device import gpu_lock

        kk = min(k, self.ntotal)
        with gpu_lock:
            D, I = self.gpu_rows.search(np.ascontiguousarray(queries, dtype=np.float32), kk)
        return knn_hits(D, I, None, self.metric, k)

    def save(self, path: Path) -> list[Path]:
        return []

    @classmethod
    def load(cls, paths: list[Path], dim: int, metric: str, config: dict[str, Any], vectors: np.ndarray) -> "FlatIndex":
        from .device import resolve_device

        requested = config.get("device", "auto")  # saved on a GPU machine, opened anywhere
        index = cls(dim, metric, device=resolve_device(requested, strict=False))
        index.requested_device = requested
        index.build(vectors)
        return index
