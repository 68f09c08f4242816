"""Top-k in numba: the one heap every kernel keeps its k best in, under the tie rule of ``vecdb.topk``
(higher scores first; among equal scores the smaller row; padding last). ``vecdb.topk`` holds the numpy
``merge`` / ``finish`` for Python code (kept apart so importing vecdb does not import numba).

* ``worse``: the rule as a comparison, ``(s_a, r_a)`` ranks below ``(s_b, r_b)``.
* The heap (numba, called from numba kernels): arrays ``heap_s`` / ``heap_r`` whose root is the worst
  kept entry (the lowest score, and among equal scores the largest row). ``heap_push`` while it is not
  full, then ``heap_replace_top`` when ``worse(root, new)``; ``heap_pop`` drops the worst and
  ``heap_sort`` sorts best first in place. Every kernel that keeps a top-k uses it:
  ``exact.topk_rows``, ``hnsw_filtered`` (its result set), ``binary.scan_topc``. A scan loop tests
  a score against the root first (full heap and ``s < heap_s[0]``: skip the row) and calls ``offer``
  only for the rest: most rows fail that test, and with every row through ``offer`` (the same
  comparisons) the exact scan ran ~2x slower (numba 0.68, 10,000 x 128 rows in cache, k = 10:
  35.7 against 18.4 ns a row).

Nothing here is compiled until a kernel that calls the heap is. The heap is inlined into those
kernels and numba's cache does not notice edits to this file from them: clear
``vecdb/kernels/__pycache__`` after changing it (as for ``scoring``).
"""

from __future__ import annotations

import numpy as np
from numba import njit




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
def offer(heap_s, heap_r, size, k, s, r):  # pragma: no cover (compiled)
    """Offer (s, r) to a heap of at most ``k`` entries; returns the new size."""
    if size < k:
        return heap_push(heap_s, heap_r, size, s, r)
    if worse(heap_s[0], heap_r[0], s, r):
        heap_replace_top(heap_s, heap_r, size, s, r)
    return size


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

    Entries with row < 0 or a score of -inf are padding and never kept. Merges the k best of the spans of
    a split exact scan (``indexes.flat.exact_search``); the scan kernels offer their scores to the heap as
    they compute them.
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
            size = offer(heap_s, heap_r, size, k, s, r)
        heap_sort(heap_s, heap_r, size)
        out_s[qi, :size] = heap_s[:size]
        out_r[qi, :size] = heap_r[:size]
    return out_s, out_r
