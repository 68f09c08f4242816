"""Choosing and running a plan per filter: exact scan of the matching rows, filtered index traversal,
or over-fetch with post-filter and refill. Every plan ends with the same guarantee: a query with at
least k matching rows gets exactly k hits, each of which passes the filter.

How the defaults were found: see ``PlannerConfig`` and the README's "Planner" section.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .errors import InvalidParameterError
from .indexes.base import Hits
from .indexes.flat import _finish, _topk_merge, exact_search

PLANS = ("exact", "index", "post_filter")


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """Crossover points, measured on ../shared/data/arxiv (72,000 x 384, k = 10, one thread).

    ``exact_max_selectivity``: at or below this fraction of rows passing, scanning exactly only the
    matching rows beats the filtered graph at recall >= 0.95 (it is also exact).
    ``exact_max_rows``: and always when this few rows pass (a scan of them costs less than one graph hop).
    ``ef_scale``: filtered graph search widens its beam to ``ef / selectivity ** ef_scale`` so that the
    passing rows it meets stay about as many as unfiltered.
    ``post_filter_min_selectivity``: indexes that cannot take a row mask over-fetch ``k / selectivity``
    times ``overfetch`` and filter; below this selectivity that costs more than the exact scan.
    """

    exact_max_selectivity: float = 0.02
    exact_max_rows: int = 2000
    ef_scale: float = 0.5
    ef_max: int = 1024
    post_filter_min_selectivity: float = 0.1
    overfetch: float = 2.0
    refills: int = 3


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the planner chose for one filter, and why."""

    name: str
    matches: int
    total: int
    reason: str
    index: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    filter: str | None = None
    tail_rows: int = 0

    @property
    def selectivity(self) -> float:
        return self.matches / self.total if self.total else 0.0

    def __str__(self) -> str:
        lines = [
            f"plan: {self.name}",
            f"filter: {self.filter or '(none)'}",
            f"matches: {self.matches} of {self.total} rows (selectivity {self.selectivity:.4%})",
            f"index: {self.index or '(none)'}" + (f" {self.params}" if self.params else ""),
            f"reason: {self.reason}",
        ]
        if self.tail_rows:
            lines.append(f"rows added since the index was built, scanned exactly: {self.tail_rows}")
        return "\n".join(lines)


def choose(*, index: Any, matches: int, total: int, k: int, filtered: bool, forced: str | None,
           params: dict[str, Any], config: PlannerConfig) -> Plan:
    """Pick a plan from exact counts (the filter is already evaluated to a mask)."""
    sel = matches / total if total else 0.0
    kind = getattr(index, "kind", None)
    if forced is not None and forced != "auto":
        if forced not in PLANS:
            raise InvalidParameterError(f"unknown plan {forced!r}; expected auto or one of {', '.join(PLANS)}")
        if forced != "exact" and index is None:
            raise InvalidParameterError(f"plan {forced!r} needs an index; call build_index first")
        return Plan(forced, matches, total, "forced by the caller", kind, _plan_params(forced, index, sel, params, config))
    if index is None or index.exact:
        why = "no approximate index is built" if index is None else "the index is exact"
        return Plan("exact", matches, total, why, kind)
    if matches <= max(k, config.exact_max_rows) or sel <= config.exact_max_selectivity:
        why = (f"{matches} matching rows <= exact_max_rows={config.exact_max_rows}"
               if matches <= max(k, config.exact_max_rows) else
               f"selectivity {sel:.4f} <= exact_max_selectivity={config.exact_max_selectivity}")
        return Plan("exact", matches, total, f"scan only the matching rows: {why}", kind)
    if not filtered or index.supports_allow:
        name = "index"
        why = ("no filter: plain index search" if not filtered else
               f"selectivity {sel:.4f} > {config.exact_max_selectivity}: the index traverses with the row "
               f"bitmap, beam widened for the rows the filter rejects")
        return Plan(name, matches, total, why, kind, _plan_params(name, index, sel, params, config))
    if sel >= config.post_filter_min_selectivity:
        return Plan("post_filter", matches, total,
                    f"{kind} takes no row mask; selectivity {sel:.4f} >= {config.post_filter_min_selectivity}: "
                    f"over-fetch about k/selectivity and filter", kind,
                    _plan_params("post_filter", index, sel, params, config))
    return Plan("exact", matches, total,
                f"{kind} takes no row mask and selectivity {sel:.4f} < {config.post_filter_min_selectivity} "
                f"makes post-filtering costlier than an exact scan", kind)


def _plan_params(name: str, index: Any, sel: float, params: dict[str, Any], config: PlannerConfig) -> dict:
    out = dict(params)
    if name == "exact" or index is None:
        return {}
    if "ef" not in out and hasattr(index, "ef_search") and sel < 1.0:
        widened = index.ef_search / max(sel, 1e-6) ** config.ef_scale
        out["ef"] = int(min(config.ef_max, math.ceil(widened)))
    return out


def run(plan: Plan, *, vectors: np.ndarray, index: Any, index_rows: int, queries: np.ndarray, k: int,
        mask: np.ndarray | None, metric: str, config: PlannerConfig) -> Hits:
    """Execute ``plan`` for ``queries`` (all sharing ``mask``, ``None`` = every row passes)."""
    if plan.name == "exact":
        return exact_search(vectors, queries, k, metric, allow=mask)
    head_mask = None if mask is None else mask[:index_rows]
    if plan.name == "index":
        hits = index.search(queries, k, allow=head_mask, **plan.params)
    else:
        hits = _post_filter(index, queries, k, head_mask, plan, config)
    if vectors.shape[0] > index_rows:  # rows added since the index was built: exact scan
        tail_rows = np.arange(index_rows, vectors.shape[0], dtype=np.int64)
        tail = exact_search(vectors, queries, k, metric, rows=tail_rows, allow=mask)
        s, r = _topk_merge(hits.scores, hits.rows, tail.scores, tail.rows, k)
        hits = _finish(s, r, k)
    return _refill_short(hits, vectors=vectors, queries=queries, k=k, mask=mask, metric=metric,
                         matches=plan.matches)


def _post_filter(index: Any, queries: np.ndarray, k: int, mask: np.ndarray | None, plan: Plan,
                 config: PlannerConfig) -> Hits:
    """Over-fetch unfiltered, keep the rows that pass, fetch more while short."""
    n = index.ntotal
    params = {key: v for key, v in plan.params.items() if key != "ef"}
    fetch = min(n, math.ceil(k / max(plan.selectivity, 1e-9) * config.overfetch) + k)
    for _ in range(config.refills + 1):
        hits = index.search(queries, fetch, ef=max(fetch, getattr(index, "ef_search", fetch)), **params) \
            if hasattr(index, "ef_search") else index.search(queries, fetch, **params)
        rows = hits.rows
        ok = rows >= 0
        if mask is not None:
            ok &= mask[np.maximum(rows, 0)]
        if ok.sum(axis=1).min() >= k or fetch >= n:
            break
        fetch = min(n, fetch * 4)
    scores = np.where(ok, hits.scores, -np.inf).astype(np.float32)
    return _finish(scores, np.where(ok, rows, -1), k)


def _refill_short(hits: Hits, *, vectors: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None,
                  metric: str, matches: int) -> Hits:
    """The guarantee: a query whose plan found fewer than min(k, matches) hits is answered exactly."""
    counts = (hits.rows >= 0).sum(axis=1)
    short = np.flatnonzero(counts < min(k, matches))
    if short.size:
        exact = exact_search(vectors, queries[short], k, metric, allow=mask)
        hits.scores[short] = exact.scores
        hits.rows[short] = exact.rows
    return hits
