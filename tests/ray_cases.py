"""Sharded collections over a local Ray (2 CPUs, loopback only, no dashboard): build with Ray Data and
Ray tasks, one actor per shard, the same answers as local mode and the single collection, pruning, and
faults (a killed actor is restarted, or the search fails with ShardUnavailableError naming the shard).

Needs the extra: ``pip install -e '.[ray]'``; skipped otherwise. The suite runs these cases in a child
process (``tests/test_distributed_ray.py``): a Ray driver that hits one of Ray's internal checks aborts its
whole process. Run them here directly: ``python -m pytest -q -p no:cacheprovider tests/ray_cases.py``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

ray = pytest.importorskip("ray")

import vecdb.distributed as vd  # noqa: E402

from .distributed_helpers import assert_same_answer, random_filter, recall, single, table, vectors_of  # noqa: E402

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
HNSW = {"M": 12, "ef_construction": 64}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    return table(3000, 16, seed=1)


@pytest.fixture(scope="module")
def built(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("ray") / "s"
    report = vd.build(data, path, shards=3, metric="cosine", index="hnsw", index_options=HNSW, ray=True)
    assert report.mode == "ray" and sum(report.shard_rows) == 3000
    return path


@pytest.fixture(scope="module")
def oracle(data, tmp_path_factory):
    return single(tmp_path_factory.mktemp("single") / "c", data, "cosine", "hnsw", **HNSW)


def test_ray_search_equals_oracle_and_local_mode(built, oracle):
    rng = np.random.default_rng(3)
    q = rng.standard_normal((40, 16)).astype(np.float32)
    wheres = [random_filter(rng) for _ in range(40)]
    with vd.open(built, ray=True) as remote, vd.open(built, ray=False) as local:
        assert remote.mode == "ray" and len(remote) == 3000
        exact = remote.search(q, 10, where=wheres, plan="exact")
        assert_same_answer(oracle.search(q, 10, where=wheres, plan="exact"), exact, "cosine")
        for kwargs in ({"plan": "exact"}, {}):
            a, b = remote.search(q, 10, where=wheres, **kwargs), local.search(q, 10, where=wheres, **kwargs)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.scores, b.scores)
            assert a.plans == b.plans
        truth = oracle.search(q, 10, where=wheres, plan="exact").ids
        assert recall(truth, remote.search(q, 10, where=wheres).ids) >= \
            recall(truth, oracle.search(q, 10, where=wheres).ids) - 0.02
        assert remote.count("cat = 'a'") == local.count("cat = 'a'")
        assert remote.get([4, 2], ["cat"]).equals(local.get([4, 2], ["cat"]))
        assert str(remote.explain(q[0], where=wheres[0])) == str(local.explain(q[0], where=wheres[0]))


def test_ray_pruning_counted(data, tmp_path):
    vd.build(data, tmp_path / "s", shards=4, metric="cosine", partition="year", index=None, ray=True)
    with vd.open(tmp_path / "s", ray=True) as coll:
        res = coll.search(vectors_of(data)[:4], 5, where="year BETWEEN 2001 AND 2002")
        assert (res.shards_pruned == 3).all()
        assert len(coll.explain(where="year = 2001").pruned) == 3


def test_killed_actor_is_restarted_or_a_typed_error(built):
    q = np.random.default_rng(4).standard_normal((8, 16)).astype(np.float32)
    with vd.open(built, ray=True) as coll:
        before = coll.search(q, 10, where="year > 2003", plan="exact")
        ray.kill(coll._backend.actors[1], no_restart=False)  # Ray restarts it; it reopens its shard
        after = coll.search(q, 10, where="year > 2003", plan="exact")
        np.testing.assert_array_equal(before.ids, after.ids)
        assert not after.partial
        ray.kill(coll._backend.actors[1], no_restart=True)  # gone for good
        with pytest.raises(vd.ShardUnavailableError, match="shard-0001"):
            coll.search(q, 10, where="year > 2003")
        partial = coll.search(q, 10, where="year > 2003", allow_partial=True)
        assert partial.partial and partial.missing_shards == ("shard-0001",)
        assert (partial.shards_searched == 2).all()
        assert not np.isin(after.ids[after.ids >= 0], partial.ids).all()  # shard 1's rows are missing


def test_ray_writes_routed(data, tmp_path):
    vd.build(data.slice(0, 600), tmp_path / "s", shards=2, metric="cosine", index="flat", ray=True)
    with vd.open(tmp_path / "s", ray=True) as coll:
        new = data.slice(600, 50)
        coll.add(vectors_of(new), new.drop(["id", "vector"]), ids=new.column("id").to_numpy())
        assert len(coll) == 650
        res = coll.search(vectors_of(new)[:3], 1)
        np.testing.assert_array_equal(res.ids[:, 0], new.column("id").to_numpy()[:3])
        assert coll.delete(where="cat = 'a'") > 0


def test_failed_ray_build_leaves_nothing(data, tmp_path):
    dup = pa.concat_tables([data.slice(0, 100), data.slice(50, 10)])  # ids 50..59 twice: both shards get some
    # the first shard whose task fails names the error: either one, whichever Ray reports first
    with pytest.raises(vd.ShardedBuildError, match=r"building shard 'shard-000[01]' failed: DuplicateIdError"):
        vd.build(dup, tmp_path / "s", shards=2, index=None, ray=True, retries=1)
    assert list(tmp_path.iterdir()) == []
