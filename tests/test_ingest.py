"""Tables in: Arrow, record batches, datasets, Parquet paths, pandas and polars, with vector_column= and
id_column=, through the same reader as ``vecdb build``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import vecdb
from vecdb import errors


def table(n=50, dim=4, seed=0, id0=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x, pa.table({"id": np.arange(id0, id0 + n), "embedding": pa.array(list(x), pa.list_(pa.float32())),
                        "g": np.arange(n) % 3, "title": [f"t{i}" for i in range(n)]})


def check(coll, x, ids):
    got = coll.get(ids, columns=["g", "title"])
    np.testing.assert_allclose(np.asarray(got.column("vector").to_pylist(), np.float32), x, rtol=1e-6)
    assert got.column("g").to_pylist() == [i % 3 for i in range(len(ids))]


@pytest.mark.parametrize("form", ["arrow", "fixed", "batch", "reader", "dataset", "parquet", "pandas", "polars"])
def test_every_table_form(tmp_path, form):
    x, t = table()
    if form == "fixed":
        t = t.set_column(1, "embedding", pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 4))
    data = {"arrow": t, "fixed": t, "batch": t.to_batches()[0], "reader": pa.RecordBatchReader.from_batches(
        t.schema, t.to_batches(max_chunksize=7)), "dataset": ds.dataset(t)}.get(form)
    if form == "parquet":
        pq.write_table(t, tmp_path / "t.parquet")
        data = str(tmp_path / "t.parquet")
    elif form == "pandas":
        pd = pytest.importorskip("pandas")
        data = pd.DataFrame({"id": t["id"].to_numpy(), "embedding": list(x), "g": t["g"].to_numpy(),
                             "title": t["title"].to_pylist()})
    elif form == "polars":
        pl = pytest.importorskip("polars")
        data = pl.from_arrow(t)
    coll = vecdb.create(tmp_path / "c.vdb", dim=4, metric="l2")
    ids = coll.add(data, vector_column="embedding", id_column="id", batch_size=16)
    assert ids.tolist() == list(range(50)) and len(coll) == 50 and coll.schema.names == ["g", "title"]
    check(coll, x, ids)


def test_vector_column_found_by_itself_and_upsert_from_a_table(tmp_path):
    x, t = table()
    coll = vecdb.create(tmp_path / "c.vdb", dim=4, metric="l2")
    coll.add(t)  # one list<float> column, an 'id' column: no names needed
    x2, t2 = table(n=20, seed=1, id0=40)  # 10 replaced, 10 new
    coll.upsert(t2)
    assert len(coll) == 60
    np.testing.assert_allclose(np.asarray(coll.get([45]).column("vector").to_pylist()[0]), x2[5], rtol=1e-6)


def test_bad_tables_are_typed_errors_and_write_nothing(tmp_path):
    x, t = table()
    coll = vecdb.create(tmp_path / "c.vdb", dim=4, metric="l2")
    coll.add(x[:2], {"g": [0, 1], "title": ["a", "b"]}, ids=[1000, 1001])
    version = coll.version
    bad = t.set_column(1, "embedding", pa.array([None] + list(x[1:]), pa.list_(pa.float32())))
    with pytest.raises(errors.IngestError, match="row 0 is null"):
        coll.add(bad, batch_size=10)
    ragged = t.set_column(1, "embedding", pa.array([list(v) for v in x[:49]] + [[1.0]], pa.list_(pa.float32())))
    with pytest.raises(errors.IngestError, match="mixed length"):
        coll.add(ragged, batch_size=10)  # fails in the last batch: the earlier ones are rolled back
    with pytest.raises(errors.IngestError, match="did you mean 'embedding'"):
        coll.add(t, vector_column="embeding")
    with pytest.raises(errors.InvalidParameterError, match="vector_column"):
        coll.add(t, attributes={"g": [1]})
    with pytest.raises(errors.InvalidParameterError, match="id column"):
        coll.upsert(t.drop_columns(["id"]))
    assert len(coll) == 2 and vecdb.open(coll.root).get([1000, 1001], columns=["title"]).num_rows == 2
    assert coll.search(np.zeros(4), k=5).counts.tolist() == [2]
    assert coll.version > version  # the rolled back append left versions behind (restore is a new one)
