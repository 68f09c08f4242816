"""Exact search: blocked matrix products over all rows, or over only the allowed ones.

This is the oracle for every approximate path, and the planner's "exact scan" plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import Hits, check_metric, pop_params, register

BLOCK_ROWS = 32768
FUSED_MAX_WORK = 200_000  # queries x rows below which the numba kernel scans (no gather, no BLAS call)
_NO_ROW = np.iinfo(np.int64).max


def _topk_merge(best_s: np.ndarray, best_r: np.ndarray, s: np.ndarray, r: np.ndarray, k: int):
    """Keep the k best of (best, new) per query; ties go to the smaller row."""
    all_s = np.concatenate([best_s, s], axis=1)
    all_r = np.concatenate([best_r, r], axis=1)
    if all_s.shape[1] > k:
        part = np.argpartition(-all_s, k - 1, axis=1)[:, :k]
        all_s = np.take_along_axis(all_s, part, axis=1)
        all_r = np.take_along_axis(all_r, part, axis=1)
    return all_s, all_r


def _finish(s: np.ndarray, r: np.ndarray, k: int) -> Hits:
    nq = s.shape[0]
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    out_r = np.full((nq, k), -1, dtype=np.int64)
    # Sort each query's candidates by (score desc, row asc); padding (-inf, -1) sorts last.
    r_key = np.where(r < 0, _NO_ROW, r)
    order = np.lexsort((r_key, -s), axis=1) if s.size else np.zeros_like(r)
    s = np.take_along_axis(s, order, axis=1)[:, :k]
    r = np.take_along_axis(r, order, axis=1)[:, :k]
    out_s[:, : s.shape[1]] = s
    out_r[:, : r.shape[1]] = np.where(np.isfinite(s), r, -1)
    return Hits(out_s, out_r)


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
        kk = min(k, s.shape[1])
        if s.shape[1] > kk:
            part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
            s = np.take_along_axis(s, part, axis=1)
            r = block_rows[part]
        else:
            r = np.broadcast_to(block_rows, s.shape)
        best_s, best_r = _topk_merge(best_s, best_r, s, r, k)
    return _finish(best_s, best_r, k)


@register
class FlatIndex:
    """Exact search over the collection's own vectors: no copy, no file of its own."""

    kind: ClassVar[str] = "flat"
    filters_inside: ClassVar[bool] = True
    walks_graph: ClassVar[bool] = False
    search_options: ClassVar[dict[str, type]] = {}
    exact: ClassVar[bool] = True

    def __init__(self, dim: int, metric: str, *, device: str = "cpu"):
        self.dim = dim
        self.metric = check_metric(metric)
        self.device = "cpu"
        self._vectors = np.empty((0, dim), dtype=np.float32)

    @property
    def ntotal(self) -> int:
        return self._vectors.shape[0]

    def config(self) -> dict[str, Any]:
        return {}

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
        index = cls(dim, metric, **config)
        index.build(vectors)
        return index
