"""Filter-only access, paging, range search, vectors in results, per-call planner settings."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb import errors


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    rng = np.random.default_rng(4)
    c = vecdb.create(tmp_path_factory.mktemp("r") / "c.vdb", dim=8, metric="l2")
    c.add(rng.normal(size=(400, 8)), {"g": np.arange(400) % 7, "s": [f"s{i % 13}" for i in range(400)]},
          ids=np.arange(1000, 1400))
    c.build_index("hnsw", M=8)
    c.delete(ids=[1000, 1001])
    return c


def test_count_and_query_equal_pyarrow(coll):
    table = coll.to_arrow()
    for where in (None, "g = 3", "g < 2 AND s != 's1'", "s IN ('s3', 's4')", "g > 100"):
        mask = np.ones(table.num_rows, bool) if where is None else \
            vecdb.filters.bind(vecdb.filters.parse(where), table.schema).evaluate(table)
        assert coll.count(where) == int(mask.sum())
        got = coll.query(where, columns=["g"])
        assert got.column("id").to_pylist() == table.column("id").filter(mask).to_pylist()
    page = coll.query("g = 3", limit=5, offset=10, with_vectors=True)
    assert page.num_rows == 5 and page.column_names == ["id", "vector", "g", "s"]
    assert page.column("id").to_pylist() == coll.query("g = 3").column("id").to_pylist()[10:15]
    assert coll.get(where="g = 3", columns=[]).num_rows == coll.count("g = 3")
    with pytest.raises(errors.InvalidParameterError):
        coll.query(limit=-1)
    with pytest.raises(errors.InvalidParameterError, match="exactly one"):
        coll.get()


def test_pages_concatenate_to_one_ranking(coll):
    q = np.random.default_rng(1).normal(size=(3, 8))
    full = coll.search(q, k=30, where="g != 2", plan="exact")
    pages = [coll.search(q, k=10, offset=o, where="g != 2", plan="exact") for o in (0, 10, 20)]
    np.testing.assert_array_equal(np.concatenate([p.ids for p in pages], axis=1), full.ids)
    np.testing.assert_array_equal(np.concatenate([p.scores for p in pages], axis=1), full.scores)
    past = coll.search(q, k=10, offset=10_000)
    assert (past.ids == -1).all() and (past.counts == 0).all()
    auto = [coll.search(q, k=10, offset=o) for o in (0, 10)]  # approximate: still a page each, no repeats
    both = np.concatenate([p.ids for p in auto], axis=1)
    assert all(len(set(r)) == 20 for r in both.tolist())


def test_score_threshold_is_a_range_search_against_the_oracle(coll):
    q = np.random.default_rng(2).normal(size=(4, 8))
    everything = coll.search(q, k=400, plan="exact")
    radius = float(np.median(everything.scores[:, 20]))  # squared l2 distance
    res = coll.search(q, k=400, score_threshold=radius)
    for i in range(4):
        want = everything.ids[i][everything.scores[i] <= radius]
        got = res.ids[i][res.ids[i] >= 0]
        assert set(got) <= set(want) and len(got) >= 0.95 * len(want)
        assert (res.scores[i][res.ids[i] >= 0] <= radius).all()
    exact = coll.search(q, k=400, score_threshold=radius, plan="exact")
    for i in range(4):
        assert set(exact.ids[i][exact.ids[i] >= 0]) == set(everything.ids[i][everything.scores[i] <= radius])
    capped = coll.search(q, k=5, score_threshold=radius)
    assert (capped.counts <= 5).all()


def test_vectors_in_results(coll):
    q = np.random.default_rng(3).normal(size=(2, 8))
    res = coll.search(q, k=4, with_vectors=True)
    assert res.vectors.shape == (2, 4, 8)
    stored = coll.get(res.ids[0]).column("vector").to_pylist()
    np.testing.assert_allclose(res.vectors[0], np.asarray(stored, np.float32))
    d = ((res.vectors - q[:, None, :]) ** 2).sum(-1)
    np.testing.assert_allclose(d, res.scores, rtol=1e-4)


def test_per_call_planner_settings_and_option_errors(coll):
    q = np.random.default_rng(5).normal(size=8)
    tight = vecdb.PlannerConfig(exact_max_rows=0, exact_max_selectivity=0.0, exact_max_scan=0)
    assert coll.search(q, k=5, where="g != 2", planner=tight).plans == ("filtered_graph",)
    assert coll.search(q, k=5, where="g != 2").plans == ("exact",)
    with pytest.raises(errors.InvalidParameterError) as info:
        coll.search(q, k=5, bogus=1)
    for name in ("ef", "plan", "target_recall", "offset", "score_threshold", "with_vectors", "planner"):
        assert name in str(info.value)
    with pytest.raises(errors.InvalidParameterError, match="offset"):
        coll.search(q, offset=-1)
    with pytest.raises(errors.InvalidParameterError, match="PlannerConfig"):
        coll.search(q, planner={"exact_max_rows": 0})
