"""The one tie rule (score desc, then row asc; padding -inf / -1 last) across every top-k path.

- ``merge`` + ``finish`` equal a full sort by (score desc, row asc);
- the numba heap (``topk_of``) equals the same sort;
- the exact oracle's numba path and BLAS path return identical rows and scores on data full of ties
  (small-integer vectors, so both paths compute exact scores; duplicated rows), with and without
  ``rows=`` / ``allow=``, for ip and l2;
- fewer than k rows: padding.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecdb.indexes import flat
from vecdb.indexes.flat import exact_search
from vecdb.kernels.topk import topk_of
from vecdb.topk import NO_ROW, finish, merge

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query: drop padding (row < 0 or score -inf), sort by (score desc, row asc), pad to k."""
    nq = scores.shape[0]
    out_s = np.full((nq, k), -np.inf, dtype=np.float32)
    out_r = np.full((nq, k), -1, dtype=np.int64)
    for i in range(nq):
        pairs = sorted((-float(s), int(r)) for s, r in zip(scores[i], rows[i]) if r >= 0 and s != -np.inf)[:k]
        out_s[i, : len(pairs)] = [-s for s, _ in pairs]
        out_r[i, : len(pairs)] = [r for _, r in pairs]
    return out_s, out_r


@st.composite
def candidate_sets(draw):
    """(scores, rows) per query with few distinct scores (many ties), distinct rows per query, some padding."""
    nq = draw(st.integers(1, 4))
    width = draw(st.integers(0, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    levels = draw(st.integers(1, 4))
    scores = rng.integers(0, levels, size=(nq, width)).astype(np.float32)
    rows = np.stack([rng.permutation(1000)[:width] for _ in range(nq)]).astype(np.int64).reshape(nq, width)
    pad = rng.random((nq, width)) < draw(st.sampled_from([0.0, 0.2, 0.9]))
    scores[pad] = -np.inf
    rows[pad] = -1
    k = draw(st.integers(1, 12))
    return scores, rows, k


@SETTINGS
@given(candidate_sets(), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_merge_then_finish_equals_full_sort(data, n_parts, seed):
    scores, rows, k = data
    want_s, want_r = reference(scores, rows, k)
    # feed the candidates in random column chunks, merging as the scans do
    cuts = np.sort(np.random.default_rng(seed).integers(0, scores.shape[1] + 1, size=n_parts - 1))
    best_s = np.empty((scores.shape[0], 0), np.float32)
    best_r = np.empty((scores.shape[0], 0), np.int64)
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, scores.shape[1]]):
        best_s, best_r = merge(best_s, best_r, scores[:, a:b], rows[:, a:b], k)
        assert best_s.shape[1] <= k
    hits = finish(best_s, best_r, k)
    np.testing.assert_array_equal(hits.rows, want_r)
    np.testing.assert_array_equal(hits.scores, want_s)


@SETTINGS
@given(candidate_sets())
def test_merge_accepts_one_row_list_for_every_query(data):
    scores, rows, k = data
    shared = np.arange(scores.shape[1], dtype=np.int64)[::-1].copy()
    s, r = merge(np.empty((scores.shape[0], 0), np.float32), np.empty((scores.shape[0], 0), np.int64),
                 scores, shared, k)
    want_s, want_r = reference(scores, np.broadcast_to(shared, scores.shape), k)
    hits = finish(s, r, k)
    np.testing.assert_array_equal(hits.rows, want_r)
    np.testing.assert_array_equal(hits.scores, want_s)


@SETTINGS
@given(candidate_sets())
def test_heap_equals_full_sort(data):
    scores, rows, k = data
    want_s, want_r = reference(scores, rows, k)
    got_s, got_r = topk_of(scores, rows, k)
    np.testing.assert_array_equal(got_r, want_r)
    np.testing.assert_array_equal(got_s, want_s)
    got_s, got_r = topk_of(scores.astype(np.float64), rows, k)  # the binary scan's dtype
    np.testing.assert_array_equal(got_r, want_r)


def test_finish_pads_when_fewer_than_k():
    s = np.array([[1.0, 2.0, -np.inf]], np.float32)
    r = np.array([[7, 3, 5]], np.int64)
    hits = finish(s, r, 5)
    np.testing.assert_array_equal(hits.rows, [[3, 7, -1, -1, -1]])
    np.testing.assert_array_equal(hits.scores, [[2.0, 1.0, -np.inf, -np.inf, -np.inf]])
    empty = finish(np.empty((2, 0), np.float32), np.empty((2, 0), np.int64), 3)
    assert (empty.rows == -1).all() and (empty.scores == -np.inf).all()
    assert NO_ROW > 2**62


# ----------------------------------------------------------------------------- the exact oracle's two paths
@st.composite
def tied_data(draw):
    """Small-integer vectors (exact float32 arithmetic on both paths) with duplicated rows."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 120))
    dim = draw(st.sampled_from([1, 3, 8, 17]))
    distinct = draw(st.integers(1, 6))
    pool = rng.integers(-2, 3, size=(distinct, dim)).astype(np.float32)
    x = pool[rng.integers(0, distinct, size=n)]  # every row a copy of one of a few vectors
    if draw(st.booleans()):
        x = x * np.float32(0.5)  # still exact
    nq = draw(st.integers(1, 5))
    q = rng.integers(-2, 3, size=(nq, dim)).astype(np.float32)
    k = draw(st.integers(1, 15))
    metric = draw(st.sampled_from(["ip", "l2"]))
    allow = rng.random(n) < draw(st.sampled_from([0.1, 0.5, 0.9, 1.0]))
    rows = rng.permutation(n)[: draw(st.integers(0, n))].astype(np.int64)  # any order, like a RowSet's
    return x, q, k, metric, allow, rows


def both_paths(x, q, k, metric, block_rows=flat.BLOCK_ROWS, threads=1, **kw):
    """(BLAS path, numba path) of ``exact_search``; the numba one scans ``rows`` (allowed ones only).
    ``threads`` > 1: the BLAS path's rows split into spans of as few as 2 rows (merged heaps), checked
    equal to the same path on one thread."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(flat, "FUSED_MAX_WORK", 0)
        m.setattr(flat, "BLOCK_ROWS", block_rows)
        blas = exact_search(x, q, k, metric, **kw)
        if threads > 1:
            m.setattr(flat, "SPLIT_MIN_WORK", 0)
            m.setattr(flat, "SPLIT_MIN_ROWS", 2)
            split = exact_search(x, q, k, metric, threads=threads, **kw)
            np.testing.assert_array_equal(split.rows, blas.rows)
            np.testing.assert_array_equal(split.scores, blas.scores)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(flat, "FUSED_MAX_WORK", 1 << 40)  # numba whenever rows are listed
        rows = kw.pop("rows", None)
        allow = kw.pop("allow", None)
        if rows is None:
            rows = np.arange(x.shape[0], dtype=np.int64)
        if allow is not None:
            rows = rows[allow[rows]]
        fused = exact_search(x, q, k, metric, rows=rows)
    return blas, fused


def brute(x, q, k, metric, rows):
    s = q @ x[rows].T if metric == "ip" else -((q[:, None, :] - x[rows][None]) ** 2).sum(-1)
    return reference(s.astype(np.float32), np.broadcast_to(rows, s.shape), k)


@SETTINGS
@given(tied_data(), st.sampled_from(["all", "rows", "allow", "rows+allow"]), st.sampled_from([7, 32768]),
       st.sampled_from([1, 3]))
def test_blas_and_numba_paths_agree_on_ties(data, how, block_rows, threads):
    x, q, k, metric, allow, rows = data
    kw = {"all": {}, "rows": {"rows": rows}, "allow": {"allow": allow},
          "rows+allow": {"rows": rows, "allow": allow}}[how]
    blas, fused = both_paths(x, q, k, metric, block_rows=block_rows, threads=threads, **dict(kw))
    np.testing.assert_array_equal(blas.rows, fused.rows)
    np.testing.assert_array_equal(blas.scores, fused.scores)
    scanned = np.arange(x.shape[0]) if "rows" not in kw else rows
    if "allow" in kw:
        scanned = scanned[allow[scanned]]
    want_s, want_r = brute(x, q, k, metric, np.asarray(scanned, np.int64))
    np.testing.assert_array_equal(blas.rows, want_r)
    np.testing.assert_array_equal(blas.scores, want_s)


@SETTINGS
@given(tied_data(), st.lists(st.integers(0, 3), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_grouped_scan_equals_brute_force_per_query(data, group_of, seed):
    """The batch's exact kernel: queries of one filter in runs (longer than ``SHARE`` too, scanning each
    block of rows together) or alone, row lists in any order, some shorter than k or empty."""
    from vecdb.kernels.exact import SHARE, topk_rows_grouped

    x, q, k, metric, _, _ = data
    rng = np.random.default_rng(seed)
    lists = [rng.permutation(x.shape[0])[: rng.integers(0, x.shape[0] + 1)] for _ in range(4)]
    starts = np.concatenate([[0], np.cumsum([len(r) for r in lists])]).astype(np.int64)
    rows = np.concatenate(lists).astype(np.int64)
    group_of = np.asarray(sorted(group_of) if rng.random() < 0.5 else group_of, np.int64)
    if rng.random() < 0.3:
        group_of = np.zeros(2 * SHARE + 3, np.int64)  # runs longer than SHARE
    queries = q[rng.integers(0, q.shape[0], size=group_of.shape[0])]
    scores, found = topk_rows_grouped(x, rows, starts, group_of, queries, k, metric == "l2")
    for i, g in enumerate(group_of):
        want_s, want_r = brute(x, queries[i:i + 1], k, metric, lists[g].astype(np.int64))
        np.testing.assert_array_equal(found[i], want_r[0])
        np.testing.assert_array_equal(scores[i], want_s[0])


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_all_equal_rows_keep_the_smallest(metric):
    x = np.ones((50_000, 4), np.float32)  # two BLAS blocks, every score equal
    q = np.ones((3, 4), np.float32)
    blas, fused = both_paths(x, q, 10, metric, threads=4)
    np.testing.assert_array_equal(blas.rows, np.broadcast_to(np.arange(10), (3, 10)))
    np.testing.assert_array_equal(fused.rows, blas.rows)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_search_pads_when_fewer_than_k(metric):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    q = np.ones((2, 3), np.float32)
    allow = np.array([True, False, True, False])
    for kw in ({"allow": allow}, {"rows": np.array([2, 0], np.int64)}, {}):
        blas, fused = both_paths(x, q, 6, metric, **dict(kw))
        n = 2 if kw else 4
        assert (blas.rows[:, n:] == -1).all() and (blas.scores[:, n:] == -np.inf).all()
        np.testing.assert_array_equal(blas.rows, fused.rows)
        np.testing.assert_array_equal(blas.scores, fused.scores)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_blas_path_never_returns_a_row_scored_nan():
    """l2 over vectors whose products overflow: 2 inf - inf - inf is NaN; such a row is left out (padding),
    the finite ones ranked as usual, on one thread and split."""
    x = np.array([[3e38, 3e38], [1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], np.float32)
    q = np.array([[3e38, 3e38], [1.0, 1.0]], np.float32)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(flat, "FUSED_MAX_WORK", 0)
        one = exact_search(x, q, 4, "l2")
        m.setattr(flat, "SPLIT_MIN_WORK", 0)
        m.setattr(flat, "SPLIT_MIN_ROWS", 1)
        split = exact_search(x, q, 4, "l2", threads=2)
    # the first query's every score is NaN (its squared norm is inf); the second's only row 0's
    np.testing.assert_array_equal(one.rows, [[-1, -1, -1, -1], [1, 2, 3, -1]])
    np.testing.assert_array_equal(one.scores, [[-np.inf] * 4, [-1.0, -1.0, -2.0, -np.inf]])
    np.testing.assert_array_equal(split.rows, one.rows)
    np.testing.assert_array_equal(split.scores, one.scores)


# ----------------------------------------------------------------------------- the other top-k kernels
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_filtered_graph_ties_go_to_the_smaller_row(metric):
    """Distinct small-integer vectors (exact scores, many equal), ef >= the rows: the walk reaches every
    passing row, so its top-k must be the exact one row for row, tie rule included. (Duplicated
    vectors would not do: HNSW's neighbour pruning leaves copies unreachable.)"""
    from vecdb.indexes.faiss_indexes import HNSWIndex

    rng = np.random.default_rng(5)
    base = rng.permutation(np.unique(rng.integers(-2, 3, size=(300, 8)), axis=0))[:300].astype(np.float32)
    assert base.shape[0] == 300
    queries = rng.integers(-1, 2, size=(20, 8)).astype(np.float32)
    index = HNSWIndex(8, metric, M=16, ef_construction=64)
    index.build(base)
    for allow in (np.ones(300, bool), rng.random(300) < 0.5):
        hits, complete = index.search_filtered_graph(queries, 10, allow, ef=400, budget=10**6)
        assert complete.all()
        truth = exact_search(base, queries, 10, metric, allow=allow)
        np.testing.assert_array_equal(hits.rows, truth.rows)
        np.testing.assert_array_equal(hits.scores, truth.scores)


def test_chamfer_scan_ties_go_to_the_smaller_row():
    """Every document the same set: all Chamfer scores tie, the k smallest allowed rows win."""
    from vecdb.multivector.chamfer import chamfer_topk, rerank

    doc = np.eye(4, dtype=np.float32)[:2]
    tokens = np.tile(doc, (5000, 1))
    offsets = np.arange(5001, dtype=np.int64) * 2
    q = np.eye(4, dtype=np.float32)[:3]
    q_offsets = np.array([0, 2, 3], np.int64)
    members = np.arange(2)
    allowed = np.arange(4999, 0, -1, dtype=np.int64)  # descending, 4,999 rows: two scan blocks
    hits = chamfer_topk(q, q_offsets, members, tokens, offsets, allowed, 7)
    want = np.sort(allowed)[:7]
    np.testing.assert_array_equal(hits.rows, np.stack([want, want]))
    hits = rerank(q, q_offsets, members, tokens, offsets, np.stack([allowed[:20], allowed[-20:]]), 7)
    np.testing.assert_array_equal(hits.rows, np.stack([np.sort(allowed[:20])[:7], np.sort(allowed[-20:])[:7]]))
