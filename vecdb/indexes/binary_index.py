"""Binary-code index: scan packed multi-bit codes (filtered or not), rerank the best with the float vectors.

``coll.build_index("binary", bits=2, rotation=True)`` fits an encoder (``vecdb.binary.encoders``: centring,
ITQ rotation, ``bits`` residual sign planes) on a sample, encodes every row, and keeps the codes
(``bits * dim / 8`` bytes a row) beside a reference to the collection's float32 vectors (no copy; the
same ones the flat index uses). A search encodes the queries the same way, scans all codes (or only the
rows the ``allow`` mask lets through) with the fused numba kernel, keeping the ``candidates`` best per
query by the inner product of the reconstructions, and reranks those exactly. When the mask lets through
no more rows than would be reranked, the scan is skipped and those rows are scored exactly.

Ranking in the scan: ``bits=1`` ranks by Hamming distance of the centred, rotated signs; ``bits>=2`` by
the full reconstructions' similarity (inner product for ``ip``/``cosine``, negative squared distance
for ``l2``), which adds a per-row term computed from the codes (4 bytes a row in memory, recomputed on
load, not stored). On arXiv/MiniLM that term lifts recall at a fixed candidate count a lot for 2+ bits
and hurts at 1 bit, whose reconstructions have a fixed norm (measured with ``tools/binary_report.py``).

On disk: ``<stem>.codes.npy`` (uint64, memory-mapped read-only on load) and ``<stem>.encoder.npz``
(mean, rotation, scales; plain arrays, no pickle). The manifest holds only the build options.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import binary
from ..binary.encoders import BinaryEncoder, sample_rows
from ..errors import CorruptCollectionError, InvalidParameterError
from ..storage.files import write_bytes_durable, write_npy
from .base import Hits, check_metric, pop_params, register
from .device import resolve_device
from ..topk import finish
from .flat import exact_search

# Candidates reranked per query (for k <= 10) when the build does not say: the smallest round numbers
# that reached tie-aware recall@10 >= 0.97 on arXiv/MiniLM (384 dims, 1000 queries) both unfiltered and
# in every filter band, with ITQ (tools/binary_report.py; 1 bit: 0.976 at 500, 2: 0.987 at 200,
# 3: 0.995 at 100, 4: 0.993 at 50).
DEFAULT_CANDIDATES = {1: 500, 2: 200, 3: 100, 4: 50}
FIT_SAMPLE = 16384     # rows the encoder is fitted on
ITQ_ITERATIONS = 20
# The planner's cost of one filtered query (``cost``), in floats an exact scan reads: the code scan reads
# ``bits * dim / 8`` bytes a passing row but measured about twice that in time (SCAN_COST), plus a fixed part
# (query encoding, the mask, the rerank's scattered reads, the calls) of about RERANK_COST rows of the rerank.
# Measured on arXiv (72,000 x 384, 2 bits, 200 candidates, one query a call, a new filter each): binary
# 282 / 419 / 545 / 775 / 902 / 1,237 us at 300 / 1,000 / 2,000 / 4,000 / 8,000 / 16,000 passing rows,
# exact 68 / 178 / 337 / 630 / 1,194 / 2,508 us: they cross at ~6,000 rows, where this model puts them.
SCAN_COST = 2.0
RERANK_COST = 15.0


@register
class BinaryIndex:
    """Packed binary codes + exact rerank.

    Build options: ``bits`` (1..4 planes a dimension; default 2), ``rotation`` (ITQ, default True),
    ``candidates`` (rows reranked per query at k <= 10, scaled by k / 10 above; default per ``bits``,
    see ``DEFAULT_CANDIDATES``), ``seed`` (fit sample and rotation). Search option: ``candidates``.
    """

    kind: ClassVar[str] = "binary"
    filters_inside: ClassVar[bool] = True
    walks_graph: ClassVar[bool] = False
    exact: ClassVar[bool] = False
    search_options: ClassVar[dict[str, type]] = {"candidates": int}

    def __init__(self, dim: int, metric: str, *, bits: int = 2, rotation: bool = True,
                 candidates: int | None = None, seed: int = 1234, device: str = "cpu"):
        pop_params({"bits": bits, "seed": seed} | ({} if candidates is None else {"candidates": candidates}),
                   {"bits": int, "seed": int, "candidates": int}, "the binary index")
        if not 1 <= bits <= 4:
            raise InvalidParameterError(f"option bits={bits!r} for the binary index must be 1, 2, 3 or 4")
        if not isinstance(rotation, (bool, np.bool_)):
            raise InvalidParameterError(f"option rotation={rotation!r} for the binary index must be True or False")
        self.dim, self.metric = dim, check_metric(metric)
        self.bits, self.rotation, self.seed = int(bits), bool(rotation), int(seed)
        self.candidates = int(candidates) if candidates is not None else DEFAULT_CANDIDATES[self.bits]
        self.device = resolve_device(device, supported_on_gpu=False)
        self.encoder: BinaryEncoder | None = None
        self._codes = np.empty((0, self.bits * ((dim + 63) // 64)), dtype=np.uint64)
        self._row_term: np.ndarray | None = None
        self._vectors = np.empty((0, dim), dtype=np.float32)

    # ------------------------------------------------------------------ sizes
    @property
    def ntotal(self) -> int:
        return self._codes.shape[0]

    @property
    def codes(self) -> np.ndarray:
        """The ``(ntotal, bits * words)`` uint64 codes (read-only memory map after ``load``)."""
        return self._codes

    def memory_bytes(self) -> dict[str, int]:
        """What the scan reads (codes, row term) and the encoder; the float vectors are the collection's."""
        return {"codes": int(self._codes.nbytes),
                "row_term": 0 if self._row_term is None else int(self._row_term.nbytes),
                "encoder": 0 if self.encoder is None else self.encoder.nbytes}

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "rotation": self.rotation, "candidates": self.candidates, "seed": self.seed}

    # ------------------------------------------------------------------ building
    def build(self, vectors: np.ndarray) -> None:
        """Fit the encoder on a seeded sample of ``vectors``, encode every row, keep ``vectors`` for the rerank."""
        if vectors.shape[0] == 0:
            raise InvalidParameterError("cannot build a binary index over an empty collection")
        sample = vectors[sample_rows(vectors.shape[0], FIT_SAMPLE, self.seed)]
        self.encoder = BinaryEncoder.fit(sample, bits=self.bits, rotation=self.rotation,
                                         iterations=ITQ_ITERATIONS, seed=self.seed)
        self._codes = self.encoder.encode(vectors)
        self._row_term = self._row_terms(self._codes)
        self._vectors = vectors

    def add(self, vectors: np.ndarray) -> None:
        """Encode and append rows with the fitted encoder (fitting one first if there is none)."""
        if self.encoder is None:
            self.build(vectors)
            return
        codes = self.encoder.encode(vectors)
        self._codes = np.concatenate([self._codes, codes])
        if self._row_term is not None:
            self._row_term = np.concatenate([self._row_term, self._row_terms(codes)])
        self._vectors = np.concatenate([self._vectors, vectors])

    def _row_terms(self, codes: np.ndarray) -> np.ndarray | None:
        # 1 bit: plain Hamming (a reconstruction of fixed norm makes the row term hurt; for l2 it is constant)
        return None if self.bits == 1 else self.encoder.row_terms(codes, self.metric)

    # ------------------------------------------------------------------ searching
    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **params: Any) -> Hits:
        p = pop_params(params, self.search_options, "binary search")
        nq, n = queries.shape[0], self.ntotal
        if n == 0 or nq == 0:
            return Hits.empty(nq, k)
        if allow is not None and allow.shape[0] != n:
            raise InvalidParameterError(f"allow mask covers {allow.shape[0]} rows; the index holds {n}")
        c = min(n, self.candidates_for(k, p.get("candidates")))
        if allow is not None and np.count_nonzero(allow) <= c:
            # every passing row would be reranked: skip the scan, the answer is the exact one
            return exact_search(self._vectors, queries, k, self.metric, allow=allow)
        _, rows = self.scan(queries, c, allow=allow)
        return self.rerank(queries, rows, k)

    def cost(self, matches: int, k: int, params: dict[str, Any]) -> float:
        """See ``indexes.base.CostedIndex`` and ``SCAN_COST``."""
        c = self.candidates_for(k, params.get("candidates"))
        if matches <= c:
            return matches * self.dim  # every passing row is reranked: the exact scan
        return SCAN_COST * matches * self.dim * self.bits / 8 + RERANK_COST * c * self.dim

    def candidates_for(self, k: int, candidates: int | None = None) -> int:
        """Rows reranked for ``k``: ``candidates`` as given (at least k), else the index's own, scaled by k / 10."""
        if candidates is not None:
            return max(k, candidates)
        return max(k, self.candidates if k <= 10 else math.ceil(self.candidates * k / 10))

    def scan(self, queries: np.ndarray, c: int, *, allow: np.ndarray | None = None,
             threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``c`` best rows per query by code similarity alone: ``(scores, rows)``, padded ``-inf``/``-1``."""
        enc = self.encoder
        return binary.scan(enc.encode(queries), self._codes, bits=enc.bits, dim=enc.dim,
                           weights=enc.kernel_weights(self.metric), c=c, row_term=self._row_term, allow=allow,
                           threads=threads)

    def rerank(self, queries: np.ndarray, rows: np.ndarray, k: int) -> Hits:
        """Exact scores of the candidate ``rows`` (``-1`` = none) and the ``k`` best per query: one numba
        call reading each candidate's float row in place (a numpy gather, batched product and sort cost
        ~160 us for 200 candidates; this ~40 us)."""
        from ..kernels.exact import rescore_rows  # numba loads on first use

        scores, best = rescore_rows(self._vectors, np.ascontiguousarray(rows, dtype=np.int64),
                                    np.ascontiguousarray(queries, dtype=np.float32), self.metric == "l2")
        if scores.shape[1] < k:
            return finish(scores, best, k)
        return Hits(np.ascontiguousarray(scores[:, :k]), np.ascontiguousarray(best[:, :k]))

    # ------------------------------------------------------------------ files
    def save(self, path: Path) -> list[Path]:
        codes_path = path.with_name(path.name + ".codes.npy")
        encoder_path = path.with_name(path.name + ".encoder.npz")
        write_npy(codes_path, self._codes)
        try:
            write_bytes_durable(encoder_path, self.encoder.to_bytes())
        except BaseException:
            codes_path.unlink(missing_ok=True)
            raise
        return [codes_path, encoder_path]

    @classmethod
    def load(cls, paths: list[Path], dim: int, metric: str, config: dict[str, Any],
             vectors: np.ndarray) -> "BinaryIndex":
        index = cls(dim, metric, **config)
        by_suffix = {"".join(p.suffixes[-2:]): p for p in paths}
        try:
            codes_path, encoder_path = by_suffix[".codes.npy"], by_suffix[".encoder.npz"]
        except KeyError:
            raise CorruptCollectionError(f"binary index files missing: got {[p.name for p in paths]}") from None
        index.encoder = BinaryEncoder.load(encoder_path)
        index._codes = np.load(codes_path, mmap_mode="r", allow_pickle=False)
        if index._codes.dtype != np.uint64 or index._codes.shape != (vectors.shape[0], index.encoder.code_words):
            raise CorruptCollectionError(
                f"{str(codes_path)!r} holds {index._codes.dtype} codes of shape {index._codes.shape}; expected "
                f"uint64 ({vectors.shape[0]}, {index.encoder.code_words})")
        index._row_term = index._row_terms(index._codes)
        index._vectors = vectors
        return index


def size_ratio(dim: int, bits: int) -> float:
    """How many times smaller a code is than the float32 vector: ``32 * dim / (bits * 64 * ceil(dim / 64))``."""
    return 32 * dim / (bits * 64 * math.ceil(dim / 64))
