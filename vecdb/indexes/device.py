"""The device seam: where an index runs (CPU, or a GPU through FAISS' GPU build when one is present).

Every index takes ``device="auto"|"cpu"|"gpu"``. ``auto`` means a GPU when FAISS sees one, else the CPU;
``gpu`` without a visible GPU falls back to the CPU with a warning, so code written for a GPU machine
runs unchanged everywhere (same API, same results up to floating-point order).
"""

from __future__ import annotations

import logging

from ._faiss import faiss

from ..errors import InvalidParameterError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")


def gpu_count() -> int:
    """GPUs visible to FAISS (0 with the CPU build, which has no ``get_num_gpus`` or returns 0)."""
    get = getattr(faiss, "get_num_gpus", None)
    try:
        return int(get()) if get is not None else 0
    except RuntimeError:  # a GPU build on a machine whose driver is missing
        return 0


def resolve_device(requested: str, *, supported_on_gpu: bool = True) -> str:
    """Turn a requested device into the one the index will actually use: ``"cpu"`` or ``"gpu"``."""
    if requested not in DEVICES:
        raise InvalidParameterError(f"unknown device {requested!r}; expected one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return "cpu"
    if gpu_count() == 0:
        if requested == "gpu":
            log.warning("device='gpu' asked for, but FAISS sees no GPU; falling back to the CPU")
        return "cpu"
    if not supported_on_gpu:
        if requested == "gpu":
            log.warning("this index type has no GPU implementation in FAISS; running it on the CPU")
        return "cpu"
    return "gpu"


_gpu_resources = None


def to_gpu(index: "faiss.Index") -> "faiss.Index":
    """Clone a CPU FAISS index onto GPU 0 (shared resources, created once)."""
    global _gpu_resources
    if _gpu_resources is None:
        _gpu_resources = faiss.StandardGpuResources()
    return faiss.index_cpu_to_gpu(_gpu_resources, 0, index)


def to_cpu(index: "faiss.Index") -> "faiss.Index":
    """A CPU copy of an index (itself when it already is one), for saving."""
    if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
        return faiss.index_gpu_to_cpu(index)
    return index
