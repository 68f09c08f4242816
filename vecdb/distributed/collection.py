"""A sharded collection: the collection's read and write API over N ordinary collections.

Reads: each distinct filter is parsed once and checked against every shard's statistics
(``stats.may_pass``); each shard gets one call with the queries whose filters it may satisfy, runs its
own planner for k, and the driver merges the per-shard top-k. Merging follows vecdb's tie rule with the
id in place of the row: higher score first, then the smaller **id** (a single collection breaks ties by
row number, which is the order rows were added; the two agree except among exactly equal scores).
With ``plan="exact"`` every shard's answer is exact, so the merged answer is the single collection's.

Writes are routed to the owning shard (``routing.Sharding``). The shard's statistics are widened in the
manifest *before* the rows are committed, so a reader never prunes a shard that holds a matching row.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
from filelock import FileLock

from vecdb.errors import DuplicateIdError, InvalidParameterError, UnknownIdError
from vecdb.filters import Expr, parse
from vecdb.storage.attributes import to_table
from vecdb.topk import finish
from vecdb.vectors import check_k

from . import manifest as manifests
from .manifest import ShardedManifest, ShardEntry
from .results import ShardedPlan, ShardedSearchResult, merged_plan_name
from .stats import MAX_DISTINCT, may_pass, merge_stats, table_stats

log = logging.getLogger(__name__)


class ShardedCollection:
    """Use ``vecdb.distributed.open`` (or ``build``); the constructor is internal."""

    def __init__(self, root: Path, manifest: ShardedManifest, backend: Any, *, max_distinct: int = MAX_DISTINCT):
        self.root = root
        self._manifest = manifest
        self._stamp = manifests.stamp(root)
        self._backend = backend
        self._max_distinct = max_distinct
        self._lock = FileLock(str(root / manifests.LOCK))

    # ----------------------------------------------------------------- state
    @property
    def manifest(self) -> ShardedManifest:
        """The newest top-level manifest (re-read when another handle or process replaced it)."""
        now = manifests.stamp(self.root)
        if now != self._stamp:
            self._manifest, self._stamp = manifests.read(self.root), now
        return self._manifest

    @property
    def dim(self) -> int:
        return self._manifest.dim

    @property
    def metric(self) -> str:
        return self._manifest.metric

    @property
    def shard_names(self) -> list[str]:
        return [s.name for s in self._manifest.shards]

    @property
    def mode(self) -> str:
        """``"local"`` (shards in this process) or ``"ray"`` (one actor per shard)."""
        return self._backend.mode

    def __len__(self) -> int:
        done, _ = self._backend.run([(i, "rows", ()) for i in range(len(self.shard_names))])
        return int(sum(done.values()))

    def __repr__(self) -> str:
        m = self._manifest
        return (f"ShardedCollection({str(self.root)!r}, shards={len(m.shards)}, sharding={m.sharding.kind!r}"
                f"{'' if m.sharding.column is None else f' on {m.sharding.column!r}'}, dim={m.dim}, "
                f"metric={m.metric!r}, mode={self.mode!r})")

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> "ShardedCollection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------- reading
    def _keep(self, exprs: Sequence[Expr | None]) -> dict[Expr | None, np.ndarray]:
        """Per distinct filter, which shards its statistics keep (an empty shard holds nothing to find)."""
        shards = self.manifest.shards
        return {e: np.array([s.rows > 0 and may_pass(e, s.stats) for s in shards], bool) for e in dict.fromkeys(exprs)}

    def _queries(self, queries: Any) -> np.ndarray:
        q = np.asarray(queries)
        if q.dtype.kind not in "fiu":
            raise InvalidParameterError(f"queries must be numbers; got dtype {q.dtype}")
        q = np.atleast_2d(q).astype(np.float32, copy=False)
        if q.ndim != 2 or q.shape[1] != self.dim:
            from vecdb.errors import DimensionError
            raise DimensionError(f"expected dim {self.dim}, got {q.shape[-1] if q.ndim else q.shape}")
        return q

    def search(self, queries: Any, k: int = 10, where: Any = None, *, allow_partial: bool = False,
               **params: Any) -> ShardedSearchResult:
        """``Collection.search`` over the shards: same ``where`` forms (one filter, or a list with one per
        query) and ``params`` (``plan=``, ``ef=``, ``target_recall=``...). ``allow_partial``: answer from
        the shards that did answer when one is unavailable (flagged: ``result.partial``)."""
        q = self._queries(queries)
        nq = len(q)
        k = check_k(k)
        if isinstance(where, (list, tuple)):
            if len(where) != nq:
                raise InvalidParameterError(f"got {len(where)} filters for {nq} queries; give one per query")
            exprs = [parse(w) for w in where]
        else:
            exprs = [parse(where)] * nq
        keep = self._keep(exprs)
        per_query = np.stack([keep[e] for e in exprs]) if nq else np.zeros((0, len(self.shard_names)), bool)
        calls, members_of = [], {}
        for shard in range(per_query.shape[1]):
            members = np.flatnonzero(per_query[:, shard])
            if members.size == 0:
                continue
            group = [exprs[i] for i in members]
            text = [None if e is None else str(e) for e in group]
            shard_where = text[0] if len(set(group)) == 1 else text
            members_of[shard] = members
            calls.append((shard, "search", (q[members], k, shard_where, params)))
        done, failed = self._backend.run(calls, allow_partial)
        return self._merge(nq, k, done, members_of, per_query, failed)

    def _merge(self, nq: int, k: int, done: dict[int, Any], members_of: dict[int, np.ndarray],
               per_query: np.ndarray, failed: dict[int, Exception]) -> ShardedSearchResult:
        rows = sum(s.rows for s in self.manifest.shards)
        k_out = min(k, max(rows, 1))
        width = sum(done[s][0].shape[1] for s in done) or 1
        cand_s = np.full((nq, width), -np.inf, np.float32)
        cand_i = np.full((nq, width), -1, np.int64)
        plans: list[list[str]] = [[] for _ in range(nq)]
        l2 = self.metric == "l2"
        col = 0
        for shard, (ids, scores, _counts, shard_plans) in sorted(done.items()):
            members, w = members_of[shard], ids.shape[1]
            found = ids >= 0
            cand_s[members, col:col + w] = np.where(found, -scores if l2 else scores, -np.inf)
            cand_i[members, col:col + w] = ids
            for i, name in zip(members, shard_plans):
                plans[i].append(name)
            col += w
        hits = finish(cand_s, cand_i, k_out)
        found = hits.rows >= 0
        scores = np.where(found, -hits.scores, np.inf).astype(np.float32) if l2 else hits.scores
        searched = per_query.sum(axis=1) if per_query.size else np.zeros(nq, np.int64)
        for shard in failed:
            searched -= per_query[:, shard]
        return ShardedSearchResult(
            hits.rows, scores, found.sum(axis=1).astype(np.int64), tuple(merged_plan_name(p) for p in plans),
            shards_searched=searched.astype(np.int64),
            shards_pruned=(per_query.shape[1] - per_query.sum(axis=1)).astype(np.int64) if per_query.size
            else np.zeros(nq, np.int64),
            missing_shards=tuple(self.shard_names[s] for s in sorted(failed)), _source=self)

    def explain(self, query: Any = None, where: Any = None, k: int = 10,
                **params: Any) -> ShardedPlan | list[ShardedPlan]:
        """The plan per filter: shards kept and pruned by their statistics, each kept shard's own plan
        (``Collection.explain``) and the exact matching rows; a list of filters gives a list of plans."""
        k = check_k(k)
        if query is not None:
            nq = len(self._queries(query))
            if isinstance(where, (list, tuple)) and len(where) != nq:
                raise InvalidParameterError(f"got {len(where)} filters for {nq} queries; give one per query")
        if isinstance(where, (list, tuple)):
            return [self._explain_one(parse(w), k, params) for w in where]
        return self._explain_one(parse(where), k, params)

    def _explain_one(self, expr: Expr | None, k: int, params: dict[str, Any]) -> ShardedPlan:
        keep = self._keep([expr])[expr]
        names = self.shard_names
        text = None if expr is None else str(expr)
        done, failed = self._backend.run([(s, "explain", (text, k, params)) for s in np.flatnonzero(keep)],
                                         allow_partial=True)
        plans = {names[s]: done[s] for s in sorted(done)}
        total = sum(p.total for p in plans.values()) + sum(self.manifest.shards[s].rows
                                                            for s in range(len(names)) if not keep[s])
        return ShardedPlan(text, tuple(names[s] for s in np.flatnonzero(keep)),
                           tuple(names[s] for s in np.flatnonzero(~keep)), plans,
                           sum(p.matches for p in plans.values()), total, tuple(names[s] for s in sorted(failed)))

    def count(self, where: Any = None) -> int:
        """Live rows passing ``where`` (all with None), counted exactly by the shards that may hold any."""
        expr = parse(where)
        keep = self._keep([expr])[expr]
        text = None if expr is None else str(expr)
        done, _ = self._backend.run([(s, "count", (text,)) for s in np.flatnonzero(keep)])
        return int(sum(done.values()))

    def _owners(self, ids: np.ndarray) -> np.ndarray | None:
        """The shard of each id when the id alone decides it (hash sharding), else None."""
        sharding = self.manifest.sharding
        return sharding.route(ids, None) if sharding.kind == "hash" or sharding.shards == 1 else None

    def get(self, ids: Any, columns: Sequence[str] | None = None, *, with_vectors: bool = True) -> pa.Table:
        """Rows by id, in the order given (``Collection.get``), gathered from the shards that hold them."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        owners = self._owners(ids)
        shards = range(len(self.shard_names)) if owners is None else np.unique(owners)
        cols = None if columns is None else list(columns)
        done, _ = self._backend.run([(int(s), "get_held", (ids if owners is None else ids[owners == s], cols,
                                                             with_vectors)) for s in shards])
        parts = [done[s] for s in sorted(done) if done[s].num_rows]
        if not parts:
            if ids.size:
                raise UnknownIdError(f"unknown id(s): {ids[:10].tolist()}")
            return next(iter(done.values())) if done else pa.table({"id": pa.array([], pa.int64())})
        table = pa.concat_tables(parts)
        got = table.column("id").to_numpy()
        order = np.argsort(got, kind="stable")
        pos = np.searchsorted(got[order], ids)
        pos = np.clip(pos, 0, len(got) - 1)
        missing = got[order][pos] != ids
        if missing.any():
            raise UnknownIdError(f"unknown id(s): {ids[missing][:10].tolist()}")
        return table.take(pa.array(order[pos]))

    # ----------------------------------------------------------------- writing
    def add(self, vectors: Any, attributes: Any = None, ids: Any = None) -> np.ndarray:
        """Append rows, each to the shard that owns it; ``ids`` are required (they route the rows and must
        be unique over all shards). Returns the ids."""
        return self._write("add", vectors, attributes, ids)

    def upsert(self, vectors: Any, attributes: Any = None, ids: Any = None) -> np.ndarray:
        """Insert or replace rows by id. Under partition sharding a row whose partition value changed
        moves: it is upserted on its new shard, then deleted from the old one (two commits)."""
        return self._write("upsert", vectors, attributes, ids)

    def delete(self, ids: Any = None, *, where: Any = None) -> int:
        """Delete rows by id or by filter (exactly one); returns how many were deleted over all shards."""
        if (ids is None) == (where is None):
            raise InvalidParameterError("give ids=... or where=..., exactly one of them")
        if where is not None:
            expr = parse(where)
            keep = self._keep([expr])[expr]
            calls = [(int(s), "delete", (None, str(expr))) for s in np.flatnonzero(keep)]
        else:
            ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
            owners = self._owners(ids)
            if owners is None:
                calls = [(s, "delete", (ids, None)) for s in range(len(self.shard_names))]
            else:
                calls = [(int(s), "delete", (ids[owners == s], None)) for s in np.unique(owners)]
        done, _ = self._backend.run(calls)
        self._record_rows(list(done))
        return int(sum(done.values()))

    def _write(self, verb: str, vectors: Any, attributes: Any, ids: Any) -> np.ndarray:
        if ids is None:
            raise InvalidParameterError(f"{verb} on a sharded collection needs ids=...: they route each row "
                                        f"to its shard and must be unique over all shards")
        vectors = np.asarray(vectors)
        if vectors.ndim == 1:
            vectors = vectors[None]
        ids = np.atleast_1d(np.asarray(ids))
        if ids.dtype.kind not in "iu" or ids.shape != (len(vectors),):
            raise InvalidParameterError(f"expected {len(vectors)} integer ids, got an array of shape {ids.shape} "
                                        f"and dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        table = None if attributes is None else to_table(attributes, len(vectors))  # as a shard reads them
        sharding = self.manifest.sharding
        owners = sharding.route(ids, table)
        moved: dict[int, np.ndarray] = {}
        if sharding.kind != "hash" and sharding.shards > 1:  # the id alone does not say where it lives
            done, _ = self._backend.run([(s, "holds", (ids,)) for s in range(sharding.shards)])
            for s, held in done.items():
                elsewhere = held & (owners != s)
                if elsewhere.any():
                    if verb == "add":
                        raise DuplicateIdError(f"ids already present in shard {self.shard_names[s]!r}: "
                                               f"{ids[elsewhere][:10].tolist()} (upsert replaces rows)")
                    moved[s] = ids[elsewhere]
        targets = [int(s) for s in np.unique(owners)]
        self._widen({s: int((owners == s).sum()) if table is None else table.filter(pa.array(owners == s))
                     for s in targets})
        calls = [(s, verb, (vectors[owners == s], None if table is None else table.filter(pa.array(owners == s)),
                            ids[owners == s])) for s in targets]
        self._backend.run(calls)
        if moved:
            self._backend.run([(s, "delete", (old, None)) for s, old in moved.items()])
        self._record_rows(sorted(set(targets) | set(moved)))
        return ids

    def _widen(self, new_rows: dict[int, pa.Table | int]) -> None:
        """Widen the statistics of the shards about to receive rows, and commit the manifest, first."""
        full = () if self.manifest.sharding.column is None else (self.manifest.sharding.column,)
        with self._lock:
            m = manifests.read(self.root)
            for s, table in new_rows.items():
                entry = m.shards[s]
                if isinstance(table, int):  # rows without attributes: nulls in every column
                    stats = {name: {**st, "rows": st["rows"] + table, "nulls": st["nulls"] + table}
                             for name, st in entry.stats.items()}
                else:
                    new = table_stats(table, max_distinct=self._max_distinct, full_distinct=full)
                    for name, st in entry.stats.items():  # columns left out are null in the new rows
                        new.setdefault(name, {"type": st["type"], "rows": table.num_rows, "nulls": table.num_rows})
                    stats = merge_stats(entry.stats, new, max_distinct=self._max_distinct, full_distinct=full)
                added = table if isinstance(table, int) else table.num_rows
                # rows: an upper bound until _record_rows stores the count (an empty shard is never searched)
                m = m.with_shard(s, ShardEntry(entry.name, entry.rows + added, stats))
            manifests.write(self.root, m)
            self._manifest, self._stamp = m, manifests.stamp(self.root)

    def _record_rows(self, shards: Sequence[int]) -> None:
        """Store the shards' live row counts in the manifest after a write."""
        done, _ = self._backend.run([(s, "rows", ()) for s in shards])
        with self._lock:
            m = manifests.read(self.root)
            for s, rows in done.items():
                m = m.with_shard(s, ShardEntry(m.shards[s].name, int(rows), m.shards[s].stats))
            manifests.write(self.root, m)
            self._manifest, self._stamp = m, manifests.stamp(self.root)

    def refresh_stats(self) -> None:
        """Recompute every shard's statistics from its live rows (tightens them after deletes)."""
        full = () if self.manifest.sharding.column is None else (self.manifest.sharding.column,)
        done, _ = self._backend.run([(s, "stats", (self._max_distinct, full)) for s in range(len(self.shard_names))])
        with self._lock:
            m = manifests.read(self.root)
            for s, (rows, stats) in done.items():
                m = m.with_shard(s, ShardEntry(m.shards[s].name, int(rows), stats))
            manifests.write(self.root, m)
            self._manifest, self._stamp = m, manifests.stamp(self.root)

    def optimize(self) -> None:
        """``Collection.optimize`` on every shard."""
        self._backend.run([(s, "optimize", ()) for s in range(len(self.shard_names))])
