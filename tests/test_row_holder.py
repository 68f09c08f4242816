"""One float32 copy of the vectors: where the index keeps the rows (HNSW, ``storage="flat"``), the store
reads them from it, and the collection's own vector file stays unread. And the plain unfiltered path
(one prepared native call) answers as the planner's path does."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vecdb
from vecdb.indexes.base import Borrowed
from vecdb.indexes.faiss_indexes import HNSWIndex

from .conftest import small_table


def _rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return rng.normal(size=(n, dim)).astype(np.float32)


def _held(coll) -> tuple[np.ndarray, np.ndarray]:
    store = coll.snapshot.store
    return store.vectors, store.index.held_rows()


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_store_reads_the_index_rows_after_build_optimize_and_reopen(tmp_path, metric):
    rng = np.random.default_rng(0)
    x = _rows(rng, 1500, 16)
    c = vecdb.create(tmp_path / "c.vdb", dim=16, metric=metric)
    c.add(x, small_table(rng, 1500))
    before = c.snapshot.store.vectors.copy()
    c.build_index("hnsw", M=8, ef_construction=40)
    vectors, held = _held(c)
    assert np.shares_memory(vectors, held) and isinstance(held.base, Borrowed)
    np.testing.assert_array_equal(vectors, before)  # the same values, stored once
    assert not vectors.flags.writeable

    c.add(_rows(rng, 300, 16), small_table(rng, 300))  # rows beyond the index: the store holds its own
    vectors, held = _held(c)
    assert vectors.shape[0] == 1800 and held.shape[0] == 1500 and not np.shares_memory(vectors, held)
    all_rows = vectors.copy()
    c.optimize()
    vectors, held = _held(c)
    assert np.shares_memory(vectors, held)
    np.testing.assert_array_equal(vectors, all_rows)

    c.close()
    r = vecdb.open(tmp_path / "c.vdb")
    vectors, held = _held(r)
    assert np.shares_memory(vectors, held)
    np.testing.assert_array_equal(vectors, all_rows)
    q = _rows(rng, 20, 16)
    for where in (None, "year >= 2010", "tag = 'a'"):
        exact = r.search(q, 10, where=where, plan="exact")
        ids_exact = [set(row) for row in exact.ids]
        approx = r.search(q, 10, where=where)
        recall = np.mean([len(ids_exact[i] & set(approx.ids[i])) / 10 for i in range(len(q))])
        assert recall >= 0.9, (where, recall)
        # exact scores come from the index's rows: equal to numpy over the stored file's rows
        file_rows = all_rows[np.searchsorted(r.snapshot.ids, exact.ids)]
        qn = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "cosine" else q
        want = (np.einsum("qkd,qd->qk", file_rows, qn) if metric == "cosine"
                else ((file_rows - qn[:, None, :]) ** 2).sum(-1))
        np.testing.assert_allclose(exact.scores, want, rtol=1e-5, atol=1e-5)


def test_rows_outlive_the_index_and_collection_that_lent_them():
    """A view of the index's rows keeps the index alive: dropping every other reference and collecting
    must not free the memory under it (run in a subprocess: a use-after-free would crash it)."""
    code = textwrap.dedent("""
        import gc, numpy as np
        from vecdb.indexes.faiss_indexes import HNSWIndex
        x = np.random.default_rng(1).normal(size=(3000, 32)).astype(np.float32)
        index = HNSWIndex(32, "l2", M=8, ef_construction=40)
        index.build(x)
        view = index.held_rows()[100:200]
        del index; gc.collect()
        junk = [np.full((3000, 32), 7.0, np.float32) for _ in range(50)]  # reuse freed memory if it was freed
        assert np.array_equal(view, x[100:200]), "rows changed under the view"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_fp16_storage_keeps_the_collection_rows():
    x = _rows(np.random.default_rng(2), 500, 8)
    index = HNSWIndex(8, "ip", M=8, ef_construction=40, storage="fp16")
    index.build(x)
    assert index.held_rows() is None
    flat = HNSWIndex(8, "ip", M=8, ef_construction=40)
    flat.build(x)
    np.testing.assert_array_equal(flat.held_rows(), x)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resident pages come from /proc/self/smaps")
def test_the_vector_file_stays_unread_when_the_index_holds_the_rows(tmp_path):
    rng = np.random.default_rng(3)
    c = vecdb.create(tmp_path / "c.vdb", dim=64, metric="ip")
    c.add(_rows(rng, 4000, 64), small_table(rng, 4000))
    c.build_index("hnsw", M=8, ef_construction=40)
    c.close()
    r = vecdb.open(tmp_path / "c.vdb")
    q = _rows(rng, 50, 64)
    for where in (None, "year >= 2010", "tag = 'b'", "year = 2004"):
        r.search(q, 10, where=where)
        r.search(q, 10, where=where, plan="exact")
    foot = r.footprint()
    assert foot["vectors"]["on_disk"] >= 4000 * 64 * 4
    assert foot["vectors"]["resident"] == 0  # every row came from the index's copy
    assert foot["index"]["resident"] >= 4000 * 64 * 4


def test_plain_path_answers_as_the_planned_path(tmp_path):
    """One unfiltered query with no options takes the prepared call; the same search through the planner
    (a filter every row passes) and a 2-D batch of one give the same ids and scores."""
    rng = np.random.default_rng(4)
    c = vecdb.create(tmp_path / "c.vdb", dim=32, metric="cosine")
    c.add(_rows(rng, 3000, 32), small_table(rng, 3000))
    c.build_index("hnsw", M=8, ef_construction=40)
    snap = c.snapshot
    field = next(iter(snap.fields.values()))
    ef = field.plain_store(10, snap.n_live, snap, None).plain_params(snap.planner).get("ef")
    for q in _rows(rng, 30, 32):
        plain = c.search(q, 10)
        assert plain.plans == ("index",)
        batch = c.search(q[None], 10)
        forced = c.search(q, 10, plan="index", **({"ef": ef} if ef else {}))
        for other in (batch, forced):
            np.testing.assert_array_equal(plain.ids, other.ids)
            np.testing.assert_array_equal(plain.scores, other.scores)
        assert len(set(plain.ids[0])) == 10
    gc.collect()


def test_plain_path_with_a_beam_or_a_recall_target(tmp_path):
    """``ef=`` and ``target_recall=`` keep the one-call path (set up once per value): same ids and scores
    as the planner's path with the same beam; bad values are the planner's typed errors; a sweep over
    many beams does not grow the per-snapshot cache without end; other options leave the path."""
    from vecdb import fields
    from vecdb.errors import InvalidParameterError

    rng = np.random.default_rng(5)
    c = vecdb.create(tmp_path / "c.vdb", dim=32, metric="cosine")
    c.add(_rows(rng, 3000, 32), small_table(rng, 3000))
    c.build_index("hnsw", M=8, ef_construction=40)
    field = next(iter(c.snapshot.fields.values()))
    for q in _rows(rng, 10, 32):
        for ef in (12, 40):
            plain = c.search(q, 10, ef=ef)
            assert plain.plans == ("index",)
            forced = c.search(q, 10, plan="index", ef=ef)
            np.testing.assert_array_equal(plain.ids, forced.ids)
            np.testing.assert_array_equal(plain.scores, forced.scores)
            np.testing.assert_array_equal(c.search(q[None], 10, ef=ef).ids, plain.ids)
        for target in (0.5, 0.99):
            beam = c.explain(q, target_recall=target).params["ef"]
            np.testing.assert_array_equal(c.search(q, 10, target_recall=target).ids,
                                          c.search(q, 10, plan="index", ef=beam).ids)
    assert c.explain(q, target_recall=0.5).params["ef"] <= c.explain(q, target_recall=0.99).params["ef"]
    for bad in ({"ef": "wide"}, {"ef": [1]}, {"target_recall": 1.5}, {"efs": 3}):
        with pytest.raises(InvalidParameterError):
            c.search(q, 10, **bad)
    assert c.search(q, 10, plan="exact").plans == ("exact",)  # a plan leaves the plain path
    for ef in range(10, 10 + 2 * fields.PLAIN_KEYS):
        assert c.search(q, 10, ef=ef).ids.shape == (1, 10)
    assert len(field._plain) <= fields.PLAIN_KEYS


def test_the_writing_process_drops_its_copy_once_the_index_holds_the_rows(tmp_path):
    """The process that added the rows and built the index keeps one copy too: the field's bare rows
    (exact scans, ``get``) read the index's rows after ``build_index`` and ``optimize``, and the buffer the
    adds filled is freed once no snapshot holds it."""
    import weakref

    rng = np.random.default_rng(7)
    c = vecdb.create(tmp_path / "c.vdb", dim=16, metric="l2")
    c.add(_rows(rng, 1000, 16), small_table(rng, 1000))
    c.add(_rows(rng, 500, 16), small_table(rng, 500))
    field = next(iter(c.snapshot.fields.values()))
    filled = weakref.ref(field.store._buffer.array)
    before = field.store.vectors.copy()
    del field
    c.build_index("hnsw", M=8, ef_construction=40)
    field = next(iter(c.snapshot.fields.values()))
    held = c.snapshot.store.index.held_rows()
    assert np.shares_memory(field.store.vectors, held) and field.store.index is None
    gc.collect()
    assert filled() is None  # the adds' buffer is gone
    assert c.footprint()["vectors"]["resident"] == 0  # the rows count once, with the index
    np.testing.assert_array_equal(field.store.vectors, before)
    got = c.get(c.snapshot.ids[:5], with_vectors=True)
    np.testing.assert_array_equal(np.stack(got.column("vector").to_numpy(zero_copy_only=False)), before[:5])

    c.add(_rows(rng, 200, 16), small_table(rng, 200))  # rows beyond the index: held by the store again
    c.optimize()
    field = next(iter(c.snapshot.fields.values()))
    assert np.shares_memory(field.store.vectors, c.snapshot.store.index.held_rows())
    q = _rows(rng, 10, 16)
    exact = c.search(q, 5, plan="exact")
    truth = ((field.store.vectors[None, :, :] - q[:, None, :]) ** 2).sum(-1).argsort(1)[:, :5]
    np.testing.assert_array_equal(exact.ids, c.snapshot.ids[truth])


def test_a_list_of_no_filters_is_the_plain_search(tmp_path):
    """``where=[None] * nq`` (one "no filter" per query, as a caller with optional filters sends) runs
    the plain index search, the same answers as ``where=None``."""
    from vecdb.errors import InvalidParameterError

    rng = np.random.default_rng(8)
    c = vecdb.create(tmp_path / "c.vdb", dim=16, metric="ip")
    c.add(_rows(rng, 2000, 16), small_table(rng, 2000))
    c.build_index("hnsw", M=8, ef_construction=40)
    q = _rows(rng, 12, 16)
    plain = c.search(q, 10)
    listed = c.search(q, 10, where=[None] * 12)
    np.testing.assert_array_equal(listed.ids, plain.ids)
    np.testing.assert_array_equal(listed.scores, plain.scores)
    assert listed.plans == plain.plans == ("index",) * 12
    mixed = c.search(q, 10, where=[None] * 11 + ["year >= 2010"])
    np.testing.assert_array_equal(mixed.ids[:11], plain.ids[:11])
    years = c.get(mixed.ids[-1][mixed.ids[-1] >= 0], columns=["year"]).column("year").to_pylist()
    assert years and all(y >= 2010 for y in years)
    with pytest.raises(InvalidParameterError):
        c.search(q, 10, where=[None] * 11)  # one filter per query
