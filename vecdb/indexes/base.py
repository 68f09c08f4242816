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
from typing import Any, ClassVar, Protocol, runtime_checkable

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


@runtime_checkable
class VectorIndex(Protocol):
    """What the collection and the planner need from an index."""

    kind: ClassVar[str]
    supports_allow: ClassVar[bool]  # honours ``allow`` inside the engine (else the planner post-filters)
    exact: ClassVar[bool]           # results equal the exact oracle
    metric: str
    device: str

    @property
    def ntotal(self) -> int: ...

    def config(self) -> dict[str, Any]:
        """Build options, JSON-serialisable; saved in the manifest so ``load`` needs nothing else."""

    def build(self, vectors: np.ndarray) -> None:
        """Index rows ``0 .. len(vectors) - 1`` (float32, C-contiguous), training first where needed."""

    def add(self, vectors: np.ndarray) -> None:
        """Append rows ``ntotal .. ntotal + len(vectors) - 1``."""

    def search(self, queries: np.ndarray, k: int, *, allow: np.ndarray | None = None,
               **params: Any) -> Hits:
        """The k best rows per query among the allowed ones."""

    def save(self, path: Path) -> list[Path]:
        """Write the index's native file to ``path`` (chosen by the collection); return the files written.

        Loading is the classmethod ``load(paths, dim, metric, config, vectors)``; ``vectors`` are the
        collection's row-aligned vectors, for indexes that keep none of their own (flat).
        """


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
