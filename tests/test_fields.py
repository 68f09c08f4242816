"""Named vector fields: several per row (dense and sets of vectors), several indexes per field, the planner
choosing among them, fused multi-field search. Real data: the first 1,000 rows of ``data/arxiv-slice``
(384-d MiniLM) and their token sets in ``data/arxiv-tokens-slice`` (128-d)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import vecdb
from vecdb import errors

from .conftest import SLICE

TOKENS = Path(__file__).resolve().parents[1] / "data" / "arxiv-tokens-slice"
N = 1000


@pytest.fixture(scope="module")
def data():
    base = np.load(SLICE / "base.f16.npy")[:N].astype(np.float32)
    attrs = pq.read_table(SLICE / "attributes.parquet").slice(0, N)
    tokens = np.load(TOKENS / "doc_tokens.f16.npy").astype(np.float32)
    offsets = np.load(TOKENS / "doc_offsets.npy")
    docs = [tokens[offsets[i]:offsets[i + 1]] for i in range(N)]
    q = pq.read_table(TOKENS / "queries.parquet")
    q_offsets = np.load(TOKENS / "query_offsets.npy")
    dense_q = np.load(SLICE / "queries.f32.npy")[:40]
    dense_where = [s or None for s in pq.read_table(SLICE / "queries.parquet").column("filter_sql").to_pylist()][:40]
    return {"base": base, "attrs": attrs, "ids": attrs.column("id").to_numpy(), "docs": docs,
            "q_offsets": q_offsets, "queries": q, "dense_q": dense_q, "dense_where": dense_where}


def token_queries(data, n=12):
    flat = np.load(TOKENS / "query_tokens.f16.npy").astype(np.float32)
    off = data["q_offsets"]
    sets = [flat[off[i]:off[i + 1]] for i in range(n)]
    return sets, [s or None for s in data["queries"].column("filter_sql").to_pylist()[:n]]


@pytest.fixture(scope="module")
def two(data, tmp_path_factory):
    """One collection with a dense ``emb`` field and a multi-vector ``tokens`` field, and the same rows
    as two single-field collections."""
    root = tmp_path_factory.mktemp("fields")
    both = vecdb.create(root / "both.vdb", vectors={"emb": vecdb.VectorField(384, "cosine"),
                                                   "tokens": vecdb.VectorField(128, "ip", multi=True)})
    attrs = data["attrs"].drop(["id"])
    both.add({"emb": data["base"], "tokens": data["docs"]}, attrs, ids=data["ids"])
    dense = vecdb.create(root / "dense.vdb", dim=384, metric="cosine")
    dense.add(data["base"], attrs, ids=data["ids"])
    multi = vecdb.create(root / "multi.vdb", dim=128, metric="ip", multivector=True)
    multi.add(data["docs"], attrs, ids=data["ids"])
    for coll in (both,):
        coll.build_index("hnsw", field="emb", M=16, ef_construction=100)
        coll.build_index("muvera", field="tokens")
    dense.build_index("hnsw", M=16, ef_construction=100)
    multi.build_index("muvera")
    return both, dense, multi


def check_result(coll, res, where, k, field=None):
    """Every hit passes its filter, no id twice, k hits when k rows match."""
    for i in range(len(res)):
        w = where[i] if isinstance(where, list) else where
        ids = res.ids[i][res.found[i]]
        assert len(set(ids.tolist())) == len(ids)
        if w is not None:
            passing = set(coll.query(w, columns=[])["id"].to_pylist())
            assert set(ids.tolist()) <= passing
            assert len(ids) == min(k, len(passing))


def test_each_field_answers_as_a_single_field_collection(two, data):
    both, dense, multi = two
    q, where = data["dense_q"], data["dense_where"]
    a = both.search(q, 10, where, field="emb", plan="exact")
    b = dense.search(q, 10, where, plan="exact")
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    sets, swhere = token_queries(data)
    for s, w in zip(sets, swhere):
        a = both.search(s, 10, w, field="tokens", plan="exact")
        b = multi.search(s, 10, w, plan="exact")
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    # approximate plans: the same index over the same rows reaches the oracle's recall
    got = both.search(q, 10, where, field="emb")
    exact = both.search(q, 10, where, field="emb", plan="exact")
    recall = np.mean([len(set(g[g >= 0]) & set(e[e >= 0])) / max(1, (e >= 0).sum()) for g, e in zip(got.ids, exact.ids)])
    assert recall >= 0.95
    check_result(both, got, where, 10)


def test_fields_survive_reopen_get_and_info(two, data):
    both, _, _ = two
    again = vecdb.open(both.root)
    assert list(again.fields) == ["emb", "tokens"]
    assert again.fields["tokens"] == vecdb.VectorField(128, "ip", multi=True)
    assert [(i["field"], i["name"], i["kind"]) for i in again.indexes()] == [("emb", "hnsw", "hnsw"),
                                                                             ("tokens", "muvera", "muvera")]
    q = data["dense_q"][:5]
    np.testing.assert_array_equal(again.search(q, 5, field="emb").ids, both.search(q, 5, field="emb").ids)
    row = again.get([int(data["ids"][3])])
    np.testing.assert_allclose(np.asarray(row["emb"][0].as_py()), data["base"][3] / np.linalg.norm(data["base"][3]),
                               rtol=1e-5)
    assert np.asarray(row["tokens"][0].as_py()).shape == data["docs"][3].shape
    with pytest.raises(errors.InvalidParameterError, match="several vector fields"):
        again.search(q, 5)
    with pytest.raises(errors.InvalidParameterError, match="unknown vector field 'nope'"):
        again.search(q, 5, field="nope")
    with pytest.raises(errors.InvalidParameterError, match="several vector fields"):
        _ = again.dim
    assert "emb" in repr(again) and "tokens" in repr(again)


def test_rows_without_a_value_are_not_found_on_that_field(tmp_path, rng):
    coll = vecdb.create(tmp_path / "c.vdb", vectors={"a": vecdb.VectorField(8), "b": vecdb.VectorField(4, "l2")})
    xa = rng.normal(size=(50, 8)).astype(np.float32)
    xb = rng.normal(size=(50, 4)).astype(np.float32)
    coll.add({"a": xa, "b": [None if i % 5 == 0 else xb[i] for i in range(50)]}, {"g": np.arange(50) % 2})
    coll.add({"a": xa[:10]}, {"g": np.zeros(10, np.int64)})  # no b at all in these rows
    coll.add({"a": [None, xa[0]], "b": [xb[1], None]}, {"g": [0, 0]}, ids=[900, 901])  # a cosine null too
    assert len(coll) == 62
    hits = coll.search(xb, 60, field="b")
    found = set(hits.ids[0][hits.found[0]].tolist())
    assert found == {i for i in range(50) if i % 5} | {900}  # 41 rows hold b
    assert (hits.counts == 41).all()
    hits = coll.search(xa[:1], 70, field="a")
    assert hits.counts[0] == 61 and 900 not in hits.ids[0]
    assert coll.get([0, 1, 55])["b"].to_pylist()[0] is None and coll.get([1])["b"][0].as_py() is not None
    f = coll.search(xb[:3], 5, "g = 1", field="b")
    check_result(coll, f, "g = 1", 5)
    coll.build_index("hnsw", field="b", M=8)
    again = vecdb.open(coll.root)
    assert again.search(xb, 60, field="b").counts.max() == 41
    coll.compact()
    assert vecdb.open(coll.root).search(xb, 60, field="b").counts.max() == 41


def test_several_indexes_on_one_field_the_planner_picks_by_cost(slice_collection, arxiv_slice, tmp_path):
    coll = vecdb.create(tmp_path / "c.vdb", dim=384)
    attrs = arxiv_slice.attributes
    coll.add(arxiv_slice.base, attrs.drop(["id"]), ids=attrs.column("id").to_numpy())
    coll.build_index("hnsw", M=16, ef_construction=100)
    coll.build_index("binary", bits=2)
    coll.build_index("hnsw", name="hnsw_small", M=8, ef_construction=40)
    assert [i["name"] for i in coll.indexes()] == ["hnsw", "binary", "hnsw_small"]
    q, where = arxiv_slice.queries[:60], arxiv_slice.filters_sql[:60]
    exact = coll.search(q, 10, where, plan="exact")
    for index in (None, "hnsw", "binary", "hnsw_small"):
        got = coll.search(q, 10, where, index=index)
        check_result(coll, got, where, 10)
        recall = np.mean([len(set(g[g >= 0]) & set(e[e >= 0])) / max(1, (e >= 0).sum())
                          for g, e in zip(got.ids, exact.ids)])
        assert recall >= 0.9, (index, recall)
    plan = coll.explain(q[0], k=10)
    assert plan.name == "index" and plan.index in ("hnsw", "hnsw_small") and "cheapest" in plan.reason
    plan = coll.explain(q[0], k=10, index="binary")
    assert plan.index == "binary"
    # candidates= is an option of the binary index only: the search runs through it
    assert coll.explain(q[0], k=10, candidates=400).index == "binary"
    with pytest.raises(errors.InvalidParameterError, match="no index 'ivf'"):
        coll.search(q[0], 10, index="ivf")
    coll.drop_index("binary")
    assert [i["name"] for i in vecdb.open(coll.root).indexes()] == ["hnsw", "hnsw_small"]
    with pytest.raises(errors.InvalidParameterError, match="no index 'binary'"):
        coll.drop_index("binary")
    # rows added after the indexes: every index covers them after optimize, and searches see them meanwhile
    extra = arxiv_slice.base[:5] * 0.5 + arxiv_slice.base[5:10] * 0.5
    new = coll.add(extra, ids=np.arange(10**6, 10**6 + 5))
    assert set(new.tolist()) <= set(coll.search(extra, 1).ids[:, 0].tolist())
    coll.optimize()
    assert all(i["rows"] == len(coll) for i in coll.indexes())


def test_a_multi_vector_field_holds_one_index(two):
    both, _, _ = two
    with pytest.raises(errors.InvalidParameterError, match="unknown multi-vector index"):
        both.build_index("hnsw", field="tokens")


def test_fused_search_keeps_the_filter_guarantees(two, data):
    both, dense, multi = two
    sets, where = token_queries(data, 8)
    dq = data["dense_q"][:8]
    for fusion in ("rrf", "weighted"):
        res = both.search({"emb": dq, "tokens": sets}, 10, where, fusion=fusion)
        check_result(both, res, where, 10)
        assert all(p.startswith(fusion) for p in res.plans)
    # one field weighted alone: its own ranking
    alone = both.search({"emb": dq, "tokens": sets}, 10, where, fusion="weighted", weights={"tokens": 0},
                        plan="exact")
    own = dense.search(dq, 10, where, plan="exact")
    np.testing.assert_array_equal(alone.ids, own.ids)
    np.testing.assert_allclose(alone.scores, own.scores, rtol=1e-5)
    rrf = both.search({"tokens": sets}, 10, where, plan="exact")
    np.testing.assert_array_equal(rrf.ids, multi.search(sets, 10, where, plan="exact").ids)
    # weighted: the fused score is the weighted sum of the exact similarities
    w = both.search({"emb": dq[:2], "tokens": sets[:2]}, 3, fusion="weighted", weights={"emb": 2.0, "tokens": 0.5},
                    plan="exact")
    row_of = {int(v): i for i, v in enumerate(data["ids"])}
    unit = data["base"] / np.linalg.norm(data["base"], axis=1, keepdims=True)
    for i in range(2):
        q = dq[i] / np.linalg.norm(dq[i])
        for hit, score in zip(w.ids[i], w.scores[i]):
            r = row_of[int(hit)]
            chamfer = (sets[i] @ data["docs"][r].T).max(axis=1).sum()
            assert score == pytest.approx(2.0 * float(unit[r] @ q) + 0.5 * float(chamfer), rel=1e-4)
    with pytest.raises(errors.InvalidParameterError, match="unknown fusion"):
        both.search({"emb": dq}, 5, fusion="max")
    with pytest.raises(errors.InvalidParameterError, match="same number of queries"):
        both.search({"emb": dq[:2], "tokens": sets[:3]}, 5)
    with pytest.raises(errors.InvalidParameterError, match="non-negative"):
        both.search({"emb": dq}, 5, weights={"emb": -1})


def test_writes_cover_every_field(tmp_path, rng):
    coll = vecdb.create(tmp_path / "c.vdb", vectors={"a": vecdb.VectorField(8), "s": vecdb.VectorField(4, multi=True)})
    xa = rng.normal(size=(30, 8)).astype(np.float32)
    sets = [rng.normal(size=(int(rng.integers(1, 5)), 4)).astype(np.float32) for _ in range(30)]
    coll.add({"a": xa, "s": sets}, {"g": np.arange(30)})
    coll.build_index("hnsw", field="a", M=8)
    coll.build_index("muvera", field="s")
    new = rng.normal(size=(2, 8)).astype(np.float32)
    coll.update_vectors([3, 4], {"a": new})  # s keeps its sets
    got = coll.get([3, 4])
    np.testing.assert_allclose(np.asarray(got["a"].to_pylist()), new / np.linalg.norm(new, axis=1, keepdims=True),
                               rtol=1e-5)
    assert [len(v) for v in got["s"].to_pylist()] == [len(sets[3]), len(sets[4])]
    assert coll.search(sets[3], 1, field="s").ids[0, 0] == 3
    coll.upsert({"a": xa[:1], "s": sets[:1]}, {"g": [99]}, ids=[7])
    coll.delete(ids=[8])
    coll.compact()
    again = vecdb.open(coll.root)
    assert len(again) == 29 and again.count("g = 99") == 1
    assert again.search(sets[3], 1, field="s").ids[0, 0] == 3
    assert again.search(xa[0], 1, field="a").ids[0, 0] in (0, 7)
    with pytest.raises(errors.InvalidParameterError, match="different numbers of rows"):
        coll.add({"a": xa[:2], "s": sets[:3]})
    with pytest.raises(errors.InvalidParameterError, match="dict by field name"):
        coll.add(xa[:2])
    with pytest.raises(errors.InvalidParameterError, match="unknown vector field"):
        coll.add({"b": xa[:2]})
    with pytest.raises(errors.SchemaError, match="reserved"):
        coll.add({"a": xa[:1]}, {"s": [1]})
    assert len(vecdb.open(coll.root)) == 29  # nothing written by the refused calls


def test_create_validates_fields(tmp_path):
    with pytest.raises(errors.InvalidParameterError, match="not an identifier"):
        vecdb.create(tmp_path / "a", vectors={"bad name": vecdb.VectorField(4)})
    with pytest.raises(errors.InvalidParameterError, match="multi-vector"):
        vecdb.VectorField(4, "l2", multi=True)
    with pytest.raises(errors.InvalidParameterError, match="leave out dim"):
        vecdb.create(tmp_path / "b", dim=4, vectors={"a": vecdb.VectorField(4)})
    with pytest.raises(errors.InvalidParameterError, match="give dim"):
        vecdb.create(tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_tables_fill_several_fields_and_null_vectors_mean_no_value(tmp_path, rng):
    import pyarrow as pa

    xa = rng.normal(size=(40, 6)).astype(np.float32)
    xb = rng.normal(size=(40, 3)).astype(np.float32)
    b_col = pa.array([None if i % 4 == 0 else xb[i].tolist() for i in range(40)], pa.list_(pa.float32()))
    table = pa.table({"id": np.arange(40) + 100, "ea": pa.array(xa.tolist(), pa.list_(pa.float32())), "eb": b_col,
                      "g": np.arange(40) % 3})
    coll = vecdb.create(tmp_path / "c.vdb", vectors={"a": vecdb.VectorField(6, "l2"), "b": vecdb.VectorField(3, "l2")})
    coll.add(table, vector_column={"a": "ea", "b": "eb"}, batch_size=7)   # batches joined and split
    assert len(coll) == 40 and coll.schema.names == ["g"]
    got = coll.search(xb, 40, field="b")
    assert set(got.ids[0][got.found[0]].tolist()) == {100 + i for i in range(40) if i % 4}
    np.testing.assert_array_equal(coll.search(xa[5], 1, field="a").ids, [[105]])
    with pytest.raises(errors.IngestError):
        vecdb.create(tmp_path / "d.vdb", dim=6).add(table, vector_column="eb")  # one field: a null is an error


def _oracle_dense(x, live, valid, q, k, passing):
    ok = live & valid & passing
    scores = np.where(ok, x @ q, -np.inf)
    order = np.lexsort((np.arange(len(x)), -scores))[:k]
    return [int(i) for i in order if np.isfinite(scores[i])]


def _oracle_sets(sets, live, passing, q, k):
    scores = np.array([(q @ s.T).max(axis=1).sum() if live[i] and passing[i] else -np.inf for i, s in enumerate(sets)])
    order = np.lexsort((np.arange(len(sets)), -scores))[:k]
    return [int(i) for i in order if np.isfinite(scores[i])]


def test_random_writes_keep_every_field_equal_to_its_oracle(tmp_path):
    """Random adds (rows without a dense value among them), upserts, deletes, index builds and drops,
    compactions, reopens on a two-field collection; after each step each field's exact search equals
    a brute-force oracle over the live rows, with and without a filter."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    ops = st.lists(st.sampled_from(["add", "upsert", "delete", "hnsw", "binary", "drop", "compact", "reopen"]),
                   min_size=3, max_size=8)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(ops=ops, seed=st.integers(0, 2**16))
    def run(ops, seed):
        rng = np.random.default_rng(seed)
        path = Path(tempfile.mkdtemp(dir=tmp_path)) / "c.vdb"  # hypothesis replays examples: a new folder each
        coll = vecdb.create(path, vectors={"d": vecdb.VectorField(6, "ip"), "s": vecdb.VectorField(3, "ip", multi=True)})
        model: dict[int, tuple] = {}  # id -> (dense or None, set, g)
        next_id = 0

        def rows(n, ids):
            dense = [None if rng.random() < 0.2 else rng.normal(size=6).astype(np.float32) for _ in range(n)]
            sets = [rng.normal(size=(int(rng.integers(1, 4)), 3)).astype(np.float32) for _ in range(n)]
            g = rng.integers(0, 3, n)
            for i, d, s, gg in zip(ids, dense, sets, g):
                model[int(i)] = (d, s, int(gg))
            return {"d": dense, "s": sets}, {"g": g}

        for op in ["add", *ops]:
            if op == "add":
                ids = np.arange(next_id, next_id + 12)
                next_id += 12
                vectors, attrs = rows(12, ids)
                coll.add(vectors, attrs, ids=ids)
            elif op == "upsert" and model:
                ids = rng.choice(sorted(model), size=min(3, len(model)), replace=False)
                vectors, attrs = rows(len(ids), ids)
                coll.upsert(vectors, attrs, ids=ids)
            elif op == "delete" and model:
                ids = rng.choice(sorted(model), size=min(4, len(model)), replace=False)
                coll.delete(ids=ids)
                for i in ids:
                    model.pop(int(i))
            elif op in ("hnsw", "binary") and model:
                coll.build_index(op, field="d", **({"M": 4} if op == "hnsw" else {"bits": 2}))
            elif op == "drop" and coll.indexes():
                coll.drop_index(coll.indexes()[0]["name"], field=coll.indexes()[0]["field"])
            elif op == "compact":
                coll.compact()
            elif op == "reopen":
                coll = vecdb.open(path)
            ids = np.array(sorted(model), dtype=np.int64)
            if not len(ids):
                continue
            x = np.stack([model[i][0] if model[i][0] is not None else np.zeros(6, np.float32) for i in ids])
            valid = np.array([model[i][0] is not None for i in ids])
            g = np.array([model[i][2] for i in ids])
            q = rng.normal(size=6).astype(np.float32)
            qs = rng.normal(size=(2, 3)).astype(np.float32)
            live = np.ones(len(ids), bool)
            for where, passing in ((None, np.ones(len(ids), bool)), ("g = 1", g == 1)):
                want = [int(ids[i]) for i in _oracle_dense(x, live, valid, q, 5, passing)]
                got = coll.search(q, 5, where, field="d", plan="exact")
                assert got.ids[0][got.found[0]].tolist() == want, (op, where)
                want = [int(ids[i]) for i in _oracle_sets([model[i][1] for i in ids], live, passing, qs, 5)]
                got = coll.search(qs, 5, where, field="s", plan="exact")
                assert got.ids[0][got.found[0]].tolist() == want, (op, where)
                fused = coll.search({"d": q, "s": qs}, 5, where)
                found = fused.ids[0][fused.found[0]].tolist()
                assert len(set(found)) == len(found) and set(found) <= {int(i) for i in ids[passing]}
                assert len(found) == min(5, int(passing.sum()))

    run()
