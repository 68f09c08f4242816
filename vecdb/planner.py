"""Choosing and running a plan per filter: exact scan of the matching rows, filtered index traversal,
or over-fetch with post-filter and refill. Every plan ends with the same guarantee: a query with at
least k matching rows gets exactly k hits, each of which passes the filter.

How the defaults were found: see ``PlannerConfig`` and the README's "Planner" section.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar, Mapping

import numpy as np

from .errors import DeviceError, InvalidParameterError
from .filters.attribute_index import RowSet
from .calibration import ef_for
from .indexes.base import BeamIndex, CostedIndex, FilteredGraphIndex, Hits, pop_params, supports
from .indexes.device_costs import DeviceCosts, DeviceIndex, check_requested, place
from .indexes.flat import exact_search
from .topk import finish, merge

PLANS = ("exact", "index", "filtered_graph", "post_filter")


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """Crossover points, measured with ``tools/calibrate_planner.py`` on ../shared/data/arxiv (72,000 x
    384) and the 1M x 128 synthetic set (k = 10, one thread); the figures are in the README's "Planner"
    section. A filter's rows are scanned exactly (``exact``) when any of these holds:

    ``exact_max_rows``: this few rows pass.
    ``exact_max_scan``: the scan reads at most this many floats (passing rows x dim). The exact scan
    costs about its rows (each a cache miss or a few), the filtered walk about its beam times the
    neighbours it gathers, whatever N: measured, the two cross at ~4,200 rows of 384 floats on arxiv
    (~6% there) and ~13,000-17,000 rows of 128 on 1M (~1.5%), about 1.6M floats both times.
    ``exact_max_selectivity``: this fraction of rows or less passes. Below it the passing rows are too
    sparse in the graph for the traversal to stay accurate however cheap it would be (1M synthetic,
    uncorrelated ranges: recall 0.85 at 1%, 0.98 at 2%, 1.0 at 3%).
    Above it, FAISS HNSW runs ``filtered_graph``: the numba traversal of its graph over passing rows
    only (ACORN-1-style two-hop expansion through rejected ones), beam ``ef_search * filtered_ef_ratio``,
    gathering ``M * gather_scale / sqrt(selectivity)`` passing neighbours per expansion (between M and
    4M: few when most rows pass, more when the passing subgraph is sparse); it stops and goes exact
    once it has examined more rows than pass the filter.
    Graph indexes whose graph vecdb cannot read (hnswlib) run ``post_filter``: an unfiltered search that over-fetches
    ``k / selectivity * overfetch`` rows with a beam as wide, keeps the rows that pass, and fetches 4x
    more (up to ``max_fetch``) while a query is short; this measured both faster and more accurate
    than FAISS' bitmap-filtered traversal, whose beam fills with rejected nodes. Indexes that scan
    whole lists (IVF) take the bitmap directly (plan ``index``).
    ``threads``: threads a batch runs on (0 = ``vecdb.set_threads``' setting, every core by default; see
    ``vecdb/parallel.py``).
    ``ef_scale``: a forced filtered traversal widens its beam to ``ef / selectivity ** ef_scale``.
    ``default_target_recall``: a search given neither ``ef`` nor ``target_recall`` runs the beam the
    build-time calibration (``vecdb/calibration.py``) says reaches this recall, per plan and band of
    selectivity (None: the index's fixed ``ef_search``, and ``ef_search * filtered_ef_ratio`` filtered).
    ``graph_cost``: what the planner counts for a graph walk choosing among a field's indexes
    (``cost``): ``graph_cost * ef * gather * dim`` floats for the filtered walk (it scores about ``gather``
    neighbours for each of ~``ef`` expansions, and steps through rejected rows besides), ``ef * 2M * dim``
    for the plain walk. Measured on arXiv (M = 32, one query a call): the plain walk at ef 64 ~0.65 ms, the
    filtered walk ~1.05 ms at 50% (ef 48, gather 69) and ~1.15 ms at 10% (ef 40, gather 128), against
    ~0.41 ns a float of an exact scan: 1.0x, 2.0x and 1.4x the model without ``graph_cost``. At 1.5 the
    planner still sent ~10% filters to the walk where the binary scan was ~18% faster (runner, same build),
    hence 2.0, the larger measured factor.
    ``deleted_max_fraction``: an unfiltered search on a graph index with at most this share of deleted
    rows runs the plain index search and drops the deleted hits (``post_filter``: it over-fetches about
    3k with the usual beam, so it costs what a search without deletions costs), not the filtered walk.
    """

    exact_max_selectivity: float = 0.02
    exact_max_rows: int = 1000
    exact_max_scan: int = 1_600_000
    filtered_ef_ratio: float = 0.375
    gather_scale: float = 1.5
    threads: int = 0  # batches with several filters run on this many threads (0 = every core)
    overfetch: float = 2.0
    max_fetch: int = 4096
    ef_scale: float = 1.0
    ef_max: int = 2048
    deleted_max_fraction: float = 0.1
    default_target_recall: float | None = 0.95
    graph_cost: float = 2.0


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
    estimated_matches: int | None = None

    @property
    def selectivity(self) -> float:
        return self.matches / self.total if self.total else 0.0

    def __str__(self) -> str:
        lines = [
            f"plan: {self.name}",
            f"filter: {self.filter or '(none)'}",
            f"matches: {self.matches} of {self.total} rows (selectivity {self.selectivity:.4%})"
            + (f"; estimated {self.estimated_matches} from the attribute statistics"
               if self.estimated_matches is not None else ""),
            f"index: {self.index or '(none)'}" + (f" {self.params}" if self.params else ""),
            f"reason: {self.reason}",
        ]
        if self.tail_rows:
            lines.append(f"rows added since the index was built, scanned exactly: {self.tail_rows}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class SearchParams:
    """One search's options, checked once: ``plan`` (``"auto"`` or one of ``PLANS``), ``target_recall``
    (HNSW: the beam calibrated to reach it), ``candidates`` (multi-vector rows: how many are reranked)
    and the index's own search options (``ef``, ``nprobe``, ...)."""

    plan: str = "auto"
    target_recall: float | None = None
    candidates: int | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    config: PlannerConfig | None = None  # this search's planner settings (default: the collection's)
    device: str = "auto"  # "auto" | "cpu" | "gpu": where the batch runs (``device_costs.place``)

    GENERAL: ClassVar[tuple[str, ...]] = ("plan", "target_recall", "device")
    # taken by ``Collection.search`` itself; listed with the rest when an option is unknown
    RESULT: ClassVar[tuple[str, ...]] = ("offset", "score_threshold", "with_vectors", "planner", "threads")

    @functools.cached_property
    def key(self) -> tuple | None:
        """These options as a hashable key (``Snapshot.plans``: plans chosen before with the same options);
        None when an option's value cannot be hashed."""
        key = (self.plan, self.target_recall, self.candidates, tuple(sorted(self.options.items())), self.config,
               self.device)
        try:
            hash(key)
        except TypeError:
            return None
        return key

    @property
    def plain(self) -> bool:
        """Only the index's own options (``ef``, ``nprobe``, ...) and a recall target were given: no plan,
        candidates, device or planner settings, so an unfiltered search of a ready index is the index's
        plain search with them (``Field.plain_search``: the planner's bookkeeping skipped)."""
        return self.plan == "auto" and self.candidates is None and self.device == "auto" and self.config is None

    @classmethod
    def parse(cls, params: Mapping[str, Any], index: Any, *, extra: tuple[str, ...] = (),
              plans: tuple[str, ...] = PLANS) -> "SearchParams":
        """Validate ``params`` against what this search accepts; an unknown name lists every accepted one."""
        allowed: dict[str, type] = dict(index.search_options) if index is not None else {}
        accepted = sorted({*cls.GENERAL, *cls.RESULT, *extra, *allowed})
        options: dict[str, Any] = {}
        plan, target, candidates, device = "auto", None, None, "auto"
        for name, value in params.items():
            if name == "plan":
                if value not in ("auto", *plans):
                    raise InvalidParameterError(
                        f"unknown plan {value!r}; expected auto or one of {', '.join(plans)}")
                plan = value
            elif name == "target_recall":
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                          or not 0 < value <= 1):
                    raise InvalidParameterError(f"target_recall must be in (0, 1]; got {value!r}")
                target = None if value is None else float(value)
            elif name == "device":
                device = check_requested(value)
            elif name == "candidates" and "candidates" in extra:
                if value is not None:
                    candidates = pop_params({name: value}, {name: int}, "search")[name]
            elif name in allowed:
                options.update(pop_params({name: value}, allowed, f"search with index {index.kind!r}"))
            else:
                on = f" with index {index.kind!r}" if index is not None else ""
                raise InvalidParameterError(
                    f"unknown option {name!r} for search{on}; expected one of {', '.join(accepted)}")
        return cls(plan, target, candidates, options, device=device)


def choose(*, index: Any, matches: int, total: int, k: int, filtered: bool, params: SearchParams,
           config: PlannerConfig, calibration: Mapping[str, Any] | None = None,
           deleted_share: float | None = None, filter: str | None = None, tail_rows: int = 0,
           estimated_matches: int | None = None, nq: int = 1, costs: DeviceCosts | None = None) -> Plan:
    """Pick a plan from exact counts (the filter is already evaluated). ``deleted_share``: when the only
    rows left out are deleted ones (no filter), their share of the stored rows. ``filter``,
    ``tail_rows`` and ``estimated_matches`` only describe the plan (``explain``)."""
    plan = _choose(index, matches, total, k, filtered, params, config, deleted_share)
    target = params.target_recall
    if target is None and (calibration or {}).get("method") and (
            (plan.name == "filtered_graph" and filtered) or (plan.name == "index" and matches >= total)):
        target = config.default_target_recall  # the default: a recall target on calibrated collections
    if target is not None and "ef" not in params.options and plan.name in ("index", "filtered_graph"):
        ef = ef_for(calibration or {}, plan.name, target, matches / total if total else 1.0)
        if ef is not None:
            plan = dataclasses.replace(plan, params={**plan.params, "ef": ef})
    plan = _place(plan, index, nq, k, params.device, config, costs)
    if filter is None and not tail_rows and estimated_matches is None:
        return plan  # a search, not explain: nothing to describe (replace costs ~8 us a query)
    return dataclasses.replace(plan, filter=filter, tail_rows=tail_rows, estimated_matches=estimated_matches)


def _choose(index: Any, matches: int, total: int, k: int, filtered: bool, params: SearchParams,
            config: PlannerConfig, deleted_share: float | None) -> Plan:
    sel = matches / total if total else 0.0
    kind = index.kind if index is not None else None
    forced = params.plan
    if forced != "auto":
        if forced != "exact" and index is None:
            raise InvalidParameterError(f"plan {forced!r} needs an index; call build_index first")
        if forced == "filtered_graph" and not supports(index, FilteredGraphIndex):
            raise InvalidParameterError(f"plan 'filtered_graph' needs a FAISS hnsw index, not {kind!r}")
        if forced == "index" and filtered and not index.filters_inside:
            raise InvalidParameterError(
                f"plan 'index' with a filter needs an index that filters inside its engine; {kind!r} does not "
                f"(use plan='post_filter' or 'exact')")
        return Plan(forced, matches, total, "forced by the caller", kind,
                    _plan_params(forced, index, sel, params.options, config))
    if index is None or index.exact:
        why = "no approximate index is built" if index is None else "the index is exact"
        return Plan("exact", matches, total, why, kind)
    scan = matches * index.dim
    if supports(index, CostedIndex) and not index.walks_graph:  # it states its cost: weigh the two
        options = _plan_params("index", index, sel, params.options, config)
        spent = index.cost(matches, k, options)
        if scan <= spent:
            return Plan("exact", matches, total, f"scan only the matching rows: {matches} rows x {index.dim} dims "
                        f"= {scan} floats <= the {kind} index's cost {spent:.0f}", kind)
        return Plan("index", matches, total, f"the {kind} index's cost {spent:.0f} < {scan} floats to scan "
                    f"exactly" + (" with the row bitmap" if filtered else ""), kind, options)
    if matches <= max(k, config.exact_max_rows):
        why = f"{matches} matching rows <= exact_max_rows={config.exact_max_rows}"
    elif sel <= config.exact_max_selectivity:
        why = (f"selectivity {sel:.4f} <= exact_max_selectivity={config.exact_max_selectivity} (too few "
               f"passing rows for a graph walk to stay accurate)")
    elif filtered and deleted_share is None and scan <= config.exact_max_scan:  # (a filter, not deletions)
        why = f"{matches} rows x {index.dim} dims = {scan} floats <= exact_max_scan={config.exact_max_scan}"
    else:
        why = ""
    if why:
        return Plan("exact", matches, total, f"scan only the matching rows: {why}", kind)
    above = (f"selectivity {sel:.4f} > exact_max_selectivity={config.exact_max_selectivity} and {scan} floats "
             f"to scan > exact_max_scan={config.exact_max_scan}")
    if not filtered:
        return Plan("index", matches, total, "no filter: plain index search", kind,
                    _plan_params("index", index, sel, params.options, config))
    if deleted_share is not None and index.walks_graph and deleted_share <= config.deleted_max_fraction:
        return Plan("post_filter", matches, total,
                    f"no filter, {deleted_share:.2%} of rows deleted <= deleted_max_fraction="
                    f"{config.deleted_max_fraction}: plain {kind} search, deleted hits dropped (exact refill if "
                    f"short)", kind, _plan_params("post_filter", index, sel, params.options, config))
    if index.filters_inside and not index.walks_graph:
        return Plan("index", matches, total,
                    f"{above}: {kind} scans its lists with the row bitmap", kind,
                    _plan_params("index", index, sel, params.options, config))
    if supports(index, FilteredGraphIndex):
        return Plan("filtered_graph", matches, total,
                    f"{above}: traverse the {kind} graph over passing rows only, two-hop through rejected "
                    f"ones (exact if it examines more rows than pass)", kind,
                    _plan_params("filtered_graph", index, sel, params.options, config))
    return Plan("post_filter", matches, total,
                f"{above}: unfiltered {kind} search over-fetching ~k/selectivity, then the bitmap (exact "
                f"refill if short)", kind,
                _plan_params("post_filter", index, sel, params.options, config))


def cost(plan: Plan, index: Any, dim: int, k: int, config: PlannerConfig) -> float:
    """What one query of ``plan`` costs, in floats an exact scan reads, to choose among a field's indexes:
    the exact scan reads its rows; an index that states its cost (``CostedIndex``) says it; a walk of a
    graph vecdb reads (FAISS HNSW) its beam times the neighbours it scores (``PlannerConfig.graph_cost``);
    another index's search costs about ``exact_max_scan``, where a walk measured as fast as the exact scan;
    a post-filter over-fetch, twice that."""
    if plan.name == "exact" or index is None:
        return float(plan.matches * dim)
    if supports(index, CostedIndex):
        return index.cost(plan.matches, k, plan.params)
    if supports(index, FilteredGraphIndex):
        ef = plan.params.get("ef") or index.ef_search
        if plan.name == "filtered_graph":
            return config.graph_cost * ef * plan.params.get("gather", 2 * index.M) * dim
        if plan.name == "index":
            return float(ef * 2 * index.M * dim)
    return float(config.exact_max_scan * (2 if plan.name == "post_filter" else 1))


def _place(plan: Plan, index: Any, nq: int, k: int, requested: str, config: PlannerConfig,
           costs: DeviceCosts | None) -> Plan:
    """Put the batch on the GPU or the CPU (``params["device"]``): a GPU index's plain or over-fetching
    search, or an exact plan gathering the passing rows into one GPU brute-force call, when the cost
    model says the GPU is faster for ``nq`` queries (small batches stay on the CPU)."""
    if index is None:
        if requested == "gpu":
            raise DeviceError("device='gpu' asked for, but the collection has no index built on a GPU")
        return plan
    if requested != "gpu" and getattr(index, "device", "cpu") != "gpu":
        return plan  # nothing to place (test doubles may leave ``device`` out)
    fetch = None
    if plan.name == "post_filter":
        fetch = min(index.ntotal, config.max_fetch, math.ceil(k / max(plan.selectivity, 1e-9) * config.overfetch) + k)
    device, why = place(plan=plan.name, index=index, nq=nq, k=k, matches=plan.matches, dim=index.dim,
                        requested=requested, fetch=fetch, costs=costs)
    if device == "gpu" or (supports(index, DeviceIndex) and plan.name in ("index", "post_filter")):
        return dataclasses.replace(plan, params={**plan.params, "device": device},
                                   reason=f"{plan.reason}; on the {device.upper()}: {why}")
    return plan


def gather_width(m: int, selectivity: float, config: PlannerConfig = PlannerConfig()) -> int:
    """Passing neighbours the filtered walk gathers per expansion at ``selectivity`` (see
    ``PlannerConfig``; the build-time calibration measures the walk with the same width)."""
    return int(min(4 * m, max(m, math.ceil(m * config.gather_scale / math.sqrt(max(selectivity, 1e-6))))))


def _plan_params(name: str, index: Any, sel: float, params: Mapping[str, Any], config: PlannerConfig) -> dict:
    out = dict(params)
    if name == "exact" or index is None:
        return {}
    if name == "filtered_graph":
        if "ef" not in out:
            out["ef"] = max(8, int(index.ef_search * config.filtered_ef_ratio))
        out["gather"] = gather_width(index.M, sel, config)
    if name == "index" and "ef" not in out and supports(index, BeamIndex) and sel < 1.0:
        widened = index.ef_search / max(sel, 1e-6) ** config.ef_scale
        out["ef"] = int(min(config.ef_max, math.ceil(widened)))
    return out


def run(plan: Plan, *, vectors: np.ndarray, index: Any, index_rows: int, queries: np.ndarray, k: int,
        selection: RowSet | np.ndarray | None, metric: str, config: PlannerConfig, threads: int = 1) -> Hits:
    """Execute ``plan`` for ``queries``, all sharing ``selection`` (the passing rows, a ``RowSet`` or a
    bool mask; ``None`` = every row passes). ``threads``: what an exact scan may split its rows over."""
    if plan.name == "exact":
        if plan.params.get("device") == "gpu":
            from .indexes.gpu import exact_plan

            return exact_plan(vectors, queries, k, metric, index=index, index_rows=index_rows, matches=plan.matches,
                              mask=selection.mask if isinstance(selection, RowSet) else selection,
                              rows=lambda: _rows_of(selection))
        return _scan(vectors, queries, k, metric, selection, threads)
    mask = selection.mask if isinstance(selection, RowSet) else selection
    head_mask = None if mask is None else mask[:index_rows]
    if plan.name == "index":
        hits = index.search(queries, k, allow=head_mask, **plan.params)
    elif plan.name == "filtered_graph":
        if head_mask is None:
            head_mask = np.ones(index_rows, dtype=bool)
        hits, complete = index.search_filtered_graph(queries, k, head_mask, ef=plan.params.get("ef"),
                                                     gather=plan.params.get("gather"),
                                                     budget=max(plan.matches, k))
        hits.rows[~complete] = -1  # over budget: answered exactly below
        hits.scores[~complete] = -np.inf
    else:
        hits = _post_filter(index, queries, k, head_mask, plan, config)
    return completed(plan, hits, vectors=vectors, index_rows=index_rows, queries=queries, k=k, selection=selection,
                     metric=metric)


def completed(plan: Plan, hits: Hits, *, vectors: np.ndarray, index_rows: int, queries: np.ndarray, k: int,
               selection: RowSet | np.ndarray | None, metric: str) -> Hits:
    """An index plan's hits made whole: the rows added since the index was built scanned exactly and
    merged in, and queries left short (or flagged ``-1`` by the walk) answered exactly."""
    if vectors.shape[0] > index_rows:  # rows added since the index was built: exact scan
        mask = selection.mask if isinstance(selection, RowSet) else selection
        tail_rows = np.arange(index_rows, vectors.shape[0], dtype=np.int64)
        tail = exact_search(vectors, queries, k, metric, rows=tail_rows, allow=mask)
        s, r = merge(hits.scores, hits.rows, tail.scores, tail.rows, k)
        hits = finish(s, r, k)
    return _refill_short(hits, vectors=vectors, queries=queries, k=k, selection=selection, metric=metric,
                         matches=plan.matches)


def _post_filter(index: Any, queries: np.ndarray, k: int, mask: np.ndarray | None, plan: Plan,
                 config: PlannerConfig) -> Hits:
    """Over-fetch unfiltered, keep the rows that pass; the queries left short fetch more (x4, up to
    ``max_fetch``), by themselves: the rest keep their answer, so a query's answer does not depend on
    its batch, and one short query does not send a whole batch round again."""
    n = index.ntotal
    params = dict(plan.params)
    user_ef = params.pop("ef", None)
    fetch = min(n, config.max_fetch, math.ceil(k / max(plan.selectivity, 1e-9) * config.overfetch) + k)
    todo = None  # None: every query (no gather copy on the first round)
    while True:
        if supports(index, BeamIndex):
            params["ef"] = max(fetch, user_ef or index.ef_search)
        hits = index.search(queries if todo is None else queries[todo], fetch, **params).passing(mask)
        kept = finish(hits.scores, hits.rows, k)
        if todo is None:
            out = kept
        else:
            out.scores[todo], out.rows[todo] = kept.scores, kept.rows
        short = np.flatnonzero(np.count_nonzero(kept.rows >= 0, axis=1) < k)
        if short.size == 0 or fetch >= min(n, config.max_fetch):
            return out  # queries still short are answered exactly by _refill_short
        todo = short if todo is None else todo[short]
        fetch = min(n, config.max_fetch, fetch * 4)


def _refill_short(hits: Hits, *, vectors: np.ndarray, queries: np.ndarray, k: int,
                  selection: RowSet | np.ndarray | None, metric: str, matches: int) -> Hits:
    """The guarantee: a query whose plan found fewer than min(k, matches) hits is answered exactly."""
    counts = np.count_nonzero(hits.rows >= 0, axis=1)
    short = np.flatnonzero(counts < min(k, matches))
    if short.size:
        exact = _scan(vectors, queries[short], k, metric, selection)
        hits.scores[short] = exact.scores
        hits.rows[short] = exact.rows
    return hits


def _rows_of(selection: RowSet | np.ndarray | None) -> np.ndarray | None:
    if selection is None:
        return None
    if isinstance(selection, RowSet):
        return np.sort(selection.any_order) if selection.sparse else np.flatnonzero(selection.mask)
    return np.flatnonzero(selection)


def _scan(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str,
          selection: RowSet | np.ndarray | None, threads: int = 1) -> Hits:
    """Exact search over the selected rows: by row number while few pass, else over a mask."""
    if isinstance(selection, RowSet):
        if selection.sparse:
            return exact_search(vectors, queries, k, metric, rows=selection.any_order, threads=threads)
        selection = selection.mask
    return exact_search(vectors, queries, k, metric, allow=selection, threads=threads)
