"""What a sharded search and explain return: the collection's ``SearchResult`` with the shards' part in
it, and a plan per filter naming the shards searched and pruned."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pyarrow as pa

from vecdb.planner import Plan
from vecdb.result import SearchResult

if TYPE_CHECKING:
    from .collection import ShardedCollection


@dataclasses.dataclass(frozen=True, eq=False)
class ShardedSearchResult(SearchResult):
    """``SearchResult`` plus, per query, how many shards were searched and how many pruned by their
    statistics; ``partial`` (only with ``allow_partial=True``) when some shard did not answer, named in
    ``missing_shards``: those queries' answers may then miss rows of that shard."""

    shards_searched: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    shards_pruned: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    missing_shards: tuple[str, ...] = ()
    _source: "ShardedCollection | None" = dataclasses.field(default=None, repr=False)

    @property
    def partial(self) -> bool:
        return bool(self.missing_shards)

    def to_arrow(self, columns: Sequence[str] | None = None) -> pa.Table:
        """One row per hit: ``query``, ``rank``, ``id``, ``score``, then the requested attribute columns
        (read from the shards now: a row deleted since the search is an ``UnknownIdError``)."""
        table = SearchResult.to_arrow(self)
        if self._source is None:
            return table
        attrs = self._source.get(table.column("id").to_numpy(), columns, with_vectors=False).drop(["id"])
        for name in attrs.column_names:
            table = table.append_column(name, attrs.column(name))
        return table


@dataclasses.dataclass(frozen=True)
class ShardedPlan:
    """One filter over a sharded collection: the shards its statistics keep (``searched``) and skip
    (``pruned``), each searched shard's own ``Plan``, and the exact matching rows over all shards."""

    filter: str | None
    searched: tuple[str, ...]
    pruned: tuple[str, ...]
    plans: dict[str, Plan]
    matches: int
    total: int
    missing: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return merged_plan_name([p.name for p in self.plans.values()])

    def __str__(self) -> str:
        head = (f"sharded plan {self.name!r}: {self.matches} of {self.total} rows match "
                f"{self.filter or '(no filter)'}; {len(self.searched)} shard(s) searched, "
                f"{len(self.pruned)} pruned by statistics" + (f" ({', '.join(self.pruned)})" if self.pruned else ""))
        lines = [head] + [f"  {name}: {plan.name}, {plan.matches} of {plan.total} rows - {plan.reason}"
                          for name, plan in self.plans.items()]
        if self.missing:
            lines.append(f"  unavailable: {', '.join(self.missing)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"filter": self.filter, "plan": self.name, "matches": self.matches, "total": self.total,
                "searched": list(self.searched), "pruned": list(self.pruned), "missing": list(self.missing),
                "shards": {name: dataclasses.asdict(p) for name, p in self.plans.items()}}


def merged_plan_name(names: Sequence[str]) -> str:
    """One name for the plans the shards ran: the plan when they agree, else the distinct ones joined by
    ``+`` (``"exact+filtered_graph"``); ``"pruned"`` when no shard ran."""
    distinct = sorted(set(names))
    return "+".join(distinct) if distinct else "pruned"
