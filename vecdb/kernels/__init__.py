"""Numba kernels: every hot loop of vecdb lives in this package (module-level, typed, cached).

Modules are imported by their users on first need, never here, so importing vecdb compiles nothing:
``binary`` (packed-bit Hamming / multi-bit symmetric scores and the fused filtered top-C scan),
``hnsw_filtered`` (filtered traversal of the FAISS HNSW graph), ``masks`` (a wide range's rows as a
mask from their ranks; bool masks packed into bits), ``multivector`` (MUVERA and Chamfer),
``topk`` (the one tie rule, and the top-k heap of the exact, graph and binary scans; and the numpy
``merge`` / ``finish`` the Python paths share; importing it imports numba but compiles nothing).
"""
