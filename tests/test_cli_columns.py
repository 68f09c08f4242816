"""``vecdb search --columns``: the semantics of ``SearchResult.to_arrow`` ('*' every attribute, 'vector'
the stored vectors), in every output format."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vecdb
from vecdb.cli import main

DIM = 4


@pytest.fixture
def path(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, DIM)).astype(np.float32)
    coll = vecdb.create(tmp_path / "c.vdb", dim=DIM, metric="l2")
    coll.add(x, pa.table({"tag": ["ab"[i % 2] for i in range(12)], "n": list(range(12))}))
    return tmp_path / "c.vdb", x


def test_json_star_and_vector(path, capsys):
    root, x = path
    assert main(["search", str(root), "--row", "3", "-k", "2", "--columns", "*,vector", "--format", "json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]
    assert [list(h) for h in hits] == [["id", "score", "tag", "n", "vector"]] * 2
    assert hits[0]["id"] == 3 and hits[0]["score"] == 0.0
    np.testing.assert_allclose(hits[0]["vector"], x[3], rtol=1e-6)


def test_parquet_vector_column(path, capsys, tmp_path):
    root, x = path
    out = tmp_path / "hits.parquet"
    assert main(["search", str(root), "--row", "5", "-k", "3", "--columns", "vector", "--format", "parquet",
                 "--output", str(out)]) == 0
    table = pq.read_table(out)
    assert table.column_names == ["query", "rank", "id", "score", "vector"]
    ids = table.column("id").to_pylist()
    np.testing.assert_allclose(np.stack(table.column("vector").to_pylist()), x[ids], rtol=1e-6)


def test_table_and_csv_star(path, capsys):
    root, _ = path
    assert main(["search", str(root), "--row", "0", "-k", "1", "--columns", "*"]) == 0
    out = capsys.readouterr().out
    assert "tag" in out.splitlines()[1] and "n" in out.splitlines()[1].split()
    assert main(["search", str(root), "--row", "0", "-k", "1", "--columns", "*", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "query,rank,id,score,tag,n"
