"""A batch of queries with their filters, on every core (``Collection.search`` with a dense store).

1. The distinct filters are evaluated on the calling thread while they are cheap (small ones are mostly
   Python: on threads they measured slower), on threads once they prove slow (``_selections``).
2. Each filter group gets its store (the field's index the cost model prefers, ``Field.choose_store``)
   and its plan (``DenseStore.choose``; cheap, on the calling thread), chosen once per snapshot for the
   same counts and options (``Snapshot.plans``: a plan depends on nothing else, so batches after the
   first choose none again; arxiv, 200 filters of under 100 rows, one thread: ~0.6 ms of a ~6 ms call).
3. The groups are bucketed by plan and each bucket runs as chunks of queries on threads, each chunk
   one call of a serial ``nogil`` kernel whatever filter its queries carry: the exact subset scan
   (``kernels.exact.scan_tasks``, concatenated row lists; each query's hits go to its own row of the
   batch's result, so a batch that is one exact bucket is answered without a copy) and the filtered
   graph walk (``kernels.hnsw_filtered.filtered_search_grouped``, stacked masks packed into bits, at
   most ``MASK_BYTES`` at a time).
   A batch of 1,000 queries with 507 filters on arxiv is then a handful of kernel calls, not 507
   Python round trips. From the first group that shows enough exact work ahead, the exact bucket is
   scanned while the rest of the batch is still being planned (``_Stream``): planning many small
   filters is Python on one thread, ~10-25 us a filter, as long as their scans on arxiv's ~1% band
   (2 threads against one: 1.45 -> 1.77). The other plans (FAISS' own search, post-filter, large exact
   scans through BLAS) run one group per thread, or on the calling thread with FAISS' OpenMP threads
   when only one is left.
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
from typing import Any, Callable, Iterator, Sequence

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
STREAM_MIN_GROUPS = 16  # groups still to plan for the exact bucket to be scanned while they are (``_Stream``)
STREAM_MIN_FLOATS = 1 << 20  # ... and the floats their exact scans are expected to read (~0.3-0.7 ms)
STREAM_ROWS = 1 << 21  # row numbers a stream holds (16 MB, pages touched as used); groups past it run after
PLANS_KEPT = 4096  # plans a snapshot keeps for later batches (``Snapshot.plans``)
STREAM_START_S = 1e-3  # how long the planning thread waits at most for the stream's threads to start
START_SPINS = 1000  # pauses in one wait of ``kernels.exact.await_started`` (~25-50 us), the deadline checked between
Done = tuple[list[int], str, Hits]  # queries (a group's, or a whole bucket's in its order), the plan they ran, their hits


def search_groups(snap: Any, field: Any, stores: list, q: np.ndarray, groups: Sequence[tuple[Expr | None, list[int]]],
                  k: int, params: planner_mod.SearchParams, threads: int) -> list[Done]:
    """Plan and run every filter group of a batch on ``threads`` threads: ``(queries, plan name, hits)``
    for each group, or for a whole bucket (the exact scans, one entry).

    Planning is Python on the calling thread (on arxiv ~10-25 us a filter: evaluating it, then choosing
    its store and plan); once the groups planned show enough exact work ahead, the exact bucket's groups
    are posted to a ``_Stream`` as they are planned, and the other threads scan them meanwhile."""
    exact: list = []
    graph: dict[int, list] = {}
    rest: list = []
    done: list[Done] = []
    stream = None
    work = 0
    # the same counts get the same plan (~3-4 us each to choose): kept on the snapshot for the batches after this
    # one too, unless an option is unhashable. Batches on several threads share it: a dict's get and set are
    # atomic under the GIL, and two threads choosing the same plan at once store equal plans. ``id(store)``
    # stays valid: the stores are the snapshot's own fields' (alive as long as it is)
    plans: dict[tuple, planner_mod.Plan] = snap.plans if params.key is not None else {}
    if len(plans) >= PLANS_KEPT:
        plans.clear()
    # the stream starts while enough groups are left to plan, as soon as those planned show enough exact work
    # ahead (from the first: each group it waited for was one not scanned beside the planning; after the
    # probe's 8 instead, 2-thread calls alternated in one process: synthetic-1M <100 1.53 -> 1.45 ms, ~0.1%
    # 11.9 -> 11.6 ms, arxiv <100 2.96 -> 2.80 ms, ~0.1% 3.26 -> 3.12 ms, larger bands the same). Filters the
    # probe finds slow are evaluated on threads: the stream is finished first (its servers would spin beside
    # them), and another may start after
    stream_until = len(groups) - STREAM_MIN_GROUPS \
        if min(threads, parallel.cpu_count()) > 1 and not parallel.in_worker() else -1

    def finish_stream() -> None:  # (at the end, or before the probe evaluates filters on threads)
        nonlocal stream, done
        if stream is not None:
            done += stream.finish()
            stream = None

    try:
        for i, ((expr, members), selection) in enumerate(zip(groups, _selections(snap, field, groups, threads,
                                                                                 finish_stream))):
            if selection is None:
                matches, deleted_only = snap.n_live, False
            else:
                matches, deleted_only = selection.count, expr is None
            store, plan = field.choose_store(stores, snap, k, selection, matches, params, deleted_only,
                                             len(members))
            if plan is None:
                key = (params.key, id(store), k, matches, len(members), deleted_only, selection is None)
                plan = plans.get(key)
                if plan is None:
                    plan = plans[key] = store.choose(snap, k, selection, matches, params, deleted_only=deleted_only,
                                                     nq=len(members))
            item = (members, plan, selection, store)
            name = plan.name
            if name == "exact" and selection is not None and len(members) * matches <= FUSED_MAX_WORK \
                    and (selection.sparse or 3 * matches <= selection.n):
                if stream is not None and stream.post(item):
                    continue
                exact.append(item)  # what ``exact_search`` scans with its fused kernel too
                work += len(members) * matches * store.dim  # vector floats the scans read
            elif name == "filtered_graph" and isinstance(store.index, HNSWIndex):
                graph.setdefault(id(store), []).append(item)  # one bucket per graph
                continue
            else:
                rest.append(item)
                continue
            if stream is None and i <= stream_until \
                    and work / (i + 1) * (len(groups) - i) >= STREAM_MIN_FLOATS:
                stream = _Stream(field.reader, q, k, threads)
                exact = [item for item in exact if not stream.post(item)]  # those that did not fit: below
        finish_stream()
    finally:
        if stream is not None:  # (an error on the way) nothing of this call runs after it returns
            stream.close()
            stream.settle()
    if not exact and not graph and not rest:
        return done  # (the stream took the whole batch)
    alone = not exact and not graph and len(rest) == 1 and not done  # one plan: BLAS' threads may spread it
    with parallel.blas_threads(threads if alone else 1):
        if exact:
            done += _exact(field.reader, q, exact, k, threads)
        for items in graph.values():
            store = items[0][3]
            step = max(1, MASK_BYTES // max(1, (store.index_rows + 7) // 8))
            for start in range(0, len(items), step):
                done += _graph(store, q, items[start:start + step], k, threads)
        done += _rest(snap, q, rest, k, params, threads)
    return done


class _Stream:
    """The exact bucket scanned on ``threads - 1`` other threads while this one plans the rest of the batch.

    Those threads run ``kernels.exact.serve_stream``, which holds no GIL from start to end: a Python
    worker handed each group instead would need the GIL to start and to return, and would wait for
    this thread's planning to give it up (CPython's switch interval: 5 ms; measured: the first share
    waited out the whole planning). ``post`` copies a group's rows into one preallocated buffer and
    its queries into the task list, then publishes the new task count with a release store; the
    kernel's acquire loads see the arrays written before it. ``finish`` closes the stream, scans what
    is left on this thread too, and waits for the servers to leave the kernel (``settle``), not for
    their futures: the hits are already in query order."""

    def __init__(self, store: Any, q: np.ndarray, k: int, threads: int) -> None:
        from .kernels.atomics import store_release
        from .kernels.exact import await_started, serve_stream

        self._publish = store_release  # (imported here: importing vecdb does not import numba)
        nq = q.shape[0]
        self.items: list[tuple[tuple, int]] = []  # (item, its first task)
        self.rows = np.empty(STREAM_ROWS, np.int64)
        self.used = 0
        self.full = False
        self.starts = np.zeros(nq + 1, np.int64)
        self.task_group = np.empty(nq, np.int64)
        self.task_query = np.empty(nq, np.int64)
        self.tasks = 0
        self.out_s = np.full((nq, k), -np.inf, np.float32)
        self.out_r = np.full((nq, k), -1, np.int64)
        self.state = np.zeros(5, np.int64)  # posted, taken, closed, servers started, servers done (serve_stream)
        self.args = (store.vectors, self.rows, self.starts, self.task_group, self.task_query,
                     np.ascontiguousarray(q, dtype=np.float32), k, store.metric == "l2", self.state, self.out_s,
                     self.out_r)
        ready = min(threads - 1, parallel.idle_threads())  # (servers queued behind other work: not waited for)
        self.servers = parallel.start(serve_stream, self.args, threads - 1)
        try:
            deadline = time.perf_counter() + STREAM_START_S
            while not await_started(self.state, ready, START_SPINS, parallel.BELL) \
                    and time.perf_counter() < deadline:
                pass  # (no GIL held inside: a server takes it at once, enters its kernel and lets it go)
        except BaseException:  # (an interrupt) the servers must not spin on
            self.close()
            raise

    def post(self, item: tuple) -> bool:
        """Queue a group of the exact bucket; False when its rows do not fit (it runs after the stream)."""
        members, _, selection, _ = item
        if self.full:
            return False
        rows = selection.listed()
        if self.used + rows.shape[0] > self.rows.shape[0]:
            self.full = True  # this group and every later one run after the stream
            return False
        g, t, m = len(self.items), self.tasks, len(members)
        self.rows[self.used:self.used + rows.shape[0]] = rows
        self.used += rows.shape[0]
        self.starts[g + 1] = self.used
        if m == 1:  # (most small filters: two item stores cost ~0.15 us, slices from a list ~1 us)
            self.task_group[t] = g
            self.task_query[t] = members[0]
        else:
            self.task_group[t:t + m] = g
            self.task_query[t:t + m] = members
        self.items.append((item, t))
        self.tasks += m
        self._publish(self.state, 0, self.tasks)
        return True

    def finish(self) -> list[Done]:
        from .kernels.exact import serve_stream

        self.close()
        serve_stream(*self.args)  # this thread takes what is left
        self.settle()
        return [_answered(self.task_query[:self.tasks], self.out_s, self.out_r)] if self.tasks else []

    def close(self) -> None:
        """Nothing more will be posted: the servers return once every task is taken (idempotent)."""
        self._publish(self.state, 2, 1)

    def settle(self) -> None:
        """After ``close``: returns once no server is scanning (idempotent). A server still queued is
        cancelled, or finds the stream closed and ends without writing; one that failed re-raises."""
        from .kernels.exact import await_servers

        await_servers(self.state)
        parallel.reap(self.servers)


def _selections(snap: Any, field: Any, groups: Sequence[tuple[Expr | None, list[int]]], threads: int,
                before_threads: Callable[[], None]) -> Iterator:
    """Each group's live rows, in order, as they are evaluated. On the calling thread while filters are
    cheap: evaluating a small one is mostly Python, and on threads that ran slower (the GIL passed back
    and forth: synthetic-1M ~0.1% band 6.7 -> 9.5 ms, arxiv ~1% 11.4 -> 13.4 ms). A large selection is
    mostly numpy that releases the GIL (scattering 100,000 row numbers into a mask on 1M rows: ~0.25 ms),
    so once one of the first ``SELECT_PROBE`` filters has taken ``SELECT_PARALLEL_S``, the rest run on
    threads, all of them before the next is yielded (synthetic-1M ~10% band, 2 threads: 82 -> 70 ms; its
    first filters are small lookups, then 0.25 ms ranges), once ``before_threads()`` has returned."""
    probe = SELECT_PROBE if threads > 1 else 0
    for i, (expr, _) in enumerate(groups[:probe]):
        start = time.perf_counter()
        selection = snap.live_selection(expr, field)
        slow = time.perf_counter() - start >= SELECT_PARALLEL_S
        yield selection
        if slow:  # a large one: the rest on threads
            before_threads()
            yield from parallel.run_all(lambda group: snap.live_selection(group[0], field), groups[i + 1:], threads)
            return
    for expr, _ in groups[probe:]:
        yield snap.live_selection(expr, field)


def _query_order(items: list) -> tuple[np.ndarray, np.ndarray]:
    """The bucket's queries, group by group, and the group of each."""
    order = np.fromiter((i for members, *_ in items for i in members), dtype=np.int64)
    group_of = np.repeat(np.arange(len(items), dtype=np.int64), [len(members) for members, *_ in items])
    return order, group_of


def _exact(store: Any, q: np.ndarray, items: list, k: int, threads: int) -> list[Done]:
    from .kernels.exact import scan_tasks

    lists = [sel.listed() for _, _, sel, _ in items]
    starts = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in lists], out=starts[1:])
    rows = np.concatenate(lists).astype(np.int64, copy=False) if lists else np.empty(0, np.int64)
    order, group_of = _query_order(items)
    queries = np.ascontiguousarray(q, dtype=np.float32)
    l2 = store.metric == "l2"
    if np.diff(starts)[group_of].sum() * store.dim < SERIAL_MAX_FLOATS:
        threads = 1  # a few hundred microseconds of scanning: waking a worker and sharing the GIL cost more
    out_s = np.full((q.shape[0], k), -np.inf, np.float32)
    out_r = np.full((q.shape[0], k), -1, np.int64)
    parallel.run_all(lambda span: scan_tasks(store.vectors, rows, starts, group_of, order, queries, k, l2, *span,
                                             out_s, out_r), parallel.chunks(len(order), threads), threads)
    return [_answered(order, out_s, out_r)]


def _answered(order: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> Done:
    """The exact bucket's one entry (split per group: ~1.5 us a filter): its queries ``order``, each once,
    whose hits the kernels wrote to their own rows of ``scores`` / ``rows`` (the whole batch's). Those are
    the batch's hits as they are when the bucket holds every query (``_assemble`` then copies nothing)."""
    if order.shape[0] == scores.shape[0]:
        return list(range(order.shape[0])), "exact", Hits(scores, rows)
    return order.tolist(), "exact", Hits(scores[order], rows[order])


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
    done, at = [], 0
    for members, plan, sel, _ in items:
        n = len(members)
        hits = planner_mod.completed(plan, Hits(scores[at:at + n], rows[at:at + n]), vectors=store.vectors,
                                    index_rows=store.index_rows, queries=q[members], k=k, selection=sel,
                                    metric=store.metric)
        done.append((members, plan.name, hits))
        at += n
    return done


def _rest(snap: Any, q: np.ndarray, items: list, k: int, params: planner_mod.SearchParams,
          threads: int) -> list[Done]:
    """Plans run one group at a time: on threads (FAISS single-threaded in each) when several."""
    def one(item: tuple, pool: bool) -> Done:
        members, plan, selection, store = item
        hits = planner_mod.run(plan, vectors=store.vectors, index=store.index, index_rows=store.index_rows,
                               queries=q[members], k=k, selection=selection, metric=store.metric,
                               config=params.config or snap.planner, threads=1 if pool else threads)
        return members, plan.name, hits

    if threads > 1 and len(items) > 1:
        def pooled(item: tuple) -> Done:
            with parallel.omp_threads(1):
                return one(item, True)
        with parallel.blas_threads(1):  # the groups are the parallelism: BLAS threads would oversubscribe
            return parallel.run_all(pooled, items, threads)
    with parallel.omp_threads(threads):
        return [one(item, False) for item in items]
