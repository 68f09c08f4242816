"""Numba kernels: every hot loop of vecdb lives in this package (module-level, typed, cached).

Modules are imported by their users on first need, never here, so importing vecdb compiles nothing:
``binary`` (packed-bit Hamming / multi-bit symmetric scores and the fused filtered top-C scan),
``hnsw_filtered`` (filtered traversal of the FAISS HNSW graph), ``multivector`` (MUVERA and Chamfer).
"""
