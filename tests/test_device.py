"""The device seam: ``auto`` falls back to the CPU where FAISS sees no GPU; ``gpu`` raises ``DeviceError``
there (building), and a saved ``gpu`` request opens on the CPU (loading)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import vecdb
from vecdb import errors
from vecdb.indexes import gpu_count, resolve_device


def test_resolve_device_falls_back_to_cpu_without_a_gpu(caplog):
    if gpu_count() > 0:
        pytest.skip("a GPU is visible: the fallback path does not run here")
    with pytest.raises(errors.DeviceError, match="FAISS sees no GPU"):
        resolve_device("gpu")
    assert isinstance(errors.DeviceError("x"), RuntimeError)
    with caplog.at_level(logging.INFO):
        assert resolve_device("gpu", strict=False) == "cpu"  # how a saved index opens
    assert "opened on the CPU" in caplog.text
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(errors.InvalidParameterError):
        resolve_device("tpu")


@pytest.mark.parametrize("device", ["auto", "gpu", "cpu"])
def test_ivf_on_any_device_request_answers_like_the_cpu(tmp_path, device):
    if device == "gpu" and gpu_count() == 0:
        pytest.skip("no GPU: device='gpu' raises (test_gpu.py)")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    coll = vecdb.create(tmp_path / "c", dim=16, metric="l2")
    coll.add(x)
    coll.build_index("ivf", nlist=16, nprobe=16, device=device)
    expected = "gpu" if gpu_count() > 0 and device != "cpu" else "cpu"
    assert coll.index_info["device"] == expected
    res = coll.search(x[:5], k=3)
    assert res.ids[:, 0].tolist() == [0, 1, 2, 3, 4]  # nprobe = nlist: exhaustive
    reopened = vecdb.open(coll.root)
    assert reopened.index_info["config"]["device"] == device
    np.testing.assert_array_equal(reopened.search(x[:5], k=3).ids, res.ids)


def test_hnsw_asked_for_gpu_raises(tmp_path):
    coll = vecdb.create(tmp_path / "c", dim=8)
    coll.add(np.random.default_rng(1).normal(size=(300, 8)))
    with pytest.raises(errors.DeviceError):  # no GPU here, or FAISS has no GPU HNSW there
        coll.build_index("hnsw", M=8, device="gpu")
    coll.build_index("hnsw", M=8, device="auto")
    assert coll.index_info["device"] == "cpu"
    with pytest.raises(errors.InvalidParameterError):
        coll.build_index("hnsw", device="quantum")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_flat_on_a_gpu_answers_like_the_cpu(tmp_path, metric):
    """On a real GPU (benchmarks/gpu_check.py runs the large version): the flat index's resident rows and
    the gathered scan give the CPU's exact answers at every selectivity, batch sizes 1 and 300."""
    if gpu_count() == 0:
        pytest.skip("no GPU: test_gpu.py runs these paths against a fake one")
    rng = np.random.default_rng(5)
    n, dim = 20_000, 32
    coll = vecdb.create(tmp_path / "c", dim=dim, metric=metric)
    coll.add(rng.normal(size=(n, dim)).astype(np.float32), {"u": rng.integers(0, 100_000, n)})
    coll.build_index("flat", device="gpu")
    assert coll.snapshot.store.index.gpu_rows.ntotal == n
    q = rng.normal(size=(300, dim)).astype(np.float32)
    for where in [None, "u < 50000", "u < 10000", "u < 1000", "u < 30"]:
        for batch in (q[:1], q):
            gpu = coll.search(batch, k=10, where=where, device="gpu", plan="exact")
            cpu = coll.search(batch, k=10, where=where, device="cpu", plan="exact")
            np.testing.assert_array_equal(gpu.ids, cpu.ids, err_msg=str(where))
            np.testing.assert_allclose(gpu.scores, cpu.scores, rtol=1e-4, atol=1e-4)
