"""Filtered HNSW traversal in numba over a FAISS HNSW graph (ACORN-1-style expansion).

The upper layers are descended greedily without the filter (they only steer). On layer 0 the beam
holds only rows that pass the filter. Expanding a node gathers its passing neighbours; when fewer
than M pass, the rejected neighbours are looked through to their own neighbours (two hops) until M
passing ones are gathered (ACORN-1's expansion, truncated to M), so the passing subgraph stays
connected when few rows pass and no extra work is done when many pass. The filter is a
bool array consulted inside the kernel: no Python per candidate. When a query has examined more rows
than ``budget`` (the caller passes about the number of passing rows) it stops and flags itself, and
the caller answers it with the exact scan, so recall never collapses.

Graph layout is FAISS' (``faiss.vector_to_array(index.hnsw.neighbors)`` etc.): node ``v``'s neighbours
at level ``l`` are ``neighbors[offsets[v] + cum[l] : offsets[v] + cum[l + 1]]``, ``-1``-terminated.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(nogil=True, cache=True, fastmath=True)
def _score(vectors, row, query, l2):
    """Higher is better: inner product, or minus the squared distance."""
    acc = np.float32(0.0)
    if l2:
        for j in range(query.shape[0]):
            diff = vectors[row, j] - query[j]
            acc -= diff * diff
    else:
        for j in range(query.shape[0]):
            acc += vectors[row, j] * query[j]
    return acc


@nb.njit(nogil=True, cache=True)
def _push(keys, vals, size, key, val, is_max):
    """Push onto a binary heap (max-heap when ``is_max``); returns the arrays (grown if full) and size."""
    if size == keys.shape[0]:
        new_keys = np.empty(keys.shape[0] * 2, keys.dtype)
        new_vals = np.empty(vals.shape[0] * 2, vals.dtype)
        new_keys[:size] = keys[:size]
        new_vals[:size] = vals[:size]
        keys, vals = new_keys, new_vals
    i = size
    keys[i] = key
    vals[i] = val
    while i > 0:
        parent = (i - 1) >> 1
        if (keys[i] > keys[parent]) if is_max else (keys[i] < keys[parent]):
            keys[i], keys[parent] = keys[parent], keys[i]
            vals[i], vals[parent] = vals[parent], vals[i]
            i = parent
        else:
            break
    return keys, vals, size + 1


@nb.njit(nogil=True, cache=True)
def _pop(keys, vals, size, is_max):
    """Remove the root; returns the new size (the root's key/value are read before calling)."""
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
        if right < size and ((keys[right] > keys[left]) if is_max else (keys[right] < keys[left])):
            best = right
        if (keys[best] > keys[i]) if is_max else (keys[best] < keys[i]):
            keys[i], keys[best] = keys[best], keys[i]
            vals[i], vals[best] = vals[best], vals[i]
            i = best
        else:
            break
    return size


@nb.njit(nogil=True, cache=True)
def _offer(vectors, query, l2, node, ef, cand_k, cand_v, n_cand, res_k, res_v, n_res):
    """Score a newly seen passing node; keep it (candidate and result) if it beats the worst of ``ef``."""
    s = _score(vectors, node, query, l2)
    if n_res < ef or s > res_k[0]:
        cand_k, cand_v, n_cand = _push(cand_k, cand_v, n_cand, s, node, True)
        res_k, res_v, n_res = _push(res_k, res_v, n_res, s, node, False)
        if n_res > ef:
            n_res = _pop(res_k, res_v, n_res, False)
    return cand_k, cand_v, n_cand, res_k, res_v, n_res


@nb.njit(nogil=True, cache=True)
def _search_one(vectors, neighbors, offsets, cum, entry_point, max_level, query, allow, k, ef, budget, l2,
                gather, visited, out_scores, out_rows):
    """One query; fills ``out_*`` (k) and returns False when the budget ran out (caller goes exact)."""
    # greedy descent through the upper levels, unfiltered
    current = entry_point
    current_score = _score(vectors, current, query, l2)
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
                s = _score(vectors, v, query, l2)
                if s > current_score:
                    current_score = s
                    current = v
                    improved = True
    # layer 0: beam over passing rows, two-hop expansion through rejected ones
    cand_k = np.empty(max(64, 4 * ef), np.float32)
    cand_v = np.empty(max(64, 4 * ef), np.int64)
    res_k = np.empty(ef + 1, np.float32)
    res_v = np.empty(ef + 1, np.int64)
    n_cand = 0
    n_res = 0
    examined = 0
    visited[current] = 1
    cand_k, cand_v, n_cand = _push(cand_k, cand_v, n_cand, current_score, current, True)
    if allow[current]:
        res_k, res_v, n_res = _push(res_k, res_v, n_res, current_score, current, False)
    width = cum[1] - cum[0]
    wanted = max(1, gather)  # passing neighbours to gather per expansion (ACORN-1 truncates to M)
    while n_cand > 0:
        c_score = cand_k[0]
        c = cand_v[0]
        n_cand = _pop(cand_k, cand_v, n_cand, True)
        if n_res >= ef and c_score < res_k[0]:
            break
        base = offsets[c]
        gathered = 0
        # direct neighbours that pass
        for p in range(base, base + width):
            u = neighbors[p]
            if u < 0:
                break
            if allow[u]:
                gathered += 1
                if visited[u] & 1:
                    continue
                visited[u] |= 1
                examined += 1
                cand_k, cand_v, n_cand, res_k, res_v, n_res = _offer(
                    vectors, query, l2, u, ef, cand_k, cand_v, n_cand, res_k, res_v, n_res)
        # too few pass: look through the rejected neighbours to theirs (two hops), up to ``wanted``
        if gathered < wanted:
            for p in range(base, base + width):
                u = neighbors[p]
                if u < 0 or gathered >= wanted:
                    break
                if allow[u] or visited[u] & 2:
                    continue
                visited[u] |= 2
                examined += 1
                base2 = offsets[u]
                for p2 in range(base2, base2 + width):
                    w = neighbors[p2]
                    if w < 0:
                        break
                    if not allow[w]:
                        continue
                    gathered += 1
                    if visited[w] & 1:
                        continue
                    visited[w] |= 1
                    examined += 1
                    cand_k, cand_v, n_cand, res_k, res_v, n_res = _offer(
                        vectors, query, l2, w, ef, cand_k, cand_v, n_cand, res_k, res_v, n_res)
                    if gathered >= wanted:
                        break
        if examined > budget:
            return False
    # the k best of the results, best first
    while n_res > k:
        n_res = _pop(res_k, res_v, n_res, False)
    for i in range(k):
        out_scores[i] = -np.inf
        out_rows[i] = -1
    for i in range(n_res - 1, -1, -1):
        out_scores[i] = res_k[0]
        out_rows[i] = res_v[0]
        n_res = _pop(res_k, res_v, n_res, False)
    return True


@nb.njit(nogil=True, cache=True)
def filtered_search(vectors, neighbors, offsets, cum, entry_point, max_level, queries, allow, k, ef, budget, l2,
                    gather):
    """Filtered HNSW search for a batch. Serial and ``nogil``: the collection runs batches on threads
    (numba's own parallel layer is not safe to enter from several threads at once).

    Returns ``(scores (nq, k), rows (nq, k), complete (nq,))``; ``complete[i]`` is False when query i
    exceeded ``budget`` examined rows and must be answered exactly.
    """
    nq = queries.shape[0]
    scores = np.empty((nq, k), np.float32)
    rows = np.empty((nq, k), np.int64)
    complete = np.empty(nq, np.bool_)
    for i in range(nq):
        visited = np.zeros(vectors.shape[0], np.uint8)  # bit 1: scored, bit 2: looked through
        complete[i] = _search_one(vectors, neighbors, offsets, cum, entry_point, max_level, queries[i], allow,
                                  k, ef, budget, l2, gather, visited, scores[i], rows[i])
    return scores, rows, complete
