"""Which device runs a batch: the GPU's fixed and transfer costs against the CPU's arithmetic.

A GPU search pays a fixed cost per call (kernel launches, stream syncs, the FAISS wrapper: ~0.1-0.3 ms)
and the host-device copies of the queries, the results and, for a gathered exact scan, the matching
rows; its arithmetic is ~100x the CPU's. So one query (or a few) is faster on the CPU, and large
batches on the GPU. ``place`` compares the two estimates for one batch; ``DeviceCosts`` holds the
constants (defaults: an H100/H200-class GPU on PCIe, two to sixteen CPU cores with AVX2/AVX-512),
to be replaced by the figures ``benchmarks/gpu_check.py`` measures.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol, runtime_checkable

from ..errors import DeviceError
from .base import supports
from .device import DEVICES, GPU_MAX_K, gpu_count


@dataclasses.dataclass(frozen=True)
class DeviceCosts:
    """Seconds per GPU call, host-device bandwidth, and GPU / CPU arithmetic rates (flop/s)."""

    gpu_call_s: float = 2e-4
    transfer_bytes_per_s: float = 12e9
    gpu_flops: float = 2e13
    cpu_flops: float = 1e11

    def gpu_seconds(self, nq: int, flops_per_query: float, bytes_moved: float) -> float:
        return self.gpu_call_s + bytes_moved / self.transfer_bytes_per_s + nq * flops_per_query / self.gpu_flops

    def cpu_seconds(self, nq: int, flops_per_query: float) -> float:
        return nq * flops_per_query / self.cpu_flops


DEFAULT_COSTS = DeviceCosts()


@runtime_checkable
class DeviceIndex(Protocol):
    """An index that runs on either device per call: ``search(..., device="cpu"|"gpu")``, and says what a
    query costs so the planner can place a batch. ``device`` is where it lives ("gpu": a GPU copy exists)."""

    device: str
    dim: int

    def work_per_query(self, k: int, params: Mapping[str, Any]) -> float:
        """Floating-point operations one query costs (the same on either device)."""


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
        return "gpu", "device='gpu' asked for"
    if not on_gpu or not runs_there:
        return "cpu", "the index lives on the CPU" if not on_gpu else f"plan {plan!r} runs on the CPU"
    if max(k, fetch or 0) > GPU_MAX_K:
        return "cpu", f"k={max(k, fetch or 0)} > FAISS' GPU limit {GPU_MAX_K}"
    costs = costs or DEFAULT_COSTS
    out = fetch or k
    if plan == "exact":
        flops = 2.0 * matches * dim
        moved = 4.0 * (matches * dim + nq * dim) + 12.0 * nq * out
    else:
        flops = float(index.work_per_query(out, {}))
        moved = 4.0 * nq * dim + 12.0 * nq * out
    gpu, cpu = costs.gpu_seconds(nq, flops, moved), costs.cpu_seconds(nq, flops)
    device = "gpu" if gpu < cpu else "cpu"
    return device, f"estimated {nq} queries: GPU {gpu * 1e3:.3g} ms vs CPU {cpu * 1e3:.3g} ms"
