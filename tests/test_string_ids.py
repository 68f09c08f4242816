"""String ids (``id_type="string"``): add, upsert, get, delete, update, search results, reopen, compact."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vecdb
from vecdb import errors
from vecdb.cli import main

from .conftest import SLICE


def test_string_ids_across_every_verb_and_reopen(tmp_path):
    rng = np.random.default_rng(0)
    coll = vecdb.create(tmp_path / "c.vdb", dim=8, metric="cosine", id_type="string")
    keys = [f"doc-{i:04d}" for i in range(300)]
    x = rng.normal(size=(300, 8))
    coll.add(x, {"g": np.arange(300) % 5}, ids=keys)
    coll.build_index("hnsw", M=8)
    res = coll.search(x[7], k=3)
    assert res.ids.dtype == object and res.ids[0, 0] == "doc-0007"
    assert res.to_arrow(["g"]).column("id").to_pylist()[0] == "doc-0007"
    assert coll.get(["doc-0002", "doc-0001"], columns=["g"]).column("g").to_pylist() == [2, 1]
    assert coll.delete(ids=["doc-0007", "nope"]) == 1
    assert "doc-0007" not in coll.search(x[7], k=5).ids
    coll.upsert(x[7:8], {"g": [99]}, ids=["doc-0007"])  # a deleted id comes back
    assert coll.update(ids=["doc-0001"], values={"g": 42}) == 1
    few = coll.search(x[3], k=10, where="g = 99")
    assert few.ids[0, 0] == "doc-0007" and few.ids[0, 1] is None  # padding is None
    with pytest.raises(errors.InvalidParameterError, match="strings"):
        coll.add(x[:1])  # no ids: there is no next free string
    with pytest.raises(errors.InvalidParameterError, match="strings"):
        coll.add(x[:1], ids=[5])
    with pytest.raises(errors.DuplicateIdError):
        coll.add(x[:2], ids=["a", "a"])
    with pytest.raises(errors.UnknownIdError):
        coll.get(["missing"])
    coll.compact()
    again = vecdb.open(coll.root)
    assert len(again) == 300 and again.get(["doc-0001"], columns=["g"]).column("g").to_pylist() == [42]
    assert again.search(x[7], k=1, plan="exact").ids[0, 0] == "doc-0007"
    assert sorted(again.to_arrow().column("id").to_pylist()) == sorted(keys)


def test_int_collections_refuse_string_ids(tmp_path):
    coll = vecdb.create(tmp_path / "c.vdb", dim=4)
    with pytest.raises(errors.InvalidParameterError):
        coll.add(np.ones((1, 4)), ids=["a"])
    with pytest.raises(errors.InvalidParameterError, match="id_type"):
        vecdb.create(tmp_path / "d.vdb", dim=4, id_type="uuid")


def test_build_from_a_string_id_column(tmp_path, capsys):
    attrs = pq.read_table(SLICE / "attributes.parquet", columns=["arxiv_id", "year"]).slice(0, 200)
    vectors = np.load(SLICE / "base.f16.npy")[:200].astype(np.float32)
    table = attrs.append_column("emb", pa.array(list(vectors), pa.list_(pa.float32())))
    pq.write_table(table, tmp_path / "t.parquet")
    out = tmp_path / "s.vdb"
    assert main(["build", str(tmp_path / "t.parquet"), "--out", str(out), "--id-column", "arxiv_id",
                 "--index", "flat", "--quiet"]) == 0
    coll = vecdb.open(out)
    first = attrs.column("arxiv_id")[0].as_py()
    assert coll.search(vectors[0], k=1).ids[0, 0] == first
    capsys.readouterr()
    assert main(["search", str(out), "--row", "0", "-k", "1", "--format", "json"]) == 1  # --row takes ints
    assert main(["search", str(out), "--vector", json.dumps(vectors[0].tolist()), "-k", "1",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0][0]["id"] == first
