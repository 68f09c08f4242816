"""Issue 2's acceptance figure on the real data: ../shared/data/arxiv, 1,000 public queries, k = 10,
default parameters, filters given both as SQL and as JSON trees: recall@10 >= 0.95 in every band and
no hit that fails its filter."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

import vecdb
from vecdb.filters import bind, parse

from .conftest import SHARED

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def arxiv(tmp_path_factory):
    root = SHARED / "arxiv"
    attrs = pq.read_table(root / "attributes.parquet")
    coll = vecdb.create(tmp_path_factory.mktemp("arxiv") / "arxiv.vdb", dim=384, metric="cosine")
    coll.add(np.load(root / "base.f16.npy"), attrs.drop(["id"]), ids=attrs.column("id").to_numpy())
    coll.build_index("hnsw")
    queries = pq.read_table(root / "queries.parquet")
    return coll, attrs, queries, np.load(root / "queries.f32.npy"), np.load(root / "gt_ids.npy"), \
        np.load(root / "gt_scores.npy")


@pytest.mark.parametrize("form", ["filter_sql", "filter_json"])
def test_recall_per_band_and_filters_hold(arxiv, form):
    coll, attrs, queries, xq, gt_ids, gt_scores = arxiv
    wheres = queries.column(form).to_pylist()
    res = coll.search(xq, k=10, where=wheres)
    base = np.load(SHARED / "arxiv" / "base.f16.npy").astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    bands = np.array(queries.column("filter_band").to_pylist())
    recalls = np.zeros(len(xq))
    for i, where in enumerate(wheres):
        hits = res.ids[i][res.ids[i] >= 0]
        mask = bind(parse(where), attrs.schema).evaluate(attrs) if parse(where) is not None else None
        if mask is not None:
            assert mask[hits].all(), f"query {i}: a hit fails {where}"
        truth = gt_ids[i, :10][gt_ids[i, :10] >= 0]
        assert res.counts[i] == len(truth)
        kth = gt_scores[i, len(truth) - 1]
        recalls[i] = np.sum(base[hits] @ xq[i] >= kth - 1e-5) / len(truth)  # tie-aware
    for band in sorted(set(bands)):
        r = recalls[bands == band].mean()
        assert r >= 0.95, f"{form}, band {band}: recall@10 {r:.4f}"
