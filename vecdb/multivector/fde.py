"""MUVERA fixed-dimensional encodings (Dhulipala et al., "MUVERA: Multi-Vector Retrieval via Fixed
Dimensional Encodings", NeurIPS 2024): one vector per set of vectors whose inner product approximates
Chamfer similarity, so any single-vector index can retrieve candidates for an exact rerank.

Per repetition (``r_reps`` of them, independent randomness):

1. SimHash: ``k_sim`` Gaussian hyperplanes cut the space into ``2 ** k_sim`` buckets; a vector's bucket
   is the bit pattern of the signs of its products with the hyperplanes.
2. Inner projection: each vector is projected to ``d_proj`` dims by a random +-1/sqrt(d_proj) matrix
   (``d_proj == dim``: no projection, the identity of the paper's reference implementation).
3. Aggregation: a query block holds the *sum* of its projected vectors in each bucket; a document block
   the *average*, and an empty document bucket takes the projected vector whose SimHash code is nearest
   in Hamming distance ("fill empty partitions").

The blocks are concatenated (``r_reps * 2 ** k_sim * d_proj`` dims) and optionally compressed by a final
Count Sketch to ``d_final`` dims. Everything is drawn from ``seed``, so the same config always gives the
same encoder; the config is what the collection stores in its manifest.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..kernels.multivector import count_sketch, fde_aggregate, fde_aggregate_serial

# Defaults measured on ../shared/data/arxiv-tokens (python -m benchmarks multivector): 3 x 4 buckets x 128 dims =
# 1,536 FDE dims reached recall@10 0.95 at 100 candidates and 0.97 at 150; more repetitions, more buckets
# or inner projections (the paper's 20 x 8 x 16, 2,560 dims: 0.94 / 0.96) cost more for no more recall.
DEFAULT_D_PROJ = 128
BATCH_TOKENS = 32768  # tokens encoded per BLAS product (bounds the scratch memory of one batch)
PARALLEL_MIN_ITEMS = 16  # fewer items are aggregated on the calling thread


@dataclasses.dataclass(frozen=True)
class FDEConfig:
    """Encoder parameters; ``fde_dim`` is the length of the vectors it makes."""

    dim: int
    r_reps: int = 3
    k_sim: int = 2
    d_proj: int | None = None  # None: min(DEFAULT_D_PROJ, dim)
    d_final: int | None = None
    seed: int = 0
    fill_empty: bool = True

    def __post_init__(self) -> None:
        if self.d_proj is None and isinstance(self.dim, (int, np.integer)):
            object.__setattr__(self, "d_proj", min(DEFAULT_D_PROJ, int(self.dim)))
        for name, low, high in (("dim", 1, None), ("r_reps", 1, None), ("k_sim", 0, 16), ("d_proj", 1, self.dim)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (
                    high is not None and value > high):
                bound = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
                raise InvalidParameterError(f"FDE option {name}={value!r} must be {bound}")
        final = self.d_final
        if final is not None and (isinstance(final, bool) or not isinstance(final, (int, np.integer)) or final <= 0):
            raise InvalidParameterError(f"FDE option d_final={self.d_final!r} must be a positive integer or None")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InvalidParameterError(f"FDE option seed={self.seed!r} must be a non-negative integer")

    @property
    def raw_dim(self) -> int:
        """Dimension before the final projection: ``r_reps * 2 ** k_sim * d_proj``."""
        return self.r_reps * (1 << self.k_sim) * self.d_proj

    @property
    def fde_dim(self) -> int:
        return self.d_final if self.d_final is not None else self.raw_dim

    def to_json(self) -> dict[str, Any]:
        return {k: int(v) if isinstance(v, np.integer) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FDEConfig":
        return cls(**data)


class FDEEncoder:
    """Turns sets of vectors (tokens + offsets) into FDE rows; documents and queries differ (see module)."""

    def __init__(self, config: FDEConfig):
        self.config = c = config
        rng = np.random.default_rng(c.seed)
        # Hyperplanes of every repetition side by side: column rep * k_sim + bit.
        self._planes = np.ascontiguousarray(rng.standard_normal((c.dim, c.r_reps * c.k_sim)), dtype=np.float32)
        self._bit_weights = (1 << np.arange(c.k_sim, dtype=np.int32)).astype(np.int32)
        if c.d_proj < c.dim:
            signs = rng.integers(0, 2, size=(c.dim, c.r_reps * c.d_proj)) * 2 - 1
            self._proj: np.ndarray | None = (signs / np.sqrt(c.d_proj)).astype(np.float32)
        else:
            self._proj = None
        if c.d_final is not None:
            self._cs_index = rng.integers(0, c.d_final, size=c.raw_dim).astype(np.int64)
            self._cs_sign = (rng.integers(0, 2, size=c.raw_dim) * 2 - 1).astype(np.float32)

    @property
    def dim(self) -> int:
        return self.config.fde_dim

    def encode_documents(self, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``(n_docs, fde_dim)`` float32; bucket averages, empty buckets filled."""
        return self._encode(tokens, offsets, document=True)

    def encode_queries(self, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``(n_queries, fde_dim)`` float32; bucket sums, empty buckets left at zero."""
        return self._encode(tokens, offsets, document=False)

    def _encode(self, tokens: np.ndarray, offsets: np.ndarray, *, document: bool) -> np.ndarray:
        c = self.config
        offsets = np.asarray(offsets, dtype=np.int64)
        n_items = offsets.shape[0] - 1
        raw = np.empty((n_items, c.raw_dim), dtype=np.float32)
        start = 0
        while start < n_items:  # batches of whole items, about BATCH_TOKENS tokens each
            stop = int(np.searchsorted(offsets, offsets[start] + BATCH_TOKENS, side="right")) - 1
            stop = min(n_items, max(stop, start + 1))
            lo, hi = int(offsets[start]), int(offsets[stop])
            x = np.ascontiguousarray(tokens[lo:hi], dtype=np.float32)
            codes = self._codes(x)
            proj = (x @ self._proj).reshape(hi - lo, c.r_reps, c.d_proj) if self._proj is not None else x[:, None, :]
            kernel = fde_aggregate if stop - start >= PARALLEL_MIN_ITEMS else fde_aggregate_serial
            kernel(codes, np.ascontiguousarray(proj), offsets[start: stop + 1] - lo, 1 << c.k_sim,
                          document, document and c.fill_empty, raw[start:stop])
            start = stop
        if c.d_final is None:
            return raw
        out = np.empty((n_items, c.d_final), dtype=np.float32)
        count_sketch(raw, self._cs_index, self._cs_sign, out)
        return out

    def _codes(self, x: np.ndarray) -> np.ndarray:
        """SimHash bucket of every token per repetition, ``(n_tokens, r_reps)`` int32."""
        c = self.config
        if c.k_sim == 0:
            return np.zeros((x.shape[0], c.r_reps), dtype=np.int32)
        bits = (x @ self._planes > 0).reshape(x.shape[0], c.r_reps, c.k_sim).astype(np.int32)
        return np.ascontiguousarray(bits @ self._bit_weights, dtype=np.int32)
