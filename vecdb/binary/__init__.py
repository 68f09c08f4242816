"""Binary codes: encoders (``encoders.py``) and checked entry points to the packed-bit kernels.

The kernels themselves live in ``vecdb.kernels.binary`` (imported on first use, so registering the
``binary`` index kind compiles nothing). The functions here check dtypes (a code matrix that is not
``uint64`` raises ``TypeError``; nothing is guessed), copy the small arguments the kernels want
writable, and spread the fused scan over the process's threads (``parallel.run_all``; the kernel releases
the GIL).
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

from ..errors import InvalidParameterError
from ..parallel import run_all
from .encoders import BinaryEncoder, check_codes, pack_planes, unpack_planes, words_per_plane

# Below this many (query, row) visits a scan runs on the calling thread: waking workers costs more.
SERIAL_MAX_VISITS = 1 << 20


def _kernels() -> ModuleType:
    from ..kernels import binary

    return binary


def default_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _writable(a: np.ndarray, dtype: type) -> np.ndarray:
    """C-contiguous, writable, of ``dtype``: the kernels' signatures for their small arguments."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.writeable else a.copy()


def _codes_arg(codes: np.ndarray) -> np.ndarray:
    """A code matrix as the kernels take it: C-contiguous (read-only memory maps are fine as they are)."""
    return codes if codes.flags.c_contiguous else np.ascontiguousarray(codes)


def pack_mask(allow: np.ndarray) -> np.ndarray:
    """A boolean row mask as the scan's bitmap: ``uint64`` words, bit ``i % 64`` of word ``i // 64``."""
    mask = np.asarray(allow, dtype=bool).reshape(1, -1)
    return pack_planes(mask)[0] if mask.shape[1] else np.zeros(0, dtype=np.uint64)


def _one_code(query: np.ndarray, code_words: int) -> np.ndarray:
    """One code (``code_words`` uint64, 1-D or a single row) as a writable 1-D array."""
    if not isinstance(query, np.ndarray):
        raise TypeError(f"a binary code must be a numpy uint64 array; got {type(query).__name__}")
    return _writable(check_codes(query.reshape(1, -1), code_words)[0], np.uint64)


def hamming(query: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hamming distances (int32) between one code (``words`` uint64) and every row of ``codes``."""
    codes = _codes_arg(check_codes(codes))
    return _kernels().hamming_one_to_many(_one_code(query, codes.shape[1]), codes)


def symmetric_ip(query: np.ndarray, codes: np.ndarray, encoder: BinaryEncoder) -> np.ndarray:
    """``<c_q, c_x>`` (float64) for one code and every row: the inner product of the rotated reconstructions."""
    codes = _codes_arg(check_codes(codes, encoder.code_words))
    return _kernels().symmetric_ip_one_to_many(_one_code(query, encoder.code_words), codes, encoder.bits,
                                               encoder.dim, encoder.pair_weights)


def scan(queries: np.ndarray, codes: np.ndarray, *, bits: int, dim: int, weights: np.ndarray, c: int,
         row_term: np.ndarray | None = None, allow: np.ndarray | None = None,
         threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The best ``c`` rows per query: ``(scores float64, rows int64)``, best first, padded ``-inf``/``-1``.

    Score = ``sum_ab weights[a, b] * <q_a, x_b>`` (+ ``row_term[row]``) over the rows ``allow`` (a
    boolean mask over rows) lets through; ties go to the smaller row. ``threads`` (default: every CPU)
    splits the queries, or, for fewer queries than threads, blocks of rows whose heaps are merged.
    """
    codes = _codes_arg(check_codes(codes))
    q = _writable(check_codes(queries, codes.shape[1]), np.uint64)
    n = codes.shape[0]
    if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c <= 0:
        raise InvalidParameterError(f"c={c!r} must be a positive integer")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits <= 0:
        raise InvalidParameterError(f"bits={bits!r} must be a positive integer")
    if codes.shape[1] % bits or codes.shape[1] // bits != words_per_plane(dim):
        raise InvalidParameterError(f"codes of {codes.shape[1]} words do not hold {bits} planes of {dim} dims")
    w = _writable(weights, np.float64)
    if w.shape != (bits, bits):
        raise InvalidParameterError(f"weights must have shape ({bits}, {bits}); got {w.shape}")
    term = np.zeros(0, np.float32) if row_term is None else _writable(row_term, np.float32)
    if term.shape[0] not in (0, n):
        raise InvalidParameterError(f"row_term has {term.shape[0]} entries for {n} rows")
    if allow is None:
        bitmap, visits = np.zeros(0, np.uint64), n
    else:
        allow = np.asarray(allow, dtype=bool)
        if allow.shape != (n,):
            raise InvalidParameterError(f"allow mask has shape {allow.shape}; expected ({n},)")
        bitmap, visits = pack_mask(allow), int(np.count_nonzero(allow))
        if visits == 0:  # nothing passes: padding only
            return np.full((q.shape[0], c), -np.inf), np.full((q.shape[0], c), -1, np.int64)
    kernel = _kernels().scan_topc
    nq = q.shape[0]
    threads = default_threads() if threads is None else max(1, int(threads))
    if threads == 1 or nq * visits <= SERIAL_MAX_VISITS or nq == 0:
        return kernel(q, codes, bits, dim, w, term, bitmap, 0, n, c)
    if nq >= threads:
        bounds = np.linspace(0, nq, threads + 1).astype(int)
        spans = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        parts = run_all(lambda span: kernel(q[span[0]:span[1]], codes, bits, dim, w, term, bitmap, 0, n, c),
                        spans, threads)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    blocks = min(threads, max(1, n // 4096))
    per_block = -(-n // blocks)
    step = -(-per_block // 64) * 64  # a multiple of 64 rows: blocks own whole bitmap words
    parts = run_all(lambda lo: kernel(q, codes, bits, dim, w, term, bitmap, lo, min(n, lo + step), c),
                    list(range(0, n, step)), threads)
    return merge_topc(np.concatenate([p[0] for p in parts], axis=1),
                      np.concatenate([p[1] for p in parts], axis=1), c)


def merge_topc(scores: np.ndarray, rows: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``c`` best of each row of ``(scores, rows)`` by (score desc, row asc); padding (-1) last."""
    key = np.where(rows < 0, np.iinfo(np.int64).max, rows)
    order = np.lexsort((key, -scores), axis=1)[:, :c]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


__all__ = ["BinaryEncoder", "check_codes", "default_threads", "hamming", "merge_topc", "pack_mask",
           "pack_planes", "scan", "symmetric_ip", "unpack_planes", "words_per_plane"]
