"""Numba kernels: every hot loop of vecdb lives in this package (module-level, typed, cached)."""
