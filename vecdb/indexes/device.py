"""The device seam: where an index runs (CPU, or a GPU through FAISS' GPU build when one is present).

Every index takes ``device="auto"|"cpu"|"gpu"``. ``auto`` means a GPU when FAISS sees one (and the kind
has a GPU form), else the CPU; ``gpu`` where no GPU can run the index raises ``DeviceError``. A saved
index is always FAISS' CPU form, so a collection built on a GPU opens anywhere: loading treats the saved
request as a preference (``strict=False``: a GPU when there is one, else the CPU, logged).

Only this module touches FAISS' GPU API (``StandardGpuResources``, ``index_cpu_to_gpu``, ``knn_gpu``);
on the CPU build those names are absent and nothing here is called.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from typing import Any, Callable

import numpy as np

from ._faiss import faiss

from ..errors import DeviceError, InvalidParameterError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")
GPU_MAX_K = 2048  # FAISS' GPU k-selection limit (GPU_MAX_SELECTION_K): larger k or nprobe runs on the CPU


def gpu_count() -> int:
    """GPUs visible to FAISS (0 with the CPU build, which has no ``get_num_gpus`` or returns 0)."""
    get = getattr(faiss, "get_num_gpus", None)
    try:
        return int(get()) if get is not None else 0
    except RuntimeError:  # a GPU build on a machine whose driver is missing
        return 0


def compile_options() -> str:
    get = getattr(faiss, "get_compile_options", None)
    return str(get()) if get is not None else ""


def has_cuvs() -> bool:
    """FAISS built with NVIDIA cuVS: CAGRA exists, and (FAISS >= 1.14.2) cuVS indexes take an ``IDSelector``."""
    return "CUVS" in compile_options().split()


def _version() -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in faiss.__version__.split(".")[:3])
    except ValueError:
        return (0,)


def gpu_selectors() -> bool:
    """Whether GPU IVF / flat / CAGRA searches honour ``SearchParameters.sel``. Only cuVS-backed indexes
    do (FAISS PR #4858, in 1.14.2): the classic GPU kernels take the argument and ignore it, so a selector
    is passed only here, and every GPU hit is checked against the mask anyway."""
    return has_cuvs() and _version() >= (1, 14, 2)


def cagra_available() -> bool:
    """CAGRA needs a GPU and FAISS built with cuVS (``faiss.GpuIndexCagra``)."""
    return gpu_count() > 0 and has_cuvs() and getattr(faiss, "GpuIndexCagra", None) is not None


def resolve_device(requested: str, *, supported_on_gpu: bool = True, strict: bool = True, what: str = "this index") -> str:
    """The device an index will use: ``"cpu"`` or ``"gpu"``. ``strict``: ``"gpu"`` that cannot be had
    raises ``DeviceError`` (building); else it falls back to the CPU with a log line (loading a saved index)."""
    if requested not in DEVICES:
        raise InvalidParameterError(f"unknown device {requested!r}; expected one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return "cpu"
    if gpu_count() == 0:
        if requested == "gpu":
            why = (f"device='gpu' asked for {what}, but FAISS sees no GPU (faiss {faiss.__version__}, "
                   f"{'GPU' if hasattr(faiss, 'StandardGpuResources') else 'CPU'} build)")
            if strict:
                raise DeviceError(why + "; use device='auto' or 'cpu', or install FAISS' GPU build "
                                        "(README: 'GPU machines')")
            log.info("%s; opened on the CPU", why)
        return "cpu"
    if not supported_on_gpu:
        if requested == "gpu":
            why = f"{what} has no GPU implementation in the installed FAISS"
            if strict:
                raise DeviceError(why + "; use device='auto' or 'cpu' (or index type 'ivf', 'ivf_pq', 'cagra')")
            log.info("%s; opened on the CPU", why)
        return "cpu"
    return "gpu"


_lock = threading.Lock()
_resources = None
# FAISS' GPU resources are not thread-safe: vecdb's searches (filter groups run on threads) take turns
gpu_lock = threading.Lock()


def resources() -> "faiss.StandardGpuResources":
    """FAISS' GPU resources (streams, scratch memory, cuBLAS handle), made once and shared by every index."""
    global _resources
    with _lock:
        if _resources is None:
            _resources = faiss.StandardGpuResources()
        return _resources


def to_gpu(index: "faiss.Index", *, float16_tables: bool = False) -> "faiss.Index":
    """Clone a CPU FAISS index onto GPU 0 (``float16_tables``: IVF-PQ lookup tables in half precision,
    which FAISS needs for more than 48 sub-quantizers)."""
    options = faiss.GpuClonerOptions()
    options.useFloat16 = float16_tables
    return faiss.index_cpu_to_gpu(resources(), 0, index, options)


def is_gpu_index(index: Any) -> bool:
    return index is not None and type(index).__name__.startswith("Gpu")


def to_cpu(index: "faiss.Index") -> "faiss.Index":
    """A CPU copy of an index (itself when it already is one), for saving and CPU searches."""
    if is_gpu_index(index):
        return faiss.index_gpu_to_cpu(index)
    return index


Knn = Callable[[np.ndarray, np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]


def cpu_knn(xq: np.ndarray, xb: np.ndarray, k: int, metric: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS' brute-force k-NN on the CPU: ``(D, I)``, padded with -1 where ``k > len(xb)``."""
    return faiss.knn(xq, xb, k, metric=metric)


def gpu_knn(xq: np.ndarray, xb: np.ndarray, k: int, metric: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS' brute-force k-NN on GPU 0 (``bfKnn``: copies ``xb`` and ``xq`` to the device, one call)."""
    with gpu_lock:
        return faiss.knn_gpu(resources(), xq, xb, k, metric=metric)


def _nvidia_smi() -> list[dict[str, Any]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,memory.used,driver_version",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, total, used, driver = (p.strip() for p in line.split(","))
        gpus.append({"name": name, "memory_total_mib": int(float(total)), "memory_used_mib": int(float(used)),
                     "driver": driver})
    return gpus


def device_info() -> dict[str, Any]:
    """What FAISS sees: its version and build, GPUs (with name and memory where ``nvidia-smi`` answers),
    cuVS, and which GPU paths vecdb will take."""
    n = gpu_count()
    smi = _nvidia_smi() if n else []
    gpus = [{"id": i, **(smi[i] if i < len(smi) else {})} for i in range(n)]
    return {
        "faiss_version": faiss.__version__,
        "faiss_build": "gpu" if hasattr(faiss, "StandardGpuResources") else "cpu",
        "compile_options": compile_options(),
        "gpus": gpus,
        "cuvs": has_cuvs(),
        "gpu_selectors": gpu_selectors(),
        "cagra": cagra_available(),
        "auto_device": "gpu" if n else "cpu",
    }
