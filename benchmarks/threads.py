"""One thread count for every engine: vecdb, FAISS (OpenMP), BLAS (numpy's and faiss'), numba; hnswlib takes it
per call (``num_threads``) from the runner.

BLAS is limited through ``threadpoolctl`` when it is installed; otherwise through the ``*_set_num_threads``
entry points of any OpenBLAS already loaded in the process (found in ``/proc/self/maps``); otherwise
only the environment variables are set, which libraries loaded later will read.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_limiter = None
_warned = False


def _openblas_libs() -> list[ctypes.CDLL]:
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return []
    paths = sorted({line.split()[-1] for line in maps.read_text().splitlines()
                    if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    libs = []
    for path in paths:
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libs


def _set_openblas(n: int) -> bool:
    done = False
    for lib in _openblas_libs():
        for sym in ("openblas_set_num_threads", "openblas_set_num_threads64_",
                    "scipy_openblas_set_num_threads", "scipy_openblas_set_num_threads64_"):
            fn = getattr(lib, sym, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                done = True
                break
    return done


def set_threads(n: int) -> str:
    """Limit FAISS, BLAS and numba to ``n`` threads; returns how BLAS was limited (for the results)."""
    global _limiter, _warned
    n = max(1, int(n))
    for var in _ENV[:3]:
        os.environ[var] = str(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass
    try:
        import vecdb

        vecdb.set_threads(n)  # vecdb's process-wide default (engines also pass ``threads=`` per call)
    except ImportError:
        pass
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except (ImportError, ValueError):
        pass
    try:
        from threadpoolctl import threadpool_limits

        if _limiter is not None:
            _limiter.restore_original_limits()
        _limiter = threadpool_limits(limits=n)
        return "threadpoolctl"
    except ImportError:
        pass
    if _set_openblas(n):
        return "openblas-ctypes"
    if not _warned:
        log.warning("neither threadpoolctl nor a loaded OpenBLAS found: BLAS threads follow the environment only")
        _warned = True
    return "environment"


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
