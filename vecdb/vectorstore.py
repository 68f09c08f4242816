"""Vector stores: what a collection's rows hold, with the index over them. One protocol, two kinds:

- ``DenseStore``: one vector per row (a float32 matrix, memory-mapped segments), any index kind;
- ``multivector.store.MultiStore``: a set of vectors per row, MUVERA encodings and an exact Chamfer rerank.

A store is immutable: ``appended`` / ``built`` / ``optimized`` return a new store, and an index is never
changed once a search may read it (``optimized`` adds rows to a copy loaded from the committed files).
A snapshot holds one ``fields.Field`` per vector field: the store of its rows and, per index, a store
searching through that index (``with_index_of``: the same rows, another index).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence

import numpy as np
import pyarrow as pa

from . import planner
from .calibration import calibrate
from .errors import InvalidParameterError
from .filters.attribute_index import RowSet
from .indexes.base import Hits, RowHolder, VectorIndex, index_class, supports
from .storage.files import describe_file, read_npy, verify
from .storage.manifest import FieldSpec, FileEntry, IndexSpec, Segment
from .vectors import as_matrix

# What a store's ``built`` / ``optimized`` return beside the new store: a function that saves the index
# under a stem (``index-NNNNNN``), appending every path it writes to a list, and returns its spec.
IndexSaver = Callable[[Path, list], IndexSpec]


@dataclasses.dataclass(frozen=True)
class Batch:
    """Validated rows for a write: ``n`` rows and the arrays a segment stores, by file role."""

    n: int
    arrays: Mapping[str, np.ndarray]


class VectorStore(Protocol):
    """The vectors of every stored row, and the index over them."""

    kind: ClassVar[str]     # "dense" | "multi"
    batched: ClassVar[bool]  # batches run through ``vecdb/batch.py`` (grouped kernels over chunks of queries)
    dim: int
    metric: str
    index: VectorIndex | None

    @property
    def rows(self) -> int: ...

    @classmethod
    def load(cls, root: Path, segments: Sequence[Segment], field: FieldSpec, lazy: list) -> "VectorStore":
        """The rows of ``field`` in ``segments``, without an index; mapped files are listed in ``lazy``."""

    def with_saved_index(self, root: Path, spec: IndexSpec, lazy: list) -> "VectorStore":
        """These rows searched through the saved index ``spec``."""

    def with_index_of(self, other: "VectorStore") -> "VectorStore":
        """These rows searched through ``other``'s index (``other``: an earlier store of the same field)."""

    def bare(self) -> "VectorStore":
        """These rows without an index."""

    def null_rows(self, n: int) -> Batch:
        """``n`` rows holding no value (a unit vector each, valid for every metric; masked out of every
        search by the field's ``valid`` rows)."""

    def score(self, queries: Any, rows: np.ndarray) -> np.ndarray:
        """Exact scores (higher is better) of ``rows`` (``(nq, c)``, -1 = none: -inf) for prepared ``queries``."""

    def encode(self, vectors: Any) -> Batch:
        """Validate (and normalise, for cosine) user vectors for a write; raises before anything is written."""

    def appended(self, batch: Batch, spec: IndexSpec | None) -> "VectorStore":
        """This store with ``batch`` appended (``spec``: the index spec committed with it)."""

    def index_spec_after_add(self, spec: IndexSpec | None, batch: Batch, stem: Path, written: list) -> IndexSpec | None:
        """The index spec of the version that adds ``batch`` (files it writes go under ``stem``)."""

    def built(self, kind: str, options: dict[str, Any]) -> tuple["VectorStore", IndexSaver]:
        """A new index of ``kind`` over every row, and its saver."""

    def optimized(self, root: Path, spec: IndexSpec) -> tuple["VectorStore", IndexSaver] | None:
        """The index extended by the rows added since it was built (None if it covers every row)."""

    def recalibrated(self, queries: Any, filters: Sequence[Any] = ()) -> "VectorStore | None":
        """This store with its index's recall curves measured on ``queries`` (prepared) and the filters
        they carry (``calibration.SampleFilter``), or None where the index has no beam to calibrate
        (``calibration.calibrate``)."""

    def taken(self, rows: np.ndarray) -> Batch:
        """The stored vectors of ``rows`` as a batch to write again (compaction, vector-less updates)."""

    def empty(self) -> "VectorStore":
        """A store of no rows and no index, same dimension and metric."""

    def index_options(self, spec: IndexSpec) -> tuple[str, dict[str, Any]]:
        """The ``build_index`` arguments that rebuild the index ``spec`` describes."""

    def vectors_of(self, rows: np.ndarray) -> pa.Array:
        """The vectors of ``rows`` as an Arrow column."""

    def index_info(self, spec: IndexSpec | None) -> dict[str, Any] | None: ...

    def hit_vectors(self, rows: np.ndarray) -> Any:
        """The stored vectors of search hits ``rows`` (``(nq, k)``, -1 = none) for ``with_vectors=True``."""

    def plain_ready(self, k: int, n_live: int) -> bool:
        """Whether an unfiltered search may go straight to the index (the search's fast path)."""

    def plain_params(self, config: planner.PlannerConfig, params: planner.SearchParams) -> dict[str, Any]:
        """The index options of that plain search, for the search's ``params``."""

    def prepare_queries(self, queries: Any) -> Any:
        """Validated queries; ``len()`` of the result is the number of queries."""

    def search_params(self, params: Mapping[str, Any]) -> planner.SearchParams: ...

    def search(self, snapshot: Any, queries: Any, members: Sequence[int], k: int, selection: RowSet | None,
               matches: int, params: planner.SearchParams, *, pool: bool, deleted_only: bool = False,
               describe: dict[str, Any] | None = None, plan: planner.Plan | None = None) -> tuple[planner.Plan, Hits]:
        """Plan and run one filter group (``members`` of ``queries``), among ``selection`` (None: every
        stored row). ``pool``: on a worker thread (kernels that start threads of their own must not run).
        ``deleted_only``: ``selection`` leaves out deleted rows only (no filter). ``describe``: explain
        fields to put on the plan. ``plan``: already chosen (``Field.choose_store``). Returns the plan
        and the hits in row space."""


def index_options(cls: type, options: dict[str, Any], what: str, extra: Sequence[str] = ()) -> None:
    """Refuse build options ``cls`` does not take, listing those it does."""
    accepted = [n for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InvalidParameterError(
            f"unknown option(s) {unknown} for {what}; expected {', '.join([*accepted, *extra]) or 'none'}")


def load_index(root: Path, spec: IndexSpec, dim: int, metric: str, vectors: np.ndarray) -> VectorIndex:
    paths = [verify(root, entry) for entry in spec.files]
    return index_class(spec.kind).load(paths, dim, metric, dict(spec.config), vectors[: spec.rows])


_NO_PARAMS = planner.SearchParams()  # a search with no options (the usual one): parsed once


class _Buffer:
    """Room to append rows in place: rows below ``used`` never change (older stores view them), so a
    store may append only when it holds exactly ``used`` rows; capacity doubles (O(n) copies in all)."""

    def __init__(self, array: np.ndarray, used: int):
        self.array, self.used = array, used


@dataclasses.dataclass(frozen=True, eq=False)
class DenseStore:
    """One float32 vector per row; the index (any kind) covers rows ``0 .. index_rows - 1`` and the rows
    added since are scanned exactly beside it until ``optimize``."""

    kind: ClassVar[str] = "dense"
    batched: ClassVar[bool] = True

    dim: int
    metric: str
    vectors: np.ndarray
    index: VectorIndex | None = None
    calibration: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    _buffer: _Buffer | None = dataclasses.field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def index_rows(self) -> int:
        return self.index.ntotal if self.index is not None else 0

    @classmethod
    def load(cls, root: Path, segments: Sequence[Segment], field: FieldSpec, lazy: list) -> "DenseStore":
        """The rows of a committed version; mapped files are only size-checked, listed in ``lazy``."""
        parts = [read_npy(root, seg.fields[field.name]["vectors"], lazy=lazy).view(np.ndarray) for seg in segments]
        vectors = (parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else
                   np.empty((0, field.dim), np.float32))
        return cls(field.dim, field.metric, vectors)

    def with_saved_index(self, root: Path, spec: IndexSpec, lazy: list) -> "DenseStore":
        index = load_index(root, spec, self.dim, self.metric, self.vectors)
        return self._with(index, dict(spec.calibration))

    def with_index_of(self, other: "VectorStore") -> "DenseStore":
        return self._with(other.index, other.calibration)

    def _with(self, index: VectorIndex | None, calibration: Mapping[str, Any]) -> "DenseStore":
        """These rows searched through ``index``. Where the index keeps a float32 copy of every row, the
        store reads its rows from there: the same values (the index was given them), one copy in memory,
        and the store's own (mapped) file is left unread."""
        vectors = self.vectors
        if index is not None and index.ntotal == self.rows and supports(index, RowHolder):
            held = index.held_rows()
            if held is not None:
                vectors = held
        return dataclasses.replace(self, vectors=vectors, index=index, calibration=calibration,
                                   _buffer=self._buffer if vectors is self.vectors else None)

    def bare(self) -> "DenseStore":
        return dataclasses.replace(self, index=None, calibration={})

    def null_rows(self, n: int) -> Batch:
        return Batch(n, {"vectors": np.repeat(np.eye(1, self.dim, dtype=np.float32), n, axis=0)})

    def score(self, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
        x = self.vectors[np.maximum(rows, 0)]
        if self.metric == "l2":
            diff = x - queries[:, None, :]
            s = -np.einsum("qcd,qcd->qc", diff, diff)
        else:
            s = np.einsum("qcd,qd->qc", x, queries)
        return np.where(rows >= 0, s, -np.inf).astype(np.float32)

    # ----------------------------------------------------------------- writing
    def encode(self, vectors: Any) -> Batch:
        x = as_matrix(vectors, self.dim, unit=self.metric == "cosine")
        return Batch(x.shape[0], {"vectors": x})

    def index_spec_after_add(self, spec: IndexSpec | None, batch: Batch, stem: Path, written: list) -> IndexSpec | None:
        return spec  # the new rows are scanned beside the index until ``optimize``

    def appended(self, batch: Batch, spec: IndexSpec | None) -> "DenseStore":
        x = batch.arrays["vectors"]
        n, m = self.rows, x.shape[0]
        buf = self._buffer
        if buf is None or buf.used != n or buf.array.shape[0] < n + m or not np.shares_memory(buf.array[:1], self.vectors[:1]):
            buf = _Buffer(np.empty((max(n + m, 2 * n, 1024), self.dim), dtype=np.float32), n)
            buf.array[:n] = self.vectors
        buf.array[n:n + m] = x
        buf.used = n + m
        return dataclasses.replace(self, vectors=buf.array[: n + m], _buffer=buf)

    def built(self, kind: str, options: dict[str, Any]) -> tuple["DenseStore", IndexSaver]:
        cls = index_class(kind)
        index_options(cls, options, f"index {kind!r}")
        index = cls(self.dim, self.metric, **options)
        index.build(self.vectors)
        calibration = calibrate(index, self.vectors, self.metric)
        return self._with(index, calibration), self._saver(index, calibration)

    def optimized(self, root: Path, spec: IndexSpec) -> tuple["DenseStore", IndexSaver] | None:
        if self.index is None or spec.rows == self.rows:
            return None
        index = load_index(root, spec, self.dim, self.metric, self.vectors)  # a copy no search reads
        index.add(self.vectors[spec.rows:])
        return self._with(index, self.calibration), self._saver(index, self.calibration)

    def recalibrated(self, queries: np.ndarray, filters: Sequence[Any] = ()) -> "DenseStore | None":
        curves = calibrate(self.index, self.vectors, self.metric, sample=queries,
                           sample_filters=filters) if self.index is not None else {}
        return dataclasses.replace(self, calibration=curves) if curves else None

    def taken(self, rows: np.ndarray) -> Batch:
        return Batch(int(rows.shape[0]), {"vectors": np.ascontiguousarray(self.vectors[rows], dtype=np.float32)})

    def empty(self) -> "DenseStore":
        return DenseStore(self.dim, self.metric, np.empty((0, self.dim), np.float32))

    def index_options(self, spec: IndexSpec) -> tuple[str, dict[str, Any]]:
        return spec.kind, dict(spec.config)

    @staticmethod
    def _saver(index: VectorIndex, calibration: Mapping[str, Any]) -> IndexSaver:
        def save(stem: Path, written: list) -> IndexSpec:
            paths = index.save(stem)
            written += paths
            return IndexSpec(index.kind, index.config(), index.ntotal,
                             tuple(file_entry(describe_file(p)) for p in paths), dict(calibration))
        return save

    # ----------------------------------------------------------------- reading
    def vectors_of(self, rows: np.ndarray) -> pa.Array:
        vec = np.ascontiguousarray(self.vectors[rows], dtype=np.float32)
        return pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), self.dim)

    def index_info(self, spec: IndexSpec | None) -> dict[str, Any] | None:
        if spec is None or self.index is None:
            return None
        return {"kind": spec.kind, "config": dict(spec.config), "rows": spec.rows, "device": self.index.device}

    def prepare_queries(self, queries: Any) -> np.ndarray:
        return as_matrix(queries, self.dim, what="queries", unit=self.metric == "cosine")

    def hit_vectors(self, rows: np.ndarray) -> np.ndarray:
        """``(nq, k, dim)`` float32, NaN where there is no hit."""
        out = np.full((*rows.shape, self.dim), np.nan, dtype=np.float32)
        found = rows >= 0
        out[found] = self.vectors[rows[found]]
        return out

    def search_params(self, params: Mapping[str, Any]) -> planner.SearchParams:
        return planner.SearchParams.parse(params, self.index) if params else _NO_PARAMS

    def plain_params(self, config: planner.PlannerConfig, params: planner.SearchParams = _NO_PARAMS) -> dict[str, Any]:
        """The index options of a plain unfiltered search: the search's own (``ef``), else the calibrated
        beam for its recall target or the default one (what ``planner.choose`` would pick), else none (the
        index's own default)."""
        target = params.target_recall
        if target is None and self.calibration.get("method"):
            target = config.default_target_recall
        ef = None if target is None else planner.ef_for(self.calibration, "index", target)
        return {**({} if ef is None else {"ef": ef}), **params.options}

    def plain_ready(self, k: int, n_live: int) -> bool:
        """An unfiltered search would run the approximate index as is: nothing deleted, no rows beyond it."""
        return (self.index is not None and not self.index.exact and n_live == self.rows
                and self.index_rows == self.rows and self.rows >= k)

    def search(self, snapshot: Any, queries: np.ndarray, members: Sequence[int], k: int, selection: RowSet | None,
               matches: int, params: planner.SearchParams, *, pool: bool, deleted_only: bool = False,
               describe: dict[str, Any] | None = None, plan: planner.Plan | None = None) -> tuple[planner.Plan, Hits]:
        if plan is None or describe is not None:
            plan = self.choose(snapshot, k, selection, matches, params, deleted_only=deleted_only, describe=describe,
                               nq=len(members))
        if describe is not None:
            return plan, Hits.empty(0, k)
        # members are ascending query numbers: as many as the queries means all of them (no gather copy)
        mine = queries if len(members) == queries.shape[0] else queries[members]
        hits = planner.run(plan, vectors=self.vectors, index=self.index, index_rows=self.index_rows,
                           queries=mine, k=k, selection=selection, metric=self.metric,
                           config=params.config or snapshot.planner)
        return plan, hits


    def choose(self, snapshot: Any, k: int, selection: RowSet | None, matches: int, params: planner.SearchParams, *,
               deleted_only: bool = False, describe: dict[str, Any] | None = None, nq: int = 1) -> planner.Plan:
        """The plan ``search`` would run for one filter group of ``nq`` queries."""
        return planner.choose(index=self.index, matches=matches, total=snapshot.n_live, k=k,
                              filtered=selection is not None, params=params, config=params.config or snapshot.planner,
                              deleted_share=1 - snapshot.n_live / snapshot.stored if deleted_only else None,
                              calibration=self.calibration, nq=nq, **(describe or {}))


def file_entry(described: Mapping[str, Any]) -> FileEntry:
    """A manifest entry from what ``storage.files`` returns for a file it wrote."""
    return FileEntry(described["file"], described["bytes"], described["sha256"])
