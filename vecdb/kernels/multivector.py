"""Numba kernels for multi-vector (late-interaction) search.

* ``fde_aggregate``: the bucketing step of MUVERA's fixed-dimensional encoding, for a batch of
  documents (or queries) at once: per repetition, sum (queries) or average (documents) the projected
  token vectors that fall in each SimHash bucket, and fill a document's empty buckets from the token
  whose SimHash code is nearest in Hamming distance.
* ``count_sketch``: the optional final projection of an FDE (Count Sketch: each coordinate is added,
  with a random sign, to one random output coordinate).
* ``chamfer_pairs``: exact Chamfer / MaxSim scores, ``sum over query vectors of the best inner product
  with any vector of the document``, for (query, document row) pairs; the rerank step and the oracle.

Each kernel that may run on a handful of items has a ``_serial`` twin: waking numba's thread pool
costs more than a small batch (and, on a busy machine, a descheduled worker can stall the call by a
scheduler tick), so the callers pick the parallel one only for large batches.

Token matrices may be memory-mapped (read-only), so every kernel that reads them has a read-only
signature beside the writable one. The dense products (tokens x hyperplanes, tokens x projections)
are left to BLAS in ``vecdb.multivector.fde``; only the irregular per-document loops live here.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types

# Reassociation lets LLVM vectorise the dot products; no "nnan"/"ninf": -inf marks empty slots and maxima.
_FAST = {"reassoc", "contract", "nsz", "arcp"}

_f32_1 = types.Array(types.float32, 1, "C")
_i64_1 = types.Array(types.int64, 1, "C")
_i64_1_ro = types.Array(types.int64, 1, "C", readonly=True)
_i32_2 = types.Array(types.int32, 2, "C")
_i64_2 = types.Array(types.int64, 2, "C")
_f32_2 = types.Array(types.float32, 2, "C")
_f32_2_ro = types.Array(types.float32, 2, "C", readonly=True)
_f32_3 = types.Array(types.float32, 3, "C")
_f32_3_ro = types.Array(types.float32, 3, "C", readonly=True)


@njit(types.int64(types.int64), nogil=True, cache=True)
def _popcount(x: int) -> int:
    n = 0
    while x:
        x &= x - 1
        n += 1
    return n


@njit(inline="always", nogil=True, cache=True)
def _fde_item(codes, proj, start, stop, n_buckets, average, fill_empty, row, counts):  # pragma: no cover (numba)
    """One item's FDE into ``row`` (see ``fde_aggregate``); ``counts`` is scratch of ``n_buckets``."""
    r_reps = codes.shape[1]
    shared = proj.shape[1] == 1
    d_proj = proj.shape[2]
    row[:] = 0.0
    for rep in range(r_reps):
        src = 0 if shared else rep
        base = rep * n_buckets * d_proj
        counts[:] = 0
        for t in range(start, stop):
            b = codes[t, rep]
            counts[b] += 1
            o = base + b * d_proj
            for j in range(d_proj):
                row[o + j] += proj[t, src, j]
        for b in range(n_buckets):
            o = base + b * d_proj
            c = counts[b]
            if c > 1 and average:
                inv = np.float32(1.0 / c)
                for j in range(d_proj):
                    row[o + j] *= inv
            elif c == 0 and fill_empty and stop > start:
                best_t = start
                best_d = 1 << 30
                for t in range(start, stop):
                    dist = _popcount(np.int64(codes[t, rep]) ^ b)
                    if dist < best_d:
                        best_d = dist
                        best_t = t
                for j in range(d_proj):
                    row[o + j] = proj[best_t, src, j]


_FDE_SIGS = [types.void(_i32_2, p_type, _i64_1, types.int64, types.boolean, types.boolean, _f32_2)
             for p_type in (_f32_3, _f32_3_ro)]


@njit(_FDE_SIGS, nogil=True, cache=True, parallel=True)
def fde_aggregate(codes, proj, offsets, n_buckets, average, fill_empty, out):  # pragma: no cover (numba)
    """Write one FDE row per item (a document or a query) into ``out``, items in parallel.

    ``codes`` (n_tokens, r_reps) int32: each token's SimHash bucket per repetition.
    ``proj`` (n_tokens, P, d_proj): each token's inner projection per repetition (``P == r_reps``), or
    one shared by all repetitions (``P == 1``, the identity projection).
    ``offsets`` (n_items + 1,): item i owns tokens ``offsets[i]:offsets[i + 1]``.
    ``average``: divide each bucket's sum by its count (documents); ``fill_empty``: an empty bucket
    takes the projected token whose code is nearest in Hamming distance (ties: the first such token).
    ``out`` (n_items, r_reps * n_buckets * d_proj), layout ``[rep][bucket][coordinate]``.
    """
    for item in prange(offsets.shape[0] - 1):
        counts = np.zeros(n_buckets, np.int64)
        _fde_item(codes, proj, offsets[item], offsets[item + 1], n_buckets, average, fill_empty, out[item], counts)


@njit(_FDE_SIGS, nogil=True, cache=True)
def fde_aggregate_serial(codes, proj, offsets, n_buckets, average, fill_empty, out):  # pragma: no cover (numba)
    """``fde_aggregate`` on the calling thread (a few queries)."""
    counts = np.zeros(n_buckets, np.int64)
    for item in range(offsets.shape[0] - 1):
        _fde_item(codes, proj, offsets[item], offsets[item + 1], n_buckets, average, fill_empty, out[item], counts)


@njit([types.void(fde, _i64_1, _f32_1, _f32_2) for fde in (_f32_2, _f32_2_ro)], nogil=True, cache=True)
def count_sketch(fde, index, sign, out):  # pragma: no cover (numba)
    """``out[i, index[j]] += sign[j] * fde[i, j]`` for every row i (``out`` is zeroed first)."""
    n, d = fde.shape
    for i in range(n):
        out[i, :] = 0.0
        for j in range(d):
            out[i, index[j]] += sign[j] * fde[i, j]


@njit(inline="always", nogil=True, cache=True, fastmath=_FAST)
def _chamfer(q_tokens, q_start, q_stop, d_tokens, d_start, d_stop):  # pragma: no cover (numba)
    """Chamfer of one query set and one document set; four query vectors share each document pass."""
    dim = q_tokens.shape[1]
    total = np.float32(0.0)
    i = q_start
    while i + 4 <= q_stop:
        b0 = b1 = b2 = b3 = np.float32(-np.inf)
        for t in range(d_start, d_stop):
            s0 = s1 = s2 = s3 = np.float32(0.0)
            for k in range(dim):
                x = d_tokens[t, k]
                s0 += q_tokens[i, k] * x
                s1 += q_tokens[i + 1, k] * x
                s2 += q_tokens[i + 2, k] * x
                s3 += q_tokens[i + 3, k] * x
            b0 = max(b0, s0)
            b1 = max(b1, s1)
            b2 = max(b2, s2)
            b3 = max(b3, s3)
        total += b0 + b1 + b2 + b3
        i += 4
    while i < q_stop:
        b0 = np.float32(-np.inf)
        for t in range(d_start, d_stop):
            s0 = np.float32(0.0)
            for k in range(dim):
                s0 += q_tokens[i, k] * d_tokens[t, k]
            b0 = max(b0, s0)
        total += b0
        i += 1
    return total


_CHAMFER_SIGS = [types.void(q, _i64_1, tok, offs, _i64_2, _f32_2)
                 for q in (_f32_2, _f32_2_ro) for tok, offs in ((_f32_2, _i64_1), (_f32_2_ro, _i64_1_ro))]


@njit(_CHAMFER_SIGS, nogil=True, cache=True, parallel=True, fastmath=_FAST)
def chamfer_pairs(q_tokens, q_offsets, d_tokens, d_offsets, rows, out):  # pragma: no cover (numba)
    """``out[i, c]`` = Chamfer(query i, document ``rows[i, c]``); ``-inf`` where the row is -1.

    Chamfer(Q, D) = sum over q in Q of max over d in D of <q, d>. Query i owns ``q_tokens[q_offsets[i]:
    q_offsets[i + 1]]``, document r owns ``d_tokens[d_offsets[r]:d_offsets[r + 1]]`` (never empty).
    Parallel over pairs; ``chamfer_pairs_serial`` is the same on one thread (for small batches, where
    waking the thread pool costs more than it saves).
    """
    nq, n_cand = rows.shape
    for flat in prange(nq * n_cand):
        qi = flat // n_cand
        c = flat - qi * n_cand
        r = rows[qi, c]
        if r < 0:
            out[qi, c] = -np.inf
        else:
            out[qi, c] = _chamfer(q_tokens, q_offsets[qi], q_offsets[qi + 1], d_tokens, d_offsets[r], d_offsets[r + 1])


@njit(_CHAMFER_SIGS, nogil=True, cache=True, fastmath=_FAST)
def chamfer_pairs_serial(q_tokens, q_offsets, d_tokens, d_offsets, rows, out):  # pragma: no cover (numba)
    """``chamfer_pairs`` on the calling thread."""
    nq, n_cand = rows.shape
    for qi in range(nq):
        for c in range(n_cand):
            r = rows[qi, c]
            if r < 0:
                out[qi, c] = -np.inf
            else:
                out[qi, c] = _chamfer(q_tokens, q_offsets[qi], q_offsets[qi + 1], d_tokens, d_offsets[r],
                                      d_offsets[r + 1])
