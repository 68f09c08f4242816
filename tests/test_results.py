"""SearchResult as Arrow, pandas, polars and plain Python: one row per hit, the requested columns
(``"*"`` every attribute, ``"vector"`` the stored vectors) taken from the version the search read."""

from __future__ import annotations

import builtins
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

import vecdb
from vecdb import errors

DIM = 8


def _rows(n: int, seed: int = 0) -> tuple[np.ndarray, pa.Table]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    table = pa.table({
        "tag": pa.array(["abc"[i % 3] for i in range(n)]),
        "year": pa.array([2000 + i % 5 for i in range(n)], pa.int32()),
        "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)], pa.date32()),
    })
    return x, table


@pytest.fixture
def coll(tmp_path):
    x, table = _rows(40)
    c = vecdb.create(tmp_path / "c.vdb", dim=DIM, metric="cosine")
    c.add(x, table, ids=np.arange(100, 140))
    return c



def test_to_arrow_star_gives_every_attribute_and_none_gives_none(coll):
    q = np.stack(coll.get([100, 117], columns=[]).column("vector").to_pylist())
    res = coll.search(q, k=3, where="tag != 'c'")
    every = res.to_arrow("*")
    assert every.column_names == ["query", "rank", "id", "score", "tag", "year", "day"]
    assert every.equals(res.to_arrow()) and every.equals(res.to_arrow(["*"]))
    assert res.to_arrow([]).column_names == ["query", "rank", "id", "score"]
    assert res.to_arrow(["year"]).column_names == ["query", "rank", "id", "score", "year"]
    assert every.num_rows == int(res.counts.sum()) == 6
    expected = coll.get(every.column("id").to_numpy(), columns=["tag", "year", "day"], with_vectors=False)
    assert every.select(["id", "tag", "year", "day"]).equals(expected)


def test_to_arrow_vector_column_is_the_stored_vector_of_each_hit(coll):
    q = np.stack(coll.get([100, 117], columns=[]).column("vector").to_pylist())
    res = coll.search(q, k=4)
    table = res.to_arrow(["vector", "tag"])
    assert table.column_names == ["query", "rank", "id", "score", "vector", "tag"]
    got = np.stack(table.column("vector").to_pylist())
    stored = np.stack(coll.get(table.column("id").to_numpy(), columns=[]).column("vector").to_pylist())
    np.testing.assert_array_equal(got, stored)
    # the top hit of each query is the row it came from, and its score is its vector's product with the query
    assert table.column("id").to_pylist()[0] == 100 and table.column("id").to_pylist()[4] == 117
    np.testing.assert_allclose(table.column("score").to_numpy(), np.einsum("ij,ij->i", got, q[table.column("query")]),
                               rtol=1e-5, atol=1e-5)
    star_and_vector = res.to_arrow(["*", "vector"])
    assert star_and_vector.column_names == ["query", "rank", "id", "score", "tag", "year", "day", "vector"]


def test_unknown_column_names_the_closest_one(coll):
    res = coll.search(np.ones(DIM, np.float32), k=2)
    with pytest.raises(errors.SchemaError, match="yaer.*year"):
        res.to_arrow(["yaer"])


def test_to_list_per_query_dicts_best_first(coll):
    q = np.stack(coll.get([100, 117, 101], columns=[]).column("vector").to_pylist())
    res = coll.search(q, k=3, where=["tag = 'a'", "tag = 'c'", "year = 1900"])
    hits = res.to_list(["tag", "vector"])
    assert len(hits) == 3 and hits[2] == []  # no row passes the third filter
    assert [h["id"] for h in hits[0]] == res.ids[0, :3].tolist()
    for query_hits, tag in zip(hits[:2], "ac"):
        assert [sorted(h) for h in query_hits] == [["id", "score", "tag", "vector"]] * 3
        assert all(h["tag"] == tag for h in query_hits)
        assert all(isinstance(h["score"], float) and isinstance(h["vector"], list) for h in query_hits)
        assert [h["score"] for h in query_hits] == sorted((h["score"] for h in query_hits), reverse=True)
    assert res.to_list([])[0][0] == {"id": res.ids[0, 0], "score": pytest.approx(float(res.scores[0, 0]))}


def test_to_pandas(coll):
    pd = pytest.importorskip("pandas")
    res = coll.search(np.ones((2, DIM), np.float32), k=5, where="year >= 2002")
    df = res.to_pandas(["year", "vector"])
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["query", "rank", "id", "score", "year", "vector"]
    assert len(df) == 10 and (df["year"] >= 2002).all()
    assert df["id"].tolist() == res.ids.reshape(-1).tolist()
    assert len(df["vector"].iloc[0]) == DIM


def test_to_polars(coll):
    pl = pytest.importorskip("polars")
    res = coll.search(np.ones((2, DIM), np.float32), k=5)
    df = res.to_polars("*")
    assert isinstance(df, pl.DataFrame) and df.columns == ["query", "rank", "id", "score", "tag", "year", "day"]
    assert df["id"].to_list() == res.ids.reshape(-1).tolist()
    assert df.filter(pl.col("query") == 1)["rank"].to_list() == [0, 1, 2, 3, 4]


def test_to_polars_without_polars_says_how_to_get_it(coll, monkeypatch):
    real_import = builtins.__import__

    def no_polars(name, *args, **kwargs):
        if name == "polars" or name.startswith("polars."):
            raise ModuleNotFoundError("No module named 'polars'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_polars)
    res = coll.search(np.ones(DIM, np.float32), k=2)
    with pytest.raises(ImportError, match="pip install polars"):
        res.to_polars()


def test_multivector_hits_carry_their_vector_sets(tmp_path):
    rng = np.random.default_rng(3)
    docs = [rng.normal(size=(n, DIM)).astype(np.float32) for n in (2, 3, 1, 4)]
    mv = vecdb.create(tmp_path / "mv.vdb", dim=DIM, metric="ip", multivector=True)
    mv.add(docs, pa.table({"tag": ["a", "b", "a", "b"]}))
    res = mv.search(docs[1], k=2)
    table = res.to_arrow(["vector", "tag"])
    assert table.column_names == ["query", "rank", "id", "score", "vectors", "tag"]
    for doc_id, vectors in zip(table.column("id").to_pylist(), table.column("vectors").to_pylist()):
        np.testing.assert_array_equal(np.asarray(vectors, np.float32), docs[doc_id])
    assert res.to_arrow(["vectors"]).column_names[-1] == "vectors"
    assert [sorted(h) for h in res.to_list(["vector"])[0]] == [["id", "score", "vectors"]] * 2


def test_result_reads_the_version_the_search_read(coll):
    res = coll.search(np.ones(DIM, np.float32), k=3)
    first = res.to_list(["tag", "vector"])
    coll.delete(ids=res.ids[0].tolist())
    assert res.to_list(["tag", "vector"]) == first


def test_ids_are_the_rows_only_while_they_read_0_to_n_minus_1(tmp_path):
    """A collection whose ids were given as 0, 1, 2, ... returns its row numbers as ids without a lookup
    (``Snapshot.ids_are_rows``); an upsert (the id moves to a new row), a compaction and ids that start
    elsewhere end that, and every search still returns the id each hit's row holds."""
    x, table = _rows(40)
    c = vecdb.create(tmp_path / "r.vdb", dim=DIM, metric="cosine")
    c.add(x, table)  # ids 0..39
    q = x[[3, 7, 11]] + 0.01

    def check(expect_rows: bool, top: list[int]) -> None:
        snap = c.snapshot
        assert snap.ids_are_rows is expect_rows
        res = c.search(q, 5, plan="exact", threads=1)
        batch = c.search(q, 5, where=["tag = 'a'", "tag = 'b'", "year >= 2001"], plan="exact", threads=2)
        unit = q / np.linalg.norm(q, axis=1, keepdims=True)
        for r in (res, batch):
            for i in range(len(q)):  # each id is a live row whose stored vector scores what was reported
                ids = r.ids[i]
                assert (ids >= 0).all() and len(set(ids.tolist())) == ids.size
                vec = np.asarray(c.get(ids, columns=[]).column("vector").to_pylist(), np.float32)
                np.testing.assert_allclose(vec @ unit[i], r.scores[i], atol=1e-5)
        assert res.ids[:, 0].tolist() == top

    check(True, [3, 7, 11])
    c.upsert(x[[3]] * -1, table.slice(3, 1), ids=[3])  # id 3 now lives in row 40, pointing away from q[0]
    check(False, [29, 7, 11])  # (id 29 is the next nearest to q[0])
    c.upsert(x[[3]], table.slice(3, 1), ids=[3])  # back, in row 41
    c.compact()
    check(c.snapshot.ids.tolist() == list(range(40)), [3, 7, 11])
    other = vecdb.create(tmp_path / "s.vdb", dim=DIM, metric="cosine")
    other.add(x, table, ids=np.arange(1, 41))
    assert not other.snapshot.ids_are_rows
    assert other.search(q, 1, plan="exact").ids[:, 0].tolist() == [4, 8, 12]
