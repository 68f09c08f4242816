"""Every search path against the exact oracle, on the bundled arXiv slice and on synthetic data.

- exact plans equal a brute-force numpy search over only the matching rows (faiss' best filter test);
- every hit satisfies its filter, and counts are min(k, matches);
- approximate plans reach a recall bound against the oracle;
- all plans agree on a flat index.
"""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb.filters import bind, parse
from vecdb.indexes.flat import exact_search

from .conftest import small_table


def brute_force(x: np.ndarray, q: np.ndarray, mask: np.ndarray, k: int):
    """The oracle: numpy over only the rows that pass, ties to the smaller row."""
    rows = np.flatnonzero(mask)
    s = q @ x[rows].T
    order = np.lexsort((np.broadcast_to(rows, s.shape), -s), axis=1)[:, :k]
    return rows[order], np.take_along_axis(s, order, axis=1)


def recall(found: np.ndarray, truth_ids: np.ndarray, truth_scores: np.ndarray, scores_of_found: np.ndarray,
           eps: float = 1e-5) -> float:
    """Tie-aware recall: a hit counts when its true score reaches the k-th true score minus eps."""
    hits, total = 0, 0
    for f, t, ts, fs in zip(found, truth_ids, truth_scores, scores_of_found):
        real = t[t >= 0]
        if real.size == 0:
            continue
        kth = ts[real.size - 1]
        hits += min(real.size, int(np.sum((f >= 0) & (fs >= kth - eps))))
        total += real.size
    return hits / total


def masks_for(coll, wheres):
    table = coll.get(np.arange(len(coll)), with_vectors=False)
    return [np.ones(len(coll), bool) if w is None else bind(parse(w), table.schema).evaluate(table)
            for w in wheres]


def test_exact_plan_equals_oracle_on_slice(arxiv_slice, slice_collection):
    wheres = arxiv_slice.filters_sql
    res = slice_collection.search(arxiv_slice.queries, k=10, where=wheres, plan="exact")
    for i, mask in enumerate(masks_for(slice_collection, wheres)):
        ids, scores = brute_force(arxiv_slice.base, arxiv_slice.queries[i:i + 1], mask, 10)
        n = min(10, int(mask.sum()))
        assert res.counts[i] == n
        np.testing.assert_array_equal(res.ids[i, :n], ids[0, :n])
        np.testing.assert_allclose(res.scores[i, :n], scores[0, :n], atol=1e-5)
        assert (res.ids[i, n:] == -1).all()


def test_slice_ground_truth_matches_exact_plan(arxiv_slice, slice_collection):
    """The bundled ground truth (made independently of vecdb) agrees with vecdb's exact plan."""
    res = slice_collection.search(arxiv_slice.queries, k=10, where=arxiv_slice.filters_json, plan="exact")
    assert recall(res.ids, arxiv_slice.gt_ids[:, :10], arxiv_slice.gt_scores[:, :10], res.scores) == 1.0


@pytest.mark.parametrize("plan", ["auto", "index", "filtered_graph", "post_filter"])
def test_every_plan_returns_k_passing_rows_with_high_recall(arxiv_slice, slice_collection, plan):
    wheres = arxiv_slice.filters_sql
    res = slice_collection.search(arxiv_slice.queries, k=10, where=wheres, plan=plan)
    masks = masks_for(slice_collection, wheres)
    for i, mask in enumerate(masks):
        hits = res.ids[i][res.ids[i] >= 0]
        assert res.counts[i] == min(10, int(mask.sum())), (i, wheres[i])
        assert mask[hits].all(), f"query {i}: hit fails {wheres[i]}"
    # scores of what was found, recomputed, then tie-aware recall per band
    found_scores = np.einsum("qd,qkd->qk", arxiv_slice.queries, arxiv_slice.base[np.maximum(res.ids, 0)])
    bands = np.array(arxiv_slice.bands)
    for band in sorted(set(bands)):
        sel = bands == band
        r = recall(res.ids[sel], arxiv_slice.gt_ids[sel, :10], arxiv_slice.gt_scores[sel, :10], found_scores[sel])
        assert r >= 0.95, f"plan {plan}, band {band}: recall {r:.3f}"


@pytest.mark.parametrize("kind, options", [("hnsw", {"M": 16}), ("hnsw", {"M": 16, "storage": "fp16"}), ("hnswlib", {"M": 16}),
                                           ("ivf", {"nlist": 32, "nprobe": 8}), ("flat", {})])
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_indexes_against_oracle_with_filters(tmp_path, kind, options, metric):
    rng = np.random.default_rng(3)
    n, dim = 3000, 24
    centers = rng.normal(size=(20, dim))
    x = (centers[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)
    coll = vecdb.create(tmp_path / "c", dim=dim, metric=metric)
    coll.add(x, small_table(rng, n))
    coll.build_index(kind, **options)
    q = x[rng.integers(0, n, 40)] + 0.1 * rng.normal(size=(40, dim)).astype(np.float32)
    filters = [None, "flag = TRUE", "year >= 2010", "tag IN ('a', 'b') AND price > 8", "'c' IN labels",
               "year BETWEEN 2003 AND 2004 AND tag = 'd'", "NOT (tag = 'a') OR year IS NULL"]
    xs = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    qs = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "cosine" else q
    for where, mask in zip(filters, masks_for(coll, filters)):
        res = coll.search(q, k=10, where=where)
        truth = coll.search(q, k=10, where=where, plan="exact")
        m = int(mask.sum())
        assert (res.counts == min(10, m)).all(), where
        assert mask[res.ids[res.ids >= 0]].all(), where
        if metric == "cosine":
            ids, scores = brute_force(xs, qs, mask, 10)
            np.testing.assert_array_equal(truth.ids[:, : min(10, m)], ids[:, : min(10, m)])
        found = np.where(res.ids >= 0, truth.ids, -1)
        # recall of the approximate result against the exact one, by score (higher-is-better view)
        sign = -1.0 if metric == "l2" else 1.0
        r = recall(res.ids, truth.ids, sign * truth.scores, sign * res.scores)
        assert r >= 0.9, f"{kind}/{metric} {where}: recall {r:.3f}"
        assert found.shape == res.ids.shape


def test_all_plans_agree_on_a_flat_index(tmp_path):
    rng = np.random.default_rng(11)
    coll = vecdb.create(tmp_path / "c", dim=8, metric="ip")
    coll.add(rng.normal(size=(500, 8)), small_table(rng, 500))
    coll.build_index("flat")
    q = rng.normal(size=(5, 8))
    for where in [None, "flag = FALSE", "tag = 'b'"]:
        base = coll.search(q, k=7, where=where)
        assert set(base.plans) == {"exact"}
        np.testing.assert_array_equal(base.ids, coll.search(q, k=7, where=where, plan="exact").ids)


def test_per_query_filters_in_one_batch(arxiv_slice, slice_collection):
    q = arxiv_slice.queries[:6]
    wheres = ["primary_category = 'cs.CL'", None, "year = 2026", "primary_category = 'cs.CL'",
              vecdb.col("n_authors") >= 10, {"contains": ["categories", "cs.AI"]}]
    batch = slice_collection.search(q, k=5, where=wheres)
    for i, w in enumerate(wheres):
        one = slice_collection.search(q[i], k=5, where=w)
        np.testing.assert_array_equal(batch.ids[i], one.ids[0])


def test_deleted_rows_never_come_back(tmp_path):
    rng = np.random.default_rng(5)
    coll = vecdb.create(tmp_path / "c", dim=16, metric="cosine")
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    coll.add(x, {"g": rng.integers(0, 4, 2000)})
    coll.build_index("hnsw", M=8)
    coll.delete(ids=np.arange(0, 2000, 2))
    for where in [None, "g = 1"]:
        res = coll.search(x[:50], k=10, where=where)
        assert (res.ids[res.ids >= 0] % 2 == 1).all()
        assert (res.counts == 10).all()


def test_unfiltered_fast_path_equals_the_planned_path(arxiv_slice, slice_collection):
    q = arxiv_slice.queries[:20]
    fast = slice_collection.search(q, k=10)
    planned = slice_collection.search(q, k=10, plan="index")  # a plan parameter takes the planner's path
    np.testing.assert_array_equal(fast.ids, planned.ids)
    np.testing.assert_allclose(fast.scores, planned.scores)
    assert fast.plans == planned.plans == ("index",) * 20
    np.testing.assert_array_equal(slice_collection.search(q, k=10, ef=16).ids,
                                  slice_collection.search(q, k=10, ef=16, plan="index").ids)


def test_filtered_graph_visited_marks_survive_wraparound():
    """The traversal's visited marks are reused across queries (cleared every 255): a batch of 600,
    the same queries one at a time, and the same queries on another thread all give the same hits."""
    from concurrent.futures import ThreadPoolExecutor

    from vecdb.indexes.faiss_indexes import HNSWIndex

    rng = np.random.default_rng(11)
    base = rng.normal(size=(3000, 16)).astype(np.float32)
    queries = rng.normal(size=(600, 16)).astype(np.float32)
    index = HNSWIndex(16, "l2", M=16, ef_construction=64)
    index.build(base)
    allow = rng.random(3000) < 0.3
    batch, complete = index.search_filtered_graph(queries, 10, allow, ef=48)
    assert complete.all()
    one = np.stack([index.search_filtered_graph(q[None], 10, allow, ef=48)[0].rows[0] for q in queries])
    with ThreadPoolExecutor(2) as pool:
        threaded = np.concatenate([h.rows for h, _ in pool.map(
            lambda part: index.search_filtered_graph(part, 10, allow, ef=48), np.array_split(queries, 2))])
    np.testing.assert_array_equal(batch.rows, one)
    np.testing.assert_array_equal(batch.rows, threaded)
    assert allow[batch.rows].all()
    truth = exact_search(base, queries, 10, "l2", allow=allow).rows
    assert np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(batch.rows, truth)]) >= 0.95


def test_fp16_hnsw_scores_are_exact_and_survive_reopen(tmp_path, arxiv_slice):
    """``storage='fp16'`` walks half-precision vectors but reports float32 scores of the stored rows,
    before and after reopening, and after rows are added and merged by ``optimize``."""
    base = arxiv_slice.base
    coll = vecdb.create(tmp_path / "c", dim=base.shape[1], metric="cosine")
    coll.add(base[:4000])
    coll.build_index("hnsw", M=16, storage="fp16")
    q = arxiv_slice.queries[:20]
    res = coll.search(q, k=10)
    vec = coll.get(res.ids[0], with_vectors=True).column("vector").to_numpy(zero_copy_only=False)
    np.testing.assert_allclose(res.scores[0], np.stack(vec) @ q[0], rtol=0, atol=1e-5)
    again = vecdb.open(tmp_path / "c").search(q, k=10)
    np.testing.assert_array_equal(again.ids, res.ids)
    np.testing.assert_allclose(again.scores, res.scores, atol=1e-6)
    coll.add(base[4000:])
    coll.optimize()
    exact = coll.search(q, k=10, plan="exact")
    merged = coll.search(q, k=10)
    assert recall(merged.ids, exact.ids, exact.scores, merged.scores) >= 0.95
    assert vecdb.open(tmp_path / "c").snapshot.index.config()["storage"] == "fp16"


@pytest.mark.parametrize("l2", [False, True])
def test_rescore_kernel_orders_like_the_exact_oracle(l2):
    """The fp16 path's rescoring kernel: float32 scores of each query's own candidates, best first, ties
    by the smaller row, missing candidates (-1) last as -inf, whatever order the candidates came in."""
    from vecdb.kernels.exact import rescore_rows

    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors[50] = vectors[40]  # a tie: same vector, two rows
    queries = rng.normal(size=(6, 16)).astype(np.float32)
    rows = np.stack([rng.choice(300, 12, replace=False) for _ in range(6)])
    rows[0, :2] = (50, 40)
    rows[1, [3, 7]] = -1
    rows[2, :] = -1
    scores, out = rescore_rows(vectors, rows, queries, l2)
    for q in range(6):
        cand = rows[q][rows[q] >= 0]
        s = -((vectors[cand] - queries[q]) ** 2).sum(1) if l2 else vectors[cand] @ queries[q]
        order = np.lexsort((cand, -s))
        n = len(cand)
        np.testing.assert_array_equal(out[q, :n], cand[order])
        np.testing.assert_allclose(scores[q, :n], s[order], rtol=1e-5, atol=1e-5)
        assert (out[q, n:] == -1).all() and np.isneginf(scores[q, n:]).all()
    tie = list(out[0])
    assert tie.index(40) + 1 == tie.index(50)  # equal scores: adjacent, the smaller row first
