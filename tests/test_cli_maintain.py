"""``vecdb delete | upsert | compact | calibrate | versions | verify``."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import vecdb
from vecdb.cli import main


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def collection(tmp_path, n=300):
    rng = np.random.default_rng(0)
    coll = vecdb.create(tmp_path / "c.vdb", dim=8, metric="ip")
    coll.add(rng.normal(size=(n, 8)), {"g": np.arange(n) % 10}, ids=np.arange(n))
    coll.build_index("hnsw", M=8)
    return coll


def test_delete_upsert_compact_versions_verify(tmp_path, capsys):
    coll = collection(tmp_path)
    rc, out, err = cli(capsys, "delete", coll.root, "--where", "g = 1")
    assert rc == 0 and "deleted 30 rows" in out and "270 rows left" in out
    rc, out, _ = cli(capsys, "delete", coll.root, "--ids", "2,3,999")
    assert rc == 0 and "deleted 2 rows" in out
    table = pa.table({"id": [2, 500], "emb": pa.array([[1.0] * 8, [2.0] * 8], pa.list_(pa.float32())),
                      "g": [20, 21]})
    pq.write_table(table, tmp_path / "fix.parquet")
    rc, out, err = cli(capsys, "upsert", coll.root, tmp_path / "fix.parquet", "--vector-column", "emb")
    assert rc == 0, err
    again = vecdb.open(coll.root)
    assert len(again) == 270 and again.get([2, 500], columns=["g"]).column("g").to_pylist() == [20, 21]
    rc, out, _ = cli(capsys, "compact", coll.root, "--cleanup")
    assert rc == 0 and "1 segment(s)" in out and "32 deleted rows dropped" in out
    rc, out, _ = cli(capsys, "versions", coll.root, "--format", "json")
    assert rc == 0 and [v["operation"] for v in json.loads(out)] == ["compact"]
    rc, out, _ = cli(capsys, "verify", coll.root)
    assert rc == 0 and "files verified" in out
    rc, out, _ = cli(capsys, "info", coll.root, "--format", "json")
    assert json.loads(out)["deleted_rows"] == 0 and json.loads(out)["versions"] == [vecdb.open(coll.root).version]


def test_verify_names_a_damaged_file(tmp_path, capsys):
    coll = collection(tmp_path)
    path = coll.root / coll.snapshot.manifest.segments[0].fields["vector"]["vectors"].file
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    rc, _, err = cli(capsys, "verify", coll.root)
    assert rc == 1 and path.name in err and "checksum" in err


def test_upsert_without_ids_is_refused_and_changes_nothing(tmp_path, capsys):
    coll = collection(tmp_path)
    version = coll.version
    np.save(tmp_path / "v.npy", np.ones((2, 8), np.float32))
    rc, _, err = cli(capsys, "upsert", coll.root, "--vectors", tmp_path / "v.npy")
    assert rc == 1 and "ids" in err and vecdb.open(coll.root).version == version


def test_calibrate_from_a_query_file(tmp_path, capsys):
    """``vecdb calibrate``: the curves measured on the file's queries, saved as a version; a file with
    too few queries, of the wrong width, or not an array is one error line and changes nothing."""
    from vecdb.calibration import SAMPLE_METHOD

    coll = collection(tmp_path)
    version = coll.version
    rng = np.random.default_rng(1)
    np.save(tmp_path / "few.npy", rng.normal(size=(5, 8)).astype(np.float32))
    np.save(tmp_path / "wide.npy", rng.normal(size=(40, 9)).astype(np.float32))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    for name, words in (("few.npy", "at least 20"), ("wide.npy", "dim"), ("junk.npy", "cannot read")):
        rc, _, err = cli(capsys, "calibrate", coll.root, "--queries", tmp_path / name)
        assert rc == 1 and words in err and err.count("\n") == 1, err
    assert vecdb.open(coll.root).version == version
    np.save(tmp_path / "q.npy", rng.normal(size=(40, 8)).astype(np.float32))
    rc, out, err = cli(capsys, "calibrate", coll.root, "--queries", tmp_path / "q.npy", "--format", "json")
    assert rc == 0, err
    got = json.loads(out)
    again = vecdb.open(coll.root)
    assert got["version"] == version + 1 == again.version and got["curves"]["method"] == SAMPLE_METHOD
    assert dict(again.snapshot.store.calibration) == got["curves"]
    assert set(got["beams"]) == {"0.9", "0.95", "0.99"} and got["beams"]["0.9"] <= got["beams"]["0.99"]
    rc, out, _ = cli(capsys, "calibrate", coll.root, "--queries", tmp_path / "q.npy")
    assert rc == 0 and "calibrated" in out and "ef" in out


def test_calibrate_with_the_filters_the_queries_carried(tmp_path, capsys):
    """``vecdb calibrate --where-file``: line i is query i's filter (empty: none); the band they fill is
    measured under them. A file of the wrong length, a missing one or a bad filter is one error line
    and changes nothing; ``--where`` gives one filter to every query."""
    coll = collection(tmp_path)
    version = coll.version
    np.save(tmp_path / "q.npy", np.random.default_rng(2).normal(size=(40, 8)).astype(np.float32))
    (tmp_path / "short.txt").write_text("g < 5\n" * 39)
    (tmp_path / "bad.txt").write_text("g < 5\n" * 39 + "nope >\n")
    for option, value, words in (("--where-file", tmp_path / "short.txt", "one per query"),
                                 ("--where-file", tmp_path / "missing.txt", "cannot read"),
                                 ("--where-file", tmp_path / "bad.txt", "nope"),
                                 ("--where", "h = 1", "h")):
        rc, _, err = cli(capsys, "calibrate", coll.root, "--queries", tmp_path / "q.npy", option, value)
        assert rc == 1 and words in err and err.count("\n") == 1, err
    assert vecdb.open(coll.root).version == version
    (tmp_path / "filters.txt").write_text("g < 5\n" * 25 + "\n" * 15)
    rc, out, err = cli(capsys, "calibrate", coll.root, "--queries", tmp_path / "q.npy", "--where-file",
                       tmp_path / "filters.txt", "--format", "json")
    assert rc == 0, err
    curves = json.loads(out)["curves"]
    assert curves["own_filter_bands"] == [0.5] and curves["method"].endswith("own-filters")
    assert [s for s, _ in curves["filtered_bands"]] == [0.5, 0.2]  # (0.08 and 0.03 pass fewer than 4k rows)
    rc, out, err = cli(capsys, "calibrate", coll.root, "--queries", tmp_path / "q.npy", "--where", "g < 5")
    assert rc == 0 and "own filters at selectivity 0.5" in out, err
    assert vecdb.open(coll.root).version == version + 2
