"""The public API: add / get / delete / search shapes, persistence round trips, and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import vecdb
from vecdb import errors

from .conftest import small_table


def make(tmp_path, rng, n=200, dim=16, metric="cosine", attrs=True):
    coll = vecdb.create(tmp_path / "c.vdb", dim=dim, metric=metric)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    coll.add(x, small_table(rng, n) if attrs else None)
    return coll, x


def test_create_add_get_round_trip(tmp_path, rng):
    coll, x = make(tmp_path, rng)
    assert len(coll) == 200 and coll.dim == 16 and coll.metric == "cosine"
    assert coll.schema.names == ["year", "price", "flag", "tag", "day", "labels"]
    got = coll.get([5, 0, 199], columns=["tag", "labels"])
    assert got.column_names == ["id", "vector", "tag", "labels"]
    assert got.column("id").to_pylist() == [5, 0, 199]
    vec = np.asarray(got.column("vector").to_pylist(), dtype=np.float32)
    expected = x[[5, 0, 199]] / np.linalg.norm(x[[5, 0, 199]], axis=1, keepdims=True)
    np.testing.assert_allclose(vec, expected, rtol=1e-6)

    reopened = vecdb.open(coll.root)
    assert len(reopened) == 200 and reopened.schema == coll.schema
    assert reopened.get([5, 0, 199], columns=["tag", "labels"]).equals(got)


def test_ids_default_to_next_free_and_accept_user_ids(tmp_path, rng):
    coll = vecdb.create(tmp_path / "c", dim=4)
    first = coll.add(rng.normal(size=(3, 4)), ids=[10, 20, 30])
    second = coll.add(rng.normal(size=(2, 4)))
    assert first.tolist() == [10, 20, 30] and second.tolist() == [31, 32]
    assert vecdb.open(coll.root).add(rng.normal(size=(1, 4))).tolist() == [33]


def test_attribute_inputs_pandas_dict_arrow_are_equivalent(tmp_path, rng):
    pd = pytest.importorskip("pandas")
    x = rng.normal(size=(3, 4))
    data = {"a": [1, 2, 3], "s": ["x", "y", "z"]}
    tables = []
    for i, attrs in enumerate([data, pa.table(data), pd.DataFrame(data)]):
        coll = vecdb.create(tmp_path / f"c{i}", dim=4)
        coll.add(x, attrs)
        tables.append(coll.get([0, 1, 2], with_vectors=False))
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])


def test_later_adds_fill_missing_columns_with_nulls(tmp_path, rng):
    coll = vecdb.create(tmp_path / "c", dim=4)
    coll.add(rng.normal(size=(2, 4)), {"a": [1, 2], "s": ["x", "y"]})
    coll.add(rng.normal(size=(1, 4)), {"a": [3]})
    assert coll.get([2], with_vectors=False).column("s").to_pylist() == [None]


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_search_scores_and_order_per_metric(tmp_path, rng, metric):
    coll, x = make(tmp_path, rng, metric=metric, attrs=False)
    q = rng.normal(size=(3, 16)).astype(np.float32)
    res = coll.search(q, k=5)
    assert res.ids.shape == (3, 5) and res.scores.dtype == np.float32 and res.counts.tolist() == [5, 5, 5]
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        true = qn @ xn.T
    elif metric == "ip":
        true = q @ x.T
    else:
        true = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    order = np.argsort(true if metric == "l2" else -true, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(res.ids, order)
    np.testing.assert_allclose(res.scores, np.take_along_axis(true, order, 1), rtol=1e-4, atol=1e-4)
    if metric == "l2":
        assert (np.diff(res.scores, axis=1) >= 0).all()
    else:
        assert (np.diff(res.scores, axis=1) <= 0).all()


def test_one_dimensional_query_and_padding_when_few_match(tmp_path, rng):
    coll, _ = make(tmp_path, rng)
    res = coll.search(rng.normal(size=16), k=300)  # no more columns than rows: k is capped at 200
    assert res.ids.shape == (1, 200) and res.counts.tolist() == [200]
    res = coll.search(rng.normal(size=16), k=10, where="tag = 'a'")
    few = int(res.counts[0])
    assert res.ids.shape == (1, 10) and (res.ids[0, few:] == -1).all() and np.isneginf(res.scores[0, few:]).all()
    huge = coll.search(rng.normal(size=(2, 16)), k=10**9)  # never allocates (nq, k)
    assert huge.ids.shape == (2, 200) and huge.counts.tolist() == [200, 200]


def test_delete_by_id_and_by_filter_persists(tmp_path, rng):
    coll, x = make(tmp_path, rng)
    assert coll.delete(ids=[0, 1, 2, 999]) == 3
    n_flag = int(np.asarray(coll.get(np.arange(3, 200), with_vectors=False).column("flag")).sum())
    assert coll.delete(where="flag = TRUE") == n_flag
    assert len(coll) == 197 - n_flag
    with pytest.raises(errors.UnknownIdError):
        coll.get([0])
    reopened = vecdb.open(coll.root)
    assert len(reopened) == len(coll)
    res = reopened.search(x[:5], k=250)
    assert not np.isin(res.ids, [0, 1, 2]).any()
    flags = reopened.get(res.ids[res.ids >= 0], columns=["flag"], with_vectors=False).column("flag")
    assert not any(flags.to_pylist())


def test_rows_added_after_build_index_are_searchable_at_once(tmp_path, rng):
    coll, x = make(tmp_path, rng, n=500, attrs=False)
    coll.build_index("hnsw", M=8)
    new = rng.normal(size=(5, 16)).astype(np.float32)
    ids = coll.add(new)
    res = coll.search(new, k=1)
    assert res.ids[:, 0].tolist() == ids.tolist()
    assert coll.explain(new[0]).tail_rows == 5
    coll.optimize()
    assert coll.index_info["rows"] == 505 and coll.explain(new[0]).tail_rows == 0
    assert vecdb.open(coll.root).search(new, k=1).ids[:, 0].tolist() == ids.tolist()


@pytest.mark.parametrize("kind, options", [("flat", {}), ("hnsw", {"M": 8}), ("hnswlib", {"M": 8}),
                                           ("ivf", {"nlist": 8, "nprobe": 8})])
def test_index_survives_reopen(tmp_path, rng, kind, options):
    coll, x = make(tmp_path, rng, n=400, attrs=False)
    coll.build_index(kind, **options)
    before = coll.search(x[:10], k=5)
    reopened = vecdb.open(coll.root)
    assert reopened.index_info["kind"] == kind
    after = reopened.search(x[:10], k=5)
    np.testing.assert_array_equal(before.ids, after.ids)
    manifest = json.loads((coll.root / "manifest.json").read_text())
    assert manifest["fields"][0]["indexes"][-1]["kind"] == kind


def test_hnsw_engine_option_selects_hnswlib(tmp_path, rng):
    coll, _ = make(tmp_path, rng, attrs=False)
    coll.build_index("hnsw", engine="hnswlib", M=8)
    assert coll.index_info["kind"] == "hnswlib"


def test_to_arrow_joins_attributes(tmp_path, rng):
    coll, x = make(tmp_path, rng)
    res = coll.search(x[:2], k=3, where="flag = TRUE")
    table = res.to_arrow(columns=["flag", "tag"])
    assert table.column_names == ["query", "rank", "id", "score", "flag", "tag"]
    assert table.num_rows == int(res.counts.sum())
    assert all(table.column("flag").to_pylist())
    assert table.column("id").to_pylist() == res.ids[res.ids >= 0].tolist()


def test_explain_reports_plan_and_selectivity(tmp_path, rng):
    coll, x = make(tmp_path, rng)
    plan = coll.explain(x[0], where="tag = 'a'")
    expected = int(np.sum(np.asarray(coll.get(np.arange(200), columns=["tag"]).column("tag").to_pylist(),
                                     dtype=object) == "a"))
    assert plan.matches == expected and plan.total == 200 and plan.name == "exact"
    assert "tag = 'a'" in str(plan) and "selectivity" in str(plan)


# ------------------------------------------------------------------ bad input
def test_bad_inputs_raise_typed_errors_and_change_nothing(tmp_path, rng):
    coll, x = make(tmp_path, rng)
    version, n = coll.version, len(coll)
    bad_calls = [
        (errors.DimensionError, lambda: coll.add(np.ones((2, 8)))),
        (errors.InvalidVectorError, lambda: coll.add(np.full((2, 16), np.nan))),
        (errors.InvalidVectorError, lambda: coll.add(np.array([[np.inf] * 16]))),
        (errors.InvalidVectorError, lambda: coll.add(np.zeros((1, 16)))),  # cosine of a zero vector
        (errors.DuplicateIdError, lambda: coll.add(np.ones((2, 16)), ids=[500, 500])),
        (errors.DuplicateIdError, lambda: coll.add(np.ones((1, 16)), ids=[3])),
        (errors.RowCountError, lambda: coll.add(np.ones((2, 16)), {"year": [1, 2, 3]})),
        (errors.SchemaError, lambda: coll.add(np.ones((1, 16)), {"year": ["not a number"]})),
        (errors.SchemaError, lambda: coll.add(np.ones((1, 16)), {"nope": [1]})),
        (errors.SchemaError, lambda: coll.add(np.ones((1, 16)), {"id": [1]})),
        (errors.InvalidParameterError, lambda: coll.search(x[0], k=0)),
        (errors.InvalidParameterError, lambda: coll.search(x[0], k=-3)),
        (errors.DimensionError, lambda: coll.search(np.ones(3))),
        (errors.InvalidVectorError, lambda: coll.search(np.full(16, np.nan))),
        (errors.FilterError, lambda: coll.search(x[0], where="yaer > 3")),
        (errors.FilterError, lambda: coll.search(x[0], where="year >")),
        (errors.FilterError, lambda: coll.search(x[0], where="tag = 5")),
        (errors.InvalidParameterError, lambda: coll.search(x[0], plan="magic")),
        (errors.InvalidParameterError, lambda: coll.search(x[0], ef=10)),  # flat takes no ef
        (errors.InvalidParameterError, lambda: coll.build_index("annoy")),
        (errors.InvalidParameterError, lambda: coll.build_index("hnsw", M=-1)),
        (errors.InvalidParameterError, lambda: coll.build_index("hnsw", bogus=1)),
        (errors.SchemaError, lambda: coll.get([1], columns=["yaer"])),
        (errors.UnknownIdError, lambda: coll.get([12345])),
        (errors.InvalidParameterError, lambda: coll.delete()),
    ]
    for expected, call in bad_calls:
        with pytest.raises(expected):
            call()
    assert coll.version == version and len(coll) == n
    assert len(vecdb.open(coll.root)) == n


def test_error_messages_name_the_offending_value(tmp_path, rng):
    coll, x = make(tmp_path, rng)
    with pytest.raises(errors.DimensionError, match="expected dim 16, got 8"):
        coll.add(np.ones((1, 8)))
    with pytest.raises(errors.FilterError, match="did you mean 'year'"):
        coll.search(x[0], where="yaer > 3")
    with pytest.raises(errors.DuplicateIdError, match=r"\[3\]"):
        coll.add(np.ones((1, 16)), ids=[3])
    with pytest.raises(ValueError):  # every error subclasses a built-in
        coll.search(x[0], k=0)


def test_create_refuses_existing_path_and_open_refuses_non_collections(tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(errors.CollectionExistsError):
        vecdb.create(tmp_path / "exists", dim=4)
    with pytest.raises(errors.NotACollectionError):
        vecdb.open(tmp_path / "exists")
    with pytest.raises(errors.NotACollectionError):
        vecdb.open(tmp_path / "missing")
    with pytest.raises(errors.InvalidParameterError):
        vecdb.create(tmp_path / "new", dim=4, metric="hamming")
    with pytest.raises(errors.InvalidParameterError):
        vecdb.create(tmp_path / "new2", dim=0)


def test_corrupt_files_are_detected(tmp_path, rng):
    coll, _ = make(tmp_path, rng)
    coll.build_index("hnsw", M=8)
    manifest = json.loads((coll.root / "manifest.json").read_text())
    for entry in (manifest["segments"][0]["fields"]["vector"]["vectors"], manifest["segments"][0]["attributes"],
                  manifest["fields"][0]["indexes"][0]["files"][0]):
        path = coll.root / entry["file"]
        original = path.read_bytes()
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0xFF
        path.write_bytes(bytes(damaged))
        if entry["file"].endswith(".vectors.npy"):  # memory-mapped: size-checked on open, hashed before first use
            reopened = vecdb.open(coll.root)
            for use in (lambda: reopened.search(np.ones(16), k=3), lambda: reopened.get([0]), reopened.verify):
                with pytest.raises(errors.CorruptCollectionError, match="checksum") as info:
                    use()
                assert entry["file"] in str(info.value)
        else:
            with pytest.raises(errors.CorruptCollectionError, match="checksum"):
                vecdb.open(coll.root)
        path.write_bytes(original)
    (coll.root / "manifest.json").write_text("{not json")
    with pytest.raises(errors.CorruptCollectionError):
        vecdb.open(coll.root)


def test_build_index_calibrates_and_target_recall_picks_the_beam(tmp_path, rng):
    coll, x = make(tmp_path, rng, n=1500, attrs=False)
    coll.build_index("hnsw", M=8, ef_construction=40)
    curves = json.loads((coll.root / "manifest.json").read_text())["fields"][0]["indexes"][0]["calibration"]
    efs = [ef for ef, _ in curves["unfiltered"]]
    recalls = [r for _, r in curves["unfiltered"]]
    assert efs == sorted(efs) and all(0.0 <= r <= 1.0 for r in recalls) and recalls[-1] >= recalls[0]
    assert curves["method"] and [sel for sel, _ in curves["filtered_bands"]] == sorted(
        [sel for sel, _ in curves["filtered_bands"]], reverse=True)  # one curve per band of selectivity
    assert coll.explain(x[0]).params["ef"] == coll.explain(x[0], target_recall=0.95).params["ef"]  # the default
    low = coll.explain(x[0], target_recall=0.5).params["ef"]
    high = coll.explain(x[0], target_recall=1.0).params["ef"]
    assert low <= high and low in efs and high in efs
    res = coll.search(x[:20], k=10, target_recall=0.99)
    truth = coll.search(x[:20], k=10, plan="exact")
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(res.ids, truth.ids)]) >= 0.9
    with pytest.raises(errors.InvalidParameterError):
        coll.search(x[0], target_recall=1.5)


def test_explain_gives_estimated_and_actual_matches(tmp_path, rng):
    coll, x = make(tmp_path, rng)
    coll.search(x[0], where="tag = 'a'")  # builds the attribute statistics
    plan = coll.explain(x[0], where="tag = 'a' AND year >= 2010")
    assert plan.estimated_matches is not None and 0 <= plan.estimated_matches <= 200
    assert "estimated" in str(plan)


def test_planner_scans_exactly_by_rows_read_and_walks_the_graph_only_where_it_pays():
    """The crossovers: few rows, a sparse selection, or a small scan (rows x dim) go exact; the graph
    walk takes the rest. Same N, different dim: the scan budget moves the crossover."""
    from vecdb import planner

    class Graph:  # what choose() reads of an HNSW index
        exact, filters_inside, walks_graph, kind, M, ef_search = False, True, True, "hnsw", 32, 128

        def __init__(self, dim):
            self.dim = dim

        def search_filtered_graph(self):  # pragma: no cover - only its presence matters
            raise AssertionError

    config = planner.PlannerConfig()

    def plan(matches, total, dim):
        return planner.choose(index=Graph(dim), matches=matches, total=total, k=10, filtered=True,
                              params=planner.SearchParams(), config=config)

    assert plan(900, 72_000, 384).name == "exact"  # exact_max_rows
    assert "exact_max_selectivity" in plan(15_000, 1_000_000, 128).reason  # 1.5%: too sparse for the graph
    small_scan = plan(3_600, 72_000, 384)  # 5% of arxiv: 1.38M floats
    assert small_scan.name == "exact" and "exact_max_scan" in small_scan.reason
    assert plan(5_760, 72_000, 384).name == "filtered_graph"  # 8%: 2.2M floats
    assert plan(30_000, 1_000_000, 128).name == "filtered_graph"  # 3% of 1M: 3.8M floats
    assert plan(30_000, 1_000_000, 32).name == "exact"  # the same rows, 0.96M floats
    unfiltered = planner.choose(index=Graph(384), matches=3_000, total=3_000, k=10, filtered=False,
                                params=planner.SearchParams(), config=config)
    assert unfiltered.name == "index"  # the scan budget is for filtered queries only


def test_filters_after_adds_use_the_grown_attribute_indexes(tmp_path, rng):
    """The next filter after adds extends the attribute indexes already made (no rebuild, and no work at
    add time); filtered searches after each add return exactly the rows pyarrow finds over the table."""
    from vecdb.filters import bind

    coll, x = make(tmp_path, rng)
    coll.build_index("hnsw", M=8)
    wheres = ["tag = 'a' AND year >= 2010", "'b' IN labels OR price > 12", "day < DATE '1975-01-01'",
              "flag = FALSE AND tag IN ('c', 'd')", "year IS NULL"]
    for where in wheres:
        coll.search(x[0], k=5, where=where)
    for batch in range(2):
        before = coll.snapshot.attributes.made()
        extra = rng.normal(size=(50, 16)).astype(np.float32)
        coll.add(extra, small_table(rng, 50))
        assert coll.snapshot.attributes.made() is before  # an add only appends rows
        table = coll.snapshot.table
        for where in wheres:
            want = np.flatnonzero(bind(where, table.schema).evaluate(table))
            np.testing.assert_array_equal(coll.snapshot.select(where).rows, want, err_msg=where)
            res = coll.search(extra[0], k=10, where=where)
            exact = coll.search(extra[0], k=10, where=where, plan="exact")
            assert set(res.ids[0][res.ids[0] >= 0]) <= set(coll.snapshot.ids[want].tolist())
            assert res.counts[0] == min(10, len(want)) and exact.counts[0] == min(10, len(want))
        grown = coll.snapshot.attributes.made()
        assert grown is not before and grown.n == len(coll)
        assert set(dict.keys(grown._columns)) >= {"tag", "year", "labels", "price", "day", "flag"}
