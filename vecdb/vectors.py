"""Turning user input into the float32 matrices the engines want, refusing what cannot be searched."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import DimensionError, DuplicateIdError, InvalidParameterError, InvalidVectorError


def as_matrix(data: Any, dim: int, *, what: str = "vectors", unit: bool = False) -> np.ndarray:
    """A C-contiguous float32 ``(n, dim)`` matrix; a 1-D input is one vector.

    ``unit=True`` also scales every row to length 1 (cosine) and refuses zero rows, from the same sums
    of squares that check for NaN and infinity (one pass over the data, which matters for one query).
    """
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise InvalidVectorError(f"{what} cannot be read as a matrix: {exc}") from exc
    if array.dtype.kind not in "fiu":
        raise InvalidVectorError(f"{what} must be numeric; got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise InvalidVectorError(f"{what} must be 1-D or 2-D; got shape {array.shape}")
    if array.shape[1] != dim:
        raise DimensionError(f"expected dim {dim}, got {array.shape[1]} ({what} of shape {array.shape})")
    array = np.ascontiguousarray(array, dtype=np.float32)
    squares = np.vecdot(array, array)  # NaN or infinity anywhere in a row makes its sum of squares so
    if array.shape[0] == 1:  # one query, the usual case: a Python float beats three more ufunc calls
        s = float(squares[0])
        if unit and 0.0 < s < math.inf:
            return array / np.float32(math.sqrt(s))  # = np.sqrt in float32 (sqrt rounds once either way)
        if not unit and math.isfinite(s):
            return array
    if not np.isfinite(squares).all():
        finite = np.isfinite(array).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise InvalidVectorError(
                f"{what} contain NaN or infinity in row(s) {bad[:10].tolist()}{' ...' if len(bad) > 10 else ''}")
        if unit:  # finite, but the squares overflow float32: scale in float64
            return np.ascontiguousarray(array / np.linalg.norm(array.astype(np.float64), axis=1, keepdims=True),
                                        dtype=np.float32)
    if unit:
        if not squares.all():
            bad = np.flatnonzero(squares == 0)
            raise InvalidVectorError(f"{what} in row(s) {bad[:10].tolist()} have zero length; cosine is undefined")
        array = array / np.sqrt(squares)[:, None]
    return array


def normalize(array: np.ndarray, *, what: str = "vectors") -> np.ndarray:
    """Unit-length rows for cosine; a zero vector has no direction and is refused."""
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms == 0).any():
        bad = np.flatnonzero(norms[:, 0] == 0)
        raise InvalidVectorError(f"{what} in row(s) {bad[:10].tolist()} have zero length; cosine is undefined")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def as_ids(data: Any, n: int) -> np.ndarray:
    """int64 ids, one per vector, unique within the call."""
    ids = np.asarray(data)
    if ids.ndim == 0:
        ids = ids[None]
    if ids.dtype.kind not in "iu" and not (ids.size == 0):
        raise InvalidParameterError(f"ids must be integers; got dtype {ids.dtype}")
    if ids.ndim != 1 or ids.shape[0] != n:
        raise InvalidParameterError(f"expected {n} ids, got an array of shape {ids.shape}")
    if ids.dtype.kind == "u" and ids.size and ids.max() > np.iinfo(np.int64).max:
        raise InvalidParameterError("ids must fit in int64")
    ids = ids.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise InvalidParameterError(f"ids must be non-negative; got {int(ids.min())}")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DuplicateIdError(f"ids repeated within the call: {uniq[counts > 1][:10].tolist()}")
    return ids


def as_string_ids(data: Any, n: int | None = None) -> np.ndarray:
    """String ids as a numpy unicode array (one per row when ``n`` is given, unique within the call)."""
    if isinstance(data, str):
        data = [data]
    values = data.to_pylist() if isinstance(data, (pa.Array, pa.ChunkedArray)) else \
        list(np.atleast_1d(np.asarray(data, dtype=object)))
    bad = [v for v in values if not isinstance(v, str) or not v]
    if bad:
        raise InvalidParameterError(f"ids of this collection are non-empty strings; got {bad[:5]!r}")
    ids = np.array(values, dtype=str) if values else np.empty(0, dtype="<U1")
    if n is not None:
        if ids.shape[0] != n:
            raise InvalidParameterError(f"expected {n} ids, got {ids.shape[0]}")
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise DuplicateIdError(f"ids repeated within the call: {uniq[counts > 1][:10].tolist()}")
    return ids


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise InvalidParameterError(f"k must be a positive integer; got {k!r}")
    return int(k)
