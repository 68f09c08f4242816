"""One result type for every search: ids, scores and counts, padded with -1 where fewer than k exist."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from .snapshot import Snapshot


@dataclasses.dataclass(frozen=True, eq=False)
class SearchResult:
    """``ids`` (nq, k) int64 padded with -1; ``scores`` (nq, k) float32; ``counts`` (nq,) real hits.

    Scores: higher is better for ``cosine`` and ``ip``; for ``l2`` they are squared Euclidean
    distances, in ascending order (padding is ``+inf`` for l2 and ``-inf`` otherwise).
    ``plans`` names the plan each query ran (see ``Collection.explain``). ``to_arrow`` joins the
    attributes of the version the search read. ``==`` is identity (the fields are arrays).
    """

    ids: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    plans: tuple[str, ...]
    _snapshot: "Snapshot | None" = dataclasses.field(default=None, repr=False)
    vectors: Any = dataclasses.field(default=None, repr=False)  # with_vectors=True: (nq, k, dim), NaN padding
    # (multi-vector rows: per query, a list of each hit's vectors)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def to_arrow(self, columns: Sequence[str] | None = None) -> pa.Table:
        """One row per hit: ``query``, ``rank``, ``id``, ``score``, then the requested attribute columns."""
        q, rank = np.nonzero(self.ids >= 0)
        ids = self.ids[q, rank]
        table = pa.table({
            "query": pa.array(q.astype(np.int32)),
            "rank": pa.array(rank.astype(np.int32)),
            "id": pa.array(ids),
            "score": pa.array(self.scores[q, rank]),
        })
        if self._snapshot is None:
            return table
        attrs = self._snapshot.get(ids, columns=columns, with_vectors=False).drop(["id"])
        for name in attrs.column_names:
            table = table.append_column(name, attrs.column(name))
        return table
