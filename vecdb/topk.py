"""Top-k: the one tie rule, and the numpy ``merge`` / ``finish`` every Python search path shares.

The rule: higher scores rank first; among equal scores **the smaller row ranks first**; padding
(score ``-inf``, row ``-1``) ranks last. Every result of vecdb is in this order, so the exact oracle's
BLAS and numba paths, the filtered graph walk, the binary scan and the Chamfer scan agree row for row
whenever their scores agree. The numba kernels keep their k best in the one heap of
``vecdb.kernels.topk``, under the same rule.

``merge`` keeps the k best of two candidate sets per query (unsorted); ``finish`` sorts by the rule and
pads to ``(nq, k)`` ``Hits``.
"""

from __future__ import annotations

import numpy as np

from .indexes.base import Hits

NO_ROW = np.iinfo(np.int64).max  # sort key of padding (row -1): after every real row


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
