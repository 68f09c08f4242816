"""Binary encoders (numpy only): centring, an optional learned rotation, and 1..4 bit planes per dimension.

Encoding a vector ``x`` (``dim`` floats):

1. ``r = (x - mean) @ rotation``: centre on the sample mean (sentence embeddings share a large
   common direction; on arXiv/MiniLM the mean has norm 0.53, so uncentred signs waste bits), then
   rotate. The rotation is ITQ's (Gong & Lazebnik, "Iterative Quantization", CVPR'11): starting from a
   random orthogonal matrix, alternate ``B = sign(V R)`` and the orthogonal Procrustes solution
   ``R = argmin ||B - V R||``, which balances the variance over dimensions and shrinks the sign error.
2. Recurrent residual binarization (as in "Binary Embedding-based Retrieval at Tencent", KDD'23):
   plane ``b`` is ``sign(r_b)`` with ``r_0 = r`` and ``r_{b+1} = r_b - scale_b * sign(r_b)``; the scale
   of each plane is fitted on the sample (``mean |r_b|``, the least-squares scale of a sign vector).

The reconstruction is ``decode(code) = mean + (sum_b scale_b * plane_b) @ rotation.T``. Two codes are
compared *symmetrically* (the query is encoded the same way): the inner product of the two rotated,
centred reconstructions is ``sum_ab scale_a scale_b <plane_a, plane_b>``, computed from popcounts
(``vecdb.kernels.binary``), and the remaining terms of ``<decode(q), decode(x)>`` are a per-query
constant and a per-row term (``row_terms``).

An encoder persists as one ``.npz`` of plain arrays (no pickle, nothing in JSON).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import sys
from pathlib import Path

import numpy as np

from ..errors import InvalidParameterError

FORMAT_VERSION = 1
MAX_BITS = 4


def words_per_plane(dim: int) -> int:
    """``uint64`` words holding one bit plane of ``dim`` dimensions."""
    return (dim + 63) // 64


def pack_planes(signs: np.ndarray) -> np.ndarray:
    """Boolean ``(n, dim)`` (True = +1) -> ``(n, words)`` uint64, bit ``j`` in word ``j // 64``; padding clear."""
    n, dim = signs.shape
    words = words_per_plane(dim)
    packed = np.zeros((n, words * 8), dtype=np.uint8)
    packed[:, : (dim + 7) // 8] = np.packbits(signs, axis=1, bitorder="little")
    out = packed.view(np.uint64)
    return out if sys.byteorder == "little" else out.byteswap()


def unpack_planes(words: np.ndarray, dim: int) -> np.ndarray:
    """Inverse of ``pack_planes``: ``(n, words)`` uint64 -> boolean ``(n, dim)``."""
    w = np.ascontiguousarray(words, dtype=np.uint64)
    if sys.byteorder != "little":
        w = w.byteswap()
    return np.unpackbits(w.view(np.uint8), axis=1, count=dim, bitorder="little").astype(bool)


def itq_rotation(centred: np.ndarray, *, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """ITQ: the orthogonal ``R`` (``dim x dim``) that locally minimises ``||sign(V R) - V R||``."""
    dim = centred.shape[1]
    v = np.ascontiguousarray(centred, dtype=np.float32)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    rotation = rotation.astype(np.float32)
    for _ in range(iterations):
        b = np.where(v @ rotation >= 0, np.float32(1), np.float32(-1))
        u, _, wt = np.linalg.svd((v.T @ b).astype(np.float64))
        rotation = (u @ wt).astype(np.float32)
    return rotation


@dataclasses.dataclass(frozen=True, eq=False)
class BinaryEncoder:
    """A fitted encoder: ``mean`` (dim,), ``rotation`` (dim, dim) or None, ``scales`` (bits,) float64."""

    dim: int
    bits: int
    mean: np.ndarray
    rotation: np.ndarray | None
    scales: np.ndarray

    @functools.cached_property
    def words(self) -> int:
        return words_per_plane(self.dim)

    @functools.cached_property
    def code_words(self) -> int:
        """``uint64`` words per code: ``bits * words``."""
        return self.bits * self.words

    @property
    def code_bytes(self) -> int:
        return 8 * self.code_words

    @property
    def pair_weights(self) -> np.ndarray:
        """``scales[a] * scales[b]``: the weights that make the symmetric kernel a reconstruction inner product."""
        return np.ascontiguousarray(np.outer(self.scales, self.scales), dtype=np.float64)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, sample: np.ndarray, *, bits: int, rotation: bool = True, iterations: int = 20,
            seed: int = 0) -> "BinaryEncoder":
        """Fit the mean, the ITQ rotation (``rotation=True``) and one scale per bit plane on ``sample``."""
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
            raise InvalidParameterError(f"bits must be an integer in 1..{MAX_BITS}; got {bits!r}")
        x = np.ascontiguousarray(sample, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise InvalidParameterError(f"need a non-empty (n, dim) sample to fit an encoder; got shape {x.shape}")
        mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        centred = x - mean
        rot = itq_rotation(centred, iterations=iterations, rng=np.random.default_rng(seed)) if rotation else None
        r = centred @ rot if rot is not None else centred.copy()
        scales = np.empty(bits, dtype=np.float64)
        for b in range(bits):
            scales[b] = float(np.mean(np.abs(r), dtype=np.float64)) or 1.0
            r -= np.where(r >= 0, np.float32(scales[b]), np.float32(-scales[b]))
        return cls(int(x.shape[1]), int(bits), mean, rot, scales)

    # ------------------------------------------------------------------ coding
    def _rotate(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InvalidParameterError(f"expected vectors of shape (n, {self.dim}); got {x.shape}")
        centred = x - self.mean
        return centred @ self.rotation if self.rotation is not None else centred

    def encode(self, x: np.ndarray, *, block: int = 16384) -> np.ndarray:
        """``(n, dim)`` floats -> ``(n, bits * words)`` uint64 codes, plane after plane."""
        n = np.shape(x)[0]
        out = np.empty((n, self.code_words), dtype=np.uint64)
        w = self.words
        for start in range(0, n, block):
            r = np.array(self._rotate(x[start: start + block]), dtype=np.float32)
            for b in range(self.bits):
                plus = r >= 0
                out[start: start + len(r), b * w: (b + 1) * w] = pack_planes(plus)
                r -= np.where(plus, np.float32(self.scales[b]), np.float32(-self.scales[b]))
        return out

    def decode_rotated(self, codes: np.ndarray) -> np.ndarray:
        """``sum_b scale_b * plane_b`` (float64, rotated and centred space): what the kernels compare."""
        codes = check_codes(codes, self.code_words)
        out = np.zeros((codes.shape[0], self.dim), dtype=np.float64)
        w = self.words
        for b in range(self.bits):
            plus = unpack_planes(codes[:, b * w: (b + 1) * w], self.dim)
            out += np.where(plus, self.scales[b], -self.scales[b])
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The reconstructions: ``mean + decode_rotated(codes) @ rotation.T`` (float32)."""
        r = self.decode_rotated(codes).astype(np.float32)
        return (r @ self.rotation.T if self.rotation is not None else r) + self.mean

    def row_terms(self, codes: np.ndarray, metric: str, *, block: int = 8192) -> np.ndarray:
        """The per-row part of the reconstructions' similarity, besides the symmetric kernel's.

        ``ip``/``cosine``: ``<decode(q), decode(x)> = |mean|^2 + <m, c_q> + <m, c_x> + <c_q, c_x>`` with
        ``c = decode_rotated`` and ``m = mean @ rotation``: the row term is ``<m, c_x>``.
        ``l2``: ``-|decode(q) - decode(x)|^2 = 2 <c_q, c_x> - |c_x|^2 - |c_q|^2``: the row term is
        ``-|c_x|^2`` (and the kernel weights are doubled, see ``kernel_weights``).
        """
        m = (self.mean @ self.rotation if self.rotation is not None else self.mean).astype(np.float64)
        out = np.empty(codes.shape[0], dtype=np.float32)
        for start in range(0, codes.shape[0], block):
            c = self.decode_rotated(codes[start: start + block])
            out[start: start + len(c)] = -np.einsum("ij,ij->i", c, c) if metric == "l2" else c @ m
        return out

    def kernel_weights(self, metric: str) -> np.ndarray:
        """Plane-pair weights for the scan: ``pair_weights`` (doubled for l2, see ``row_terms``)."""
        return self.pair_weights * (2.0 if metric == "l2" else 1.0)

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """An ``.npz`` of plain arrays (loadable with ``allow_pickle=False``)."""
        buf = io.BytesIO()
        arrays = {"format_version": np.array(FORMAT_VERSION, dtype=np.int64),
                  "dim": np.array(self.dim, dtype=np.int64), "bits": np.array(self.bits, dtype=np.int64),
                  "mean": self.mean, "scales": self.scales}
        if self.rotation is not None:
            arrays["rotation"] = self.rotation
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def load(cls, path: Path) -> "BinaryEncoder":
        with np.load(path, allow_pickle=False) as z:
            version = int(z["format_version"])
            if version != FORMAT_VERSION:
                raise InvalidParameterError(f"encoder file {str(path)!r} has format version {version}; "
                                            f"this vecdb reads version {FORMAT_VERSION}")
            rotation = np.ascontiguousarray(z["rotation"], dtype=np.float32) if "rotation" in z.files else None
            return cls(int(z["dim"]), int(z["bits"]), np.ascontiguousarray(z["mean"], dtype=np.float32),
                       rotation, np.ascontiguousarray(z["scales"], dtype=np.float64))

    @property
    def nbytes(self) -> int:
        """Memory held by the encoder itself (mean, rotation, scales)."""
        return self.mean.nbytes + self.scales.nbytes + (self.rotation.nbytes if self.rotation is not None else 0)


def check_codes(codes: np.ndarray, code_words: int | None = None) -> np.ndarray:
    """Codes must already be 2-D ``uint64`` (no guessing for binary data): raise ``TypeError`` otherwise."""
    if not isinstance(codes, np.ndarray) or codes.dtype != np.uint64:
        raise TypeError(f"binary codes must be a numpy uint64 array; got "
                        f"{getattr(codes, 'dtype', type(codes).__name__)}")
    if codes.ndim != 2 or (code_words is not None and codes.shape[1] != code_words):
        want = f"(n, {code_words})" if code_words is not None else "(n, words)"
        raise InvalidParameterError(f"binary codes must have shape {want}; got {codes.shape}")
    return codes


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row numbers of a seeded sample of ``min(n, size)`` rows (all rows when ``n <= size``)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


__all__ = ["BinaryEncoder", "check_codes", "itq_rotation", "pack_planes", "sample_rows", "unpack_planes",
           "words_per_plane"]
