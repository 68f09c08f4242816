"""vecdb: filtered approximate nearest-neighbour search, fast and accurate at every selectivity.

>>> import vecdb
>>> coll = vecdb.create("papers.vdb", dim=384, metric="cosine")
>>> coll.add(vectors, attributes=table)
>>> coll.build_index("hnsw")
>>> res = coll.search(query, k=10, where="'cs.LG' IN categories AND year >= 2025")
>>> db = vecdb.connect("collections/")        # a folder of collections, by name
"""

from . import errors
from .collection import Collection, create
from .collection import open_collection as open  # noqa: A001  (vecdb.open is the public name)
from .database import Database, connect
from .fields import VectorField
from .filters import col
from .indexes.device import device_info
from .parallel import get_threads, set_threads
from .planner import Plan, PlannerConfig
from .result import SearchResult

__version__ = "0.1.0"

__all__ = ["Collection", "Database", "Plan", "PlannerConfig", "SearchResult", "VectorField", "col", "connect", "create",
           "device_info", "errors", "get_threads", "open", "set_threads", "__version__"]
