"""``threads=``: batches on every core give the same answers as on one.

Exact plans must return identical ids and scores for any thread count; the filtered graph walk runs the
same per-query arithmetic whatever thread a query lands on, so it must too. Speed is measured in the
benchmark runner, never here.
"""

from __future__ import annotations

import concurrent.futures
import time

import numpy as np
import pytest

import vecdb
from vecdb.errors import FilterError, InvalidParameterError
from vecdb.filters import bind, parse

from .conftest import small_table


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    rng = np.random.default_rng(7)
    n, dim = 4000, 24
    x = rng.normal(size=(n, dim)).astype(np.float32)
    c = vecdb.create(tmp_path_factory.mktemp("threads") / "c.vdb", dim=dim, metric="l2")
    c.add(x, small_table(rng, n))
    c.build_index("hnsw", M=8, ef_construction=64)
    c.add(rng.normal(size=(200, dim)).astype(np.float32), small_table(rng, 200))  # a tail beside the index
    return c


FILTERS = [None, "year >= 2020", "tag = 'a'", "flag", "year < 2003", "price > 14 AND tag = 'b'", "year = 2010",
           "tag IN ('a', 'b')", "price < 0", "'c' IN labels"]


def _batch(rng: np.random.Generator, nq: int, dim: int):
    q = rng.normal(size=(nq, dim)).astype(np.float32)
    where = [FILTERS[i % len(FILTERS)] for i in rng.permutation(nq)]
    return q, where


@pytest.mark.parametrize("plan", ["auto", "exact", "filtered_graph"])
def test_same_results_for_any_thread_count(coll, plan):
    c = coll
    q, where = _batch(np.random.default_rng(1), 300, c.dim)
    extra = {} if plan == "auto" else {"plan": plan}
    base = c.search(q, 10, where=where, threads=1, **extra)
    for threads in (2, 3, 8):
        other = c.search(q, 10, where=where, threads=threads, **extra)
        np.testing.assert_array_equal(other.ids, base.ids)
        np.testing.assert_array_equal(other.scores, base.scores)
        assert other.plans == base.plans


def test_filters_evaluated_on_threads_answer_the_same(coll, monkeypatch):
    """When one of the first filters of a batch is slow to evaluate (a large selection), the rest are
    evaluated on threads: the same selections, the same answers, in query order."""
    from vecdb import batch

    c = coll
    q, where = _batch(np.random.default_rng(3), 200, c.dim)
    where = [w if w is None else f"{w} OR year = {1990 + i % 30}" for i, w in enumerate(where)]  # many filters
    base = c.search(q, 10, where=where, threads=1)
    calls = []
    real = batch.parallel.run_all
    monkeypatch.setattr(batch, "SELECT_PARALLEL_S", 0.0)
    monkeypatch.setattr(batch.parallel, "run_all", lambda fn, items, threads: calls.append(len(items)) or
                        real(fn, items, threads))
    other = c.search(q, 10, where=where, threads=2)
    assert calls and calls[0] == len(set(where)) - 1  # the first took "long": the rest on threads
    np.testing.assert_array_equal(other.ids, base.ids)
    np.testing.assert_array_equal(other.scores, base.scores)
    assert other.plans == base.plans


@pytest.mark.parametrize("plan", ["exact", "filtered_graph"])
def test_batch_equals_one_query_at_a_time(coll, plan):
    """A batch (kernels over chunks of queries, many filters per call; the graph walk reading the
    filters packed into bits) answers as single calls do (one filter, a bool mask)."""
    c = coll
    q, where = _batch(np.random.default_rng(2), 60, c.dim)
    batch = c.search(q, 10, where=where, plan=plan, threads=2)
    for i in range(len(q)):
        one = c.search(q[i], 10, where=where[i], plan=plan, threads=1)
        np.testing.assert_array_equal(one.ids[0], batch.ids[i])
        np.testing.assert_allclose(one.scores[0], batch.scores[i], rtol=1e-5)


def test_batch_groups_queries_by_parsed_filter():
    """Equal filters written differently (two strings, a dict, an Expr) are one group; members ascend."""
    from vecdb.collection import _groups

    where = ["year = 2001", None, "year=2001", {"eq": ["year", 2001]}, "tag = 'a'", parse("year = 2001"), None,
             "year = 2001"]
    groups = _groups(where, len(where))
    assert groups == {parse("year = 2001"): [0, 2, 3, 5, 7], None: [1, 6], parse("tag = 'a'"): [4]}
    with pytest.raises(InvalidParameterError):
        _groups(where, len(where) + 1)


def _many_filters(rng: np.random.Generator, nq: int) -> list[str]:
    """One narrow filter per query mostly (exact plans), ~90 distinct: enough groups for the stream."""
    return [f"year = {2000 + int(rng.integers(0, 25))} AND tag = '{'abcd'[int(rng.integers(0, 4))]}'"
            if rng.random() < 0.9 else "price > 1e9" for _ in range(nq)]


@pytest.fixture
def streams(monkeypatch):
    """Every ``_Stream`` a batch starts, kept to look at after it ended (a stream for any amount of
    exact work: these scans are small; one stream a batch: a filter that a busy machine makes slow does
    not turn the probe to threads, which would finish the stream and start another)."""
    from vecdb import batch

    made = []
    monkeypatch.setattr(batch, "STREAM_MIN_FLOATS", 0)
    monkeypatch.setattr(batch, "SELECT_PARALLEL_S", float("inf"))

    class Spy(batch._Stream):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(batch, "_Stream", Spy)
    return made


@pytest.mark.parametrize("stream_rows", [1 << 21, 3000])
def test_streamed_exact_bucket_answers_as_one_thread(coll, streams, monkeypatch, stream_rows):
    """Batches of many small filters scan their exact groups on other threads while the rest are still
    being planned (``batch._Stream``, ``kernels.exact.serve_stream``): identical ids and scores to one
    thread, for any thread count; groups past the stream's row buffer run after it, the same."""
    from vecdb import batch

    monkeypatch.setattr(batch, "STREAM_ROWS", stream_rows)
    c = coll
    rng = np.random.default_rng(11)
    q = rng.normal(size=(400, c.dim)).astype(np.float32)
    where = _many_filters(rng, len(q))
    base = c.search(q, 10, where=where, threads=1)
    assert not streams
    for threads in (2, 3, 8):
        other = c.search(q, 10, where=where, threads=threads)
        np.testing.assert_array_equal(other.ids, base.ids)
        np.testing.assert_array_equal(other.scores, base.scores)
        assert other.plans == base.plans
    assert len(streams) == 3 and all(s.tasks > 0 for s in streams)
    if stream_rows < 1 << 21:
        assert all(s.used <= stream_rows and s.tasks < len(q) for s in streams)  # some ran after the stream
    for s in streams:  # every server returned: the stream was closed and all its tasks taken
        assert s.state[2] == 1 and s.state[1] == s.state[0] == s.tasks
        assert s.state[4] == s.state[3] <= len(s.servers) + 1  # all that started (the caller too) returned
        finished, pending = concurrent.futures.wait(s.servers, timeout=30)
        assert not pending and all(server.cancelled() or server.exception() is None for server in finished)


def test_a_probe_turning_to_threads_finishes_the_stream_first(coll, streams, monkeypatch):
    """The stream starts after the first group; when the probe then finds a slow filter (every one, here)
    and evaluates the rest on threads, that stream is finished first and another starts once they are
    evaluated: the same answers as one thread, every stream closed with all its tasks taken."""
    from vecdb import batch

    monkeypatch.setattr(batch, "SELECT_PARALLEL_S", 0.0)
    c = coll
    rng = np.random.default_rng(13)
    q = rng.normal(size=(300, c.dim)).astype(np.float32)
    where = _many_filters(rng, len(q))
    base = c.search(q, 10, where=where, threads=1)
    other = c.search(q, 10, where=where, threads=2)
    np.testing.assert_array_equal(other.ids, base.ids)
    np.testing.assert_array_equal(other.scores, base.scores)
    assert len(streams) == 2
    first, second = streams
    assert len(first.items) == 1 and first.tasks == len(first.items[0][0][0])  # the first group, alone
    assert second.tasks + first.tasks == sum(p == "exact" for p in other.plans)
    for s in streams:
        assert s.state[2] == 1 and s.state[1] == s.state[0] == s.tasks


def test_a_failing_filter_mid_batch_closes_the_stream(coll, streams):
    """A filter that fails while the stream is scanning (an unknown column, planned after it started):
    the error reaches the caller, the stream's threads return, and the next batch answers."""
    c = coll
    rng = np.random.default_rng(12)
    q = rng.normal(size=(300, c.dim)).astype(np.float32)
    where = _many_filters(rng, len(q))
    where[-1] = "no_such_column = 3"
    with pytest.raises(FilterError):
        c.search(q, 10, where=where, threads=2)
    assert streams and streams[0].state[2] == 1
    finished, pending = concurrent.futures.wait(streams[0].servers, timeout=30)
    assert not pending
    where[-1] = "price > 1e9"
    np.testing.assert_array_equal(c.search(q, 10, where=where, threads=2).ids,
                                  c.search(q, 10, where=where, threads=1).ids)


def test_plans_are_kept_per_snapshot_and_options(tmp_path, monkeypatch):
    """Batches on one snapshot reuse the plans chosen for the same counts and options (``Snapshot.plans``):
    each kept plan is the one the planner chooses afresh, other options get their own, a new version
    starts with none, and the answers are those of a handle that never kept any."""
    from vecdb import batch
    from vecdb.filters.attribute_index import RowSet

    rng = np.random.default_rng(21)
    n, dim = 3000, 16
    c = vecdb.create(tmp_path / "c.vdb", dim=dim, metric="l2")
    c.add(rng.normal(size=(n, dim)).astype(np.float32), small_table(rng, n))
    c.build_index("hnsw", M=8, ef_construction=64)
    q = rng.normal(size=(300, dim)).astype(np.float32)
    where = [FILTERS[i % len(FILTERS)] for i in range(200)] + _many_filters(rng, 100)

    def fresh(**options):  # a handle of its own: no plans kept before
        return vecdb.open(tmp_path / "c.vdb").search(q, 10, where=where, threads=2, **options)

    first = c.search(q, 10, where=where, threads=2)
    snap = c.snapshot
    kept = dict(snap.plans)
    assert kept
    store = snap.fields[next(iter(snap.fields))].reader
    for (options, _, k, matches, nq, deleted_only, unfiltered), plan in kept.items():
        selection = None if unfiltered else RowSet(snap.stored, rows=np.arange(matches))
        assert plan == store.choose(snap, k, selection, matches, store.search_params({}), deleted_only=deleted_only,
                                    nq=nq)
    again = c.search(q, 10, where=where, threads=2)
    assert snap.plans == kept  # the second batch chose nothing new
    base = fresh()
    for res in (first, again):
        np.testing.assert_array_equal(res.ids, base.ids)
        assert res.plans == base.plans
    wide = c.search(q, 10, where=where, threads=2, ef=200)  # other options: plans of their own
    assert len(snap.plans) > len(kept)
    np.testing.assert_array_equal(wide.ids, fresh(ef=200).ids)
    c.delete(c.snapshot.ids[:1500])  # a new version: other counts of live rows, no plans yet
    assert not c.snapshot.plans
    after, base = c.search(q, 10, where=where, threads=2), fresh()
    np.testing.assert_array_equal(after.ids, base.ids)
    assert after.plans == base.plans
    monkeypatch.setattr(batch, "PLANS_KEPT", 4)  # bounded: begun again once full
    c.search(q, 10, where=where, threads=2, ef=300)
    assert len(c.snapshot.plans) < len(kept) + 5


def test_exact_batch_matches_the_oracle(coll):
    c = coll
    snap = c.snapshot
    q, where = _batch(np.random.default_rng(3), 120, c.dim)
    res = c.search(q, 5, where=where, plan="exact", threads=4)
    x = snap.store.vectors
    table = snap.table
    for i in range(len(q)):
        mask = np.ones(snap.stored, bool) if where[i] is None else \
            np.asarray(bind(parse(where[i]), table.schema).evaluate(table), dtype=bool)
        rows = np.flatnonzero(mask & snap.live)
        d = ((x[rows] - q[i]) ** 2).sum(axis=1)
        want = snap.ids[rows[np.lexsort((rows, d))[:5]]]
        assert list(res.ids[i][: len(want)]) == list(want)


def test_thread_settings(coll):
    c = coll
    q = np.zeros((3, c.dim), np.float32)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(InvalidParameterError, match="threads"):
            c.search(q, 3, threads=bad)
        with pytest.raises(InvalidParameterError, match="threads"):
            c.threads = bad
        with pytest.raises(InvalidParameterError, match="threads"):
            vecdb.set_threads(bad)
    c.threads = 1
    assert c.threads == 1
    c.search(q, 3, where=["flag", "tag = 'a'", None])
    c.threads = None
    vecdb.set_threads(2)
    try:
        assert vecdb.get_threads() == 2
        c.search(q, 3, where=["flag", "tag = 'a'", None])
    finally:
        vecdb.set_threads(None)
    assert vecdb.get_threads() >= 1
    with pytest.raises(InvalidParameterError, match="threads"):
        c.search(q, 3, nonsense=1)  # the accepted options listed include threads


def test_footprint_reports_parts_on_disk_and_resident(coll):
    foot = coll.footprint()
    for part in ("vectors", "index", "attributes", "attribute indexes", "ids and deletions", "total", "process"):
        assert part in foot
    assert foot["index"]["on_disk"] > 0 and foot["vectors"]["on_disk"] > 0
    assert foot["total"]["on_disk"] == sum(v["on_disk"] for k, v in foot.items() if k not in ("total", "process"))
    # two segments (rows added after the index): the vectors are held in memory, all resident
    assert foot["vectors"]["resident"] == coll.snapshot.store.vectors.nbytes


def test_run_all_order_errors_nesting_and_fork():
    """The process's worker pool: results in item order; an error reaches the caller after every share
    ended; a ``run_all`` inside one runs on its own thread (no deadlock); a forked child gets a pool of
    its own. In a subprocess, so a deadlock fails the test by its timeout instead of hanging the suite."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import multiprocessing as mp, threading, time
        from vecdb import parallel
        assert parallel.run_all(lambda i: i * i, list(range(100)), 4) == [i * i for i in range(100)]
        seen = []
        def boom(i):
            time.sleep(0.001)
            seen.append(i)
            if i == 7:
                raise ValueError("item 7")
            return i
        try:
            parallel.run_all(boom, list(range(40)), 3)
            raise SystemExit("no error")
        except ValueError as exc:
            assert str(exc) == "item 7"
        n = len(seen); time.sleep(0.05); assert len(seen) == n, "a share ran on after the error was raised"
        nested = parallel.run_all(lambda i: sum(parallel.run_all(lambda j: i * j, list(range(10)), 4)),
                                  list(range(20)), 4)
        assert nested == [45 * i for i in range(20)]
        callers = [threading.Thread(target=lambda: parallel.run_all(lambda i: i, list(range(500)), 2)) for _ in range(6)]
        [t.start() for t in callers]; [t.join(30) for t in callers]
        assert not any(t.is_alive() for t in callers)
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as p:
            assert p.apply(parallel.run_all, (abs, [-1, -2, -3], 2)) == [1, 2, 3]
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_pool_threads_spin_for_work_then_sleep_and_leave_at_exit():
    """The pool keeps one thread fewer than the cores (each call works on its own thread too). An idle
    one spins for work a moment (``LINGER_SPINS``) before it sleeps: work queued while it spins, after
    it slept and with spinning off all runs; ``quiet`` ends a spin that would last minutes; work queued
    behind it is not counted free by ``idle_threads``; the process leaves at once with a thread
    spinning. In a subprocess: a hang fails the test by its timeout instead of hanging the suite."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import threading, time
        from vecdb import parallel
        cores = parallel.cpu_count()
        pool = parallel._executor()
        assert pool._max_workers == max(1, cores - 1)
        square = lambda i: i * i
        for _ in range(300):  # each call's work queued while the last one's thread still spins
            assert parallel.run_all(square, list(range(8)), 2) == [i * i for i in range(8)]
        deadline = time.time() + 10
        while parallel.idle_threads() < len(pool._threads) and time.time() < deadline:
            time.sleep(0.001)
        assert parallel.idle_threads() == len(pool._threads) >= 1
        time.sleep(0.05)  # past any spin: asleep
        assert parallel.run_all(square, list(range(8)), 2) == [i * i for i in range(8)]
        parallel.LINGER_SPINS = 0
        assert parallel.run_all(square, list(range(8)), 2) == [i * i for i in range(8)]
        if cores > 1:
            parallel.LINGER_SPINS = 10 ** 10  # minutes: only the bell ends it
            parallel.run_all(square, list(range(8)), 2)
            time.sleep(0.01)  # the thread spinning now
            release = threading.Event()
            blocker = pool.submit(release.wait)
            parallel.quiet()
            deadline = time.time() + 10
            while parallel.idle_threads() and time.time() < deadline:
                time.sleep(0.001)
            assert parallel.idle_threads() == 0  # taken by the blocker: no thread free
            queued = pool.submit(square, 3)
            assert parallel.idle_threads() == 0  # one queued behind it is not free either
            release.set()
            parallel.quiet()
            assert blocker.result(timeout=10) and queued.result(timeout=10) == 9
            parallel.run_all(square, list(range(8)), 2)  # spinning again as the process exits
        print("ok", flush=True)
    """)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
    assert time.perf_counter() - start < 60  # the exit did not wait out the spin


def test_a_stream_waits_only_for_free_servers(coll, streams, monkeypatch):
    """A stream waits for its servers to enter their kernel only when pool threads are free to take
    them (``parallel.idle_threads``): with every pool thread busy, its server is queued behind that
    work and the batch goes on without it (the planning thread scans), with the same answers."""
    import threading

    from vecdb import parallel
    from vecdb.kernels import exact

    waited = []
    real = exact.await_started

    def spy(state, servers, spins, bell):
        waited.append(servers)
        return real(state, servers, spins, bell)

    monkeypatch.setattr(exact, "await_started", spy)
    rng = np.random.default_rng(17)
    q = rng.normal(size=(300, coll.dim)).astype(np.float32)
    where = _many_filters(rng, len(q))
    base = coll.search(q, 10, where=where, threads=1)
    pool = parallel._executor()
    release = threading.Event()
    blockers = [pool.submit(release.wait) for _ in range(pool._max_workers)]
    parallel.quiet()
    try:
        deadline = time.time() + 10
        while parallel.idle_threads() and time.time() < deadline:
            time.sleep(0.001)
        assert parallel.idle_threads() == 0
        busy = coll.search(q, 10, where=where, threads=2)
    finally:
        release.set()
        parallel.quiet()
    assert all(b.result(timeout=10) for b in blockers)
    np.testing.assert_array_equal(busy.ids, base.ids)
    np.testing.assert_array_equal(busy.scores, base.scores)
    assert streams and waited and set(waited) == {0}
    for s in streams:  # its server ran once the pool was free, found the stream closed, and wrote nothing
        concurrent.futures.wait(s.servers, timeout=30)
        assert s.state[2] == 1 and s.state[1] == s.state[0] == s.tasks and s.state[4] == s.state[3]
    waited.clear()
    time.sleep(0.01)
    free = coll.search(q, 10, where=where, threads=2)
    np.testing.assert_array_equal(free.ids, base.ids)
    if parallel.cpu_count() > 1:
        assert waited and set(waited) == {1}


def test_blas_threads_overlapping_blocks_restore_the_setting():
    """Batches on several user threads limit BLAS at overlapping times: a block ending while another is
    open leaves the limit in place, and the last one out restores what was there before the first."""
    import threading

    from threadpoolctl import threadpool_info

    from vecdb import parallel

    def blas_threads() -> list[int]:  # process-wide settings only (an OpenMP build keeps one per thread)
        return [lib["num_threads"] for lib in threadpool_info()
                if lib["user_api"] == "blas" and lib.get("threading_layer") != "openmp"]

    before = blas_threads()
    with parallel.blas_threads(1):
        assert all(n == 1 for n in blas_threads())
        def elsewhere() -> None:
            with parallel.blas_threads(1):
                pass

        other = threading.Thread(target=elsewhere)
        with parallel.blas_threads(1):  # a second block, opened and closed inside the first
            pass
        other.start()
        other.join(10)
        assert all(n == 1 for n in blas_threads()), "an inner block's end restored the setting too early"
    assert blas_threads() == before
    with parallel.blas_threads(2):  # more than one: nothing changes
        assert blas_threads() == before


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 4001])
def test_batch_masks_pack_like_numpy(n):
    """The graph walk's stacked masks: ``pack_bits`` is ``np.packbits(..., bitorder="little")`` of the
    first ``n`` rows (the index's) of a longer mask (rows past the index: the tail)."""
    from vecdb.kernels.masks import pack_bits

    mask = np.random.default_rng(n).random(n + 13) < 0.4
    out = np.full((n + 7) // 8, 0xAA, np.uint8)
    pack_bits(mask, n, out)
    np.testing.assert_array_equal(out, np.packbits(mask[:n], bitorder="little"))


def test_grouped_walk_refuses_masks_of_the_wrong_shape(coll):
    """The grouped walk reads its masks without bounds checks: a mask that is neither one bool per
    indexed row nor those rows packed into bits is refused before the kernel runs."""
    index = next(view for view in coll.snapshot.fields["vector"].views.values() if view.index is not None).index
    n = index.ntotal
    q = np.zeros((1, coll.dim), np.float32)
    args = (np.zeros(1, np.int64), np.full(1, 16), np.full(1, n), np.full(1, 16))
    for masks in (np.ones((1, n), np.uint8), np.ones((1, (n + 7) // 8), bool), np.ones((1, n), np.int32),
                  np.ones(n, bool)):
        with pytest.raises(ValueError, match="masks of shape"):
            index.search_filtered_graph_grouped(q, 5, masks, *args)
    hits, complete = index.search_filtered_graph_grouped(q, 5, np.full((1, (n + 7) // 8), 0xFF, np.uint8), *args)
    assert complete.all() and (hits.rows >= 0).all()


def test_atomics_lose_no_update_between_threads():
    """``kernels.atomics`` as the stream uses them, from several threads without the GIL: every
    ``fetch_add`` counted, every slot taken by exactly one ``compare_exchange``."""
    import numba as nb

    from vecdb import parallel
    from vecdb.kernels.atomics import compare_exchange, fetch_add, load_acquire

    @nb.njit(nogil=True)
    def work(state, owner, me, n):
        for _ in range(n):
            fetch_add(state, 0, 1)
        while True:  # take slots one at a time until none is left
            slot = load_acquire(state, 1)
            if slot >= owner.shape[0]:
                return
            if compare_exchange(state, 1, slot, slot + 1):
                owner[slot] += me + 1  # a slot taken twice would hold a sum

    state = np.zeros(2, np.int64)
    owner = np.zeros(200_000, np.int64)
    servers = parallel.start(work, (state, owner, 1, 100_000), 1)
    work(state, owner, 0, 100_000)
    parallel.join(servers)
    assert state[0] == 100_000 * (1 + len(servers))
    assert state[1] == owner.shape[0] and set(np.unique(owner)) <= {1, 2}
