"""Numba kernels for packed binary codes (``vecdb.binary``).

A code is one row of ``uint64`` words: ``bits`` bit planes of ``words = ceil(dim / 64)`` words each,
plane ``b`` in words ``b * words .. (b + 1) * words - 1``; bit ``j`` of a plane is bit ``j % 64`` of
word ``j // 64``; a set bit means +1, a clear one -1, and the padding bits past ``dim`` are clear in
every code (so they never differ).

* ``hamming_one_to_many``: Hamming distance between one code and many (hardware popcount).
* ``symmetric_ip_one_to_many``: ``sum_ab weights[a, b] * <plane a of q, plane b of x>`` with the
  planes as +-1 vectors, from the popcounts of the XOR of every pair of planes. With
  ``weights[a, b] = scale_a * scale_b`` it is the inner product of the two reconstructions
  ``sum_b scale_b * plane_b`` (see ``vecdb.binary.encoders``).
* ``scan_topc``: the fused scan. For each query, that score plus an optional per-row term over the
  rows ``lo .. hi - 1`` a filter bitmap allows (``uint64`` words, bit ``i % 64`` of word ``i // 64`` =
  row ``i``; an empty bitmap allows every row; set bits are walked with ``tzcnt``, so a sparse filter
  costs its passing rows, not all rows), keeping the best ``c`` per query in ``topk``'s heap; ties go
  to the smaller row, so results are deterministic. It releases the GIL: ``vecdb.binary.scan`` runs it on
  threads over chunks of queries, or over blocks of rows (one heap each, merged) when there are fewer
  queries than threads. Plain Python threads, not ``parallel=True``: no thread-pool wake-up for one
  small query, and a fraction of the compile time.

Code matrices may be memory-mapped, so every kernel reading them has a read-only signature beside
the writable one. The small arguments (queries, weights, bitmap) must be writable; the Python
wrappers in ``vecdb.binary`` copy them when they are not.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .topk import heap_replace_top, heap_sort, worse

_u64_1 = types.Array(types.uint64, 1, "C")
_u64_2 = types.Array(types.uint64, 2, "C")
_u64_2_ro = types.Array(types.uint64, 2, "C", readonly=True)
_f32_1 = types.Array(types.float32, 1, "C")
_f64_1 = types.Array(types.float64, 1, "C")
_f64_2 = types.Array(types.float64, 2, "C")
_i32_1 = types.Array(types.int32, 1, "C")
_i64_2 = types.Array(types.int64, 2, "C")


@intrinsic
def _popcount(typingctx, x):  # pragma: no cover (compiled)
    """``llvm.ctpop.i64``: one ``popcnt`` instruction on x86-64."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@intrinsic
def _trailing_zeros(typingctx, x):  # pragma: no cover (compiled)
    """``llvm.cttz.i64`` (``tzcnt``); undefined for 0, which callers never pass."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.uint64(types.uint64), codegen


# ----------------------------------------------------------------------------- one to many
def _hamming_sigs():
    return [_i32_1(_u64_1, c) for c in (_u64_2, _u64_2_ro)]


@njit(_hamming_sigs(), nogil=True, cache=True)
def hamming_one_to_many(query, codes):  # pragma: no cover (compiled)
    """Hamming distance between ``query`` (``words``) and every row of ``codes`` (``n x words``)."""
    n, words = codes.shape
    out = np.empty(n, dtype=np.int32)
    for i in range(n):
        h = np.uint64(0)
        for w in range(words):
            h += _popcount(query[w] ^ codes[i, w])
        out[i] = np.int32(h)
    return out


@njit(nogil=True, cache=True)
def _sym_score(query, codes, row, bits, words, dim, weights):  # pragma: no cover (compiled)
    """``sum_ab weights[a, b] * (dim - 2 * popcount(q_a ^ x_b))`` for code ``row`` of ``codes``."""
    s = 0.0
    for a in range(bits):
        qa = a * words
        for b in range(bits):
            xb = b * words
            h = np.uint64(0)
            for w in range(words):
                h += _popcount(query[qa + w] ^ codes[row, xb + w])
            s += weights[a, b] * (dim - 2.0 * np.float64(h))
    return s


def _ip_sigs():
    return [_f64_1(_u64_1, c, types.int64, types.int64, _f64_2) for c in (_u64_2, _u64_2_ro)]


@njit(_ip_sigs(), nogil=True, cache=True)
def symmetric_ip_one_to_many(query, codes, bits, dim, weights):  # pragma: no cover (compiled)
    """``sum_ab weights[a, b] * <q_a, x_b>`` (planes as +-1 vectors of length ``dim``) for every row."""
    n = codes.shape[0]
    words = codes.shape[1] // bits
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = _sym_score(query, codes, i, bits, words, dim, weights)
    return out


# ----------------------------------------------------------------------------- the best c (``topk``'s heap)
@njit(nogil=True, cache=True)
def _scan_rows(query, codes, bits, dim, weights, row_term, allow, lo, hi, hs, hr):  # pragma: no cover
    """Offer rows ``lo .. hi - 1`` (those set in ``allow``, or all when it is empty) to the heap
    (``topk``'s, kept full: it starts as ``c`` fillers -inf / -1, which every real row beats).

    The heap must hold only rows below ``lo`` (or fillers): rows are offered in ascending order, so a
    row whose score equals the root's loses the tie and is skipped without a heap operation.
    """
    words = codes.shape[1] // bits
    has_term = row_term.shape[0] > 0
    if allow.shape[0] == 0:
        w00 = weights[0, 0]
        if bits == 1 and not has_term and w00 > 0.0:
            # Plain Hamming: compare integers against the heap root's distance (``limit``), and make
            # the float score only for the rows that get in.
            limit = np.int64(1) << 62
            for i in range(lo, hi):
                h = np.uint64(0)
                for w in range(words):
                    h += _popcount(query[w] ^ codes[i, w])
                if np.int64(h) < limit:  # rows ascend: an equal distance loses the tie to the root
                    s = w00 * (dim - 2.0 * np.float64(h))
                    if worse(hs[0], hr[0], s, i):
                        heap_replace_top(hs, hr, hs.shape[0], s, i)
                    if hs[0] > -np.inf:
                        limit = np.int64(np.round((dim - hs[0] / w00) * 0.5))
        else:
            for i in range(lo, hi):
                s = _sym_score(query, codes, i, bits, words, dim, weights)
                if has_term:
                    s += row_term[i]
                if s > hs[0]:  # rows ascend, so an equal score loses the tie to the root
                    heap_replace_top(hs, hr, hs.shape[0], s, i)
        return
    for wi in range(lo // 64, (hi + 63) // 64):
        m = allow[wi]
        while m != 0:
            i = wi * 64 + np.int64(_trailing_zeros(m))
            m &= m - np.uint64(1)
            if i >= hi:
                break
            if i < lo:
                continue
            s = _sym_score(query, codes, i, bits, words, dim, weights)
            if has_term:
                s += row_term[i]
            if s > hs[0]:  # as above: rows ascend
                heap_replace_top(hs, hr, hs.shape[0], s, i)


def _scan_sigs():
    out_t = types.Tuple((_f64_2, _i64_2))
    return [out_t(_u64_2, c, types.int64, types.int64, _f64_2, _f32_1, _u64_1, types.int64, types.int64,
                  types.int64) for c in (_u64_2, _u64_2_ro)]


@njit(_scan_sigs(), nogil=True, cache=True)
def scan_topc(queries, codes, bits, dim, weights, row_term, allow, lo, hi, c):  # pragma: no cover
    """Best ``c`` of rows ``lo .. hi - 1`` per query: ``(scores, rows)`` best first, padded -inf / -1.

    Releases the GIL, so callers run it on threads over chunks of queries or blocks of rows
    (``vecdb.binary.scan`` does, and merges the blocks).
    """
    nq = queries.shape[0]
    out_s = np.full((nq, c), -np.inf)
    out_r = np.full((nq, c), -1, dtype=np.int64)
    for qi in range(nq):
        _scan_rows(queries[qi], codes, bits, dim, weights, row_term, allow, lo, hi, out_s[qi], out_r[qi])
        heap_sort(out_s[qi], out_r[qi], c)
    return out_s, out_r


KERNELS = {
    "hamming_one_to_many": hamming_one_to_many,
    "symmetric_ip_one_to_many": symmetric_ip_one_to_many,
    "scan_topc": scan_topc,
}
