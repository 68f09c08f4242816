"""Vector indexes behind one protocol (``base.VectorIndex``), constructible by name."""

from .base import Hits, VectorIndex, index_class, index_kinds, register
from .device import gpu_count, resolve_device
from .flat import exact_search

__all__ = ["Hits", "VectorIndex", "exact_search", "gpu_count", "index_class", "index_kinds", "register",
           "resolve_device"]
