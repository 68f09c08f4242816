"""Changing data: upsert, update, delete, compact, optimize, build_index, restore, schema evolution, checked
against a plain in-memory model (a dict id -> row), with exact filtered searches after every step."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import vecdb
from vecdb import errors

DIM = 4
FILTERS = [None, "g < 3", "tag = 'b'", "g >= 2 AND tag != 'a'", "g IS NULL", "flag"]


def passes(where: str | None, row: dict) -> bool:
    g, tag, flag = row["g"], row["tag"], row["flag"]
    return {None: True, "g < 3": g is not None and g < 3, "tag = 'b'": tag == "b",
            "g >= 2 AND tag != 'a'": g is not None and g >= 2 and tag != "a", "g IS NULL": g is None,
            "flag": bool(flag)}[where]


class Model(RuleBasedStateMachine):
    """The collection and a dict id -> {vector, g, tag, flag} must hold the same rows after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp())
        self.coll = vecdb.create(self.tmp / "c.vdb", dim=DIM, metric="ip")
        self.rows: dict[int, dict] = {}
        self.history: dict[int, dict[int, dict]] = {0: {}}
        self.rng = np.random.default_rng(0)

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _committed(self) -> None:
        self.history[self.coll.version] = {i: dict(r) for i, r in self.rows.items()}

    def _batch(self, ids: list[int]) -> tuple[np.ndarray, dict]:
        x = self.rng.normal(size=(len(ids), DIM)).astype(np.float32)
        g = [None if i % 5 == 4 else int(v) for i, v in zip(ids, self.rng.integers(0, 5, len(ids)))]
        tags = [["a", "b", "c"][int(v)] for v in self.rng.integers(0, 3, len(ids))]
        flags = [bool(v) for v in self.rng.integers(0, 2, len(ids))]
        return x, {"g": pa.array(g, pa.int64()), "tag": tags, "flag": flags}

    def _store(self, ids: list[int], x: np.ndarray, attrs: dict) -> None:
        for j, i in enumerate(ids):
            self.rows[i] = {"vector": x[j], "g": attrs["g"][j].as_py(), "tag": attrs["tag"][j],
                            "flag": attrs["flag"][j]}

    @initialize(n=st.integers(1, 12))
    def start(self, n: int) -> None:
        ids = list(range(n))
        x, attrs = self._batch(ids)
        self.coll.add(x, attrs, ids=ids)
        self._store(ids, x, attrs)
        self._committed()

    @rule(new=st.lists(st.integers(0, 40), min_size=1, max_size=6, unique=True))
    def add(self, new: list[int]) -> None:
        x, attrs = self._batch(new)
        if any(i in self.rows for i in new):
            with pytest.raises(errors.DuplicateIdError):
                self.coll.add(x, attrs, ids=new)
            return
        self.coll.add(x, attrs, ids=new)
        self._store(new, x, attrs)
        self._committed()

    @rule(ids=st.lists(st.integers(0, 40), min_size=1, max_size=6, unique=True))
    def upsert(self, ids: list[int]) -> None:
        x, attrs = self._batch(ids)
        self.coll.upsert(x, attrs, ids=ids)
        self._store(ids, x, attrs)
        self._committed()

    @precondition(lambda self: self.rows)
    @rule(data=st.data(), g=st.one_of(st.none(), st.integers(0, 6)))
    def update(self, data, g) -> None:
        if data.draw(st.booleans()):
            ids = data.draw(st.lists(st.sampled_from(sorted(self.rows)), min_size=1, max_size=4, unique=True))
            changed = self.coll.update(ids=ids, values={"g": g, "flag": vecdb.col("tag") == "a"})
            chosen = ids
        else:
            where = data.draw(st.sampled_from(FILTERS[1:]))
            changed = self.coll.update(where=where, values={"g": g, "flag": vecdb.col("tag") == "a"})
            chosen = [i for i, r in self.rows.items() if passes(where, r)]
        assert changed == len(chosen)
        for i in chosen:
            self.rows[i].update(g=g, flag=self.rows[i]["tag"] == "a")
        if chosen:
            self._committed()

    @precondition(lambda self: self.rows)
    @rule(data=st.data())
    def delete(self, data) -> None:
        if data.draw(st.booleans()):
            ids = data.draw(st.lists(st.sampled_from(sorted(self.rows) + [99]), min_size=1, max_size=4, unique=True))
            gone = [i for i in ids if i in self.rows]
            assert self.coll.delete(ids=ids) == len(gone)
        else:
            where = data.draw(st.sampled_from(FILTERS[1:]))
            gone = [i for i, r in self.rows.items() if passes(where, r)]
            assert self.coll.delete(where=where) == len(gone)
        for i in gone:
            del self.rows[i]
        if gone:
            self._committed()

    @rule(kind=st.sampled_from(["flat", "hnsw", "ivf"]))
    def build_index(self, kind: str) -> None:
        if not self.rows:
            return
        options = {"hnsw": {"M": 4, "ef_construction": 16}, "ivf": {"nlist": 2, "nprobe": 2}}.get(kind, {})
        self.coll.build_index(kind, **options)
        self._committed()

    @rule()
    def optimize(self) -> None:
        before = self.coll.version
        self.coll.optimize()
        if self.coll.version != before:
            self._committed()

    @rule()
    def compact(self) -> None:
        self.coll.compact()
        self._committed()

    @rule(data=st.data())
    def restore(self, data) -> None:
        kept = [v["version"] for v in self.coll.versions() if v["version"] > 0]  # 0: no columns yet
        version = data.draw(st.sampled_from(kept))
        self.coll.restore(version)
        self.rows = {i: dict(r) for i, r in self.history[version].items()}
        self._committed()

    @rule()
    def reopen(self) -> None:
        self.coll = vecdb.open(self.coll.root)

    @invariant()
    def same_rows_and_same_exact_answers(self) -> None:
        coll = self.coll
        assert len(coll) == len(self.rows)
        table = coll.to_arrow(with_vectors=True)
        got = {row["id"]: row for row in table.to_pylist()}
        assert set(got) == set(self.rows)
        for i, want in self.rows.items():
            assert (got[i]["g"], got[i]["tag"], got[i]["flag"]) == (want["g"], want["tag"], want["flag"])
            np.testing.assert_allclose(got[i]["vector"], want["vector"], rtol=1e-6)
        q = self.rng.normal(size=DIM).astype(np.float32)
        for where in FILTERS:
            passing = [i for i, r in self.rows.items() if passes(where, r)]
            res = coll.search(q, k=5, where=where, plan="exact")
            hits = res.ids[0][res.ids[0] >= 0].tolist()
            scores = {i: float(self.rows[i]["vector"] @ q) for i in passing}
            want = sorted(passing, key=lambda i: -scores[i])[:5]
            assert len(hits) == len(want) and len(set(hits)) == len(hits), (where, hits, want)
            np.testing.assert_allclose(sorted(scores[i] for i in hits), sorted(scores[i] for i in want), rtol=1e-5)
            auto = coll.search(q, k=5, where=where)  # whatever plan: every hit passes, k when k match
            auto_hits = auto.ids[0][auto.ids[0] >= 0].tolist()
            assert all(i in scores for i in auto_hits) and len(auto_hits) == min(5, len(passing))


TestModel = Model.TestCase
TestModel.settings = settings(max_examples=25, stateful_step_count=12, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------- the verbs
def make(tmp_path: Path, n: int = 200, dim: int = 8, multivector: bool = False) -> vecdb.Collection:
    rng = np.random.default_rng(1)
    coll = vecdb.create(tmp_path / "c.vdb", dim=dim, metric="ip", multivector=multivector)
    vectors = [rng.normal(size=(3, dim)) for _ in range(n)] if multivector else rng.normal(size=(n, dim))
    coll.add(vectors, {"g": np.arange(n) % 10, "s": [f"s{i}" for i in range(n)]}, ids=np.arange(n))
    return coll


def test_upsert_replaces_whole_rows_in_one_commit_and_deleted_ids_come_back(tmp_path):
    coll = make(tmp_path)
    coll.build_index("hnsw", M=8)
    version = coll.version
    x = np.ones((2, 8), np.float32)
    coll.upsert(x, {"g": [77, 78]}, ids=[5, 500])  # one replaced, one new
    assert coll.version == version + 1 and len(coll) == 201
    got = coll.get([5, 500], columns=["g", "s"])
    assert got.column("g").to_pylist() == [77, 78] and got.column("s").to_pylist() == [None, None]
    res = coll.search(np.ones(8), k=3)
    assert res.ids[0][:2].tolist() == [5, 500] and len(set(res.ids[0].tolist())) == 3
    coll.delete(ids=[7])
    with pytest.raises(errors.UnknownIdError):
        coll.get([7])
    coll.add(np.full((1, 8), 2.0), {"g": [1]}, ids=[7])  # a deleted id may be used again
    assert coll.search(np.ones(8), k=1).ids[0, 0] == 7
    with pytest.raises(errors.DuplicateIdError, match="upsert"):
        coll.add(np.ones((1, 8)), ids=[7])
    with pytest.raises(errors.InvalidParameterError, match="ids"):
        coll.upsert(np.ones((1, 8)))
    reopened = vecdb.open(coll.root)
    assert reopened.get([5, 7, 500], columns=["g"]).column("g").to_pylist() == [77, 1, 78]


def test_update_sets_attributes_without_touching_vectors_or_the_index(tmp_path):
    coll = make(tmp_path)
    coll.build_index("hnsw", M=8)
    index_files = coll.snapshot.manifest.index.files
    vectors = coll.get([3]).column("vector").to_pylist()
    assert coll.update(where="g = 3", values={"s": "three", "g": vecdb.col("g")}) == 20
    assert coll.update(ids=[4], values={"g": None}) == 1
    assert coll.snapshot.manifest.index.files == index_files  # same index files: no vector rewrite
    assert coll.get([3]).column("vector").to_pylist() == vectors
    assert coll.search(np.ones(8), k=30, where="s = 'three'").counts.tolist() == [20]
    assert coll.search(np.ones(8), k=5, where="g IS NULL").ids[0][:1].tolist() == [4]
    with pytest.raises(errors.SchemaError, match="'g'"):
        coll.update(ids=[1], values={"g": "not a number"})
    with pytest.raises(errors.SchemaError, match="yy"):
        coll.update(ids=[1], values={"yy": 1})
    with pytest.raises(errors.UnknownIdError):
        coll.update(ids=[999], values={"g": 1})
    assert vecdb.open(coll.root).get([4], columns=["g"]).column("g").to_pylist() == [None]


def test_update_vectors_keeps_attributes(tmp_path):
    coll = make(tmp_path)
    coll.update_vectors([9], np.full((1, 8), 3.0))
    got = coll.get([9], columns=["g", "s"])
    assert got.column("g").to_pylist() == [9] and got.column("s").to_pylist() == ["s9"]
    assert coll.search(np.ones(8), k=1).ids[0, 0] == 9


def test_multi_vector_rows_are_upserted_and_compacted(tmp_path):
    coll = make(tmp_path, n=60, multivector=True)
    coll.build_index(r_reps=2, k_sim=2, d_proj=8, candidates=20)
    q = np.random.default_rng(5).normal(size=(3, 8))
    coll.upsert([q], {"g": [100]}, ids=[10])
    assert coll.search(q, k=1).ids[0, 0] == 10
    coll.delete(where="g < 5")
    coll.compact()
    assert len(coll) == 31 and coll.snapshot.stored == 31
    assert coll.search(q, k=1).ids[0, 0] == 10 and coll.search(q, k=1, plan="exact").ids[0, 0] == 10


def test_compact_reclaims_disk_and_memory_and_rebuilds_the_index(tmp_path):
    rng = np.random.default_rng(2)
    n, dim = 20_000, 16
    coll = vecdb.create(tmp_path / "c.vdb", dim=dim, metric="l2")
    for part in range(4):  # many segments
        ids = np.arange(part * n // 4, (part + 1) * n // 4)
        coll.add(rng.normal(size=(len(ids), dim)), {"g": ids % 10}, ids=ids)
    coll.build_index("hnsw", M=8, ef_construction=40)
    before = coll.stats()
    coll.delete(where="g != 3")  # 90% deleted
    plan = coll.explain(rng.normal(size=dim))
    assert plan.name in ("exact", "filtered_graph")  # too many dead rows for the plain walk
    coll.compact()
    coll.cleanup(keep_last=1, older_than=0)
    after = coll.stats()
    assert after["rows"] == after["index_rows"] == n // 10 and after["deleted_rows"] == 0 and after["segments"] == 1
    index_bytes = sum(e.bytes for e in coll.snapshot.manifest.index.files)
    assert after["bytes_on_disk"] - index_bytes <= 0.15 * before["bytes_on_disk"], (before, after)
    assert coll.snapshot.store.vectors.shape == (n // 10, dim)
    q = rng.normal(size=(50, dim))
    exact = coll.search(q, k=10, plan="exact")
    approx = coll.search(q, k=10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.ids.tolist(), exact.ids.tolist())])
    assert recall >= 0.95 and approx.plans[0] == "index"


def test_a_few_deleted_rows_keep_the_plain_index_walk(tmp_path):
    coll = make(tmp_path, n=3000)
    coll.build_index("hnsw", M=8)
    coll.delete(ids=np.arange(0, 3000, 50))  # 2%
    q = np.random.default_rng(3).normal(size=(20, 8))
    plan = coll.explain(q[0])
    assert plan.name == "post_filter" and "deleted" in plan.reason
    res = coll.search(q, k=10)
    assert set(res.plans) == {"post_filter"} and (res.counts == 10).all()
    assert not np.isin(res.ids, np.arange(0, 3000, 50)).any()
    exact = coll.search(q, k=10, plan="exact")
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(res.ids.tolist(), exact.ids.tolist())])
    assert recall >= 0.95


def test_optimize_compacts_past_the_dead_fraction(tmp_path):
    coll = make(tmp_path, n=500)
    coll.build_index("hnsw", M=8)
    coll.delete(where="g < 3")  # 30% > REBUILD_DEAD_FRACTION
    coll.optimize()
    assert coll.snapshot.manifest.operation == "compact" and coll.snapshot.stored == 350


def test_schema_evolution(tmp_path):
    coll = make(tmp_path)
    coll.add_columns({"rating": pa.float64(), "even": vecdb.col("g") < 5, "src": "web", "copy": vecdb.col("s")})
    got = coll.get([2, 7], columns=["rating", "even", "src", "copy"], with_vectors=False)
    assert got.to_pylist()[0] | {"id": 0} == {"id": 0, "rating": None, "even": True, "src": "web", "copy": "s2"}
    assert got.column("even").to_pylist() == [True, False]
    coll.rename_column("src", "source")
    coll.drop_columns(["copy"])
    assert coll.schema.names == ["g", "s", "rating", "even", "source"]
    assert coll.search(np.ones(8), k=200, where="source = 'web' AND even").counts.tolist() == [100]
    coll.add(np.ones((1, 8)), {"g": [1]}, ids=[1000])  # later adds may leave columns out
    assert coll.get([1000], columns=["source"]).column("source").to_pylist() == [None]
    with pytest.raises(errors.SchemaError):
        coll.add_columns({"g": pa.int64()})
    with pytest.raises(errors.SchemaError):
        coll.rename_column("g", "s")
    assert vecdb.open(coll.root).schema.names == coll.schema.names


def test_versions_time_travel_restore_and_cleanup(tmp_path):
    coll = make(tmp_path, n=50)
    v_add = coll.version
    coll.delete(ids=[1, 2, 3])
    v_del = coll.version
    coll.update(ids=[4], values={"g": 40})
    history = coll.versions()
    assert [h["operation"] for h in history][-3:] == ["add", "delete", "update"]
    assert all(h["timestamp"] > 0 for h in history)
    old = vecdb.open(coll.root, version=v_add)
    assert len(old) == 50 and old.get([1], columns=["g"]).column("g").to_pylist() == [1]
    with pytest.raises(errors.ReadOnlyCollectionError):
        old.delete(ids=[1])
    restored = coll.restore(v_del)
    assert restored == v_del + 2 and len(coll) == 47 and coll.get([4], columns=["g"]).column("g").to_pylist() == [4]
    assert len(vecdb.open(coll.root)) == 47
    assert coll.cleanup(keep_last=1, older_than=0) > 0
    assert [h["version"] for h in coll.versions()] == [restored]
    with pytest.raises(errors.NotACollectionError, match="keeps no version"):
        vecdb.open(coll.root, version=v_add)
    assert len(old) == 50  # a handle on an older version keeps its snapshot


def test_a_handle_keeps_its_version_after_cleanup_removed_its_files(tmp_path):
    coll = make(tmp_path, n=100)
    idle = vecdb.open(coll.root)  # opened, nothing read yet: its mapped files are still to be hashed
    want = coll.search(np.ones(8), k=5).ids
    writer = vecdb.open(coll.root)
    writer.delete(ids=want[0].tolist())
    writer.compact()
    assert writer.cleanup(keep_last=1, older_than=0) > 0  # the files of idle's version are gone from the directory
    assert not (coll.root / idle.snapshot.manifest.segments[0].fields["vector"]["vectors"].file).exists()
    np.testing.assert_array_equal(idle.search(np.ones(8), k=5).ids, want)  # still its version, checked
    assert idle.refresh() and len(idle) == 95 and not np.isin(idle.search(np.ones(8), k=5).ids, want).any()
