"""Exact top-k over a list of rows in numba: no gather copy, one pass, a k-heap per query (``topk``'s).

For the planner's exact plan when few rows pass and few queries share the filter; large batches go
through BLAS instead (``indexes.flat.exact_search`` decides).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .scoring import FAST, dot_or_l2, score_rows
from .topk import heap_sort, offer, worse


SCORE_BLOCK = 64  # rows scored per call of ``score_rows`` before they enter the heap


@nb.njit(nogil=True, cache=True, fastmath=FAST)
def _topk_one(vectors, rows, first_row, stop_row, q, k, l2, heap_s, heap_r, block, out_s, out_r):
    """The k best of ``rows[first_row:stop_row]`` for one query into ``out_s`` / ``out_r`` (pre-padded)."""
    size = 0
    for first in range(first_row, stop_row, SCORE_BLOCK):
        last = min(stop_row, first + SCORE_BLOCK)
        score_rows(vectors, rows, first, last, q, l2, block)
        for idx in range(first, last):
            acc = block[idx - first]
            r = rows[idx]
            if acc == -np.inf:
                continue
            size = offer(heap_s, heap_r, size, k, acc, r)
    heap_sort(heap_s, heap_r, size)
    out_s[:size] = heap_s[:size]
    out_r[:size] = heap_r[:size]


@nb.njit(nogil=True, cache=True, fastmath=FAST)
def topk_rows(vectors, rows, queries, k, l2):
    """Scores (higher is better; l2: minus squared distance) and rows of the k best of ``rows``.

    Returns ``(nq, k)`` arrays sorted best first (ties: the smaller row first), padded with
    ``-inf`` / ``-1`` when fewer than k rows are given.
    """
    starts = np.array([0, rows.shape[0]], np.int64)  # one group: every query scans every row
    return topk_rows_grouped(vectors, rows, starts, np.zeros(queries.shape[0], np.int64), queries, k, l2)


@nb.njit(nogil=True, cache=True, fastmath=FAST)
def topk_rows_grouped(vectors, rows, starts, group_of, queries, k, l2):
    """``topk_rows`` for queries with different filters: query i scans
    ``rows[starts[g] : starts[g + 1]]`` with ``g = group_of[i]`` (one batch call, no Python per filter).
    Same arithmetic per query as ``topk_rows``, so the same results."""
    nq = queries.shape[0]
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_r = np.full((nq, k), -1, np.int64)
    heap_s = np.empty(k, np.float32)
    heap_r = np.empty(k, np.int64)
    block = np.empty(SCORE_BLOCK, np.float32)
    for qi in range(nq):
        g = group_of[qi]
        _topk_one(vectors, rows, starts[g], starts[g + 1], queries[qi], k, l2, heap_s, heap_r, block,
                  out_s[qi], out_r[qi])
    return out_s, out_r


@nb.njit(nogil=True, cache=True, fastmath=FAST)
def rescore_rows(vectors, rows, queries, l2):
    """Exact scores of each query's own candidate rows (``rows[q]``; -1 = none), sorted best first.

    For hits found on compressed copies of the vectors: one call per batch, in place of a gather,
    a product and a sort per query in numpy (~50 us of a ~250 us query at k = 10). Returns ``(nq, k)``
    scores (higher is better; l2: minus squared distance) and rows, ties broken by the smaller row,
    missing candidates last as ``-inf`` / ``-1``.
    """
    nq, k = rows.shape
    out_s = np.empty((nq, k), np.float32)
    out_r = np.empty((nq, k), np.int64)
    for qi in range(nq):
        q = queries[qi]
        n = 0
        for c in range(k):
            r = rows[qi, c]
            if r < 0:
                continue
            acc = dot_or_l2(vectors[r], q, l2)
            i = n  # insertion sort: k is small and the candidates arrive nearly in order
            while i > 0 and worse(out_s[qi, i - 1], out_r[qi, i - 1], acc, r):
                out_s[qi, i] = out_s[qi, i - 1]
                out_r[qi, i] = out_r[qi, i - 1]
                i -= 1
            out_s[qi, i] = acc
            out_r[qi, i] = r
            n += 1
        for c in range(n, k):
            out_s[qi, c] = -np.inf
            out_r[qi, c] = -1
    return out_s, out_r
