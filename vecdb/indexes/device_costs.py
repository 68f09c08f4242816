"""Which device runs a batch: the GPU's fixed and transfer costs against the CPU's arithmetic.

A GPU search pays a fixed cost per call (kernel launches, stream syncs, the FAISS wrapper) and the
host-device copies of the queries, the results and, for a gathered exact scan, the matching rows
(gathered on the host first); its arithmetic is ~100x one CPU core's. The CPU spreads a batch's queries
over its threads, so one query runs on one core. Hence one query (or a few) is faster on the CPU and
large batches on the GPU. ``place`` compares the two estimates for one batch; ``DeviceCosts`` holds
the constants, read off ``benchmarks/gpu_check.py`` on an H200 machine (16 cores;
``benchmarks/reports/gpu-h200/``): ~0.15 ms a GPU call, ~3 GB/s to gather rows and copy them over,
~2e13 flop/s of GPU brute force, a k-selection that walks ~2.5e8 rows/s for one query (4 ms over 1M
rows), ~1e10 flop/s per CPU thread scanning rows.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Protocol, runtime_checkable

from ..errors import DeviceError
from ..parallel import get_threads
from .base import supports
from .device import DEVICES, GPU_MAX_K, gpu_count


@dataclasses.dataclass(frozen=True)
class DeviceCosts:
    """What a batch costs on each device. GPU: a fixed cost per call, host-to-GPU bytes a second (gathering
    included), brute-force arithmetic (flop/s) slowed by the k-selection as its ``k`` grows
    (x ``1 + k / gpu_select_k``), and a floor: one query's k-selection walks its rows in one thread
    block (``gpu_select_rows_per_s``, x ``1 + k / gpu_select_k_floor``), so a small batch over many rows
    waits for that however few flops it has. CPU: one thread's flop/s, and the threads a batch spreads
    over (None: ``vecdb.get_threads()``), each query also paying a fixed cost of its own (planning its
    scan, selecting, the result: ~30 us of a thread at 16 threads, 10,000 queries over 32 rows)."""

    gpu_call_s: float = 1.5e-4
    transfer_bytes_per_s: float = 3e9
    gpu_flops: float = 2e13
    gpu_select_k: float = 53.0
    gpu_select_rows_per_s: float = 2.5e8
    gpu_select_k_floor: float = 850.0
    cpu_flops: float = 1e10
    cpu_query_s: float = 3e-5
    cpu_threads: int | None = None

    def gpu_seconds(self, nq: int, flops_per_query: float, bytes_moved: float, *, k: int = 10,
                    rows: int = 0) -> float:
        """``rows``: the rows each query's k-selection runs over (brute force; 0: an index's search)."""
        work = nq * flops_per_query * (1 + k / self.gpu_select_k) / self.gpu_flops
        floor = rows * (1 + k / self.gpu_select_k_floor) / self.gpu_select_rows_per_s
        return self.gpu_call_s + bytes_moved / self.transfer_bytes_per_s + max(work, floor)

    def cpu_seconds(self, nq: int, flops_per_query: float) -> float:
        threads = max(1, min(nq, self.cpu_threads or get_threads()))
        return nq * (self.cpu_query_s + flops_per_query / self.cpu_flops) / threads


DEFAULT_COSTS = DeviceCosts()


@runtime_checkable
class DeviceIndex(Protocol):
    """An index that runs on either device per call: ``search(..., device="cpu"|"gpu")``, and says what a
    query costs so the planner can place a batch. ``device`` is where it lives ("gpu": a GPU copy exists)."""

    device: str
    dim: int

    def work_per_query(self, k: int, params: Mapping[str, Any]) -> float:
        """Floating-point operations one query costs (the same on either device)."""


@runtime_checkable
class ResidentRows(Protocol):
    """An index that can keep its rows on the GPU (``gpu_rows``: FAISS' GPU flat index over rows
    ``0..ntotal-1``, None without a GPU copy). The exact plan then searches them in place, over-fetching
    past the rows its filter rejects, instead of copying the passing rows over for each batch."""

    gpu_rows: Any
    ntotal: int

    def search_resident(self, queries: Any, k: int) -> Any:
        """``Hits`` of the ``k`` nearest rows among all of them, searched on the GPU."""


OVERFETCH = 2.0  # the resident exact scan fetches OVERFETCH x the rows k passing ones take at the filter's share


def exact_on_gpu(index: Any, *, nq: int, k: int, matches: int, dim: int,
                 costs: DeviceCosts | None = None) -> tuple[float, str, int]:
    """``(seconds, strategy, fetch)`` for the exact plan's batch on the GPU: ``"gathered"`` copies the
    ``matches`` passing rows into one brute-force call; ``"resident"`` searches the index's GPU copy of
    every row for ``fetch`` hits and keeps the passing ones (the queries left short are gathered), when
    the index has one, ``fetch`` is within FAISS' GPU limit and the estimate is lower."""
    costs = costs or DEFAULT_COSTS
    replies = 4.0 * nq * dim + 12.0 * nq * k
    gathered = costs.gpu_seconds(nq, 2.0 * matches * dim, 4.0 * matches * dim + replies, k=k, rows=matches)
    if not supports(index, ResidentRows) or index.gpu_rows is None:
        return gathered, "gathered", k
    n = index.ntotal
    fetch = k if matches >= n else min(n, math.ceil(k * n / max(matches, 1) * OVERFETCH) + k)
    if fetch > GPU_MAX_K:
        return gathered, "gathered", k
    resident = costs.gpu_seconds(nq, 2.0 * n * dim, 4.0 * nq * dim + 12.0 * nq * fetch, k=fetch, rows=n)
    return (resident, "resident", fetch) if resident < gathered else (gathered, "gathered", k)


def check_requested(requested: str) -> str:
    if requested not in DEVICES:
        from ..errors import InvalidParameterError

        raise InvalidParameterError(f"unknown device {requested!r}; expected one of {', '.join(DEVICES)}")
    return requested


def place(*, plan: str, index: Any, nq: int, k: int, matches: int, dim: int, requested: str = "auto",
          fetch: int | None = None, costs: DeviceCosts | None = None) -> tuple[str, str]:
    """``(device, why)`` for one batch of ``nq`` queries under plan ``plan``. ``requested="gpu"`` on an
    index with no GPU copy raises ``DeviceError``; ``"auto"`` takes the GPU when the estimate says it is
    faster. ``exact`` on the GPU gathers the ``matches`` passing rows into one brute-force call."""
    check_requested(requested)
    if requested == "cpu":
        return "cpu", "device='cpu' asked for"
    on_gpu = index is not None and getattr(index, "device", "cpu") == "gpu"
    runs_there = plan == "exact" or (plan in ("index", "post_filter") and supports(index, DeviceIndex))
    if requested == "gpu":
        if not on_gpu:
            where = "FAISS sees no GPU" if gpu_count() == 0 else \
                f"the index ({index.kind if index is not None else 'none'}) was built on the CPU"
            raise DeviceError(f"device='gpu' asked for, but {where}; build it with device='gpu' or 'auto'")
        if not runs_there:
            raise DeviceError(f"plan {plan!r} has no GPU form; use device='auto' or 'cpu'")
        if max(k, fetch or 0) > GPU_MAX_K:
            raise DeviceError(f"k={max(k, fetch or 0)} exceeds FAISS' GPU limit of {GPU_MAX_K}")
        if plan == "exact":
            _, strategy, _ = exact_on_gpu(index, nq=nq, k=k, matches=matches, dim=dim, costs=costs)
            return "gpu", f"device='gpu' asked for ({strategy} rows)"
        return "gpu", "device='gpu' asked for"
    if not on_gpu or not runs_there:
        return "cpu", "the index lives on the CPU" if not on_gpu else f"plan {plan!r} runs on the CPU"
    if max(k, fetch or 0) > GPU_MAX_K:
        return "cpu", f"k={max(k, fetch or 0)} > FAISS' GPU limit {GPU_MAX_K}"
    costs = costs or DEFAULT_COSTS
    out, how = fetch or k, ""
    if plan == "exact":
        flops = 2.0 * matches * dim
        gpu, strategy, _ = exact_on_gpu(index, nq=nq, k=k, matches=matches, dim=dim, costs=costs)
        how = f" ({strategy} rows)"
    else:
        flops = float(index.work_per_query(out, {}))
        gpu = costs.gpu_seconds(nq, flops, 4.0 * nq * dim + 12.0 * nq * out, k=out)
    cpu = costs.cpu_seconds(nq, flops)
    device = "gpu" if gpu < cpu else "cpu"
    return device, f"estimated {nq} queries: GPU{how} {gpu * 1e3:.3g} ms vs CPU {cpu * 1e3:.3g} ms"
