"""Top-k: the one tie rule, the one numba heap, and the numpy merge / finish every search path shares.

The rule: higher scores rank first; among equal scores **the smaller row ranks first**; padding
(score ``-inf``, row ``-1``) ranks last. Every result of vecdb is in this order, so the exact oracle's
BLAS and numba paths, the filtered graph walk, the binary scan and the Chamfer scan agree row for row
whenever their scores agree.

* ``worse``: the rule as a comparison, ``(s_a, r_a)`` ranks below ``(s_b, r_b)``.
* The heap (numba, called from numba kernels): arrays ``heap_s`` / ``heap_r`` whose root is the worst
  kept entry (the lowest score, and among equal scores the largest row). ``heap_push`` while it is not
  full, then ``heap_replace_top`` when ``worse(root, new)``; ``heap_pop`` drops the worst and
  ``heap_sort`` sorts best first in place. Every kernel that keeps a top-k uses it:
  ``exact.topk_rows``, ``hnsw_filtered`` (its result set), ``binary.scan_topc``. Write the offer out
  in the scan loop as ``topk_of`` does: wrapped in one helper that returns the new size, the exact
  scan ran about 1.5-2x slower (numba 0.68, 5,000 x 384, k = 10), inlined or not.
* ``merge`` / ``finish`` (numpy, for Python code): ``merge`` keeps the k best of two candidate sets per
  query (unsorted), ``finish`` sorts by the rule and pads to ``(nq, k)`` ``Hits``.

Nothing here is compiled until a kernel that calls the heap is. The heap is inlined into those
kernels and numba's cache does not notice edits to this file from them: clear
``vecdb/kernels/__pycache__`` after changing it (as for ``scoring``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..indexes.base import Hits

NO_ROW = np.iinfo(np.int64).max  # sort key of padding (row -1): after every real row


# ----------------------------------------------------------------------------- the heap (numba)
@njit(inline="always")
def worse(s_a, r_a, s_b, r_b):  # pragma: no cover (compiled)
    """(score, row) a ranks below b: a lower score, or the same score and a larger row."""
    return s_a < s_b or (s_a == s_b and r_a > r_b)


@njit(inline="always")
def _sift_down(heap_s, heap_r, i, size):  # pragma: no cover (compiled)
    """Move entry ``i`` down until both children rank above it (the worst stays at the root)."""
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and worse(heap_s[right], heap_r[right], heap_s[left], heap_r[left]):
            child = right
        if not worse(heap_s[child], heap_r[child], heap_s[i], heap_r[i]):
            return
        heap_s[i], heap_s[child] = heap_s[child], heap_s[i]
        heap_r[i], heap_r[child] = heap_r[child], heap_r[i]
        i = child


@njit(inline="always")
def heap_push(heap_s, heap_r, size, s, r):  # pragma: no cover (compiled)
    """Add (s, r) to a heap of ``size`` entries with room for one more; returns the new size."""
    i = size
    heap_s[i] = s
    heap_r[i] = r
    while i > 0:
        parent = (i - 1) >> 1
        if not worse(heap_s[i], heap_r[i], heap_s[parent], heap_r[parent]):
            break
        heap_s[i], heap_s[parent] = heap_s[parent], heap_s[i]
        heap_r[i], heap_r[parent] = heap_r[parent], heap_r[i]
        i = parent
    return size + 1


@njit(inline="always")
def heap_replace_top(heap_s, heap_r, size, s, r):  # pragma: no cover (compiled)
    """Put (s, r) in place of the worst entry (the caller checked that it ranks above it)."""
    heap_s[0] = s
    heap_r[0] = r
    _sift_down(heap_s, heap_r, 0, size)


@njit(inline="always")
def heap_pop(heap_s, heap_r, size):  # pragma: no cover (compiled)
    """Drop the worst entry (read ``heap_s[0]``, ``heap_r[0]`` first if needed); returns the new size."""
    size -= 1
    heap_s[0] = heap_s[size]
    heap_r[0] = heap_r[size]
    _sift_down(heap_s, heap_r, 0, size)
    return size


@njit(inline="always")
def heap_sort(heap_s, heap_r, size):  # pragma: no cover (compiled)
    """Sort the ``size`` entries in place, best first: the worst is swapped to the last free slot."""
    for end in range(size - 1, 0, -1):
        heap_s[0], heap_s[end] = heap_s[end], heap_s[0]
        heap_r[0], heap_r[end] = heap_r[end], heap_r[0]
        _sift_down(heap_s, heap_r, 0, end)


@njit(nogil=True, cache=True)
def topk_of(scores, rows, k):  # pragma: no cover (compiled)
    """The k best of each query's ``(scores, rows)`` through the heap: ``(nq, k)``, best first, padded.

    Entries with row < 0 or a score of -inf are padding and never kept. For tests and small batches;
    the scan kernels offer their scores to the heap as they compute them.
    """
    nq, w = scores.shape
    out_s = np.full((nq, k), -np.inf, scores.dtype)
    out_r = np.full((nq, k), -1, np.int64)
    heap_s = np.empty(k, scores.dtype)
    heap_r = np.empty(k, np.int64)
    for qi in range(nq):
        size = 0
        for c in range(w):
            r = rows[qi, c]
            s = scores[qi, c]
            if r < 0 or s == -np.inf:
                continue
            if size < k:
                size = heap_push(heap_s, heap_r, size, s, r)
            elif worse(heap_s[0], heap_r[0], s, r):
                heap_replace_top(heap_s, heap_r, size, s, r)
        heap_sort(heap_s, heap_r, size)
        out_s[qi, :size] = heap_s[:size]
        out_r[qi, :size] = heap_r[:size]
    return out_s, out_r


# ----------------------------------------------------------------------------- merge / finish (numpy)
def _best_of(s: np.ndarray, r: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best entries of each query by the rule, in no particular order (``s.shape[1] > k``).

    A partition picks k entries; where more than k reach the k-th score (ties at the threshold, which
    the partition cuts arbitrarily) that query's entries at the threshold are chosen again by row.
    """
    nq, w = s.shape
    cols = np.argpartition(s, w - k, axis=1)[:, w - k:]
    best_s = np.take_along_axis(s, cols, axis=1)
    best_r = np.take_along_axis(r, cols, axis=1)
    kth = best_s.min(axis=1, keepdims=True)
    tied = np.flatnonzero(np.count_nonzero(s >= kth, axis=1) != k)
    if tied.size == nq:
        return _best_of_tied(s, r, kth, best_s, best_r, k)
    if tied.size:
        best_s[tied], best_r[tied] = _best_of_tied(s[tied], r[tied], kth[tied], best_s[tied], best_r[tied], k)
    return best_s, best_r


def _best_of_tied(s: np.ndarray, r: np.ndarray, kth: np.ndarray, best_s: np.ndarray, best_r: np.ndarray,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """``_best_of`` for queries whose k-th score ``kth`` is tied. The partition's picks ``best_*`` hold
    every entry above ``kth`` (fewer than k); the rest are the entries equal to it with the smallest
    rows, found by a partition on the row (heavy ties cost no full sort). Entries scored -inf are
    padding: a query with fewer than k others gets ``-inf`` / ``-1`` in the remaining places."""
    if np.isnan(kth).any():  # NaN defeats the threshold: sort everything (NaN ranks last)
        cols = np.lexsort((np.where(r < 0, NO_ROW, r), -s), axis=1)[:, :k]
        return np.take_along_axis(s, cols, axis=1), np.take_along_axis(r, cols, axis=1)
    above = best_s > kth
    at = np.where(kth == -np.inf, np.nan, kth)  # a k-th score of -inf: nothing ties, all padding
    key = np.where(s == at, r, NO_ROW)
    cols = np.argpartition(key, k - 1, axis=1)[:, :k]
    eq_r = np.take_along_axis(key, cols, axis=1)
    real = eq_r != NO_ROW
    cand_s = np.concatenate([np.where(above, best_s, -np.inf), np.where(real, kth, -np.inf)], axis=1)
    cand_r = np.concatenate([np.where(above, best_r, -1), np.where(real, eq_r, -1)], axis=1)
    order = np.lexsort((np.where(cand_r < 0, NO_ROW, cand_r), -cand_s), axis=1)[:, :k]
    return np.take_along_axis(cand_s, order, axis=1), np.take_along_axis(cand_r, order, axis=1)


def merge(best_scores: np.ndarray, best_rows: np.ndarray, scores: np.ndarray, rows: np.ndarray,
          k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best per query of the kept ``(best_scores, best_rows)`` and new ``(scores, rows)``.

    All are ``(nq, width)`` (``rows`` may also be one ``(width,)`` row list shared by every query); a row
    of -1 is padding. Returns ``(nq, min(k, total width))`` arrays in no particular order: pass them to
    ``merge`` again or to ``finish``. Ties at the k-th score go to the smaller rows.
    """
    rows = np.broadcast_to(rows, scores.shape)
    if scores.shape[1] > k:
        scores, rows = _best_of(scores, rows, k)
    all_s = np.concatenate([best_scores, scores], axis=1)
    all_r = np.concatenate([best_rows, rows], axis=1)
    if all_s.shape[1] > k:
        all_s, all_r = _best_of(all_s, all_r, k)
    return all_s, all_r


def finish(scores: np.ndarray, rows: np.ndarray, k: int) -> Hits:
    """``Hits`` of shape ``(nq, k)``: the k best of each query sorted by (score desc, row asc), padded
    with ``-inf`` / ``-1``; an entry whose score is not finite (a masked row) becomes padding."""
    nq = scores.shape[0]
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    out_r = np.full((nq, k), -1, dtype=np.int64)
    r_key = np.where(rows < 0, NO_ROW, rows)
    order = np.lexsort((r_key, -scores), axis=1) if scores.size else np.zeros(rows.shape, np.int64)
    s = np.take_along_axis(scores, order, axis=1)[:, :k]
    r = np.take_along_axis(rows, order, axis=1)[:, :k]
    out_s[:, : s.shape[1]] = s
    out_r[:, : r.shape[1]] = np.where(np.isfinite(s), r, -1)
    return Hits(out_s, out_r)
