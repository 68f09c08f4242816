"""Exact search: blocked matrix products over all rows, or over only the allowed ones.

This is the oracle for every approximate path, and the planner's "exact scan" plan. Both of its paths
(BLAS over blocks of rows, or the fused numba scan over a row list) break ties by ``kernels.topk``'s
rule, the smaller row first, so they return the same rows whenever they compute the same scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..topk import finish, merge
from .base import Hits, check_metric, pop_params, register

BLOCK_ROWS = 32768
FUSED_MAX_WORK = 200_000  # queries x rows below which the numba kernel scans (no gather, no BLAS call)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str, *,
                 rows: np.ndarray | None = None, allow: np.ndarray | None = None) -> Hits:
    """The exact k best rows per query (higher score is better; l2 scores are negated squared distances).

    ``rows`` restricts the scan to those row numbers; ``allow`` (a boolean mask over all rows) does the
    same. Only the rows scanned are read, so the cost is proportional to how many pass the filter.
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
    best_s = np.empty((nq, 0), dtype=np.float32)
    best_r = np.empty((nq, 0), dtype=np.int64)
    q_norms = np.einsum("ij,ij->i", queries, queries)[:, None] if metric == "l2" else None
    for start in range(0, n, BLOCK_ROWS):
        stop = min(n, start + BLOCK_ROWS)
        if rows is None:
            block = vectors[start:stop]
            block_rows = np.arange(start, stop, dtype=np.int64)
        else:
            block_rows = rows[start:stop].astype(np.int64, copy=False)
            block = vectors[block_rows]
        s = queries @ block.T
        if metric == "l2":
            s = 2.0 * s - np.einsum("ij,ij->i", block, block)[None, :] - q_norms
            np.minimum(s, 0.0, out=s)
        s = s.astype(np.float32, copy=False)
        if dense:
            s[:, ~allow[start:stop]] = -np.inf
        best_s, best_r = merge(best_s, best_r, s, block_rows, k)
    return finish(best_s, best_r, k)


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
        # on a GPU the planner's exact plan may gather the passing rows into one FAISS GPU call
        self.device = resolve_device(device, what="index 'flat'")
        self._vectors = np.empty((0, dim), dtype=np.float32)

    @property
    def ntotal(self) -> int:
        return self._vectors.shape[0]

    def config(self) -> dict[str, Any]:
        return {} if self.requested_device == "auto" else {"device": self.requested_device}

    def build(self, vectors: np.ndarray) -> None:
        """Use the collection's row-aligned vectors (shared, not copied)."""
        self._vectors = vectors

    def add(self, vectors: np.ndarray) -> None:
        self._vectors = np.concatenate([self._vectors, vectors])

    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **params: Any) -> Hits:
        pop_params(params, self.search_options, "flat search")
        return exact_search(self._vectors, queries, k, self.metric, allow=allow)

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
