"""Attribute indexes are saved with the collection's indexes and memory-mapped on open: after a reopen
every filter answers exactly as pyarrow does, without building anything; rows added later, deletions,
damaged files and collections written before they existed all behave."""

from __future__ import annotations

import datetime as dt
import json
import mmap
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import vecdb
from vecdb import errors
from vecdb.filters import bind, parse
from vecdb.filters.attribute_index import InvertedIndex, SortedIndex
from vecdb.storage.attribute_indexes import StoredColumns

from .conftest import SLICE, as_format_1

GOLDEN = Path(__file__).resolve().parent / "golden"

FILTERS = [
    "s = 'a'", "s != 'b'", "s IN ('a', 'c')", "s NOT IN ('a')", "s IS NULL", "s IS NOT NULL", "s > 'b'",
    "b = TRUE", "b != TRUE", "b = FALSE OR b IS NULL",
    "'x' IN labels", "array_contains_any(labels, ('x', 'y'))", "array_contains_all(labels, ('x', 'y'))",
    "labels IS NULL", "NOT ('z' IN labels)",
    "array_contains(nums, 3)", "array_contains_any(nums, (1, 5))",
    "i > 5", "i BETWEEN 2 AND 7", "i IN (1, 3)", "i != 4", "i <= 0 OR s = 'a'", "i NOT IN (2, 9)",
    "f < 0.5", "f >= 0.25 AND f < 0.75", "f != 0.5",
    "fnan > 0.5", "fnan = 0.5", "fnan BETWEEN 0.1 AND 0.4",
    "d >= DATE '2025-01-05'", "d BETWEEN '2025-01-01' AND DATE '2025-01-10'", "d = DATE '2025-01-03'",
    "d IN ('2025-01-02', DATE '2025-01-07')",
    "ts > TIMESTAMP '2025-01-01 12:00:00'", "ts <= TIMESTAMP '2025-01-03 00:00:00'",
    "ts BETWEEN TIMESTAMP '2025-01-01 06:00:00' AND TIMESTAMP '2025-01-02 06:00:00'",
    "NOT (s = 'a' AND i > 3)", "(b = TRUE OR f < 0.1) AND d IS NOT NULL",
]


def _nullify(rng: np.random.Generator, values: list, p: float = 0.1) -> list:
    return [None if rng.random() < p else v for v in values]


def attributes(rng: np.random.Generator, n: int) -> pa.Table:
    """Every column kind the attribute indexes know, with nulls; ``fnan`` holds NaN (left to pyarrow)."""
    fnan = rng.random(n)
    fnan[rng.random(n) < 0.1] = np.nan
    return pa.table({
        "s": pa.array(_nullify(rng, [str(v) for v in rng.choice(list("abcd"), n)])),
        "b": pa.array(_nullify(rng, [bool(v) for v in rng.random(n) > 0.5]), pa.bool_()),
        "labels": pa.array(_nullify(rng, [list(rng.choice(list("xyzw"), size=int(rng.integers(0, 3)), replace=False))
                                          for _ in range(n)]), pa.list_(pa.string())),
        "nums": pa.array(_nullify(rng, [rng.integers(0, 8, int(rng.integers(0, 3))).tolist() for _ in range(n)]),
                         pa.list_(pa.int64())),
        "i": pa.array(_nullify(rng, rng.integers(0, 10, n).tolist()), pa.int64()),
        "f": pa.array(_nullify(rng, np.round(rng.random(n), 2).tolist()), pa.float64()),
        "fnan": pa.array(fnan, pa.float64()),
        "d": pa.array(_nullify(rng, [dt.date(2025, 1, 1) + dt.timedelta(days=int(v)) for v in rng.integers(0, 12, n)]),
                      pa.date32()),
        "ts": pa.array(_nullify(rng, [dt.datetime(2025, 1, 1) + dt.timedelta(hours=int(v))
                                      for v in rng.integers(0, 96, n)]), pa.timestamp("us")),
        "blob": pa.array([bytes([int(v)]) for v in rng.integers(0, 255, n)], pa.binary()),  # filters cannot use it
    })


def expected(coll, where: str) -> np.ndarray:
    return bind(parse(where), coll.snapshot.table.schema).evaluate(coll.snapshot.table)


def check_filters(coll, filters=FILTERS) -> None:
    for where in filters:
        np.testing.assert_array_equal(coll.snapshot.select(where).mask, expected(coll, where), err_msg=where)


def forbid_builds(monkeypatch) -> None:
    """From here on building any attribute index fails: what is answered must come from the saved files."""
    def fail(cls, array):
        raise AssertionError(f"{cls.__name__} built after reopening")

    monkeypatch.setattr(InvertedIndex, "build", classmethod(fail))
    monkeypatch.setattr(SortedIndex, "build", classmethod(fail))


def make(tmp_path: Path, n: int = 300, seed: int = 3, *, index: str | None = "flat"):
    rng = np.random.default_rng(seed)
    coll = vecdb.create(tmp_path / "c.vdb", dim=8)
    coll.add(rng.normal(size=(n, 8)).astype(np.float32), attributes(rng, n))
    if index:
        coll.build_index(index)
    return coll, rng


def is_mapped(array: np.ndarray) -> bool:
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


def test_reopened_filters_equal_pyarrow_without_building(tmp_path, monkeypatch):
    coll, _ = make(tmp_path)
    forbid_builds(monkeypatch)
    spec = json.loads((coll.root / "manifest.json").read_text())["attributes_index"]
    assert spec["rows"] == 300 and set(spec["columns"]) == {"s", "b", "labels", "nums", "i", "f", "fnan", "d", "ts"}
    assert spec["columns"]["fnan"]["kind"] == "sorted" and spec["columns"]["i"]["kind"] == "sorted"  # NaN sorts last (as DuckDB orders it)
    assert spec["columns"]["labels"]["kind"] == "inverted"

    reopened = vecdb.open(coll.root)
    assert isinstance(reopened.snapshot.attributes.made()._columns, StoredColumns)
    check_filters(reopened)
    assert reopened.snapshot.attributes.made().column("fnan") is not None  # loaded, not rebuilt
    for name in ("s", "labels", "i", "d", "ts"):
        column = reopened.snapshot.attributes.made().column(name)
        assert is_mapped(column.rows), name
    keys = reopened.snapshot.attributes.made().column("b").keys
    assert keys == {False: 0, True: 1} and all(type(k) is bool for k in keys)
    assert all(type(k) is int for k in reopened.snapshot.attributes.made().column("nums").keys)
    assert reopened.snapshot.attributes.made().column("d").type == pa.date32()
    assert reopened.snapshot.attributes.made().column("ts").type == pa.timestamp("us")
    # the public path agrees: an exact filtered search returns exactly the passing rows
    res = reopened.search(np.ones(8, np.float32), k=300, where="'x' IN labels AND i >= 3", plan="exact")
    want = np.flatnonzero(expected(reopened, "'x' IN labels AND i >= 3"))
    assert sorted(res.ids[0][res.ids[0] >= 0].tolist()) == want.tolist()
    with pytest.raises(errors.FilterError):  # still unsupported, as without saved indexes
        reopened.search(np.ones(8, np.float32), k=5, where="blob = 'a'")


def test_files_hold_no_pickle_and_are_owned_names(tmp_path):
    coll, _ = make(tmp_path)
    spec = json.loads((coll.root / "manifest.json").read_text())["attributes_index"]
    names = [entry["file"] for column in spec["columns"].values() for entry in column.values()
             if isinstance(entry, dict)]
    assert names and all(name.startswith("index-") and ".attr-" in name for name in names)
    for name in names:
        path = coll.root / name
        if name.endswith(".npy"):
            assert np.load(path, allow_pickle=False).dtype.kind in "bif"
        else:
            with pa.memory_map(str(path)) as source:
                ipc.open_file(source).read_all()


def test_rows_added_after_build_fall_back_until_optimize(tmp_path):
    coll, rng = make(tmp_path)
    more = attributes(rng, 50)
    more = more.set_column(0, "s", pa.array(["e"] * 50))  # a value the saved index never saw
    coll.add(rng.normal(size=(50, 8)).astype(np.float32), more)
    check_filters(coll, FILTERS + ["s = 'e'"])
    reopened = vecdb.open(coll.root)
    assert reopened.snapshot.attributes.made() is None  # the saved indexes cover a prefix: built in memory instead
    check_filters(reopened, FILTERS + ["s = 'e'"])
    assert int(reopened.snapshot.select("s = 'e'").mask.sum()) == 50

    reopened.optimize()
    spec = json.loads((coll.root / "manifest.json").read_text())["attributes_index"]
    assert spec["rows"] == 350
    again = vecdb.open(coll.root)
    assert isinstance(again.snapshot.attributes.made()._columns, StoredColumns)
    check_filters(again, FILTERS + ["s = 'e'"])


def test_deletes_keep_the_saved_indexes(tmp_path, monkeypatch):
    coll, _ = make(tmp_path)
    forbid_builds(monkeypatch)
    version = json.loads((coll.root / "manifest.json").read_text())["attributes_index"]
    reopened = vecdb.open(coll.root)
    deleted = reopened.delete(where="s = 'a' OR i > 7")
    assert deleted > 0
    after = vecdb.open(coll.root)
    assert json.loads((coll.root / "manifest.json").read_text())["attributes_index"] == version
    assert isinstance(after.snapshot.attributes.made()._columns, StoredColumns)
    check_filters(after)
    gone = expected(after, "s = 'a' OR i > 7")
    np.testing.assert_array_equal(after.snapshot.live, ~gone)
    res = after.search(np.ones(8, np.float32), k=300, where="b = TRUE", plan="exact")
    want = np.flatnonzero(expected(after, "b = TRUE") & ~gone)
    assert sorted(res.ids[0][res.ids[0] >= 0].tolist()) == want.tolist()


def test_build_index_again_reuses_or_rewrites(tmp_path):
    coll, rng = make(tmp_path)
    first = json.loads((coll.root / "manifest.json").read_text())["attributes_index"]
    coll.build_index("hnsw", M=8)  # same rows: the saved attribute indexes are named again, not rewritten
    assert json.loads((coll.root / "manifest.json").read_text())["attributes_index"] == first
    coll.add(rng.normal(size=(5, 8)).astype(np.float32), attributes(rng, 5))
    coll.build_index("flat")
    second = json.loads((coll.root / "manifest.json").read_text())["attributes_index"]
    assert second["rows"] == 305 and second["columns"]["s"]["rows"]["file"] != first["columns"]["s"]["rows"]["file"]
    from vecdb.storage import manifest as manifests

    old = first["columns"]["s"]["rows"]["file"]
    assert old in {p.name for p in coll.root.iterdir()}  # kept while a retained version names it (readers)
    current = manifests.read_manifest(coll.root)
    manifests.collect_garbage(coll.root, manifests.retained_files(coll.root, current, keep=1, grace=0))
    assert old not in {p.name for p in coll.root.iterdir()}  # collected with the last version that named it
    check_filters(vecdb.open(coll.root))


@pytest.mark.parametrize("damage", ["flip", "missing", "stale-flip"])
def test_damaged_attribute_files_raise_corrupt(tmp_path, damage):
    coll, rng = make(tmp_path)
    if damage == "stale-flip":  # the saved indexes are unused (rows added) yet still checked
        coll.add(rng.normal(size=(3, 8)).astype(np.float32), attributes(rng, 3))
    spec = json.loads((coll.root / "manifest.json").read_text())["attributes_index"]
    path = coll.root / spec["columns"]["labels"]["rows"]["file"]
    original = path.read_bytes()
    if damage == "missing":
        path.unlink()
        match = "missing"
    else:
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0xFF
        path.write_bytes(bytes(damaged))
        match = "checksum"
    with pytest.raises(errors.CorruptCollectionError, match=match):
        vecdb.open(coll.root)
    path.write_bytes(original)  # nothing was lost: the collection opens again as it was
    check_filters(vecdb.open(coll.root))


def test_manifests_without_attribute_indexes_open_and_optimize_adds_them(tmp_path):
    coll, _ = make(tmp_path)
    manifest_path = coll.root / "manifest.json"
    manifest_path.write_text(json.dumps(as_format_1(json.loads(manifest_path.read_text()))))
    old = vecdb.open(coll.root)
    assert old.snapshot.attributes.made() is None
    check_filters(old)
    old.optimize()  # the vector index is current; only the attribute indexes are written
    assert json.loads(manifest_path.read_text())["attributes_index"]["rows"] == 300
    assert isinstance(vecdb.open(coll.root).snapshot.attributes.made()._columns, StoredColumns)

    golden = tmp_path / "v1.vdb"
    shutil.copytree(GOLDEN / "v1.vdb", golden)
    coll = vecdb.open(golden)
    assert coll.snapshot.attributes.made() is None
    before = coll.search(np.array([1, 2, 3, 4], np.float32), k=19, where="'x' IN labels").ids
    coll.optimize()
    reopened = vecdb.open(golden)
    assert isinstance(reopened.snapshot.attributes.made()._columns, StoredColumns)
    np.testing.assert_array_equal(reopened.search(np.array([1, 2, 3, 4], np.float32), k=19,
                                                  where="'x' IN labels").ids, before)


def test_multivector_collections_save_them_too(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    n = 80
    coll = vecdb.create(tmp_path / "m.vdb", dim=8, multivector=True)
    sets = [rng.normal(size=(int(rng.integers(1, 5)), 8)).astype(np.float32) for _ in range(n)]
    coll.add_multi(sets, attributes(rng, n))
    coll.build_index(d_proj=4, r_reps=2, k_sim=1)
    assert json.loads((coll.root / "manifest.json").read_text())["attributes_index"]["rows"] == n
    forbid_builds(monkeypatch)
    reopened = vecdb.open(coll.root)
    assert isinstance(reopened.snapshot.attributes.made()._columns, StoredColumns)
    check_filters(reopened)
    res = reopened.search_multi(sets[0], k=n, where="s = 'a'", plan="exact")
    assert sorted(res.ids[0][res.ids[0] >= 0].tolist()) == np.flatnonzero(expected(reopened, "s = 'a'")).tolist()
    monkeypatch.undo()
    reopened.add_multi(sets[:3], attributes(rng, 3))  # rows beyond the saved indexes: optimize saves them
    reopened.optimize()
    assert json.loads((coll.root / "manifest.json").read_text())["attributes_index"]["rows"] == n + 3
    check_filters(vecdb.open(coll.root))


def test_slice_filters_identical_after_reopen(tmp_path, monkeypatch):
    base = np.load(SLICE / "base.f16.npy").astype(np.float32)
    attrs = pq.read_table(SLICE / "attributes.parquet")
    queries = pq.read_table(SLICE / "queries.parquet")
    coll = vecdb.create(tmp_path / "slice.vdb", dim=base.shape[1])
    coll.add(base, attrs.drop_columns(["id"]), ids=attrs.column("id").to_numpy())
    coll.build_index("flat")
    forbid_builds(monkeypatch)
    reopened = vecdb.open(coll.root)
    assert isinstance(reopened.snapshot.attributes.made()._columns, StoredColumns)
    wheres = [w for w in queries.column("filter_sql").to_pylist() + queries.column("filter_json").to_pylist()
              if parse(w) is not None]
    assert len(wheres) == 2 * 240
    check_filters(reopened, wheres)
    # and the slice's recorded match counts
    for where, count in zip(queries.column("filter_json").to_pylist(), queries.column("match_count").to_pylist()):
        if parse(where) is not None:
            assert int(reopened.snapshot.select(where).mask.sum()) == count, where


def test_one_filter_per_query_on_threads_after_reopen(tmp_path):
    coll, rng = make(tmp_path)
    queries = rng.normal(size=(6, 8)).astype(np.float32)
    wheres = ["s = 'a'", "'x' IN labels", "i BETWEEN 2 AND 7", "d >= DATE '2025-01-05'", "fnan > 0.5", "b = TRUE"]
    fresh = vecdb.open(coll.root)
    got = fresh.search(queries, k=20, where=wheres, plan="exact")  # groups run on threads, columns load lazily
    want = coll.search(queries, k=20, where=wheres, plan="exact")
    np.testing.assert_array_equal(got.ids, want.ids)
