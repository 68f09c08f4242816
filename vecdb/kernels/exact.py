"""Exact top-k over a list of rows in numba: no gather copy, one pass, a k-heap per query (``topk``'s).

For the planner's exact plan when few rows pass and few queries share the filter; large batches go
through BLAS instead (``indexes.flat.exact_search`` decides).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .atomics import compare_exchange, cpu_relax, fetch_add, load_acquire
from .scoring import FAST, dot_or_l2, score_rows
from .topk import heap_sort, offer, worse


SCORE_BLOCK = 64  # rows scored per call of ``score_rows`` before they enter the heap
SHARE = 8  # queries of one group scanning a block of rows while it is in cache


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
    scan_tasks(vectors, rows, starts, group_of, np.arange(nq), queries, k, l2, 0, nq, out_s, out_r)
    return out_s, out_r


@nb.njit(nogil=True, cache=True, fastmath=FAST)
def scan_tasks(vectors, rows, starts, task_group, task_query, queries, k, l2, first, last, out_s, out_r):
    """Tasks ``first:last`` of a batch: task t scans group ``g = task_group[t]``'s rows
    ``rows[starts[g] : starts[g + 1]]`` for query ``queries[task_query[t]]`` and writes its k best to that
    query's row of ``out_s`` / ``out_r`` (pre-padded), so chunks of one batch on several threads fill
    one pair of arrays, in query order."""
    heap_s, heap_r, sizes, block = _buffers(k)
    while first < last:
        stop = _run_end(task_group, first, last)
        g = task_group[first]
        _scan_run(vectors, rows, starts[g], starts[g + 1], queries, task_query, first, stop, k, l2,
                  heap_s, heap_r, sizes, block, out_s, out_r)
        first = stop


@nb.njit(nogil=True, cache=True, fastmath=FAST)
def serve_stream(vectors, rows, starts, task_group, task_query, queries, k, l2, state, out_s, out_r):
    """Scan the tasks of an exact bucket while its caller is still planning and posting them (a batch's
    Python runs beside this, which holds no GIL; ``batch._Stream``).

    Task t is query ``queries[task_query[t]]`` over group ``g = task_group[t]``'s rows
    ``rows[starts[g] : starts[g + 1]]``; its k best go to the query's row ``out_s[task_query[t]]`` /
    ``out_r[task_query[t]]`` (padded by the caller). ``state`` (int64, through ``atomics``):
    [0] tasks posted (the caller writes a task's arrays, then stores this with release),
    [1] tasks taken (each server takes up to ``SHARE`` neighbouring tasks of one group at a time with a
    compare-exchange), [2] 1 once nothing more will be posted, [3] calls started (the servers', and the
    caller's once it closed the stream), [4] calls returned (``await_servers``). Returns when the stream
    is closed and every task is taken; spins while it waits for tasks (the caller gave it this core).
    Same arithmetic per query as ``topk_rows``."""
    fetch_add(state, 3, 1)
    heap_s, heap_r, sizes, block = _buffers(k)
    while True:
        taken = load_acquire(state, 1)
        posted = load_acquire(state, 0)
        if taken < posted:
            stop = _run_end(task_group, taken, posted)
            if compare_exchange(state, 1, taken, stop):
                g = task_group[taken]
                _scan_run(vectors, rows, starts[g], starts[g + 1], queries, task_query, taken, stop, k, l2,
                          heap_s, heap_r, sizes, block, out_s, out_r)
        elif load_acquire(state, 2) == 1 and load_acquire(state, 1) >= load_acquire(state, 0):
            fetch_add(state, 4, 1)  # its last write is before this: a caller that sees it may read them all
            return
        else:
            cpu_relax()


@nb.njit(nogil=True, cache=True)
def await_servers(state):
    """Spin until every ``serve_stream`` call that started on ``state`` has returned (for the caller, whose
    own call returned: the stream is closed and every task taken); one that starts later finds nothing
    to do and writes nothing. Waiting here, not on the servers' futures, saves waking the caller from a
    lock (~0.1 ms on the 2-core VM)."""
    while load_acquire(state, 4) < load_acquire(state, 3):
        cpu_relax()


@nb.njit(nogil=True, cache=True)
def await_started(state, servers, spins, bell):
    """Ring ``bell`` (``parallel.BELL``: a pool thread spinning for work takes the one just queued), then
    spin (``spins`` pauses at most) until ``servers`` ``serve_stream`` calls have started on ``state``;
    whether they have. No GIL is held meanwhile, so a server thread takes it at once, enters its kernel
    and lets it go. A Python loop of ``sched_yield`` held it between its calls, and a server that found
    it taken slept until a later handover (2-core VM, submit to started: median ~62 us, ~31 us this
    way with the thread asleep, ~10 us with it spinning)."""
    fetch_add(bell, 0, 1)
    for _ in range(spins):
        if load_acquire(state, 3) >= servers:
            return True
        cpu_relax()
    return load_acquire(state, 3) >= servers


@nb.njit(nogil=True, cache=True)
def _buffers(k):
    """Per-thread heaps for ``SHARE`` queries, their sizes, and a block of scores."""
    return (np.empty((SHARE, k), np.float32), np.empty((SHARE, k), np.int64), np.zeros(SHARE, np.int64),
            np.empty(SCORE_BLOCK, np.float32))


@nb.njit(nogil=True, cache=True)
def _run_end(group_of, first, limit):
    """The end of the run of tasks from ``first`` (before ``limit``) scanned together: at most ``SHARE``,
    all of ``first``'s group."""
    stop = first + 1
    while stop < limit and stop - first < SHARE and group_of[stop] == group_of[first]:
        stop += 1
    return stop


@nb.njit(nogil=True, cache=True, fastmath=FAST)
def _scan_run(vectors, rows, lo, hi, queries, query_of, first, stop, k, l2, heap_s, heap_r, sizes, block,
              out_s, out_r):
    """Tasks ``first:stop`` (at most ``SHARE``, one group) scan ``rows[lo:hi]`` together, a block of
    ``SCORE_BLOCK`` rows at a time: each block is read from memory once and scored for each of them
    while it is in cache (rows scattered over a large table are mostly cache misses; synthetic-1M's ~1%
    band, 75 queries over 59 filters of ~10,000 rows, one thread, cache flushed: 69 -> 65 ms; arxiv's,
    212 over 123: 17.3 -> 16.0 ms). Task t is query ``queries[query_of[t]]``; its k best, sorted, go to
    that query's row ``out_s[query_of[t]]`` / ``out_r[query_of[t]]`` (pre-padded)."""
    m = stop - first
    sizes[:m] = 0
    for a in range(lo, hi, SCORE_BLOCK):
        b = min(hi, a + SCORE_BLOCK)
        for j in range(m):
            score_rows(vectors, rows, a, b, queries[query_of[first + j]], l2, block)
            size = sizes[j]
            for idx in range(a, b):
                acc = block[idx - a]
                if size == k and acc < heap_s[j, 0]:
                    continue  # below the worst kept: most rows (``topk``: test before ``offer``)
                if acc != -np.inf:
                    size = offer(heap_s[j], heap_r[j], size, k, acc, rows[idx])
            sizes[j] = size
    for j in range(m):
        size = sizes[j]
        heap_sort(heap_s[j], heap_r[j], size)
        out_s[query_of[first + j], :size] = heap_s[j, :size]
        out_r[query_of[first + j], :size] = heap_r[j, :size]


@nb.njit(nogil=True, cache=True)
def offer_scores(scores, rows, k, heap_s, heap_r, sizes, row_norms, q_norms, l2):
    """Offer a block of scores to each query's k-heap (``indexes.flat.exact_search``'s BLAS path):
    ``scores[q, c]`` is query q's inner product with row ``rows[c]`` (one row list for every query),
    for l2 made minus the squared distance here, ``min(2 s - |row|^2 - |q|^2, 0)`` in float32 as numpy
    would (``row_norms`` / ``q_norms``: the squared norms; unused for ip). The heaps ``heap_s[q] /
    heap_r[q]`` hold ``sizes[q]`` entries, kept from block to block. -inf (a masked row) and NaN are never
    kept. No ``fastmath``: it would let the NaN test go and could fuse the l2 arithmetic.

    In place of numpy's ``argpartition`` over the whole block and the l2 arithmetic's passes over it
    (1,000 queries x 5,000 rows: ~46 ms against ~22 ms for the matrix product; this: ~11 ms), and
    ``nogil``: spans of rows scan on several threads."""
    nq, w = scores.shape
    two = np.float32(2.0)
    zero = np.float32(0.0)
    for qi in range(nq):
        size = sizes[qi]
        for c in range(w):
            s = scores[qi, c]
            if l2 and s != -np.inf:
                s = min(two * s - row_norms[c] - q_norms[qi], zero)
            if size == k and s < heap_s[qi, 0]:
                continue  # below the worst kept: most entries
            if s == -np.inf or s != s:
                continue
            size = offer(heap_s[qi], heap_r[qi], size, k, s, rows[c])
        sizes[qi] = size


@nb.njit(nogil=True, cache=True)
def sorted_heaps(heap_s, heap_r, sizes):
    """The heaps of ``offer_scores`` sorted best first, padded with ``-inf`` / ``-1``: ``(nq, k)`` arrays."""
    nq, k = heap_s.shape
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_r = np.full((nq, k), -1, np.int64)
    for qi in range(nq):
        size = sizes[qi]
        heap_sort(heap_s[qi], heap_r[qi], size)
        out_s[qi, :size] = heap_s[qi, :size]
        out_r[qi, :size] = heap_r[qi, :size]
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
