"""HNSW on hnswlib.

hnswlib can filter only through a Python callable invoked per candidate, which vecdb never puts on a
hot path; so this index reports ``filters_inside = False`` and the planner post-filters its results
(over-fetch, then refill, then exact fallback). Unfiltered it is a strong, compact graph index.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any, ClassVar

import hnswlib
import numpy as np

from ..errors import StorageError
from ..storage.files import describe_file, storage_error
from .base import Hits, check_metric, pop_params, register


@register
class HnswlibIndex:
    kind: ClassVar[str] = "hnswlib"
    filters_inside: ClassVar[bool] = False
    walks_graph: ClassVar[bool] = True
    search_options: ClassVar[dict[str, type]] = {"ef": int}
    exact: ClassVar[bool] = False

    def __init__(self, dim: int, metric: str, *, M: int = 32, ef_construction: int = 200,
                 ef_search: int = 128, seed: int = 100, device: str = "cpu"):
        pop_params({"M": M, "ef_construction": ef_construction, "ef_search": ef_search, "seed": seed},
                   {"M": int, "ef_construction": int, "ef_search": int, "seed": int}, "the hnswlib index")
        self.dim, self.metric = dim, check_metric(metric)
        self.M, self.ef_construction, self.ef_search, self.seed = int(M), int(ef_construction), int(ef_search), int(seed)
        self.device = "cpu"
        # Cosine vectors arrive normalised from the collection, so inner product is cosine.
        self.index = hnswlib.Index(space="l2" if metric == "l2" else "ip", dim=dim)
        self._initialised = False

    @property
    def ntotal(self) -> int:
        return self.index.get_current_count() if self._initialised else 0

    def config(self) -> dict[str, Any]:
        return {"M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search, "seed": self.seed}

    def build(self, vectors: np.ndarray) -> None:
        self.add(vectors)

    def add(self, vectors: np.ndarray) -> None:
        n0, n = self.ntotal, vectors.shape[0]
        if not self._initialised:
            self.index.init_index(max_elements=max(n, 1), ef_construction=self.ef_construction,
                                  M=self.M, random_seed=self.seed)
            self._initialised = True
        elif n0 + n > self.index.get_max_elements():
            self.index.resize_index(max(n0 + n, 2 * self.index.get_max_elements()))
        if n:
            self.index.add_items(np.ascontiguousarray(vectors, dtype=np.float32), np.arange(n0, n0 + n))

    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None, **params: Any) -> Hits:
        p = pop_params(params, self.search_options, "hnswlib search")
        if allow is not None:
            raise NotImplementedError("hnswlib takes no row mask without a Python callback; post-filter instead")
        nq, n = queries.shape[0], self.ntotal
        kk = min(k, n)
        if kk == 0:
            return Hits.empty(nq, k)
        self.index.set_ef(max(p.get("ef", self.ef_search), kk))
        labels, dist = self.index.knn_query(queries, k=kk)
        scores = -dist if self.metric == "l2" else 1.0 - dist
        hits = Hits.empty(nq, k)
        hits.scores[:, :kk] = scores
        hits.rows[:, :kk] = labels
        return hits

    def save(self, path: Path) -> list[Path]:
        """hnswlib's ``save_index`` checks none of its writes (a full disk leaves a short file and no
        error), so the file is read back once with hnswlib's own size check; a short file is removed and
        reported as a ``StorageError`` (errno EIO: the OS's errno is lost inside hnswlib)."""
        path = path.with_name(path.name + ".hnswlib")
        try:
            self.index.save_index(str(path))
            hnswlib.Index(space="l2" if self.metric == "l2" else "ip", dim=self.dim).load_index(str(path), max_elements=0)
        except RuntimeError as exc:
            path.unlink(missing_ok=True)
            raise StorageError(errno.EIO, f"hnswlib wrote a short or unreadable file ({exc})",
                               str(path)) from exc
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise storage_error(exc, path) from exc
        try:
            describe_file(path)  # fsync: hnswlib does not
        except StorageError:
            path.unlink(missing_ok=True)
            raise
        return [path]

    @classmethod
    def load(cls, paths: list[Path], dim: int, metric: str, config: dict[str, Any], vectors: np.ndarray) -> "HnswlibIndex":
        index = cls(dim, metric, **config)
        index.index.load_index(str(paths[0]))
        index._initialised = True
        return index
