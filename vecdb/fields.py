"""Vector fields: a collection's rows hold one value per field (a vector, or a set of vectors), each
field with its own dimension, metric and indexes, all filtered by the same attribute columns.

``vecdb.create(path, vectors={"title": VectorField(384), "tokens": VectorField(128, "ip", multi=True)})``
names them; ``create(path, dim=..., metric=...)`` makes one field named ``vector`` (``vectors`` for sets
of vectors), the layout of collections written before fields existed.

A snapshot holds one ``Field`` per vector field: ``store`` (the rows, ``vectorstore.VectorStore``) and
per named index a store searching through it (``views``: the same rows, ``with_index_of``), and which
rows hold a value (``valid``; None when all do). Every search on a field leaves out the rows without a
value, as it leaves out deleted ones. The planner picks among the views and the exact scan by cost
(``planner.cost``); ``index=`` forces one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import planner
from .errors import InvalidParameterError, InvalidVectorError
from .filters.attribute_index import RowSet
from .indexes.base import Hits, check_metric, prepared_search
from .storage.files import read_npy
from .storage.manifest import FieldSpec, IndexSpec, Segment, valid_name
from .vectorstore import Batch, IndexSaver, VectorStore

MULTI_METRICS = ("ip", "cosine")  # Chamfer sums inner products
PLAIN_KEYS = 256  # plain searches (k, options) set up per snapshot at most
_UNSET = object()


@dataclasses.dataclass(frozen=True)
class VectorField:
    """One vector field of a new collection: ``dim``, ``metric`` (``cosine``, ``ip``, ``l2``), and ``multi``
    (each row holds a set of vectors, searched by Chamfer similarity; metrics ``ip`` and ``cosine``)."""

    dim: int
    metric: str = "cosine"
    multi: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, (int, np.integer)) or self.dim <= 0:
            raise InvalidParameterError(f"dim must be a positive integer; got {self.dim!r}")
        check_metric(self.metric)
        if not isinstance(self.multi, (bool, np.bool_)):
            raise InvalidParameterError(f"multi must be True or False; got {self.multi!r}")
        if self.multi and self.metric not in MULTI_METRICS:
            raise InvalidParameterError(f"metric {self.metric!r} is not supported for multi-vector fields; expected "
                                        f"one of {', '.join(MULTI_METRICS)} (Chamfer sums inner products)")

    def spec(self, name: str) -> FieldSpec:
        if not valid_name(name):
            raise InvalidParameterError(f"field name {name!r} is not an identifier (letters, digits, _ . -)")
        return FieldSpec(name, int(self.dim), self.metric, bool(self.multi))


def store_class(spec: FieldSpec) -> type:
    if spec.multi:  # numba's Chamfer kernels load only for collections that need them
        from .multivector.store import MultiStore

        return MultiStore
    from .vectorstore import DenseStore

    return DenseStore


@dataclasses.dataclass(frozen=True, eq=False)
class Field:
    """One field of one snapshot; see the module docstring. Immutable: every change returns a new one."""

    spec: FieldSpec
    store: VectorStore                       # the rows (a multi-vector field's carries its one index)
    views: Mapping[str, VectorStore]         # index name -> the rows searched through that index
    valid: np.ndarray | None = None          # rows holding a value; None = every row
    _plain: dict = dataclasses.field(default_factory=dict, repr=False)  # plain_store's answers

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rows(self) -> int:
        return self.store.rows

    @property
    def reader(self) -> VectorStore:
        """The store that reads of row values go through: the newest index's view (the same rows, read
        from the index's own copy where it keeps one: ``DenseStore._with``), else the bare rows."""
        return next(reversed(self.views.values())) if self.views else self.store

    @classmethod
    def load(cls, root: Path, segments: Sequence[Segment], spec: FieldSpec, lazy: list) -> "Field":
        store = store_class(spec).load(root, segments, spec, lazy)
        views: dict[str, VectorStore] = {}
        for index in spec.indexes:
            view = store.with_saved_index(root, index, lazy)
            if spec.multi:
                store = view
            views[index.label] = view
        valid = None
        if any("valid" in seg.fields[spec.name] for seg in segments):
            valid = np.concatenate([read_npy(root, seg.fields[spec.name]["valid"], mmap=False).astype(bool)
                                    if "valid" in seg.fields[spec.name] else np.ones(seg.rows, bool)
                                    for seg in segments])
        return cls(spec, store, views, _readonly(valid))

    # ----------------------------------------------------------------- writing
    def encode(self, values: Any, n: int | None) -> Batch:
        """A write's values for this field: ``values`` as the store takes them, None (no value for any of
        the ``n`` rows), or a list holding None for the rows without one. The batch's ``valid`` array is
        there only when some row has no value."""
        if values is None:
            if n is None:
                raise InvalidParameterError(f"no values for field {self.name!r} and no other field gives the rows")
            batch = self.store.null_rows(n)
            return Batch(n, {**batch.arrays, "valid": np.zeros(n, bool)})
        if isinstance(values, list) and any(v is None for v in values):
            valid = np.array([v is not None for v in values])
            if not valid.any():
                return self.encode(None, len(values))
            unit = np.eye(1, self.spec.dim, dtype=np.float32)  # valid for every metric; masked out by ``valid``
            filler = unit if self.spec.multi else unit[0]
            batch = self.store.encode([filler if v is None else v for v in values])
            return Batch(batch.n, {**batch.arrays, "valid": valid})
        return self.store.encode(values)

    def appended(self, batch: Batch) -> "Field":
        store = self.store.appended(batch, self.spec.indexes[0] if self.spec.multi and self.spec.indexes else None)
        valid = None
        if self.valid is not None or "valid" in batch.arrays:
            old = self.valid if self.valid is not None else np.ones(self.rows, bool)
            new = batch.arrays["valid"] if "valid" in batch.arrays else np.ones(batch.n, bool)
            valid = np.concatenate([old, new])
        return Field(self.spec, store, {name: store.with_index_of(view) for name, view in self.views.items()},
                     _readonly(valid))

    def taken(self, rows: np.ndarray) -> Batch:
        batch = self.store.taken(rows)
        if self.valid is None or self.valid[rows].all():
            return batch
        return Batch(batch.n, {**batch.arrays, "valid": self.valid[rows]})

    def compacted(self, batch: Batch) -> tuple["Field", list[tuple[IndexSpec, IndexSaver]]]:
        """A field of ``batch``'s rows only (``taken`` from this one), every index rebuilt with its options."""
        field = Field(dataclasses.replace(self.spec, indexes=()), self.store.empty(), {}).appended(batch)
        savers = []
        if batch.n:
            for spec in self.spec.indexes:
                field, saver = field.built(*self.store.index_options(spec), spec.label)
                savers.append((spec, saver))
        return field, savers

    def built(self, kind: str, options: dict[str, Any], name: str) -> tuple["Field", IndexSaver]:
        """This field with index ``name`` (new, or rebuilt) of ``kind``; the saver writes it."""
        if self.spec.multi and self.views and name not in self.views:
            raise InvalidParameterError(f"field {self.name!r} holds sets of vectors: one index at a time "
                                        f"(it has {sorted(self.views)}; drop_index it first)")
        view, save = (self.store.bare() if self.spec.multi else self.store).built(kind, options)
        views = {**self.views, name: view}
        return Field(self.spec, view if self.spec.multi else view.bare(), views, self.valid), _named(save, name)

    def optimized(self, root: Path, spec: IndexSpec) -> tuple["Field", IndexSaver] | None:
        done = self.views[spec.label].optimized(root, spec)
        if done is None:
            return None
        view, save = done
        return Field(self.spec, view if self.spec.multi else view.bare(), {**self.views, spec.label: view},
                     self.valid), _named(save, spec.name)

    def recalibrated(self, name: str, queries: Any, filters: Sequence[Any] = ()) -> tuple["Field", IndexSaver]:
        """This field with index ``name``'s recall curves measured on ``queries`` (prepared) and the
        ``filters`` they carry (``calibration.SampleFilter``); the saver records them in its spec (its
        files are unchanged)."""
        view = self.view(name).recalibrated(queries, filters)
        if view is None:
            raise InvalidParameterError(f"index {name!r} of field {self.name!r} has no beam width to calibrate "
                                        f"(HNSW indexes have)")
        spec = next(s for s in self.spec.indexes if s.label == name)
        recorded = dataclasses.replace(spec, calibration=dict(view.calibration))
        return dataclasses.replace(self, views={**self.views, name: view}, _plain={}), lambda stem, written: recorded

    def dropped(self, name: str) -> "Field":
        views = {n: v for n, v in self.views.items() if n != name}
        return Field(self.spec, self.store.bare() if self.spec.multi else self.store, views, self.valid)

    def with_spec(self, spec: FieldSpec) -> "Field":
        return dataclasses.replace(self, spec=spec, _plain={})

    # ----------------------------------------------------------------- reading
    def vectors_of(self, rows: np.ndarray) -> Any:
        """The values of ``rows`` as an Arrow column (null where a row holds none)."""
        import pyarrow as pa

        column = self.reader.vectors_of(rows)
        if self.valid is None or self.valid[rows].all():
            return column
        return pa.array(column.to_pylist(), type=column.type, mask=~self.valid[rows])

    def view(self, name: str) -> VectorStore:
        """The store searching through index ``name``; an unknown name lists the field's indexes."""
        if name not in self.views:
            raise InvalidParameterError(f"field {self.name!r} has no index {name!r}; it has "
                                        f"{sorted(self.views) or 'none'} (coll.indexes())")
        return self.views[name]

    def candidates(self, index: str | None, params: Mapping[str, Any]) -> list[VectorStore]:
        """The stores a search may run through: the forced index's, else every index's (the planner
        picks by cost), else the bare rows (exact)."""
        if index is not None:
            return [self.view(index)]
        if not self.views:
            return [self.store]
        given = set(params) - set(planner.SearchParams.GENERAL) - set(planner.SearchParams.RESULT)
        own = {"candidates"} if self.spec.multi else set()  # the rerank's, not the index's
        fit = [v for v in self.views.values() if given <= set(v.index.search_options) | own]
        return fit or list(self.views.values())  # none takes them all: the first refuses them, by name

    def search_params(self, index: str | None, params: Mapping[str, Any]) -> tuple[list[VectorStore],
                                                                                planner.SearchParams]:
        """The stores a search may run through (``candidates``) and its options, checked against them."""
        stores = self.candidates(index, params)
        return stores, stores[0].search_params(params)

    def name_of(self, store: VectorStore) -> str | None:
        """The name of the index ``store`` searches through (None: the bare rows)."""
        return next((name for name, view in self.views.items() if view is store), None)

    def _costed(self, stores: list[VectorStore], snapshot: Any, k: int, selection: RowSet | None, matches: int,
                params: planner.SearchParams, deleted_only: bool, nq: int) -> list[tuple[float, VectorStore, str]]:
        out = []
        for store in stores:
            plan = store.choose(snapshot, k, selection, matches, params, deleted_only=deleted_only, nq=nq)
            out.append((planner.cost(plan, store.index, self.spec.dim, k, params.config or snapshot.planner),
                        store, plan))
        return out

    def choose_store(self, stores: list[VectorStore], snapshot: Any, k: int, selection: RowSet | None, matches: int,
                     params: planner.SearchParams, deleted_only: bool,
                     nq: int = 1) -> tuple[VectorStore, planner.Plan | None]:
        """The store whose plan the cost model (``planner.cost``) says is cheapest for one filter group
        (the first on ties), and that plan (None when there was one store to ask: it plans itself)."""
        if len(stores) == 1:
            return stores[0], None
        costed = self._costed(stores, snapshot, k, selection, matches, params, deleted_only, nq)
        _, store, plan = min(costed, key=lambda c: c[0])
        return store, plan

    def costs(self, stores: list[VectorStore], snapshot: Any, k: int, selection: RowSet | None, matches: int,
              params: planner.SearchParams, deleted_only: bool, nq: int = 1) -> str:
        """The candidates' costs, for ``explain``."""
        costed = self._costed(stores, snapshot, k, selection, matches, params, deleted_only, nq)
        return ", ".join(f"{self.name_of(store)} ({plan.name}) {cost:,.0f}" for cost, store, plan in costed)

    def plain_store(self, k: int, n_live: int, snapshot: Any, index: str | None) -> VectorStore | None:
        """The store an unfiltered search with no options goes straight to, if any (the fast path)."""
        if self.valid is not None:
            return None
        key = (k, n_live, index)
        if key not in self._plain:  # the same answer for every such search of this snapshot
            stores = self.candidates(index, {})
            store = stores[0] if len(stores) == 1 else \
                self.choose_store(stores, snapshot, k, None, n_live, planner.SearchParams(), False)[0]
            self._plain[key] = store if store.plain_ready(k, n_live) else None
        return self._plain[key]

    def plain_search(self, k: int, n_live: int, snapshot: Any, index: str | None,
                     params: Mapping[str, Any] | None = None) -> Callable[[Any], Hits] | None:
        """An unfiltered search straight through the index the planner would pick, with the beam it would
        pick, set up once per snapshot, ``k``, ``index`` and options (``indexes.base.prepared_search``);
        None where there is no such path. ``params``: the search's options; the index's own (``ef``) and
        a recall target keep the plain path, others (a plan, a device) leave it. Bad options raise here
        as they would on the planner's path."""
        key = ("search", k, n_live, index, tuple(sorted(params.items())) if params else ())
        try:
            run = self._plain.get(key, _UNSET)
        except TypeError:  # an unhashable option value: the planner's path checks it
            return None
        if run is not _UNSET:
            return run
        if not params:
            store = self.plain_store(k, n_live, snapshot, index)
            given = planner.SearchParams()
        else:
            stores, given = self.search_params(index, params)
            store = stores[0] if given.plain and len(stores) == 1 and stores[0].plain_ready(k, n_live) \
                and self.valid is None and stores[0].index.device == "cpu" else None
        run = None if store is None else prepared_search(store.index, k, store.plain_params(snapshot.planner, given))
        if len(self._plain) < PLAIN_KEYS:  # a sweep over many beams does not grow it without end
            self._plain[key] = run
        return run

    def index_list(self) -> list[dict[str, Any]]:
        out = []
        for spec in self.spec.indexes:
            view = self.views.get(spec.label)
            info = view.index_info(spec) if view is not None else None
            out.append({"name": spec.label, "field": self.name, "kind": spec.kind, "rows": spec.rows,
                        "config": dict(spec.config), **({"device": info["device"]} if info else {})})
        return out


def _named(save: IndexSaver, name: str) -> IndexSaver:
    def named(stem: Path, written: list) -> IndexSpec:
        spec = save(stem, written)
        return dataclasses.replace(spec, name="" if name == spec.kind else name)
    return named


def _readonly(array: np.ndarray | None) -> np.ndarray | None:
    if array is not None:
        array.flags.writeable = False
    return array


def resolve(fields: Mapping[str, "Field"], name: str | None) -> "Field":
    """The field ``name`` names, or the only one."""
    if name is None:
        if len(fields) == 1:
            return next(iter(fields.values()))
        raise InvalidParameterError(f"this collection has several vector fields ({', '.join(fields)}): give field=")
    if name not in fields:
        raise InvalidParameterError(f"unknown vector field {name!r}; fields are {', '.join(fields)}")
    return fields[name]


def split_values(fields: Mapping[str, "Field"], vectors: Any) -> dict[str, Any]:
    """A write's values by field: a dict by field name, or, with one field, its values."""
    if isinstance(vectors, Mapping):
        unknown = sorted(set(vectors) - set(fields))
        if unknown:
            raise InvalidParameterError(f"unknown vector field(s) {unknown}; fields are {', '.join(fields)}")
        if all(vectors.get(name) is None for name in fields):
            raise InvalidVectorError("no vectors given for any field")
        return {name: vectors.get(name) for name in fields}
    if len(fields) > 1:
        raise InvalidParameterError(f"this collection has several vector fields ({', '.join(fields)}): give "
                                    f"the vectors as a dict by field name")
    return {next(iter(fields)): vectors}


def encode_all(fields: Mapping[str, "Field"], values: Mapping[str, Any],
               carried: np.ndarray | None = None) -> dict[str, Batch]:
    """Every field's batch for one write, all of the same row count. A field given no values holds none
    in these rows, or with ``carried`` the values stored rows ``carried`` hold now (``update_vectors``)."""
    batches: dict[str, Batch] = {}
    for name, field in fields.items():  # fields with values first: they give the row count
        if values[name] is not None:
            batches[name] = field.encode(values[name], None)
        elif carried is not None:
            batches[name] = field.taken(carried)
    counts = {name: b.n for name, b in batches.items()}
    if len(set(counts.values())) > 1 or (carried is not None and next(iter(counts.values())) != carried.size):
        raise InvalidParameterError(f"the fields' values hold different numbers of rows: {counts}"
                                    + ("" if carried is None else f" (for {carried.size} rows)"))
    n = next(iter(counts.values()))
    for name, field in fields.items():
        if name not in batches:
            batches[name] = field.encode(None, n)
    return {name: batches[name] for name in fields}
