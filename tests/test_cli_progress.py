"""Progress of index builds: FAISS indexes add their rows in chunks while a listener is set and report
after each; ``vecdb build`` draws that as a bar (rows, rate, ETA) on a terminal."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vecdb
from vecdb.cli import build as build_cmd
from vecdb.cli import main
from vecdb.cli.progress import Progress
from vecdb.indexes import build_progress
from vecdb.indexes.faiss_indexes import HNSWIndex, IVFIndex

DIM = 8


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("make", [lambda: HNSWIndex(DIM, "ip", M=8, ef_construction=40),
                                  lambda: HNSWIndex(DIM, "ip", M=8, ef_construction=40, storage="fp16"),
                                  lambda: IVFIndex(DIM, "ip", nlist=4)])
def test_chunked_build_reports_and_indexes_every_row(make, monkeypatch):
    monkeypatch.setattr(build_progress, "MIN_CHUNK", 100)
    x = _vectors(450)
    calls: list[tuple[int, int]] = []
    index = make()
    with build_progress.reporting(lambda done, total: calls.append((done, total))):
        index.build(x)
    assert calls == [(0, 450), (100, 450), (200, 450), (300, 450), (400, 450), (450, 450)]
    assert index.ntotal == 450
    plain = make()
    plain.build(x)  # no listener: one add, nothing reported
    assert len(calls) == 6
    # every row finds itself, as in the index built in one call
    got = index.search(x, 1, **({"nprobe": 4} if isinstance(index, IVFIndex) else {"ef": 64})).rows[:, 0]
    assert (got == np.arange(450)).mean() >= 0.99
    if isinstance(index, HNSWIndex):  # the float32 rows it rescores with (fp16) or keeps itself (flat)
        rows = index._float if index.storage == "fp16" else index.held_rows()
        np.testing.assert_array_equal(rows, x)


def test_listener_is_scoped_to_the_block():
    with build_progress.reporting(lambda done, total: None):
        assert build_progress._listener.get() is not None
    assert build_progress._listener.get() is None


class _Loud(Progress):
    """The CLI's bar, drawn on every update as on a terminal."""

    def __init__(self, *args, enabled=None, **kwargs):
        super().__init__(*args, enabled=enabled is not False, refresh=1e9, **kwargs)


def test_vecdb_build_draws_an_index_bar(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(build_progress, "MIN_CHUNK", 100)
    monkeypatch.setattr(build_cmd, "Progress", _Loud)
    x = _vectors(300)
    values = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), DIM)
    pq.write_table(pa.table({"vec": values, "tag": ["ab"[i % 2] for i in range(300)]}), tmp_path / "rows.parquet")
    out = tmp_path / "c.vdb"
    assert main(["build", str(tmp_path / "rows.parquet"), "--out", str(out), "--index", "hnsw",
                 "--index-param", "M=8,ef_construction=40"]) == 0
    err = capsys.readouterr().err
    bars = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("indexing (hnsw)")]
    assert any("100/300 rows" in line and "ETA" in line for line in bars)
    assert "300/300 rows" in bars[-1] and "rows/s" in bars[-1]
    assert "calibrating and saving" in err
    assert len(vecdb.open(out)) == 300
    # --quiet: no bar
    assert main(["build", str(tmp_path / "rows.parquet"), "--out", str(out), "--index", "hnsw", "--overwrite",
                 "--quiet"]) == 0
    assert capsys.readouterr().err == ""
