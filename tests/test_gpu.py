"""GPU paths without a GPU: everything imports, ``auto`` falls back to the CPU, ``gpu`` raises
``DeviceError``; the GPU code paths (placement, the GPU copy's filtered search, the gathered exact scan,
GPU-built collections opening anywhere) run against fake devices: ``gpu_count`` patched to 1 and FAISS'
GPU cloner / brute force replaced by CPU FAISS objects, so the same vecdb code runs. Real GPUs:
``benchmarks/gpu_check.py``."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb import errors, planner
from vecdb.indexes import device as dev
from vecdb.indexes import faiss_indexes, gpu
from vecdb.indexes._faiss import faiss
from vecdb.indexes.device_costs import DeviceCosts, DeviceIndex, exact_on_gpu, place
from vecdb.indexes.flat import exact_search

no_gpu = pytest.mark.skipif(dev.gpu_count() > 0, reason="a GPU is visible: the fallback paths do not run here")
KINDS = [("flat", {}), ("ivf", {"nlist": 8, "nprobe": 8}), ("ivf_pq", {"nlist": 8, "nprobe": 8, "m": 4}),
         ("cagra", {"graph_degree": 16, "intermediate_graph_degree": 32})]


def collection(tmp_path, n=1500, dim=16, metric="l2", seed=0, name="c"):
    rng = np.random.default_rng(seed)
    coll = vecdb.create(tmp_path / name, dim=dim, metric=metric)
    ids = np.arange(n)
    coll.add(rng.normal(size=(n, dim)).astype(np.float32), {"g": ids % 1000, "h": ids % 7}, ids=ids)
    return coll


@pytest.fixture
def fake_gpu(monkeypatch):
    """A "GPU" that is FAISS on the CPU: one device visible, clones are CPU copies, brute force is faiss.knn."""
    monkeypatch.setattr(dev, "gpu_count", lambda: 1)
    monkeypatch.setattr(dev, "cagra_available", lambda: False)
    clone = lambda index, **_: faiss.clone_index(index)  # noqa: E731
    monkeypatch.setattr(faiss_indexes, "to_gpu", clone)
    monkeypatch.setattr(faiss_indexes, "to_cpu", lambda index: faiss.clone_index(index))
    monkeypatch.setattr(dev, "to_gpu", clone)  # a flat index's copy of the rows "on the GPU"
    monkeypatch.setattr(dev, "gpu_knn", dev.cpu_knn)
    calls = []
    real = faiss_indexes.IVFIndex._search_gpu

    def counted(self, *a, **kw):
        calls.append(len(a[0]))
        return real(self, *a, **kw)

    monkeypatch.setattr(faiss_indexes.IVFIndex, "_search_gpu", counted)
    return calls


def test_device_info_reports_what_faiss_sees():
    info = vecdb.device_info()
    assert info["faiss_version"] == faiss.__version__
    assert info["faiss_build"] in ("cpu", "gpu") and len(info["gpus"]) == dev.gpu_count()
    assert info["auto_device"] == ("gpu" if dev.gpu_count() else "cpu")
    assert set(info) >= {"cuvs", "gpu_selectors", "cagra", "compile_options"}


@no_gpu
@pytest.mark.parametrize("kind,options", KINDS)
def test_auto_falls_back_and_gpu_raises(tmp_path, kind, options):
    coll = collection(tmp_path)
    with pytest.raises(errors.DeviceError, match="no GPU"):
        coll.build_index(kind, device="gpu", **options)
    coll.build_index(kind, device="auto", **options)
    assert coll.index_info["device"] == "cpu"
    q = coll.get([5], columns=[])["vector"].to_numpy(zero_copy_only=False)[0]
    for device in ("auto", "cpu"):
        res = coll.search(q, k=5, where="h = 3", device=device)
        assert (res.ids % 7 == 3).all() and res.counts[0] == 5
    with pytest.raises(errors.DeviceError):
        coll.search(q, k=5, device="gpu")
    with pytest.raises(errors.InvalidParameterError, match="unknown device"):
        coll.search(q, k=5, device="tpu")
    reopened = vecdb.open(coll.root)
    np.testing.assert_array_equal(reopened.search(q, k=5, where="h = 3").ids, coll.search(q, k=5, where="h = 3").ids)


def test_cagra_on_the_cpu_is_an_hnsw_graph_saved_as_faiss_hnsw_cagra(tmp_path):
    coll = collection(tmp_path, metric="cosine")
    coll.build_index("cagra", graph_degree=16, intermediate_graph_degree=32, ef_search=64)
    index = coll.snapshot.store.index
    assert isinstance(index.index, faiss.IndexHNSWCagra) and index.M == 8
    files = [p for p in coll.root.iterdir() if p.suffix == ".faiss"]
    assert isinstance(faiss.read_index(str(files[0])), faiss.IndexHNSWCagra)
    x = coll.get(list(range(20)), columns=[])["vector"].to_numpy(zero_copy_only=False)
    q = np.stack(list(x))
    assert (coll.search(q, k=1).ids[:, 0] == np.arange(20)).mean() >= 0.95
    res = vecdb.open(coll.root).search(q, k=10, where="g < 500", plan="filtered_graph")
    assert (res.ids % 1000 < 500).all() and (res.counts == 10).all()


def test_ivf_pq_default_m_fits_the_gpu():
    assert gpu.default_pq_m(128) == 32 and gpu.default_pq_m(384) == 96 and gpu.default_pq_m(16) == 4
    for dim in (16, 128, 384, 768, 1536):
        m = gpu.default_pq_m(dim)
        assert dim % m == 0 and m in gpu.GPU_PQ_M and dim // m in gpu.GPU_PQ_DSUB
    assert 100 % gpu.default_pq_m(100) == 0  # no GPU form for dim 100: a CPU ivf_pq still builds


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_gathered_exact_equals_the_exact_scan(metric):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 24)).astype(np.float32)
    q = rng.normal(size=(7, 24)).astype(np.float32)
    for rows in (None, np.sort(rng.choice(3000, 40, replace=False)), np.arange(3)):
        got = gpu.gathered_exact(x, q, 10, metric, rows, knn=dev.cpu_knn)
        mask = None if rows is None else np.isin(np.arange(3000), rows)
        want = exact_search(x, q, 10, metric, allow=mask)
        np.testing.assert_array_equal(got.rows, want.rows)
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-4, atol=1e-3)
    empty = gpu.gathered_exact(x, q, 5, metric, np.empty(0, np.int64), knn=dev.cpu_knn)
    assert (empty.rows == -1).all() and np.isneginf(empty.scores).all()


class FakeGpuIndex:
    """What the planner reads of a GPU index: the declared device and the work per query."""

    kind, exact, walks_graph, filters_inside = "fake_gpu_ivf", False, False, False
    search_options: dict = {"nprobe": int, "device": str}
    dim, metric, ntotal, device = 128, "l2", 1_000_000, "gpu"

    def work_per_query(self, k, params):
        return 2.0 * self.dim * 20_000  # ~2% of the rows scanned


def test_planner_sends_small_batches_to_the_cpu_and_large_ones_to_the_gpu():
    index = FakeGpuIndex()
    assert isinstance(index, DeviceIndex)
    costs = DeviceCosts(gpu_call_s=1e-3, transfer_bytes_per_s=1e10, gpu_flops=1e13, cpu_flops=1e11, cpu_threads=1)
    cfg = planner.PlannerConfig()

    def plan(nq, matches=1_000_000, filtered=False, device="auto"):
        return planner.choose(index=index, matches=matches, total=1_000_000, k=10, filtered=filtered,
                              params=planner.SearchParams(device=device), config=cfg, nq=nq, costs=costs)

    # one query: CPU 0.05 ms vs GPU >= 1 ms (the call); 10,000: CPU 512 ms vs GPU ~2 ms
    assert plan(1).params["device"] == "cpu" and "on the CPU" in plan(1).reason
    assert plan(10_000).params["device"] == "gpu" and "on the GPU" in plan(10_000).reason
    crossover = next(nq for nq in (1, 2, 4, 8, 16, 32, 64, 128, 256) if plan(nq).params["device"] == "gpu")
    assert 8 <= crossover <= 64  # 1 ms / (0.0512 ms - 0.0005 ms) ~ 20 queries
    # many matches: the GPU over-fetches (post_filter) and the exact refill keeps the guarantee
    p = plan(10_000, matches=400_000, filtered=True)
    assert p.name == "post_filter" and p.params["device"] == "gpu"
    # few matches: the exact plan gathers them into one GPU brute-force call for a large batch only
    assert plan(10_000, matches=500, filtered=True).params == {"device": "gpu"}
    assert plan(1, matches=500, filtered=True).params == {}
    # the caller decides
    assert plan(10_000, device="cpu").params["device"] == "cpu"
    assert plan(1, device="gpu").params["device"] == "gpu"
    # a GPU's k limit: larger k stays on the CPU, or raises when the GPU is demanded
    assert place(plan="index", index=index, nq=10_000, k=4096, matches=10, dim=128, costs=costs)[0] == "cpu"
    with pytest.raises(errors.DeviceError, match="limit"):
        place(plan="index", index=index, nq=1, k=4096, matches=10, dim=128, requested="gpu")
    cpu_index = type("CpuIvf", (FakeGpuIndex,), {"device": "cpu"})()
    with pytest.raises(errors.DeviceError):
        planner.choose(index=cpu_index, matches=10, total=100, k=10, filtered=False,
                       params=planner.SearchParams(device="gpu"), config=cfg)


class FakeResidentFlat:
    """A flat index holding ``ntotal`` rows on a "GPU" (``device_costs.ResidentRows``)."""

    device, gpu_rows = "gpu", object()

    def __init__(self, ntotal: int, dim: int):
        self.ntotal, self.dim = ntotal, dim

    def search_resident(self, queries, k):
        raise AssertionError("the cost model only estimates")


# Cells of the H200 runs (benchmarks/reports/gpu-h200/): rows, dim, rows passing, batch, and the way that
# measured at least 2x faster than the others there (ms a batch in the comment: cpu / gathered / resident)
H200_CELLS = [
    (1_000_000, 128, 1_000_000, 1, "resident"),      # 51.6 / 69.3 / 4.0
    (1_000_000, 128, 1_000_000, 1024, "resident"),   # 526 / 68.2 / 13.7
    (1_000_000, 128, 500_000, 64, "resident"),       # 79.5 / 150.5 / 5.1
    (1_000_000, 128, 100_000, 10_000, "gathered"),   # 869 / 50.9 / -
    (1_000_000, 128, 10_000, 1, "cpu"),              # 0.40 / 1.36 / 12.9
    (1_000_000, 128, 10_000, 1024, "gathered"),      # 20.1 / 2.0 / -
    (1_000_000, 128, 1_000, 1, "cpu"),               # 0.06 / 0.33 / -
    (1_000_000, 128, 1_000, 10_000, "gathered"),     # 73.5 / 7.0 / -
    (32_000, 384, 16_000, 64, "resident"),           # 33.5 / 9.6 / 1.0
    (32_000, 384, 32_000, 64, "resident"),           # 17.7 / 13.5 / 0.6
    (32_000, 384, 320, 1, "cpu"),                    # 0.06 / 0.29 / 0.30
    (32_000, 384, 320, 10_000, "gathered"),          # 51.3 / 13.4 / -
]


@pytest.mark.parametrize("n, dim, matches, nq, best", H200_CELLS)
def test_cost_model_picks_what_measured_fastest_on_an_h200(n, dim, matches, nq, best):
    costs = DeviceCosts(cpu_threads=16)  # that machine's cores
    index = FakeResidentFlat(n, dim)
    device, why = place(plan="exact", index=index, nq=nq, k=10, matches=matches, dim=dim, costs=costs)
    picked = "cpu" if device == "cpu" else exact_on_gpu(index, nq=nq, k=10, matches=matches, dim=dim, costs=costs)[1]
    assert picked == best, why


@pytest.mark.parametrize("kind", ["ivf", "ivf_pq"])
def test_gpu_built_collection_keeps_the_guarantees_and_opens_anywhere(tmp_path, fake_gpu, monkeypatch, kind):
    coll = collection(tmp_path, n=3000, dim=16)
    options = {"nlist": 8, "nprobe": 2} | ({"m": 4} if kind == "ivf_pq" else {})
    coll.build_index(kind, device="gpu", **options)
    assert coll.index_info["device"] == "gpu" and coll.index_info["config"]["device"] == "gpu"
    index = coll.snapshot.store.index
    assert index.gpu_index is not None and index.gpu_index is not index.index
    assert not index.filters_inside  # no cuVS: the GPU copy ignores selectors, the planner filters
    rng = np.random.default_rng(9)
    q = rng.normal(size=(12, 16)).astype(np.float32)
    vectors = coll.snapshot.store.vectors
    for where, passes in [("g < 900", lambda i: i % 1000 < 900), ("g < 40", lambda i: i % 1000 < 40),
                          ("g = 7", lambda i: i % 1000 == 7), ("h = 2", lambda i: i % 7 == 2)]:
        for device in ("gpu", "cpu", "auto"):
            fake_gpu.clear()
            res = coll.search(q, k=10, where=where, device=device)
            matches = sum(passes(i) for i in range(3000))
            assert (res.counts == min(10, matches)).all(), (where, device)
            ids = res.ids[res.ids >= 0]
            assert all(passes(int(i)) for i in ids), (where, device)
            plan = coll.explain(q, where=where, device=device)
            if device == "gpu":
                assert plan.params.get("device") == "gpu"
                assert fake_gpu or plan.name == "exact"  # the GPU copy ran, or the gathered scan did
            if plan.name == "exact":  # gathered into one brute-force call on the "GPU": the exact answer
                mask = np.array([passes(i) for i in range(3000)])
                np.testing.assert_array_equal(res.ids, exact_search(vectors, q, 10, "l2", allow=mask).rows)
    # the plain search and device="cpu" on a GPU-built index
    assert (coll.search(q, k=10, device="cpu").counts == 10).all()
    assert (coll.search(q, k=10).counts == 10).all()
    # saved in CPU form: opens where there is no GPU, remembering the request
    monkeypatch.setattr(dev, "gpu_count", lambda: 0)
    reopened = vecdb.open(coll.root)
    assert reopened.index_info["device"] == "cpu" and reopened.index_info["config"]["device"] == "gpu"
    np.testing.assert_array_equal(reopened.search(q, k=10, where="h = 2", device="cpu").ids,
                                  coll.search(q, k=10, where="h = 2", device="cpu").ids)
    with pytest.raises(errors.DeviceError):
        reopened.search(q, k=10, device="gpu")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_flat_keeps_its_rows_on_the_gpu_and_the_exact_plan_stays_exact(tmp_path, fake_gpu, metric):
    """The exact plan on a GPU flat index searches the resident copy with over-fetch (filters passing many
    rows) or gathers the passing rows (few), and equals the CPU oracle either way: after adds (tail rows),
    deletes, and for a filter rejecting every query's whole neighbourhood (the short queries re-gathered)."""
    n, dim = 1500, 16
    x = np.random.default_rng(2).normal(size=(n, dim)).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    near0 = np.zeros(n, dtype=np.int64)  # the 400 rows nearest row 0 (the first query): "near0 = 0" rejects them
    near0[np.argsort(((x - x[0]) ** 2).sum(1) if metric == "l2" else -(unit @ unit[0]))[:400]] = 1
    coll = vecdb.create(tmp_path / metric, dim=dim, metric=metric)
    coll.add(x, {"g": np.arange(n) % 1000, "near0": near0}, ids=np.arange(n))
    coll.build_index("flat", device="gpu")
    index = coll.snapshot.store.index
    assert index.device == "gpu" and index.gpu_rows is not None and index.gpu_rows.ntotal == n
    rng = np.random.default_rng(3)
    q = np.concatenate([x[:1], x[rng.integers(0, n, 40)] + rng.normal(scale=0.5, size=(40, dim))]).astype(np.float32)

    def oracle(where):
        coll_rows = coll.search(q, k=10, where=where, device="cpu", plan="exact")
        return coll_rows.ids

    strategies = set()
    for where in [None, "g < 900", "g < 500", "g < 40", "g = 7", "near0 = 0"]:
        plan = coll.explain(q, where=where, device="gpu", plan="exact")
        assert plan.params.get("device") == "gpu", where
        strategies.add("resident" if "resident" in plan.reason else "gathered")
        res = coll.search(q, k=10, where=where, device="gpu", plan="exact")
        np.testing.assert_array_equal(res.ids, oracle(where), err_msg=str(where))
    assert strategies == {"resident", "gathered"}  # both strategies ran
    # rows added after the build (the index's tail) and deleted rows: still the oracle's answer
    coll.add(x[:50] + np.float32(0.05), {"g": np.arange(50), "near0": np.zeros(50, dtype=np.int64)}, ids=np.arange(n, n + 50))
    coll.delete(ids=[0, 1, 2, 700])
    for where in [None, "g < 500", "near0 = 0"]:
        np.testing.assert_array_equal(coll.search(q, k=10, where=where, device="gpu", plan="exact").ids,
                                      oracle(where), err_msg=str(where))


def test_explain_places_a_batch_by_its_size(tmp_path, fake_gpu):
    """``explain(queries)`` plans for the batch it is given: one query on the CPU, thousands on the GPU."""
    coll = collection(tmp_path, n=1500, dim=16)
    coll.build_index("flat", device="gpu")
    q = np.random.default_rng(4).normal(size=(4096, 16)).astype(np.float32)
    assert coll.explain(q[:1], where="g < 900").params.get("device", "cpu") == "cpu"
    big = coll.explain(q, where="g < 900")
    assert big.params["device"] == "gpu" and "4096 queries" in big.reason
    # a list of filters: each plan is for the queries sharing its filter
    plans = coll.explain(q, where=["g < 900"] * 4095 + ["h = 2"])
    assert plans[0].params["device"] == "gpu" and "4095 queries" in plans[0].reason
    assert plans[-1].params.get("device", "cpu") == "cpu"


def test_gpu_copy_search_checks_every_hit_against_the_mask(fake_gpu):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    index = faiss_indexes.IVFIndex(8, "l2", nlist=4, nprobe=4, device="gpu")
    index.build(x)
    allow = rng.random(2000) < 0.3
    hits = index.search(x[:50], 20, allow=allow, device="gpu")
    assert fake_gpu == [50]
    ok = hits.rows >= 0
    assert allow[hits.rows[ok]].all() and np.isneginf(hits.scores[~ok]).all()
    cpu = index.search(x[:50], 20, allow=allow, device="cpu")
    assert allow[cpu.rows[cpu.rows >= 0]].all() and (cpu.rows >= 0).all()
    with pytest.raises(errors.InvalidParameterError):
        index.search(x[:1], 5, device="tpu")


@no_gpu
def test_cli_reports_devices_and_refuses_gpu_searches_without_one(tmp_path, capsys):
    from vecdb.cli import main

    assert main(["info"]) == 0
    assert "devices: faiss" in capsys.readouterr().out
    coll = collection(tmp_path)
    coll.build_index("ivf", nlist=8)
    np.save(tmp_path / "q.npy", np.ones(16, np.float32))
    assert main(["info", str(coll.root)]) == 0
    assert "device='auto' runs on the CPU" in capsys.readouterr().out
    assert main(["search", str(coll.root), "--vector-file", str(tmp_path / "q.npy"), "--device", "cpu",
                 "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["search", str(coll.root), "--vector-file", str(tmp_path / "q.npy"), "--device", "gpu"]) != 0
    assert "no GPU" in capsys.readouterr().err
