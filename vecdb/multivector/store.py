"""The multi-vector store: each row holds a variable-length set of vectors, scored by Chamfer similarity
(late interaction, ColBERT-style), searched through MUVERA fixed-dimensional encodings (FDEs).

On disk (per segment): ``seg-NNNNNN.tokens.npy`` all vectors of the rows one write added, concatenated
(memory-mappable), ``seg-NNNNNN.offsets.npy`` (row i owns ``tokens[offsets[i]:offsets[i + 1]]``). The MUVERA
index: ``index-NNNNNN.fde.npy`` the rows' FDE vectors (one file per build, plus one per later add) and
``index-NNNNNN.*`` the inner single-vector index over them.

Search: encode the query sets, let the planner pick exact scan / index / post-filter over the FDE matrix
with the filter's rows, take ``candidates`` rows, rerank them by exact Chamfer (numba), keep k. When no
more rows pass than ``candidates``, all of them are reranked (plan ``chamfer_exact``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import pyarrow as pa

from .. import planner
from ..errors import InvalidParameterError
from ..filters.attribute_index import RowSet
from ..indexes.base import Hits, VectorIndex, index_class
from ..storage.files import describe_file, read_npy, write_npy
from ..storage.manifest import FieldSpec, IndexSpec, Segment
from ..vectors import check_k
from ..vectorstore import Batch, IndexSaver, file_entry, index_options, load_index
from .chamfer import as_sets, chamfer_topk, rerank, score_pairs
from .fde import FDEConfig, FDEEncoder

DEFAULT_CANDIDATES = 150  # recall@10 0.97 on ../shared/data/arxiv-tokens with the default FDE (fde.py)
PLANS = ("exact", *planner.PLANS)  # "exact" is the exact Chamfer scan (the oracle); the rest the FDE stage's
FDE_OPTIONS = ("r_reps", "k_sim", "d_proj", "d_final", "seed", "fill_empty", "inner", "candidates")


@dataclasses.dataclass(frozen=True)
class QuerySets:
    """Validated query sets and their FDEs (None when the store has no MUVERA index)."""

    tokens: np.ndarray
    offsets: np.ndarray
    fde: np.ndarray | None

    def __len__(self) -> int:
        return self.offsets.shape[0] - 1


@dataclasses.dataclass(frozen=True, eq=False)
class MultiStore:
    """Sets of vectors per row; the MUVERA index (encoder, FDE matrix, inner index) when built."""

    kind: ClassVar[str] = "multi"
    batched: ClassVar[bool] = False  # candidates, then a Chamfer rerank per filter group

    dim: int
    metric: str
    tokens: np.ndarray
    offsets: np.ndarray
    encoder: FDEEncoder | None = None
    fde: np.ndarray | None = None
    index: VectorIndex | None = None  # the inner index over the FDEs
    candidates: int = DEFAULT_CANDIDATES

    @property
    def rows(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @classmethod
    def load(cls, root: Path, segments: Sequence[Segment], field: FieldSpec, lazy: list) -> "MultiStore":
        """The rows of a committed version; mapped files are only size-checked, listed in ``lazy``."""
        tokens, offsets = [], [np.zeros(1, np.int64)]
        for seg in segments:
            files = seg.fields[field.name]
            tokens.append(read_npy(root, files["tokens"], lazy=lazy))
            local = read_npy(root, files["offsets"], mmap=False)
            offsets.append(local[1:] + offsets[-1][-1])
        return cls(field.dim, field.metric,
                   tokens[0] if len(tokens) == 1 else np.concatenate(tokens) if tokens else
                   np.empty((0, field.dim), np.float32), np.concatenate(offsets))

    def with_saved_index(self, root: Path, spec: IndexSpec, lazy: list) -> "MultiStore":
        encoder = FDEEncoder(FDEConfig.from_json(dict(spec.config)))
        parts = [read_npy(root, entry, lazy=lazy) for entry in spec.data]
        fde = parts[0] if len(parts) == 1 else np.concatenate(parts)
        inner = load_index(root, spec.inner, encoder.dim, "ip", fde)
        return dataclasses.replace(self, encoder=encoder, fde=fde, index=inner, candidates=spec.candidates)

    def with_index_of(self, other: "MultiStore") -> "MultiStore":
        if other.index is not self.index:  # the MUVERA encodings are appended with the rows (``encode``)
            raise InvalidParameterError("a multi-vector field holds one index (MUVERA)")
        return self

    def bare(self) -> "MultiStore":
        return dataclasses.replace(self, encoder=None, fde=None, index=None, candidates=DEFAULT_CANDIDATES)

    def null_rows(self, n: int) -> Batch:
        """One unit vector a row (a set is never empty), masked out of every search by ``valid``."""
        return self.encode((np.repeat(np.eye(1, self.dim, dtype=np.float32), n, axis=0),
                            np.arange(n + 1, dtype=np.int64)))

    def score(self, queries: QuerySets, rows: np.ndarray) -> np.ndarray:
        rows = np.array(rows, dtype=np.int64, order="C")
        s = score_pairs(queries.tokens, queries.offsets, self.tokens, self.offsets, rows, parallel=False)
        return np.where(rows >= 0, s, -np.inf).astype(np.float32)

    # ----------------------------------------------------------------- writing
    def encode(self, vectors: Any) -> Batch:
        x, offsets = as_sets(vectors, self.dim, normalize=self.metric == "cosine")
        arrays = {"tokens": x, "offsets": offsets}
        if self.encoder is not None:  # rows added after build_index are encoded at once
            arrays["fde"] = self.encoder.encode_documents(x, offsets)
        return Batch(offsets.shape[0] - 1, arrays)

    def index_spec_after_add(self, spec: IndexSpec | None, batch: Batch, stem: Path, written: list) -> IndexSpec | None:
        if spec is None or "fde" not in batch.arrays:
            return spec
        path = stem.with_name(stem.name.replace("seg-", "index-") + ".fde.npy")
        written.append(path)
        return dataclasses.replace(spec, data=(*spec.data, file_entry(write_npy(path, batch.arrays["fde"]))))

    def appended(self, batch: Batch, spec: IndexSpec | None) -> "MultiStore":
        x, offsets = batch.arrays["tokens"], batch.arrays["offsets"]
        fde = self.fde
        if "fde" in batch.arrays and fde is not None:
            fde = np.concatenate([fde, batch.arrays["fde"]])
        return dataclasses.replace(
            self, tokens=np.concatenate([self.tokens, x]) if self.tokens.size else x,
            offsets=np.concatenate([self.offsets, offsets[1:] + self.offsets[-1]]), fde=fde)

    def built(self, kind: str, options: dict[str, Any]) -> tuple["MultiStore", IndexSaver]:
        if kind != "muvera":
            raise InvalidParameterError(f"unknown multi-vector index {kind!r}; expected 'muvera'")
        options = dict(options)
        inner_kind = options.pop("inner", "flat")
        candidates = check_k(options.pop("candidates", DEFAULT_CANDIDATES))
        fde_opts = {name: options.pop(name) for name in FDE_OPTIONS if name in options}
        cls = index_class(inner_kind)
        index_options(cls, options, f"inner index {inner_kind!r}", extra=FDE_OPTIONS)
        config = FDEConfig(dim=self.dim, r_reps=fde_opts.get("r_reps", 3), k_sim=fde_opts.get("k_sim", 2),
                           d_proj=fde_opts.get("d_proj"), d_final=fde_opts.get("d_final"),
                           seed=fde_opts.get("seed", 0), fill_empty=bool(fde_opts.get("fill_empty", True)))
        encoder = FDEEncoder(config)
        fde = encoder.encode_documents(self.tokens, self.offsets)
        inner = cls(encoder.dim, "ip", **options)
        inner.build(fde)

        def save(stem: Path, written: list) -> IndexSpec:
            path = stem.with_name(stem.name + ".fde.npy")
            written.append(path)
            data = (file_entry(write_npy(path, fde)),)
            paths = inner.save(stem)
            written += paths
            inner_spec = IndexSpec(inner.kind, inner.config(), inner.ntotal,
                                   tuple(file_entry(describe_file(p)) for p in paths))
            return IndexSpec("muvera", config.to_json(), int(fde.shape[0]), data=data, candidates=candidates,
                             inner=inner_spec)

        return dataclasses.replace(self, encoder=encoder, fde=fde, index=inner, candidates=candidates), save

    def optimized(self, root: Path, spec: IndexSpec) -> tuple["MultiStore", IndexSaver] | None:
        if self.index is None or spec.rows == self.rows:
            return None
        inner = load_index(root, spec.inner, self.encoder.dim, "ip", self.fde)  # a copy no search reads
        inner.add(self.fde[spec.rows:])

        def save(stem: Path, written: list) -> IndexSpec:
            paths = inner.save(stem)
            written += paths
            inner_spec = IndexSpec(inner.kind, inner.config(), inner.ntotal,
                                   tuple(file_entry(describe_file(p)) for p in paths))
            return dataclasses.replace(spec, rows=self.rows, inner=inner_spec)

        return dataclasses.replace(self, index=inner), save

    def taken(self, rows: np.ndarray) -> Batch:
        lengths = self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lengths)
        tokens = (np.concatenate([self.tokens[self.offsets[r]: self.offsets[r + 1]] for r in rows])
                  if rows.size else np.empty((0, self.dim), np.float32))
        arrays = {"tokens": np.ascontiguousarray(tokens, dtype=np.float32), "offsets": offsets}
        if self.fde is not None:  # their encodings too, for an index that appends them (``appended``)
            arrays["fde"] = np.ascontiguousarray(self.fde[rows])
        return Batch(int(rows.shape[0]), arrays)

    def empty(self) -> "MultiStore":
        return MultiStore(self.dim, self.metric, np.empty((0, self.dim), np.float32), np.zeros(1, np.int64))

    def index_options(self, spec: IndexSpec) -> tuple[str, dict[str, Any]]:
        fde = {k: v for k, v in spec.config.items() if k != "dim"}
        return "muvera", {**fde, "candidates": spec.candidates, "inner": spec.inner.kind, **spec.inner.config}

    # ----------------------------------------------------------------- reading
    def vectors_of(self, rows: np.ndarray) -> pa.Array:
        """A ``list<fixed_size_list<float>>`` column: each row's set of vectors."""
        lengths = self.offsets[rows + 1] - self.offsets[rows]
        flat = (np.concatenate([self.tokens[self.offsets[r]: self.offsets[r + 1]] for r in rows])
                if rows.size else np.empty((0, self.dim), np.float32)).astype(np.float32, copy=False)
        inner = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), self.dim)
        list_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(list_offsets), inner)

    def index_info(self, spec: IndexSpec | None) -> dict[str, Any] | None:
        if spec is None or self.encoder is None:
            return None
        config = {**spec.config, "candidates": spec.candidates, "inner": spec.inner.kind}
        return {"kind": spec.kind, "config": config, "device": "cpu", "fde": dict(spec.config),
                "fde_dim": self.encoder.dim, "fde_bytes_per_row": 4 * self.encoder.dim,
                "candidates": spec.candidates, "inner": {"kind": spec.inner.kind, "config": dict(spec.inner.config)},
                "rows": spec.rows}

    def hit_vectors(self, rows: np.ndarray) -> list:
        """Per query, each hit's set of vectors (lists of lists of floats)."""
        return [self.vectors_of(r[r >= 0]).to_pylist() for r in rows]

    def recalibrated(self, queries: Any, filters: Sequence[Any] = ()) -> None:
        return None  # the rerank's candidates, not a beam, set its recall

    def plain_ready(self, k: int, n_live: int) -> bool:
        return False  # every search reranks: always through the planner

    def plain_params(self, config: planner.PlannerConfig, params: planner.SearchParams) -> dict[str, Any]:
        return {}

    def prepare_queries(self, queries: Any) -> QuerySets:
        """One ``(n, dim)`` array is one query set (as in LanceDB); a list of them, ``(vectors, offsets)``
        or an ``(n_sets, n, dim)`` array are several."""
        q, offsets = as_sets(queries, self.dim, normalize=self.metric == "cosine", what="queries")
        return QuerySets(q, offsets, self.encoder.encode_queries(q, offsets) if self.encoder is not None else None)

    def search_params(self, params: Mapping[str, Any]) -> planner.SearchParams:
        return planner.SearchParams.parse(params, self.index, extra=("candidates",), plans=PLANS)

    def search(self, snapshot: Any, queries: QuerySets, members: Sequence[int], k: int, selection: RowSet | None,
               matches: int, params: planner.SearchParams, *, pool: bool, deleted_only: bool = False,
               describe: dict[str, Any] | None = None, plan: planner.Plan | None = None) -> tuple[planner.Plan, Hits]:
        members = np.asarray(members, dtype=np.int64)  # (a multi-vector field has one store: it plans itself)
        if self.index is None or params.plan == "exact":
            why = "no MUVERA index is built" if self.index is None else "forced by the caller"
            plan = planner.Plan("chamfer_exact", matches, snapshot.n_live, why, **(describe or {}))
            if describe is not None:
                return plan, Hits.empty(0, k)
            allowed = selection.rows if selection is not None else np.arange(self.rows, dtype=np.int64)
            return plan, chamfer_topk(queries.tokens, queries.offsets, members, self.tokens, self.offsets,
                                      allowed, k, parallel=not pool)
        n_cand = max(k, params.candidates or self.candidates)
        if matches <= n_cand and params.plan == "auto":
            plan = planner.Plan("chamfer_exact", matches, snapshot.n_live,
                                f"{matches} matching rows <= candidates={n_cand}: all are reranked exactly",
                                **(describe or {}))
            if describe is not None:
                return plan, Hits.empty(0, k)
            allowed = selection.rows if selection is not None else np.arange(self.rows, dtype=np.int64)
            cand = np.broadcast_to(allowed, (members.size, allowed.size))
        else:
            plan = planner.choose(index=self.index, matches=matches, total=snapshot.n_live, k=n_cand,
                                  filtered=selection is not None, params=params, config=params.config or snapshot.planner,
                                  deleted_share=1 - snapshot.n_live / snapshot.stored if deleted_only else None,
                                  nq=int(members.size), **(describe or {}))
            plan = dataclasses.replace(plan, name=plan.name + "+rerank")
            if describe is not None:
                return plan, Hits.empty(0, k)
            stage = dataclasses.replace(plan, name=plan.name.removesuffix("+rerank"))
            hits = planner.run(stage, vectors=self.fde, index=self.index, config=params.config or snapshot.planner,
                               index_rows=self.index.ntotal, queries=queries.fde[members], k=n_cand,
                               selection=selection, metric="ip")
            cand = hits.rows
        return plan, rerank(queries.tokens, queries.offsets, members, self.tokens, self.offsets, cand, k,
                            parallel=not pool)
