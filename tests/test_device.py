"""The device seam: GPU requests fall back to the CPU (with a warning) where FAISS sees no GPU."""

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
    with caplog.at_level(logging.WARNING):
        assert resolve_device("gpu") == "cpu"
    assert "falling back to the CPU" in caplog.text
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(errors.InvalidParameterError):
        resolve_device("tpu")


@pytest.mark.parametrize("device", ["auto", "gpu", "cpu"])
def test_ivf_on_any_device_request_answers_like_the_cpu(tmp_path, device):
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


def test_hnsw_asked_for_gpu_runs_on_cpu(tmp_path):
    coll = vecdb.create(tmp_path / "c", dim=8)
    coll.add(np.random.default_rng(1).normal(size=(300, 8)))
    coll.build_index("hnsw", M=8, device="gpu")
    assert coll.index_info["device"] == "cpu"
    with pytest.raises(errors.InvalidParameterError):
        coll.build_index("hnsw", device="quantum")
