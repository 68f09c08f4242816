"""How many threads a search uses, and running work on them.

The thread count is chosen per call (``search(..., threads=N)``), per collection handle
(``Collection.threads``, or a non-zero ``PlannerConfig.threads``), or per process
(``vecdb.set_threads(N)``), the first one given in that order; by default every core this process may
use. ``threads=1`` runs everything on the calling thread (for callers that parallelise themselves).

Batches run serial, ``nogil`` numba kernels over chunks of queries on plain Python threads, not
numba's ``parallel=True`` layer: its fallback threading layer aborts when entered from several Python
threads, and a caller running searches from its own pool would do exactly that. FAISS' unfiltered
batch search uses its own OpenMP threads, limited per call with ``omp_threads``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .errors import InvalidParameterError

_process_threads: int | None = None


@functools.cache
def cpu_count() -> int:
    """The cores this process may run on (read once: a search asks every time)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(value: Any, what: str = "threads") -> int | None:
    """``value`` as a thread count (None = not set here); raises InvalidParameterError naming it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(f"{what} must be a positive integer or None; got {value!r}")
    return int(value)


def set_threads(n: int | None) -> None:
    """Process-wide default thread count for searches (None: every core)."""
    global _process_threads
    _process_threads = check_threads(n)


def get_threads() -> int:
    """The process-wide default thread count."""
    return _process_threads or cpu_count()


def resolve(*choices: int | None) -> int:
    """The first thread count given (None or 0 = not given), else the process-wide default."""
    for choice in choices:
        if choice:
            return int(choice)
    return get_threads()


@contextlib.contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """FAISS' OpenMP threads for calls made on this thread inside the block."""
    from .indexes._faiss import faiss

    if n > 1:
        quiet()  # their cores
    before = faiss.omp_get_max_threads()
    if before == n:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@functools.cache
def _blas() -> Any:
    """threadpoolctl's controller over the BLAS libraries loaded now (inspected once)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_blas_lock = threading.Lock()
_blas_users = 0
_blas_before: Any = None


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """BLAS (numpy's, FAISS') on one thread per call inside the block, for work this module spreads over
    its own threads (each running BLAS calls: BLAS' own threads would oversubscribe the cores). BLAS
    libraries keep one process-wide setting, so overlapping blocks (batches on several user threads)
    share it: the first sets it, the last one out restores what was there. ``n`` > 1 changes nothing."""
    global _blas_users, _blas_before
    if n > 1:
        quiet()  # their cores
        yield
        return
    with _blas_lock:
        if _blas_users == 0:
            _blas_before = _blas().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_before.restore_original_limits()
                _blas_before = None


def chunks(n: int, threads: int, *, min_size: int = 4, per_thread: int = 4) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``range(n)``: about ``per_thread`` per thread (so a slow chunk
    does not hold the others up), at least ``min_size`` items each."""
    if n <= 0:
        return []
    count = max(1, min(threads * per_thread, n // max(1, min_size)))
    bounds = [round(i * n / count) for i in range(count + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


LINGER_SPINS = 20_000  # pauses an idle pool thread spins for work before it sleeps (~0.5-1 ms), holding no GIL
BELL = np.zeros(1, np.int64)  # changed by every submit and by ``quiet``: ends the pool threads' spins


def quiet() -> None:
    """Pool threads stop spinning for work now (work was queued, or a plan spreads over FAISS' or BLAS'
    own threads and needs their cores). A pool thread's spin reads the change without the GIL; one
    lost to a kernel's ``fetch_add`` at the same instant changes the value all the same."""
    BELL[0] += 1


class _LingeringQueue(queue.SimpleQueue):
    """The pool's work queue. A thread that finds it empty spins ``LINGER_SPINS`` pauses first, without
    the GIL, and sleeps on it only after: batches come back to back (a benchmark's loop, a server's
    requests), and a sleeping thread woken through the kernel took ~50-150 us to start on the 2-core VM,
    against ~10 us for a spinning one (the stream of a batch's exact scans, ``batch._Stream``, waits
    for its server that long, of a ~1.5 ms call). OpenMP runtimes spin their idle threads the same
    way (GOMP_SPINCOUNT, KMP_BLOCKTIME). Only the pool's threads spin, one fewer than the cores."""

    def __init__(self) -> None:
        self.idle = 0  # threads in ``get``: taking work, spinning for it or asleep
        self._count = threading.Lock()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Work is queued without ringing: its submitter calls ``quiet`` once it can spare the GIL. The
        executor's exit sentinel (None, at shutdown and at the interpreter's exit) rings."""
        super().put(item, block, timeout)
        if item is None:
            quiet()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self._count:
            self.idle += 1
        try:
            if block and LINGER_SPINS > 0 and cpu_count() > 1:
                seen = int(BELL[0])
                try:
                    return super().get(False)
                except queue.Empty:
                    pass
                from .kernels.atomics import linger  # (here: importing vecdb does not import numba)

                linger(BELL, seen, LINGER_SPINS)
            return super().get(block, timeout)
        finally:
            with self._count:
                self.idle -= 1


class _Pool(ThreadPoolExecutor):
    def __init__(self, threads: int) -> None:
        super().__init__(threads, thread_name_prefix="vecdb")
        self.queue = self._work_queue = _LingeringQueue()  # (its threads start on the first submit: they take this one)


def idle_threads() -> int:
    """The pool's threads free to start work now, with no work queued ahead."""
    pool = _executor()
    return max(0, pool.queue.idle - pool.queue.qsize())


_pool: _Pool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()
_worker = threading.local()  # ``busy``: this thread is running a share of a ``run_all``


def _executor() -> _Pool:
    """The process's one pool of worker threads, one per core but the caller's (each call works on its own
    thread too), made on first use and again in a forked child (a fork copies the pool object but not its
    threads). A thread more would sleep on the queue beside one spinning there (``_LingeringQueue``), and
    waking it would take a core from the caller."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = _Pool(max(1, cpu_count() - 1)), os.getpid()
        return _pool


def run_all(fn: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    """``[fn(item) for item in items]``, on up to ``threads`` threads when there are several items.

    The calling thread works too, beside ``threads - 1`` workers of the process's pool (no threads are
    started per call: starting them cost more than the small batches they ran); each takes the next item
    until none is left. A ``run_all`` inside ``fn`` runs on its own thread only, so nested work never
    waits for pool threads that are waiting for it."""
    n = len(items)
    if threads <= 1 or n <= 1 or in_worker():
        return [fn(item) for item in items]
    out: list[Any] = [None] * n
    order = iter(range(n))
    take = threading.Lock()

    def share() -> None:
        was, _worker.busy = getattr(_worker, "busy", False), True
        try:
            while True:
                with take:
                    i = next(order, None)
                if i is None:
                    return
                try:
                    out[i] = fn(items[i])
                except BaseException:
                    with take:  # the others stop at their next item: the call fails anyway
                        for _ in order:
                            pass
                    raise
        finally:
            _worker.busy = was

    pool = _executor()
    helpers = [pool.submit(share) for _ in range(min(threads, n) - 1)]
    quiet()  # after the items are in: a spinning thread that stops finds one
    try:
        share()
    finally:
        for helper in helpers:  # every share ends before the caller goes on (or re-raises); one still
            if not helper.cancel():  # queued behind other callers' work has nothing left to take
                helper.exception()
    for helper in helpers:
        if not helper.cancelled():
            helper.result()
    return out


def in_worker() -> bool:
    """This thread is running pool work (a share of a ``run_all``, or a task ``start`` began): work it
    starts runs on this thread alone."""
    return getattr(_worker, "busy", False)


def start(fn: Callable[..., Any], args: tuple, count: int) -> list[Future]:
    """``fn(*args)`` on ``count`` of the pool's threads (at most one fewer than the cores: the caller
    keeps working on its own), started now; ``join`` waits for them. For kernels that share their work
    through their arguments (``kernels.exact.serve_stream``). A pool thread spinning for work takes
    these once the caller rings: ``quiet()``, or ``BELL`` from a kernel holding no GIL
    (``kernels.exact.await_started``: the thread then takes the GIL at once)."""
    def call() -> Any:
        was, _worker.busy = getattr(_worker, "busy", False), True
        try:
            return fn(*args)
        finally:
            _worker.busy = was

    pool = _executor()
    return [pool.submit(call) for _ in range(max(0, min(count, cpu_count() - 1)))]


def reap(tasks: Sequence[Future]) -> None:
    """``join`` without waiting for the tasks still running: those still queued are cancelled, the first
    error of those that ended re-raised. For kernels that tell their caller themselves when they are done
    with its arrays (``kernels.exact.await_servers``): what is left of such a task is returning."""
    for task in tasks:
        if not task.cancel() and task.done() and task.exception() is not None:
            raise task.exception()


def join(tasks: Sequence[Future]) -> None:
    """Wait for every task ``start`` began, cancelling those still queued (behind other callers' work),
    and re-raise the first error once all have ended."""
    error: BaseException | None = None
    for task in tasks:
        if task.cancel():
            continue
        try:
            task.result()
        except BaseException as exc:  # the others are still waited for
            error = error or exc
    if error is not None:
        raise error
