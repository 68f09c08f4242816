"""One result type for every search: ids, scores and counts, padded with -1 where fewer than k exist."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from .snapshot import Snapshot

ALL = "*"
VECTOR = "vector"  # asking for it gives the collection's vector column (``vectors`` for multi-vector rows)


@dataclasses.dataclass(frozen=True, eq=False)
class SearchResult:
    """``ids`` (nq, k) int64 padded with -1; ``scores`` (nq, k) float32; ``counts`` (nq,) real hits.

    Scores: higher is better for ``cosine`` and ``ip``; for ``l2`` they are squared Euclidean
    distances, in ascending order (padding is ``+inf`` for l2 and ``-inf`` otherwise).
    ``plans`` names the plan each query ran (see ``Collection.explain``). ``to_arrow``, ``to_pandas``,
    ``to_polars`` and ``to_list`` join the attributes of the version the search read. ``==`` is
    identity (the fields are arrays).

    ``columns`` (every ``to_*``): ``None`` or ``"*"`` for every attribute column, a list of names, or
    ``[]`` for none; ``"vector"`` in the list adds the stored vector of each hit (``vectors``, a list of
    vectors per hit, in a multi-vector collection; unit length in a cosine collection, as stored).
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

    @property
    def found(self) -> np.ndarray:
        """Where ``ids`` holds a hit (not padding: -1, or None for string ids)."""
        return (self.ids != None) if self.ids.dtype == object else (self.ids >= 0)  # noqa: E711

    def to_arrow(self, columns: Sequence[str] | str | None = None) -> pa.Table:
        """One row per hit: ``query``, ``rank``, ``id``, ``score``, then the requested columns."""
        q, rank = np.nonzero(self.found)
        ids = self.ids[q, rank]
        table = pa.table({
            "query": pa.array(q.astype(np.int32)),
            "rank": pa.array(rank.astype(np.int32)),
            "id": pa.array(ids),
            "score": pa.array(self.scores[q, rank]),
        })
        if self._snapshot is None:
            return table
        order = _columns(columns, self._snapshot)
        fields = self._snapshot.fields
        names = [name for name in order if name not in fields]
        attrs = self._snapshot.get(ids, columns=names, with_vectors=len(names) < len(order))
        for name in order:  # in the order asked for
            table = table.append_column(name, attrs.column(name))
        return table

    def to_pandas(self, columns: Sequence[str] | str | None = None) -> Any:
        """``to_arrow(columns)`` as a pandas DataFrame (lists and vectors become numpy arrays per cell)."""
        return self.to_arrow(columns).to_pandas()

    def to_polars(self, columns: Sequence[str] | str | None = None) -> Any:
        """``to_arrow(columns)`` as a polars DataFrame; needs polars installed."""
        try:
            import polars as pl
        except ImportError as exc:
            raise ImportError(f"SearchResult.to_polars needs polars ({exc}); install it with "
                              f"'pip install polars', or use to_arrow() / to_pandas()") from exc
        return pl.from_arrow(self.to_arrow(columns))

    def to_list(self, columns: Sequence[str] | str | None = None) -> list[list[dict[str, Any]]]:
        """Per query, its hits best first as dicts: ``id``, ``score`` and the requested columns
        (``[]`` for a query with no hit). Values are plain Python (vectors as lists of floats)."""
        table = self.to_arrow(columns)
        out: list[list[dict[str, Any]]] = [[] for _ in range(len(self))]
        for row in table.to_pylist():
            q = row.pop("query")
            row.pop("rank")
            out[q].append(row)
        return out


def _columns(columns: Sequence[str] | str | None, snap: "Snapshot") -> list[str]:
    """The output columns, in order: ``"*"`` expands to every attribute; a vector field's name gives its
    values, and ``"vector"`` those of the only field (``vectors`` in a multi-vector collection), unless an
    attribute has that name. Unknown names are left for ``Snapshot.get`` to report."""
    if columns is None:
        columns = [ALL]
    elif isinstance(columns, str):
        columns = [columns]
    only = next(iter(snap.fields)) if len(snap.fields) == 1 else None
    out: list[str] = []
    for name in columns:
        out.extend(snap.schema.names if name == ALL else
                   [only] if name == VECTOR and only is not None and name not in snap.schema.names else [name])
    return list(dict.fromkeys(out))
