"""Sharded collections in local mode (no Ray needed): build, exactness against the single collection,
sound shard pruning, routed writes, failed builds. The same checks over Ray: ray_cases.py (run by
test_distributed_ray.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import vecdb
import vecdb.distributed as vd
from vecdb.distributed.stats import may_pass
from vecdb.filters import parse

from .distributed_helpers import (assert_same_answer, random_filter, recall, single, table, vectors_of)

HNSW = {"M": 12, "ef_construction": 64}


@pytest.fixture(scope="module")
def data():
    return table(3000, 16, seed=1)


@pytest.fixture(scope="module")
def oracle(data, tmp_path_factory):
    return single(tmp_path_factory.mktemp("single") / "c", data, "cosine", "hnsw", **HNSW)


@pytest.fixture(scope="module")
def hashed(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("sharded") / "s"
    vd.build(data, path, shards=3, metric="cosine", index="hnsw", index_options=HNSW, ray=False)
    with vd.open(path, ray=False) as coll:
        yield coll


def test_import_does_not_load_ray():
    code = "import sys, vecdb, vecdb.distributed; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ray_missing_is_a_clear_error(monkeypatch, tmp_path, data):
    monkeypatch.setattr(vd, "ray_available", lambda: False)
    with pytest.raises(vd.RayNotInstalledError, match=r"pip install 'vecdb\[ray\]'"):
        vd.build(data, tmp_path / "x", shards=2, ray=True)
    assert not (tmp_path / "x").exists()


def test_build_layout_and_stats(hashed, data):
    m = hashed.manifest
    assert [s.name for s in m.shards] == ["shard-0000", "shard-0001", "shard-0002"]
    assert sum(s.rows for s in m.shards) == data.num_rows == len(hashed)
    assert all(500 < s.rows < 1500 for s in m.shards)  # the id hash spreads rows
    st = m.shards[0].stats
    assert st["year"]["min"] >= 2000 and st["year"]["max"] <= 2024 and st["year"]["nulls"] > 0
    assert set(st["cat"]["values"]) <= {"a", "b", "c", "d", "e"}
    assert st["day"]["min"] == {"date": "2024-01-01"} or st["day"]["min"]["date"] >= "2024-01-01"
    for s in m.shards:
        assert vecdb.open(hashed.root / s.name).index_info["kind"] == "hnsw"


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_plans_equal_the_single_collection(hashed, oracle, seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((40, 16)).astype(np.float32)
    wheres = [random_filter(rng) for _ in range(40)]
    expected = oracle.search(q, 10, where=wheres, plan="exact")
    got = hashed.search(q, 10, where=wheres, plan="exact")
    assert_same_answer(expected, got, "cosine")
    assert all(p in ("exact", "pruned") for p in got.plans)
    # one filter for the whole batch goes as one batch per shard
    assert_same_answer(oracle.search(q, 7, where=wheres[0], plan="exact"),
                       hashed.search(q, 7, where=wheres[0], plan="exact"), "cosine")


def test_approximate_plans_reach_the_same_recall(hashed, oracle):
    rng = np.random.default_rng(5)
    q = rng.standard_normal((60, 16)).astype(np.float32)
    wheres = [None] * 20 + ["year >= 2005"] * 20 + ["'t1' IN tags OR cat = 'a'"] * 20
    truth = oracle.search(q, 10, where=wheres, plan="exact").ids
    r_single = recall(truth, oracle.search(q, 10, where=wheres).ids)
    r_sharded = recall(truth, hashed.search(q, 10, where=wheres).ids)
    assert r_sharded >= r_single - 0.02, (r_single, r_sharded)


def test_l2_merge_is_ascending(data, tmp_path):
    one = single(tmp_path / "one", data, "l2", "flat")
    vd.build(data, tmp_path / "s", shards=4, metric="l2", index="flat", ray=False)
    with vd.open(tmp_path / "s", ray=False) as coll:
        q = vectors_of(data)[:5] + 0.01
        got = coll.search(q, 8, where="year > 2010")
        assert_same_answer(one.search(q, 8, where="year > 2010"), got, "l2", atol=1e-4)
        assert np.all(np.diff(got.scores, axis=1) >= 0)
        big = coll.search(q[:1], 4000)  # more than the rows: padded with -1 / +inf like a collection
        assert big.ids.shape == (1, 3000) and big.counts[0] == 3000


def test_pruning_is_sound_and_counted(data, tmp_path):
    """Range partitioning on year: a filter on year reaches only the shards holding those years; no
    pruned shard ever holds a matching row (checked for random filters)."""
    vd.build(data, tmp_path / "s", shards=4, metric="cosine", partition="year", index="flat", ray=False)
    coll = vd.open(tmp_path / "s", ray=False)
    m = coll.manifest
    assert m.sharding.kind == "range" and len(m.sharding.bounds) == 3
    q = vectors_of(data)[:3]
    res = coll.search(q, 5, where="year = 2003")
    assert (res.shards_pruned == 3).all() and (res.shards_searched == 1).all()
    plan = coll.explain(q[0], where="year = 2003")
    assert len(plan.pruned) == 3 and len(plan.searched) == 1 and "3 pruned" in str(plan)
    assert coll.explain(where="year > 2100").pruned == tuple(coll.shard_names)
    empty = coll.search(q, 5, where="year > 2100")
    assert (empty.counts == 0).all() and empty.plans == ("pruned",) * 3
    rng = np.random.default_rng(11)
    pruned_any = 0
    for _ in range(150):
        where = random_filter(rng)
        expr = parse(where)
        for entry in m.shards:
            if not may_pass(expr, entry.stats):
                pruned_any += 1
                held = vecdb.open(tmp_path / "s" / entry.name).explain(None, where).matches
                assert held == 0, (where, entry.name)
    assert pruned_any > 20
    one = single(tmp_path / "one", data, "cosine", "flat")
    wheres = [random_filter(rng) for _ in range(30)]
    qs = vectors_of(data)[100:130]
    assert_same_answer(one.search(qs, 10, where=wheres), coll.search(qs, 10, where=wheres), "cosine")
    coll.close()


def test_value_partition_prunes_by_distinct_values(data, tmp_path):
    vd.build(data, tmp_path / "s", shards=3, metric="ip", partition="cat", index=None, ray=False)
    with vd.open(tmp_path / "s", ray=False) as coll:
        holders = [s.name for s in coll.manifest.shards if "a" in s.stats["cat"].get("values", [])]
        assert len(holders) == 1
        plan = coll.explain(where="cat = 'a' AND year > 2001")
        assert plan.searched == tuple(holders)
        assert coll.count("cat = 'a'") == int(np.sum(np.array(data.column("cat").to_pylist()) == "a"))


def test_writes_are_routed_and_widen_statistics(data, tmp_path):
    vd.build(data, tmp_path / "s", shards=3, metric="cosine", partition="year", index="hnsw", index_options=HNSW,
             ray=False)
    coll = vd.open(tmp_path / "s", ray=False)
    new = table(20, 16, seed=9, start_id=10_000)
    new = new.set_column(new.schema.get_field_index("year"), "year", pa.array([2030] * 20))
    coll.add(vectors_of(new), new.drop(["id", "vector"]), ids=new.column("id").to_numpy())
    assert len(coll) == 3020
    assert any(s.stats["year"]["max"] == 2030 for s in coll.manifest.shards)
    res = coll.search(vectors_of(new)[:2], 5, where="year >= 2030")
    assert set(res.ids.ravel()) <= set(range(10_000, 10_020)) and (res.counts == 5).all()
    other = vd.open(tmp_path / "s", ray=False)  # another handle sees the widened statistics
    assert other.count("year = 2030") == 20
    with pytest.raises(vecdb.errors.DuplicateIdError):
        coll.add(vectors_of(new)[:1], new.drop(["id", "vector"]).slice(0, 1), ids=[5])
    # upsert moving a row to another partition: it leaves its old shard
    moved = new.slice(0, 1).drop(["id", "vector"]).set_column(0, "year", pa.array([2001]))
    coll.upsert(vectors_of(new)[:1], moved, ids=[10_000])
    assert coll.count("year = 2030") == 19 and coll.get([10_000], ["year"]).column("year").to_pylist() == [2001]
    assert coll.delete(ids=[10_001, 10_002, 0]) == 3
    assert coll.delete(where="year = 2030") == 17
    assert len(coll) == 3020 - 3 - 17  # the upsert replaced a row
    got = coll.get([7, 10_000, 3], ["cat"])
    assert got.column("id").to_pylist() == [7, 10_000, 3]
    with pytest.raises(vecdb.errors.UnknownIdError):
        coll.get([0])
    coll.refresh_stats()
    assert max(s.stats["year"]["max"] for s in coll.manifest.shards) == 2024
    other.close()
    coll.close()


def test_bad_attributes_on_a_sharded_write_are_typed_errors_and_write_nothing(data, tmp_path):
    """A sharded write reads its attributes as a single collection does (``storage.attributes.to_table``):
    too few rows, columns Arrow cannot hold, a reserved name or an unknown kind of table are typed errors
    raised before any shard is written; a dict of columns and a pandas DataFrame are taken."""
    vd.build(data, tmp_path / "s", shards=3, metric="cosine", partition="year", ray=False)
    coll = vd.open(tmp_path / "s", ray=False)
    new = table(4, 16, seed=10, start_id=20_000)
    vecs, ids, attrs = vectors_of(new), new.column("id").to_numpy(), new.drop(["id", "vector"])
    with pytest.raises(vecdb.errors.RowCountError):
        coll.add(vecs, attrs.slice(0, 3), ids=ids)
    with pytest.raises(vecdb.errors.SchemaError):
        coll.add(vecs, {"year": [2001, "x", None, 3.5]}, ids=ids)
    with pytest.raises(vecdb.errors.SchemaError):
        coll.add(vecs, attrs.append_column("score", pa.array([1.0] * 4)), ids=ids)
    with pytest.raises(vecdb.errors.SchemaError):
        coll.add(vecs, [[2001]] * 4, ids=ids)
    with vd.open(tmp_path / "s", ray=False) as other:  # nothing reached a shard or the statistics
        assert len(coll) == len(other) == 3000 and other.manifest.shards == coll.manifest.shards
    coll.add(vecs[:2], attrs.slice(0, 2).to_pydict(), ids=ids[:2])
    pytest.importorskip("pandas")  # (the ray extra brings it)
    coll.add(vecs[2:], attrs.slice(2).to_pandas(), ids=ids[2:])
    assert len(coll) == 3004
    assert coll.get(ids.tolist(), ["year"]).column("year").to_pylist() == attrs.column("year").to_pylist()
    coll.close()


def test_failed_build_leaves_nothing(data, tmp_path):
    dup = pa.concat_tables([data.slice(0, 100), data.slice(50, 10)])  # ids 50..59 twice
    with pytest.raises(vecdb.errors.DuplicateIdError):
        vd.build(dup, tmp_path / "s", shards=2, index=None, ray=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(vecdb.errors.SchemaError, match="integer ids"):
        vd.build(data.drop(["id"]), tmp_path / "s", shards=2, ray=False)
    with pytest.raises(vecdb.errors.CollectionExistsError):
        vd.build(data, tmp_path, shards=2, ray=False)


def test_build_from_parquet_files(data, tmp_path):
    import pyarrow.parquet as pq

    (tmp_path / "in").mkdir()
    pq.write_table(data.slice(0, 1000), tmp_path / "in" / "a.parquet")
    pq.write_table(data.slice(1000), tmp_path / "in" / "b.parquet", row_group_size=500)
    seen = []
    report = vd.build(tmp_path / "in", tmp_path / "s", shards=2, partition="day", index=None, ray=False,
                      batch_size=700, progress=lambda phase, done, total: seen.append((phase, done, total)))
    assert report.rows == 3000 and sum(report.shard_rows) == 3000
    assert seen[-1] == ("shards", 2, 2) and ("route", 3000, 3000) in seen
    with vd.open(tmp_path / "s", ray=False) as coll:
        assert coll.explain(where="day < DATE '2024-02-01'").pruned == ("shard-0001",)


def test_cli_build_shards(data, tmp_path, capsys):
    import pyarrow.parquet as pq

    from vecdb.cli import main

    pq.write_table(data, tmp_path / "in.parquet")
    assert main(["build", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "s"), "--shards", "2",
                 "--partition", "cat", "--index", "flat"]) == 0
    assert "3,000 rows in 2 shards" in capsys.readouterr().out
    with vd.open(tmp_path / "s", ray=False) as coll:
        assert coll.manifest.sharding.kind == "value" and len(coll) == 3000
    assert main(["build", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "t"), "--shards", "2",
                 "--append"]) != 0
    assert "does not apply to a sharded build" in capsys.readouterr().err
