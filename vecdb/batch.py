"""A batch of queries with their filters, on every core (``Collection.search`` with a dense store).

1. The distinct filters are evaluated on the calling thread while they are cheap (small ones are mostly
   Python: on threads they measured slower), on threads once they prove slow (``_selections``).
2. Each filter group gets its store (the field's index the cost model prefers, ``Field.choose_store``)
   and its plan (``DenseStore.choose``; cheap, on the calling thread).
3. The groups are bucketed by plan and each bucket runs as chunks of queries on threads, each chunk
   one call of a serial ``nogil`` kernel whatever filter its queries carry: the exact subset scan
   (``kernels.exact.topk_rows_grouped``, concatenated row lists) and the filtered graph walk
   (``kernels.hnsw_filtered.filtered_search_grouped``, stacked masks packed into bits, at most
   ``MASK_BYTES`` at a time).
   A batch of 1,000 queries with 507 filters on arxiv is then a handful of kernel calls, not 507
   Python round trips. The other plans (FAISS' own search, post-filter, large exact scans through BLAS)
   run one group per thread, or on the calling thread with FAISS' OpenMP threads when only one is left.
4. numpy's BLAS runs on one thread throughout, unless one such plan is the whole batch: OpenBLAS' own
   threads spin for ~0.1 s after each call (its thread timeout), taking a core from the kernels that
   run next, in this batch or the caller's next one (synthetic-1M ~1% band, one of its filters shared
   by 25 queries scanned through BLAS, 2 threads: 1,769 -> 2,220 QPS; its kernels' chunks ran 1.5-2x
   slower beside the spinning thread).

Every query runs the same arithmetic as through ``planner.run`` whatever the thread count, so exact
plans (and the graph walk) return identical results for any ``threads``.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from . import parallel
from . import planner as planner_mod
from .filters import Expr
from .indexes.base import Hits
from .indexes.faiss_indexes import HNSWIndex
from .indexes.flat import FUSED_MAX_WORK

MASK_BYTES = 16 << 20  # stacked filter masks (packed bits) held at once by the graph bucket
SELECT_PROBE = 8  # filters evaluated on the calling thread before deciding (``_selections``)
SELECT_PARALLEL_S = 200e-6  # ... to evaluate the rest on threads once one of them took this long
SERIAL_MAX_FLOATS = 4 << 20  # an exact bucket reading fewer vector floats than this runs on one thread
Done = tuple[list[int], planner_mod.Plan, Hits]


def search_groups(snap: Any, field: Any, stores: list, q: np.ndarray, groups: Sequence[tuple[Expr | None, list[int]]],
                  k: int, params: planner_mod.SearchParams, threads: int) -> list[Done]:
    """Plan and run every filter group of a batch on ``threads`` threads; ``(members, plan, hits)`` each."""
    selections = _selections(snap, field, groups, threads)
    exact, graph, rest = [], {}, []
    for (expr, members), selection in zip(groups, selections):
        matches = selection.count if selection is not None else snap.n_live
        deleted_only = expr is None and selection is not None
        store, plan = field.choose_store(stores, snap, k, selection, matches, params, deleted_only, len(members))
        if plan is None:
            plan = store.choose(snap, k, selection, matches, params, deleted_only=deleted_only, nq=len(members))
        item = (members, plan, selection, store)
        if plan.name == "exact" and selection is not None and len(members) * matches <= FUSED_MAX_WORK \
                and (selection.sparse or 3 * matches <= selection.n):
            exact.append(item)  # what ``exact_search`` scans with its fused kernel too
        elif plan.name == "filtered_graph" and isinstance(store.index, HNSWIndex):
            graph.setdefault(id(store), []).append(item)  # one bucket per graph
        else:
            rest.append(item)
    alone = not exact and not graph and len(rest) == 1  # one plan: BLAS' own threads may spread it
    with parallel.blas_threads(threads if alone else 1):
        done = _exact(field.reader, q, exact, k, threads) if exact else []
        for items in graph.values():
            store = items[0][3]
            step = max(1, MASK_BYTES // max(1, (store.index_rows + 7) // 8))
            for start in range(0, len(items), step):
                done += _graph(store, q, items[start:start + step], k, threads)
        done += _rest(snap, q, rest, k, params, threads)
    return done


def _selections(snap: Any, field: Any, groups: Sequence[tuple[Expr | None, list[int]]], threads: int) -> list:
    """Each group's live rows. On the calling thread while filters are cheap: evaluating a small one is
    mostly Python, and on threads that ran slower (the GIL passed back and forth: synthetic-1M ~0.1%
    band 6.7 -> 9.5 ms, arxiv ~1% 11.4 -> 13.4 ms). A large selection is mostly numpy that releases the
    GIL (scattering 100,000 row numbers into a mask on 1M rows: ~0.25 ms), so once one of the first
    ``SELECT_PROBE`` filters has taken ``SELECT_PARALLEL_S``, the rest run on threads (synthetic-1M
    ~10% band, 2 threads: 82 -> 70 ms; its first filters are small lookups, then 0.25 ms ranges)."""
    if threads < 2:
        return [snap.live_selection(expr, field) for expr, _ in groups]
    out: list = []
    for expr, _ in groups[:SELECT_PROBE]:
        start = time.perf_counter()
        out.append(snap.live_selection(expr, field))
        if time.perf_counter() - start >= SELECT_PARALLEL_S:  # a large one: the rest on threads
            return out + parallel.run_all(lambda group: snap.live_selection(group[0], field), groups[len(out):],
                                          threads)
    return out + [snap.live_selection(expr, field) for expr, _ in groups[len(out):]]


def _query_order(items: list) -> tuple[np.ndarray, np.ndarray]:
    """The bucket's queries, group by group, and the group of each."""
    order = np.fromiter((i for members, *_ in items for i in members), dtype=np.int64)
    group_of = np.repeat(np.arange(len(items), dtype=np.int64), [len(members) for members, *_ in items])
    return order, group_of


def _split(items: list, order: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> list[tuple]:
    out, at = [], 0
    for members, plan, selection, _ in items:
        n = len(members)
        out.append((members, plan, selection, Hits(scores[at:at + n], rows[at:at + n])))
        at += n
    return out


def _exact(store: Any, q: np.ndarray, items: list, k: int, threads: int) -> list[Done]:
    from .kernels.exact import topk_rows_grouped

    lists = [sel.any_order if sel.sparse else np.flatnonzero(sel.mask) for _, _, sel, _ in items]
    starts = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in lists], out=starts[1:])
    rows = np.concatenate(lists).astype(np.int64, copy=False) if lists else np.empty(0, np.int64)
    order, group_of = _query_order(items)
    queries = np.ascontiguousarray(q[order], dtype=np.float32)
    l2 = store.metric == "l2"
    if np.diff(starts)[group_of].sum() * store.dim < SERIAL_MAX_FLOATS:
        threads = 1  # a few hundred microseconds of scanning: waking a worker and sharing the GIL cost more

    def chunk(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        a, b = span
        return topk_rows_grouped(store.vectors, rows, starts, group_of[a:b], queries[a:b], k, l2)

    parts = parallel.run_all(chunk, parallel.chunks(len(order), threads), threads)
    scores = np.concatenate([p[0] for p in parts])
    found = np.concatenate([p[1] for p in parts])
    return [(members, plan, hits) for members, plan, _, hits in _split(items, order, scores, found)]


def _graph(store: Any, q: np.ndarray, items: list, k: int, threads: int) -> list[Done]:
    index = store.index
    n = index.ntotal
    index.graph_arrays()  # made once here, not raced by the threads
    masks = np.empty((len(items), (n + 7) // 8), dtype=np.uint8)  # packed bits: an eighth of bool masks

    def pack(g: int) -> None:
        selection = items[g][2]
        if selection is None:
            masks[g] = 0xFF
        else:
            selection.bits(n, masks[g])

    parallel.run_all(pack, range(len(items)), threads)
    order, group_of = _query_order(items)
    per_group = [(int(plan.params.get("ef") or index.ef_search), max(plan.matches, k),
                  int(plan.params.get("gather") or 2 * index.M)) for _, plan, _, _ in items]
    efs, budgets, gathers = (np.asarray([p[j] for p in per_group], dtype=np.int64)[group_of] for j in range(3))
    queries = np.ascontiguousarray(q[order], dtype=np.float32)

    def chunk(span: tuple[int, int]) -> tuple[Hits, np.ndarray]:
        a, b = span
        return index.search_filtered_graph_grouped(queries[a:b], k, masks, group_of[a:b], efs[a:b], budgets[a:b],
                                                   gathers[a:b])

    parts = parallel.run_all(chunk, parallel.chunks(len(order), threads), threads)
    scores = np.concatenate([p[0].scores for p in parts])
    rows = np.concatenate([p[0].rows for p in parts])
    complete = np.concatenate([p[1] for p in parts])
    rows[~complete] = -1  # over budget: answered exactly by ``planner.completed``
    scores[~complete] = -np.inf
    done = []
    for members, plan, sel, hits in _split(items, order, scores, rows):
        hits = planner_mod.completed(plan, hits, vectors=store.vectors, index_rows=store.index_rows,
                                    queries=q[members], k=k, selection=sel, metric=store.metric)
        done.append((members, plan, hits))
    return done


def _rest(snap: Any, q: np.ndarray, items: list, k: int, params: planner_mod.SearchParams,
          threads: int) -> list[Done]:
    """Plans run one group at a time: on threads (FAISS single-threaded in each) when several."""
    def one(item: tuple, pool: bool) -> Done:
        members, plan, selection, store = item
        hits = planner_mod.run(plan, vectors=store.vectors, index=store.index, index_rows=store.index_rows,
                               queries=q[members], k=k, selection=selection, metric=store.metric,
                               config=params.config or snap.planner)
        return members, plan, hits

    if threads > 1 and len(items) > 1:
        def pooled(item: tuple) -> Done:
            with parallel.omp_threads(1):
                return one(item, True)
        with parallel.blas_threads(1):  # the groups are the parallelism: BLAS threads would oversubscribe
            return parallel.run_all(pooled, items, threads)
    with parallel.omp_threads(threads):
        return [one(item, False) for item in items]
