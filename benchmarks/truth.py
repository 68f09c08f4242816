"""Exact scores and exact filtered top-k by blocked matrix products (ground truth and scoring).

Scores are higher-is-better: the inner product for ``ip``, the negated squared distance for ``l2``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

BLOCK_ROWS = 65536
QUERY_CHUNK = 64


def true_scores(base: np.ndarray, query: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Scores of ``ids`` (-1 = padding -> -inf) for one query, recomputed in float64 from the vectors."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.full(ids.shape, -np.inf)
    ok = (ids >= 0) & (ids < base.shape[0])
    if ok.any():
        rows = base[ids[ok]].astype(np.float64)
        q = query.astype(np.float64)
        out[ok] = rows @ q if metric == "ip" else -((rows - q) ** 2).sum(axis=1)
    return out


def _block_scores(queries: np.ndarray, block: np.ndarray, metric: str) -> np.ndarray:
    s = queries @ block.T
    if metric == "l2":
        s = 2.0 * s - np.einsum("ij,ij->i", block, block)[None, :] - np.einsum("ij,ij->i", queries, queries)[:, None]
    return s.astype(np.float32, copy=False)


def _sorted_topk(s: np.ndarray, r: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the k best by (score desc, id asc); padding is (-inf, -1)."""
    key = np.where(r < 0, np.iinfo(np.int64).max, r)
    order = np.lexsort((key, -s), axis=1)[:, :k]
    s, r = np.take_along_axis(s, order, axis=1), np.take_along_axis(r, order, axis=1)
    r = np.where(np.isfinite(s), r, -1)
    pad = k - s.shape[1]
    if pad > 0:
        s = np.pad(s, ((0, 0), (0, pad)), constant_values=-np.inf)
        r = np.pad(r, ((0, 0), (0, pad)), constant_values=-1)
    return s, r


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, metric: str,
               mask_of: Callable[[int], np.ndarray | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k ``(ids, scores)`` per query among the rows ``mask_of(j)`` allows (None = all rows).

    Queries go in chunks of 64 (their masks stacked, 64 bytes per base row), base rows in blocks of
    65,536; ties go to the smaller id, so the result is deterministic.
    """
    nq, n = queries.shape[0], base.shape[0]
    ids = np.full((nq, k), -1, np.int64)
    scores = np.full((nq, k), -np.inf, np.float32)
    for q0 in range(0, nq, QUERY_CHUNK):
        q1 = min(nq, q0 + QUERY_CHUNK)
        qc = queries[q0:q1]
        masks = [mask_of(j) if mask_of else None for j in range(q0, q1)]
        dense = None
        if any(m is not None for m in masks):
            dense = np.ones((q1 - q0, n), dtype=bool)
            for i, m in enumerate(masks):
                if m is not None:
                    dense[i] = m
        best_s = np.full((q1 - q0, 0), -np.inf, np.float32)
        best_r = np.full((q1 - q0, 0), -1, np.int64)
        for b0 in range(0, n, BLOCK_ROWS):
            b1 = min(n, b0 + BLOCK_ROWS)
            s = _block_scores(qc, base[b0:b1], metric)
            if dense is not None:
                s[~dense[:, b0:b1]] = -np.inf
            kk = min(k, b1 - b0)
            part = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if b1 - b0 > kk else np.broadcast_to(
                np.arange(b1 - b0), (q1 - q0, b1 - b0))
            s = np.take_along_axis(s, part, axis=1)
            r = np.where(np.isfinite(s), part + b0, -1)
            best_s, best_r = _sorted_topk(np.concatenate([best_s, s], 1), np.concatenate([best_r, r], 1), k)
        ids[q0:q1], scores[q0:q1] = best_r[:, :k], best_s[:, :k]
    return ids, scores
