"""Exact top-k over a list of rows in numba: no gather copy, one pass, a k-heap per query.

For the planner's exact plan when few rows pass and few queries share the filter; large batches go
through BLAS instead (``indexes.flat.exact_search`` decides).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(nogil=True, cache=True, fastmath=True)
def topk_rows(vectors, rows, queries, k, l2):
    """Scores (higher is better; l2: minus squared distance) and rows of the k best of ``rows``.

    Ties keep the smaller row (rows are scanned in the order given, ascending by the caller).
    Returns unsorted ``(nq, k)`` arrays padded with ``-inf`` / ``-1``; the caller sorts.
    """
    nq, d = queries.shape
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_r = np.full((nq, k), -1, np.int64)
    for qi in range(nq):
        q = queries[qi]
        heap_s = out_s[qi]
        heap_r = out_r[qi]
        size = 0
        for idx in range(rows.shape[0]):
            r = rows[idx]
            acc = np.float32(0.0)
            if l2:
                for j in range(d):
                    diff = vectors[r, j] - q[j]
                    acc -= diff * diff
            else:
                for j in range(d):
                    acc += vectors[r, j] * q[j]
            if size < k:
                # sift up into a min-heap on score
                i = size
                heap_s[i] = acc
                heap_r[i] = r
                size += 1
                while i > 0:
                    parent = (i - 1) >> 1
                    if heap_s[i] < heap_s[parent]:
                        heap_s[i], heap_s[parent] = heap_s[parent], heap_s[i]
                        heap_r[i], heap_r[parent] = heap_r[parent], heap_r[i]
                        i = parent
                    else:
                        break
            elif acc > heap_s[0]:
                heap_s[0] = acc
                heap_r[0] = r
                i = 0
                while True:
                    left = 2 * i + 1
                    if left >= size:
                        break
                    best = left
                    if left + 1 < size and heap_s[left + 1] < heap_s[left]:
                        best = left + 1
                    if heap_s[best] < heap_s[i]:
                        heap_s[i], heap_s[best] = heap_s[best], heap_s[i]
                        heap_r[i], heap_r[best] = heap_r[best], heap_r[i]
                        i = best
                    else:
                        break
    return out_s, out_r
