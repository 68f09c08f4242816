"""Optional peer engines (extra ``bench-peers``): LanceDB, Chroma, Qdrant local mode, usearch.

Each runs only when its package is importable; otherwise the runner skips it with a logged note.
Filters are translated from the same WHERE strings (``benchmarks.translate``) and the translation
plus the engine's own filtering count in the query time. usearch has no filtered search in Python,
so it runs the post-filter workaround (over-fetch, drop rows failing the mask) and is labelled so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .engines import Engine, Result, pad
from .translate import to_chroma, to_lance_sql, to_qdrant

ADD_BATCH = 4096


def _python_rows(table: pa.Table | None, n: int) -> list[dict]:
    """Attribute rows as plain Python payloads (dates as ISO strings)."""
    if table is None:
        return [{} for _ in range(n)]
    rows = table.to_pylist()
    for row in rows:
        for key, value in row.items():
            if hasattr(value, "isoformat"):
                row[key] = value.isoformat()
    return rows


class LanceDB(Engine):
    """LanceDB, IVF_PQ index with exact refine, ``where(..., prefilter=True)``."""

    name = "lancedb"
    family = "lancedb"
    requires = ("lancedb",)
    note = "prefilter where"
    # IVF-PQ with ~8 dimensions per sub-vector ("auto": the largest divisor of dim <= dim / 8; 48 for 384)
    build_grid = {"smoke": [{"num_partitions": 16, "num_sub_vectors": "auto"}],
                  "full": [{"num_partitions": 256, "num_sub_vectors": "auto"}]}
    search_grid = {"smoke": [{"nprobes": 4, "refine_factor": 4}, {"nprobes": 16, "refine_factor": 4}],
                   "full": [{"nprobes": p, "refine_factor": 4} for p in (4, 16, 64)]}
    default_search = {"nprobes": 16, "refine_factor": 4}

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        import lancedb

        db = lancedb.connect(str(workdir / "lance"))
        vec = pa.FixedSizeListArray.from_arrays(pa.array(self.ds.base.reshape(-1)), self.ds.dim)
        data = pa.table({"id": pa.array(np.arange(self.ds.n)), "vector": vec})
        if self.ds.attributes is not None:
            for name in self.ds.attributes.column_names:
                data = data.append_column(name, self.ds.attributes.column(name))
        table = db.create_table("bench", data=data)
        metric = "l2" if self.ds.metric == "l2" else "dot"
        sub = params["num_sub_vectors"]
        if sub == "auto":
            sub = max(d for d in range(1, max(1, self.ds.dim // 8) + 1) if self.ds.dim % d == 0)
        table.create_index(metric=metric, num_partitions=int(params["num_partitions"]), num_sub_vectors=int(sub))
        self.state = (table, metric)
        return self.state

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        table, metric = self.state
        sql = to_lance_sql(where)
        out_i = np.full((len(queries), k), -1, np.int64)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        for i, q in enumerate(queries):
            query = table.search(q).distance_type(metric).limit(k).nprobes(int(params.get("nprobes", 16)))
            query = query.refine_factor(int(params.get("refine_factor", 4)))
            if sql is not None:
                query = query.where(sql, prefilter=True)
            got = query.select(["id"]).to_arrow()
            ids = got.column("id").to_numpy()
            dist = got.column("_distance").to_numpy()
            out_i[i], out_s[i] = (a[0] for a in pad(ids[None], -dist[None], k))
        return out_i, out_s


class Chroma(Engine):
    """Chroma (embedded, persistent client in the build folder), HNSW, metadata ``where`` filter.
    Its search beam (``hnsw:search_ef``) is fixed when the collection is made, so it is a build setting."""

    name = "chroma"
    family = "chroma"
    requires = ("chromadb",)
    note = "metadata where"
    build_grid = {"smoke": [{"M": 16, "ef_construction": 100, "ef_search": 64}],
                  "full": [{"M": 32, "ef_construction": 200, "ef_search": e} for e in (64, 256)]}

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        import chromadb

        client = chromadb.PersistentClient(path=str(workdir / "chroma"))
        space = "l2" if self.ds.metric == "l2" else "ip"
        meta = {"hnsw:space": space, "hnsw:M": int(params["M"]),
                "hnsw:construction_ef": int(params["ef_construction"]), "hnsw:search_ef": int(params["ef_search"]),
                "hnsw:num_threads": threads}
        coll = client.create_collection("bench", metadata=meta)
        rows = _python_rows(self.ds.attributes, self.ds.n)
        for start in range(0, self.ds.n, ADD_BATCH):
            stop = min(self.ds.n, start + ADD_BATCH)
            metas = [{k: v for k, v in r.items() if v not in (None, [])} or None for r in rows[start:stop]]
            coll.add(ids=[str(i) for i in range(start, stop)], embeddings=self.ds.base[start:stop],
                     metadatas=metas)
        self.state = (client, coll)
        return self.state

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        _, coll = self.state
        got = coll.query(query_embeddings=queries, n_results=k, where=to_chroma(where), include=["distances"])
        out_i = np.full((len(queries), k), -1, np.int64)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        for i, (ids, dist) in enumerate(zip(got["ids"], got["distances"])):
            out_i[i], out_s[i] = (a[0] for a in pad(np.array([int(x) for x in ids])[None],
                                                     -np.asarray(dist)[None], k))
        return out_i, out_s


class Qdrant(Engine):
    """Qdrant's local mode (``QdrantClient(path=...)``: the client's own in-process implementation, no
    server, a brute-force scan with payload filters)."""

    name = "qdrant"
    family = "qdrant"
    requires = ("qdrant_client",)
    note = "local mode, payload filter"

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(workdir / "qdrant"))
        distance = models.Distance.EUCLID if self.ds.metric == "l2" else models.Distance.DOT
        client.create_collection("bench", vectors_config=models.VectorParams(size=self.ds.dim, distance=distance))
        rows = _python_rows(self.ds.attributes, self.ds.n)
        for start in range(0, self.ds.n, ADD_BATCH):
            stop = min(self.ds.n, start + ADD_BATCH)
            client.upsert("bench", points=models.Batch(ids=list(range(start, stop)),
                                                       vectors=self.ds.base[start:stop].tolist(),
                                                       payloads=rows[start:stop]))
        self.state = (client, models)
        return self.state

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        client, models = self.state
        flt = to_qdrant(where, models)
        out_i = np.full((len(queries), k), -1, np.int64)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        for i, q in enumerate(queries):
            points = client.query_points("bench", query=q.tolist(), query_filter=flt, limit=k).points
            ids = np.array([p.id for p in points], np.int64)
            sc = np.array([p.score for p in points], np.float32)
            out_i[i], out_s[i] = (a[0] for a in pad(ids[None], (-sc if self.ds.metric == "l2" else sc)[None], k))
        return out_i, out_s


class USearch(Engine):
    """usearch HNSW with the post-filter workaround: fetch ``k / selectivity * 2`` (at most N), keep the
    rows passing the mask. Labelled so in every table: it is not a filtered search."""

    name = "usearch"
    family = "usearch"
    requires = ("usearch",)
    note = "post-filter workaround"
    build_grid = {"smoke": [{"M": 16, "ef_construction": 100}], "full": [{"M": 32, "ef_construction": 200}]}
    search_grid = {"smoke": [{"ef": 16}, {"ef": 64}], "full": [{"ef": e} for e in (32, 64, 128, 256, 512)]}
    default_search = {"ef": 128}

    def build(self, params: dict, workdir: Path, threads: int) -> Any:
        from usearch.index import Index

        index = Index(ndim=self.ds.dim, metric="l2sq" if self.ds.metric == "l2" else "ip", dtype="f32",
                      connectivity=int(params["M"]), expansion_add=int(params["ef_construction"]))
        index.add(np.arange(self.ds.n), self.ds.base, threads=threads)
        index.save(str(workdir / "index.usearch"))
        self.state = index
        return index

    def search_group(self, queries: np.ndarray, k: int, where: str | None, params: dict, threads: int) -> Result:
        index = self.state
        mask = self.filters.mask(where)
        matches = self.ds.n if mask is None else int(mask.sum())
        fetch = self.ds.n if matches == 0 else min(self.ds.n, math.ceil(k * self.ds.n / matches * 2))
        index.expansion_search = max(int(params.get("ef", 128)), fetch)
        got = index.search(queries, fetch, threads=threads)
        keys = np.atleast_2d(np.asarray(got.keys, dtype=np.int64))
        dist = np.atleast_2d(np.asarray(got.distances, dtype=np.float32))
        valid = (keys >= 0) & (keys < self.ds.n)
        if mask is not None:
            valid &= mask[np.clip(keys, 0, self.ds.n - 1)]
        out_i = np.full((len(queries), k), -1, np.int64)
        out_s = np.full((len(queries), k), -np.inf, np.float32)
        for i in range(len(queries)):
            keep = np.flatnonzero(valid[i])[:k]
            scores = -dist[i, keep] if self.ds.metric == "l2" else 1.0 - dist[i, keep]
            out_i[i, : keep.size], out_s[i, : keep.size] = keys[i, keep], scores
        return out_i, out_s


PEERS: list[type[Engine]] = [LanceDB, Chroma, Qdrant, USearch]
