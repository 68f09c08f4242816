"""Row masks made in one nogil pass: a span of ranks as a bool mask (attribute indexes), and a bool
mask or a span of ranks packed into bits (the stacked masks of a batch's filtered graph walks)."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(inline="always")
def _width(start, stop):
    """``stop - start`` as the unsigned bound ``_inside`` compares with (0 for an empty span)."""
    return np.uint64(stop - start) if stop > start else np.uint64(0)


@nb.njit(inline="always")
def _inside(rank, start, width):
    """``start <= rank < start + width`` in one comparison: a rank below ``start`` (NULL's -1 among
    them) wraps to a huge unsigned number."""
    return np.uint64(np.int64(rank) - start) < width


@nb.njit(nogil=True, cache=True)
def rank_mask(rank: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``(rank >= start) & (rank < stop)`` in one pass (numpy's two comparisons and an AND read and
    write the arrays three times: ~5x slower at 1M rows). A NULL row's rank is -1: never inside."""
    out = np.empty(rank.shape[0], np.bool_)
    width = _width(start, stop)
    for i in range(rank.shape[0]):
        out[i] = _inside(rank[i], start, width)
    return out


@nb.njit(nogil=True, cache=True)
def pack_bits(mask: np.ndarray, n: int, out: np.ndarray) -> None:
    """``out[:] = np.packbits(mask[:n], bitorder="little")`` (``out``: ``ceil(n / 8)`` bytes), without the
    GIL so a batch packs its filters' masks on threads."""
    full = n >> 3
    for b in range(full):
        i = b << 3
        out[b] = (mask[i] | (mask[i + 1] << 1) | (mask[i + 2] << 2) | (mask[i + 3] << 3) | (mask[i + 4] << 4)
                  | (mask[i + 5] << 5) | (mask[i + 6] << 6) | (mask[i + 7] << 7))
    if n & 7:
        last = 0
        for i in range(full << 3, n):
            last |= mask[i] << (i & 7)
        out[full] = last


@nb.njit(nogil=True, cache=True)
def rank_bits(rank: np.ndarray, start: int, stop: int, n: int, out: np.ndarray) -> None:
    """``pack_bits(rank_mask(rank, start, stop), n, out)`` in one pass, without the bool mask."""
    width = _width(start, stop)
    full = n >> 3
    for b in range(full):
        byte = np.uint8(0)
        for j in range(8):
            byte |= np.uint8(_inside(rank[(b << 3) + j], start, width)) << j
        out[b] = byte
    if n & 7:
        byte = np.uint8(0)
        for i in range(full << 3, n):
            byte |= np.uint8(_inside(rank[i], start, width)) << (i & 7)
        out[full] = byte


@nb.njit(nogil=True, cache=True)
def rows_in_span(rows: np.ndarray, rank: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``rows[(rank[rows] >= start) & (rank[rows] < stop)]`` in one pass, order kept (an AND testing the
    rows of its narrow operands against a wide range, without listing the range)."""
    out = np.empty(rows.shape[0], rows.dtype)
    width = _width(start, stop)
    m = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        if _inside(rank[r], start, width):
            out[m] = r
            m += 1
    return out[:m]


@nb.njit(nogil=True, cache=True)
def distinct_rows(rows: np.ndarray) -> np.ndarray:
    """``np.unique(rows)``: sorted, each row once, in one call (numpy's sort, comparison of neighbours
    and take cost ~3 us for the few rows an OR of small operands lists; this ~0.6 us)."""
    out = np.sort(rows)
    m = 0
    for i in range(out.shape[0]):
        if m == 0 or out[i] != out[m - 1]:
            out[m] = out[i]
            m += 1
    return out[:m]
