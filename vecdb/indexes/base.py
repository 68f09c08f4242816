"""The one protocol every vector index implements, and the registry of index kinds.

Indexes work in *row space*: row ``i`` is the i-th vector the index was given, and the collection
maps rows to user ids. Scores are always "higher is better" inside the index layer (inner product
for ``ip``/``cosine``, negative squared distance for ``l2``); the collection converts for the user.

``allow`` is a boolean mask over rows (``True`` = may be returned) or ``None``; every index must
honour it without calling Python per candidate.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidParameterError

METRICS = ("cosine", "ip", "l2")


@dataclasses.dataclass(frozen=True)
class Hits:
    """Raw index output: ``(nq, k)`` scores (higher is better) and rows, padded with ``-inf``/``-1``."""

    scores: np.ndarray
    rows: np.ndarray

    @classmethod
    def empty(cls, nq: int, k: int) -> "Hits":
        return cls(np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64))

    def passing(self, mask: np.ndarray | None) -> "Hits":
        """These hits with the rows ``mask`` rejects turned into padding, as new arrays in the same places
        (no re-sort; None: every row passes, ``self`` returned). For engines that fetch unfiltered and
        check every hit afterwards."""
        if mask is None:
            return self
        ok = (self.rows >= 0) & mask[np.maximum(self.rows, 0)]
        return Hits(np.where(ok, self.scores, -np.inf).astype(np.float32), np.where(ok, self.rows, -1))


@runtime_checkable
class VectorIndex(Protocol):
    """What the collection and the planner need from an index; what it can do is declared here, read by
    the planner in one place (``planner.choose``), never probed."""

    kind: ClassVar[str]
    exact: ClassVar[bool]           # results equal the exact oracle
    walks_graph: ClassVar[bool]     # a graph index (filtered search through it needs a filtered walk)
    search_options: ClassVar[dict[str, type]]  # per-call options ``search`` takes, with their types
    filters_inside: bool            # honours ``allow`` inside the engine (else the planner post-filters)
    dim: int
    metric: str
    device: str

    @property
    def ntotal(self) -> int: ...

    def config(self) -> dict[str, Any]:
        """Build options, JSON-serialisable; saved in the manifest so ``load`` needs nothing else."""

    def build(self, vectors: np.ndarray) -> None:
        """Index rows ``0 .. len(vectors) - 1`` (float32, C-contiguous), training first where needed."""

    def add(self, vectors: np.ndarray) -> None:
        """Append rows ``ntotal .. ntotal + len(vectors) - 1``. Only ever called on an index no search
        reads yet (a new one, or one just loaded): collections never mutate a published index."""

    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None,
               **params: Any) -> Hits:
        """The k best rows per query among the allowed ones. Safe to call from many threads at once."""

    def save(self, path: Path) -> list[Path]:
        """Write the index's native file to ``path`` (chosen by the collection); return the files written."""

    @classmethod
    def load(cls, paths: list[Path], dim: int, metric: str, config: dict[str, Any],
             vectors: np.ndarray) -> "VectorIndex":
        """The index saved as ``paths``; ``vectors`` are the collection's row-aligned vectors, for indexes
        that keep none of their own (flat) or rescore with them (fp16 HNSW, binary codes)."""


@runtime_checkable
class BeamIndex(Protocol):
    """An index searched with a beam of width ``ef`` (HNSW): the planner widens it for post-filtering
    and ``target_recall`` picks it from the build-time calibration."""

    ef_search: int


@runtime_checkable
class FilteredGraphIndex(Protocol):
    """A graph vecdb can walk itself with the filter inside its kernel (FAISS HNSW): plan ``filtered_graph``."""

    M: int
    ef_search: int

    def search_filtered_graph(self, queries: np.ndarray, k: int, allow: np.ndarray, *, ef: int | None = None,
                              budget: int | None = None, gather: int | None = None) -> tuple[Hits, np.ndarray]:
        """Hits, and per query whether the walk completed within ``budget`` examined rows."""


@runtime_checkable
class CostedIndex(Protocol):
    """An index that states what one query costs it, in the planner's unit (floats an exact scan of the
    same rows would read: ``matches * dim``), so the planner can weigh it against the exact scan and
    against other indexes of the field (``planner.cost``)."""

    def cost(self, matches: int, k: int, params: dict[str, Any]) -> float:
        """Work of one query among ``matches`` passing rows."""


@runtime_checkable
class RowHolder(Protocol):
    """An index that keeps a float32 copy of the rows it covers (FAISS' ``IndexHNSWFlat``): the store
    reads rows from it instead of holding a second copy (one copy of the vectors resident, not two)."""

    def held_rows(self) -> np.ndarray | None:
        """Rows ``0 .. ntotal - 1`` as a read-only ``(ntotal, dim)`` float32 array that keeps the index
        alive, or None where this instance keeps none (another storage)."""


def borrowed(owner: Any, address: int, shape: tuple[int, ...], typestr: str = "<f4") -> np.ndarray:
    """A read-only numpy view of memory ``owner`` holds at ``address``; the array keeps ``owner`` alive
    (its ``base`` holds it), so the memory outlives every view of it."""
    return np.asarray(Borrowed(owner, address, shape, typestr))


class Borrowed:
    """The owner of memory a ``borrowed`` array views (``array.base``)."""

    def __init__(self, owner: Any, address: int, shape: tuple[int, ...], typestr: str):
        self.owner = owner
        self.__array_interface__ = {"data": (address, True), "shape": shape, "typestr": typestr, "version": 3}


@runtime_checkable
class PreparedIndex(Protocol):
    """An index whose unfiltered search with fixed options is set up once and then costs one native call
    (FAISS: its search parameters made once). Everything Python does around a ~150 us graph walk runs on
    caches the walk has just emptied, so the plain path's work per query is kept to this one call."""

    def prepared(self, k: int, **params: Any) -> Callable[[np.ndarray], Hits]:
        """``lambda queries: self.search(queries, k, **params)``, with the options checked once here."""


def prepared_search(index: Any, k: int, params: dict[str, Any]) -> Callable[[np.ndarray], Hits]:
    """The unfiltered search of ``index`` for ``k`` and ``params``, set up once (see ``PreparedIndex``)."""
    if supports(index, PreparedIndex):
        return index.prepared(k, **params)
    return lambda queries: index.search(queries, k, **params)


_CONFORMS: dict[tuple[type, type], bool] = {}


def supports(index: Any, protocol: type) -> bool:
    """``isinstance(index, protocol)`` for the capability protocols above, remembered per index class: a
    runtime protocol check walks the protocol's members on every call (~25 us, several per search)."""
    key = (type(index), protocol)
    found = _CONFORMS.get(key)
    if found is None:
        found = _CONFORMS[key] = isinstance(index, protocol)
    return found


_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make an index kind constructible by name."""
    _REGISTRY[cls.kind] = cls
    return cls


def index_class(kind: str) -> type:
    from . import _load_builtin_kinds  # noqa: F401  (importing registers the built-in kinds)

    try:
        return _REGISTRY[kind]
    except KeyError:
        raise InvalidParameterError(
            f"unknown index type {kind!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def index_kinds() -> list[str]:
    from . import _load_builtin_kinds  # noqa: F401

    return sorted(_REGISTRY)


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise InvalidParameterError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    return metric


def pop_params(params: dict[str, Any], allowed: dict[str, type], where: str) -> dict[str, Any]:
    """Validate search/build options: unknown names and wrong types raise, with the name in the message."""
    out = {}
    for name, value in params.items():
        if name not in allowed:
            raise InvalidParameterError(
                f"unknown option {name!r} for {where}; expected one of {', '.join(sorted(allowed)) or 'none'}")
        want = allowed[name]
        if want is int:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise InvalidParameterError(f"option {name}={value!r} for {where} must be a positive integer")
            value = int(value)
        elif want is float:
            if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
                raise InvalidParameterError(f"option {name}={value!r} for {where} must be a number")
            value = float(value)
        elif want is str and not isinstance(value, str):
            raise InvalidParameterError(f"option {name}={value!r} for {where} must be a string")
        out[name] = value
    return out
