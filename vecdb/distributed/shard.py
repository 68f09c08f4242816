"""One shard's side of every call: a ``ShardServer`` keeps one ordinary collection open and answers with
plain data (arrays, Arrow tables, ``Plan`` objects), so the same class serves a thread of the local mode
and a Ray actor (``ray_backend.py``). Filters arrive as canonical SQL text (``str(expr)`` parses back to
the same AST), never as pickled ``Expr`` objects: their cached hashes would differ between processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

import vecdb

from .stats import table_stats


class ShardServer:
    """The shard at ``path``, opened with ``refresh="auto"`` (every read sees the newest commit)."""

    def __init__(self, path: str | Path, name: str):
        self.name = name
        self.path = Path(path)
        self.coll = vecdb.open(self.path, refresh="auto")

    def ping(self) -> str:
        return self.name

    def search(self, queries: np.ndarray, k: int, where: Any, params: dict[str, Any]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
        res = self.coll.search(queries, k, where, **params)
        return res.ids, res.scores, res.counts, res.plans

    def explain(self, where: Any, k: int, params: dict[str, Any]) -> Any:
        return self.coll.explain(None, where, k, **params)

    def count(self, where: Any) -> int:
        if where is None:
            return len(self.coll)
        return self.coll.explain(None, where, 1).matches

    def __len__(self) -> int:
        return len(self.coll)

    def rows(self) -> int:
        return len(self.coll)

    def holds(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` are live rows of this shard."""
        return self.coll.snapshot.rows_of(np.asarray(ids, dtype=np.int64))[1]

    def get_held(self, ids: np.ndarray, columns: Sequence[str] | None, with_vectors: bool) -> pa.Table:
        """The rows of ``ids`` this shard holds (the others are skipped), in the order given."""
        ids = np.asarray(ids, dtype=np.int64)
        held = self.holds(ids)
        return self.coll.get(ids[held], columns, with_vectors=with_vectors)

    def add(self, vectors: np.ndarray, attributes: pa.Table | None, ids: np.ndarray) -> np.ndarray:
        return self.coll.add(vectors, attributes, ids=ids)

    def upsert(self, vectors: np.ndarray, attributes: pa.Table | None, ids: np.ndarray) -> np.ndarray:
        return self.coll.upsert(vectors, attributes, ids=ids)

    def delete(self, ids: np.ndarray | None, where: Any) -> int:
        return self.coll.delete(ids, where=where) if where is not None else self.coll.delete(ids)

    def stats(self, max_distinct: int, full_distinct: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
        """Live rows and fresh (tight) statistics of their attribute columns."""
        table = self.coll.to_arrow().drop(["id"])
        return table.num_rows, table_stats(table, max_distinct=max_distinct, full_distinct=full_distinct)

    def optimize(self) -> None:
        self.coll.optimize()

    def close(self) -> None:
        self.coll.close()
