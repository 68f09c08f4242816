"""Sets of vectors and their exact Chamfer scoring.

A batch of sets is always ``(tokens, offsets)``: set i owns ``tokens[offsets[i]:offsets[i + 1]]``.
``as_sets`` turns what users have into that form; ``rerank`` scores given candidate rows exactly and
keeps the best k; ``chamfer_topk`` scans every allowed row (the oracle). Both run ``chamfer_pairs``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidParameterError, InvalidVectorError
from ..indexes.base import Hits
from ..kernels.multivector import chamfer_pairs, chamfer_pairs_serial
from ..topk import finish, merge
from ..vectors import as_matrix, normalize as normalize_rows

SCAN_BLOCK = 4096  # rows scored per kernel call in the exact scan (bounds the (queries, rows) buffer)
# Fewer (query, row) pairs are scored on the calling thread: ~15 ms of work on one core at 128 dims, 16 x 86
# vectors. Waking the thread pool pays only above that; on a busy machine a parallel call can also wait a
# whole scheduler tick for a descheduled worker, which would dominate a single query's rerank.
PARALLEL_MIN_PAIRS = 512


def score_pairs(q: np.ndarray, q_offsets: np.ndarray, tokens: np.ndarray, offsets: np.ndarray,
                rows: np.ndarray, *, parallel: bool = True) -> np.ndarray:
    """Chamfer of query i with row ``rows[i, c]`` for every (i, c); ``-inf`` where the row is -1.

    ``parallel=False`` on threads of a Python pool: numba's parallel kernel must not run there (its
    fallback threading layer aborts the process when entered from several threads at once)."""
    out = np.empty(rows.shape, dtype=np.float32)
    kernel = chamfer_pairs if parallel and rows.size >= PARALLEL_MIN_PAIRS else chamfer_pairs_serial
    kernel(q, q_offsets, tokens, offsets, rows, out)
    return out


def as_sets(data: Any, dim: int, *, normalize: bool = False, what: str = "vectors") -> tuple[np.ndarray, np.ndarray]:
    """``(tokens float32 (n_vectors, dim), offsets int64 (n_sets + 1,))`` from user input.

    Accepted: a list of ``(n_i, dim)`` arrays; a tuple ``(vectors, offsets)`` with 1-D integer offsets
    from 0 to ``len(vectors)``; one ``(n, dim)`` array (one set); an ``(n_sets, n, dim)`` array.
    Every set needs at least one vector. ``normalize``: unit-length vectors (cosine).
    """
    if isinstance(data, tuple) and len(data) == 2 and np.asarray(data[1]).ndim == 1:
        tokens = as_matrix(data[0], dim, what=what)
        offsets = np.asarray(data[1])
        if offsets.dtype.kind not in "iu":
            raise InvalidParameterError(f"offsets of the {what} must be integers; got dtype {offsets.dtype}")
        offsets = offsets.astype(np.int64)
        if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != tokens.shape[0]:
            raise InvalidParameterError(
                f"offsets of the {what} must run from 0 to {tokens.shape[0]} (the number of vectors); "
                f"got {offsets[:1].tolist()} .. {offsets[-1:].tolist()}")
    elif isinstance(data, np.ndarray) and data.ndim in (2, 3):
        if data.ndim == 2:
            data = data[None]
        tokens = as_matrix(data.reshape(-1, data.shape[-1]), dim, what=what)
        offsets = np.arange(data.shape[0] + 1, dtype=np.int64) * data.shape[1]
    elif isinstance(data, (list, tuple)):
        parts = [as_matrix(item, dim, what=f"{what} of set {i}") for i, item in enumerate(data)]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([p.shape[0] for p in parts])
        tokens = np.concatenate(parts) if parts else np.empty((0, dim), np.float32)
    else:
        raise InvalidVectorError(
            f"{what} must be a list of (n_i, {dim}) arrays, a tuple (vectors, offsets), or an array; "
            f"got {type(data).__name__}")
    sizes = np.diff(offsets)
    if (sizes <= 0).any():
        bad = np.flatnonzero(sizes <= 0)
        raise InvalidVectorError(f"{what}: every set needs at least one vector; set(s) {bad[:10].tolist()} "
                                 f"have {sizes[bad][:10].tolist()}")
    if normalize and tokens.shape[0]:
        tokens = normalize_rows(tokens, what=what)
    return tokens, offsets


def _select(q: np.ndarray, q_offsets: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sets ``members`` of a batch, as their own contiguous batch."""
    if members.size == q_offsets.shape[0] - 1:
        return q, q_offsets
    parts = [q[q_offsets[i]: q_offsets[i + 1]] for i in members]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([p.shape[0] for p in parts])
    return np.ascontiguousarray(np.concatenate(parts)), offsets


def rerank(q: np.ndarray, q_offsets: np.ndarray, members: np.ndarray, tokens: np.ndarray, offsets: np.ndarray,
           candidates: np.ndarray, k: int, *, parallel: bool = True) -> Hits:
    """Exact Chamfer of queries ``members`` against their ``candidates`` rows (``-1`` = none); the k best."""
    qm, qm_offsets = _select(q, q_offsets, members)
    rows = np.array(candidates, dtype=np.int64, order="C")  # a writable copy the kernel may read
    return finish(score_pairs(qm, qm_offsets, tokens, offsets, rows, parallel=parallel), rows, k)


def chamfer_topk(q: np.ndarray, q_offsets: np.ndarray, members: np.ndarray, tokens: np.ndarray,
                 offsets: np.ndarray, allowed: np.ndarray, k: int, *, parallel: bool = True) -> Hits:
    """Exact Chamfer of queries ``members`` against every row in ``allowed``; the k best (ties: smaller row)."""
    qm, qm_offsets = _select(q, q_offsets, members)
    nq = qm_offsets.shape[0] - 1
    best_s = np.empty((nq, 0), dtype=np.float32)
    best_r = np.empty((nq, 0), dtype=np.int64)
    for start in range(0, allowed.shape[0], SCAN_BLOCK):
        block = allowed[start: start + SCAN_BLOCK].astype(np.int64)
        s = score_pairs(qm, qm_offsets, tokens, offsets, np.tile(block, (nq, 1)), parallel=parallel)
        best_s, best_r = merge(best_s, best_r, s, block, k)
    return finish(best_s, best_r, k)
