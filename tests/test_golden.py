"""Every format version ever written still opens and answers the same (tests/golden, tools/make_golden.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

import vecdb

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.mark.parametrize("version", [1, 2, 3])
def test_every_format_version_opens_and_answers(tmp_path, version):
    coll = vecdb.open(GOLDEN / f"v{version}.vdb")
    assert (len(coll), coll.dim, coll.metric) == (19, 4, "cosine")
    assert coll.index_info["kind"] == "hnsw"
    assert coll.schema.names == ["n", "tag", "day", "labels"]
    row = coll.get([102], columns=["tag", "day", "labels"])
    assert row.column("tag").to_pylist() == [None] and row.column("day").to_pylist() == [dt.date(2025, 1, 3)]
    assert coll.get([112], columns=["tag"]).column("tag").to_pylist() == [None]
    res = coll.search(np.array([1, 2, 3, 4], np.float32), k=19, where="'x' IN labels")
    assert sorted(res.ids[0][res.ids[0] >= 0].tolist()) == [100, 103, 104, 106, 107, 109, 110]
    assert 101 not in coll.search(np.ones(4), k=19).ids


def test_named_fields_golden_opens_and_answers():
    coll = vecdb.open(GOLDEN / "v3-fields.vdb")
    assert list(coll.fields) == ["a", "s"] and coll.fields["s"] == vecdb.VectorField(3, "ip", multi=True)
    assert [(i["field"], i["name"], i["kind"]) for i in coll.indexes()] == [
        ("a", "hnsw", "hnsw"), ("a", "codes", "binary"), ("s", "muvera", "muvera")]
    x = np.arange(1, 81, dtype=np.float32).reshape(20, 4) % 7 + 1
    exact = coll.search(x[3], 5, "n >= 3", field="a", plan="exact")
    for index in ("hnsw", "codes"):  # 20 rows: both indexes find the exact answer
        np.testing.assert_array_equal(coll.search(x[3], 5, "n >= 3", field="a", index=index).ids, exact.ids)
    got = coll.search(x[5, :3].reshape(1, 3), 20, field="s")
    assert 207 not in got.ids[0] and got.counts[0] == 19          # row 207 holds no set
    assert coll.get([207])["s"].to_pylist() == [None]
