"""Multi-vector (late-interaction) rows: sets of vectors per row, Chamfer similarity, MUVERA.

>>> coll = vecdb.create("papers.vdb", dim=128, metric="ip", multivector=True)
>>> coll.add([doc0_tokens, doc1_tokens], attributes=table)
>>> coll.build_index("muvera")                    # FDE vectors + a single-vector index over them
>>> res = coll.search(query_tokens, k=10, where="year >= 2025")   # FDE candidates, exact rerank

The rows are a vector store of the one collection kind (``vecdb.multivector.store.MultiStore``).
"""

from .chamfer import as_sets
from .fde import FDEConfig, FDEEncoder
from .store import DEFAULT_CANDIDATES, MultiStore

__all__ = ["DEFAULT_CANDIDATES", "FDEConfig", "FDEEncoder", "MultiStore", "as_sets"]
