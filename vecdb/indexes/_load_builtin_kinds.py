"""Importing this module registers the built-in index kinds (kept out of import time of the package)."""

from . import binary_index, faiss_indexes, flat, gpu, hnswlib_index  # noqa: F401
