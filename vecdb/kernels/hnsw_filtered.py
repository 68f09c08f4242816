"""Filtered HNSW traversal in numba over a FAISS HNSW graph (ACORN-1-style expansion).

The upper layers are descended greedily without the filter (they only steer). On layer 0 the beam
holds only rows that pass the filter. Expanding a node gathers its passing neighbours; when fewer
than M pass, the rejected neighbours are looked through to their own neighbours (two hops) until M
passing ones are gathered (ACORN-1's expansion, truncated to M), so the passing subgraph stays
connected when few rows pass and no extra work is done when many pass. The filter is a
bool array (or the same packed into bits) consulted inside the kernel: no Python per candidate. When
a query has examined more rows than ``budget`` (the caller passes about the number of passing rows) it stops and flags itself, and
the caller answers it with the exact scan, so recall never collapses.

Two heaps per query: the beam of candidates to expand (a plain max-heap on score, ``_beam_push`` /
``_beam_pop``: it orders the walk and is never cut to k) and the ``ef`` best passing rows found, kept
in ``topk``'s heap under its tie rule (among equal scores the smaller row), as every top-k of vecdb is.

Graph layout is FAISS' (``faiss.vector_to_array(index.hnsw.neighbors)`` etc.): node ``v``'s neighbours
at level ``l`` are ``neighbors[offsets[v] + cum[l] : offsets[v] + cum[l + 1]]``, ``-1``-terminated.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.extending import overload

from .prefetch import prefetch_head
from .scoring import dot_or_l2, score_rows
from .topk import heap_pop, heap_push, heap_replace_top, heap_sort, worse



def _allowed(allow, row):
    """Whether ``row`` passes: ``allow`` is a bool mask, or the same packed little-endian into uint8
    (``np.packbits(mask, bitorder="little")``: an eighth of the memory, for batches' stacked masks)."""
    raise NotImplementedError  # numba only, through the overload below


@overload(_allowed, inline="always")
def _allowed_impl(allow, row):
    if allow.dtype == nb.types.boolean:
        return lambda allow, row: allow[row]
    return lambda allow, row: (allow[row >> 3] >> (row & 7)) & 1 == 1


@nb.njit(inline="always")
def _beam_push(keys, vals, size, key, val):
    """Push onto the candidate beam, a max-heap on score (the next node to expand is the root).

    The beam is not a top-k (it only orders the walk and is never cut to k), so it stays this plain
    heap on the score alone; the results are kept in ``topk``'s heap under its tie rule.
    """
    i = size
    keys[i] = key
    vals[i] = val
    while i > 0:
        parent = (i - 1) >> 1
        if keys[i] > keys[parent]:
            keys[i], keys[parent] = keys[parent], keys[i]
            vals[i], vals[parent] = vals[parent], vals[i]
            i = parent
        else:
            break


@nb.njit(inline="always")
def _beam_pop(keys, vals, size):
    """Remove the beam's root; returns the new size (the root's key/value are read before calling)."""
    size -= 1
    keys[0] = keys[size]
    vals[0] = vals[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        best = left
        right = left + 1
        if right < size and keys[right] > keys[left]:
            best = right
        if keys[best] > keys[i]:
            keys[i], keys[best] = keys[best], keys[i]
            vals[i], vals[best] = vals[best], vals[i]
            i = best
        else:
            break
    return size


@nb.njit
def _grown(keys, vals, size):
    """The beam's arrays with twice the room (rare: the beam outgrew 4 * ef)."""
    new_keys = np.empty(keys.shape[0] * 2, keys.dtype)
    new_vals = np.empty(vals.shape[0] * 2, vals.dtype)
    new_keys[:size] = keys[:size]
    new_vals[:size] = vals[:size]
    return new_keys, new_vals


@nb.njit(nogil=True, cache=True)
def _search_one(vectors, neighbors, offsets, cum, entry_point, max_level, query, allow, k, ef, budget, l2,
                gather, visited, mark, out_scores, out_rows):
    """One query; fills ``out_*`` (k) and returns False when the budget ran out (caller goes exact).
    ``visited[v] == mark`` means v was scored or looked through during this query."""
    # greedy descent through the upper levels, unfiltered
    current = entry_point
    current_score = dot_or_l2(vectors[current], query, l2)
    for level in range(max_level, 0, -1):
        improved = True
        while improved:
            improved = False
            start = offsets[current] + cum[level]
            stop = offsets[current] + cum[level + 1]
            for p in range(start, stop):
                v = neighbors[p]
                if v < 0:
                    break
                s = dot_or_l2(vectors[v], query, l2)
                if s > current_score:
                    current_score = s
                    current = v
                    improved = True
    # layer 0: beam over passing rows, two-hop expansion through rejected ones
    cand_k = np.empty(max(64, 4 * ef), np.float32)
    cand_v = np.empty(max(64, 4 * ef), np.int64)
    res_k = np.empty(ef, np.float32)  # the ef best passing rows: topk's heap, the worst at the root
    res_v = np.empty(ef, np.int64)
    n_cand = 0
    n_res = 0
    examined = 0
    visited[current] = mark
    _beam_push(cand_k, cand_v, n_cand, current_score, current)
    n_cand += 1
    if _allowed(allow, current):
        n_res = heap_push(res_k, res_v, n_res, current_score, current)
    width = cum[1] - cum[0]
    wanted = max(1, gather)  # passing neighbours to gather per expansion (ACORN-1 truncates to M)
    # an expansion gathers its new nodes first and scores them together (see ``score_rows``)
    pending = np.empty(width + wanted + 1, np.int64)
    pending_scores = np.empty(width + wanted + 1, np.float32)
    while n_cand > 0:
        c_score = cand_k[0]
        c = cand_v[0]
        n_cand = _beam_pop(cand_k, cand_v, n_cand)
        if n_res >= ef and c_score < res_k[0]:
            break
        base = offsets[c]
        gathered = 0
        n_pending = 0
        hop = False  # False: direct neighbours; True: through the rejected ones (two hops)
        p = base
        p2 = 0
        stop2 = 0
        while True:
            # next passing node to offer: direct neighbours first, then, while fewer than ``wanted``
            # passed, the neighbours of rejected neighbours
            w = -1
            if not hop:
                if p < base + width:
                    u = neighbors[p]
                    p += 1
                    if u < 0:
                        p = base + width
                        continue
                    if not _allowed(allow, u):
                        continue
                    gathered += 1
                    if visited[u] == mark:
                        continue
                    w = u
                else:
                    if gathered >= wanted:
                        break
                    hop = True
                    p = base
                    continue
            else:
                if p2 < stop2:
                    u = neighbors[p2]
                    p2 += 1
                    if u < 0:
                        p2 = stop2
                        continue
                    if not _allowed(allow, u):
                        continue
                    gathered += 1
                    if visited[u] == mark:
                        if gathered >= wanted:
                            break
                        continue
                    w = u
                else:
                    if gathered >= wanted or p >= base + width:
                        break
                    u = neighbors[p]
                    p += 1
                    if u < 0:
                        break
                    if _allowed(allow, u) or visited[u] == mark:
                        continue
                    visited[u] = mark
                    examined += 1
                    p2 = offsets[u]
                    stop2 = p2 + width
                    continue
            visited[w] = mark
            examined += 1
            pending[n_pending] = w
            n_pending += 1
            prefetch_head(vectors, w)  # its row loads while the gathering goes on
            if hop and gathered >= wanted:
                break
        score_rows(vectors, pending, 0, n_pending, query, l2, pending_scores)
        for i in range(n_pending):
            s = pending_scores[i]
            w = pending[i]
            if n_res < ef:
                n_res = heap_push(res_k, res_v, n_res, s, w)
            elif worse(res_k[0], res_v[0], s, w):
                heap_replace_top(res_k, res_v, n_res, s, w)
            else:
                continue
            if n_cand == cand_k.shape[0]:
                cand_k, cand_v = _grown(cand_k, cand_v, n_cand)
            _beam_push(cand_k, cand_v, n_cand, s, w)
            n_cand += 1
        if examined > budget:
            return False
    # the k best of the results, best first
    while n_res > k:
        n_res = heap_pop(res_k, res_v, n_res)
    heap_sort(res_k, res_v, n_res)
    for i in range(k):
        out_scores[i] = res_k[i] if i < n_res else -np.inf
        out_rows[i] = res_v[i] if i < n_res else -1
    return True


@nb.njit(nogil=True, cache=True)
def filtered_search_grouped(vectors, neighbors, offsets, cum, entry_point, max_level, queries, masks, group_of, k,
                            efs, budgets, gathers, l2, visited, mark):
    """Filtered HNSW search for a batch whose queries may carry different filters: query i walks with
    the mask ``masks[group_of[i]]`` (bool, or packed bits: ``_allowed``) and its own ``efs[i]`` (at
    least k), ``budgets[i]``, ``gathers[i]``. One filter for them all is one row of masks. Serial and
    ``nogil``: the collection runs batches on threads (numba's own parallel layer is not safe to enter
    from several threads at once; ``vecdb/batch.py`` runs chunks of queries through this).

    ``visited`` (uint8, one per row, owned by the calling thread) marks what a query has seen with that
    query's number (1-255, after ``mark``), so it is cleared once every 255 queries, not per query
    (FAISS' VisitedTable does the same): at 1M rows a clear costs more than a selective query.

    Returns ``(scores (nq, k), rows (nq, k), complete (nq,), last mark used)``; ``complete[i]`` is
    False when query i exceeded ``budgets[i]`` examined rows and must be answered exactly."""
    nq = queries.shape[0]
    scores = np.empty((nq, k), np.float32)
    rows = np.empty((nq, k), np.int64)
    complete = np.empty(nq, np.bool_)
    for i in range(nq):
        mark += 1
        if mark > 255:
            visited[:] = 0
            mark = 1
        complete[i] = _search_one(vectors, neighbors, offsets, cum, entry_point, max_level, queries[i],
                                  masks[group_of[i]], k, max(efs[i], k), budgets[i], l2, gathers[i], visited,
                                  np.uint8(mark), scores[i], rows[i])
    return scores, rows, complete, mark
