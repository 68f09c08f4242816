"""Multi-vector (late-interaction) collections: sets of vectors per row, Chamfer similarity, MUVERA.

>>> coll = vecdb.create("papers.vdb", dim=128, metric="ip", multivector=True)
>>> coll.add_multi([doc0_tokens, doc1_tokens], attributes=table)
>>> coll.build_index("muvera")                    # FDE vectors + a single-vector index over them
>>> res = coll.search_multi(query_tokens, k=10, where="year >= 2025")   # FDE candidates, exact rerank
"""

from .chamfer import as_sets
from .collection import DEFAULT_CANDIDATES, MultiVectorCollection, create_multivector, open_multivector
from .fde import FDEConfig, FDEEncoder

__all__ = ["DEFAULT_CANDIDATES", "FDEConfig", "FDEEncoder", "MultiVectorCollection", "as_sets",
           "create_multivector", "open_multivector"]
