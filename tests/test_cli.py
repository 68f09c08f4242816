"""The ``vecdb`` console script, driven in-process through ``main([...])`` and as ``python -m vecdb.cli``,
on small files written to ``tmp_path``: every command, every output format, and every bad input."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import vecdb
from vecdb import errors
from vecdb.cli import main
from vecdb.cli.progress import Progress
from vecdb.indexes import index_kinds

from .conftest import ROOT, SHARED, SLICE

DIM = 8
TAGS = ["a", "b", "c"]


def make_rows(n: int, seed: int = 0, id0: int = 0, dim: int = DIM) -> tuple[np.ndarray, pa.Table]:
    """Unit vectors and attributes of every kind the CLI reports on (with nulls)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    table = pa.table({
        "id": pa.array(np.arange(id0, id0 + n), pa.int64()),
        "year": pa.array([2000 + i % 20 if i % 7 else None for i in range(n)], pa.int32()),
        "tag": pa.array([TAGS[i % 3] for i in range(n)]),
        "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)], pa.date32()),
        "labels": pa.array([TAGS[: i % 3 + 1] for i in range(n)], pa.list_(pa.string())),
    })
    return x, table


def with_vectors(x: np.ndarray, table: pa.Table, fixed: bool = True) -> pa.Table:
    values = pa.array(x.reshape(-1), pa.float32())
    vec = (pa.FixedSizeListArray.from_arrays(values, x.shape[1]) if fixed else
           pa.array([list(row) for row in x], pa.list_(pa.float32())))
    return table.append_column("vec", vec)


def parquet(path: Path, n: int = 60, seed: int = 0, id0: int = 0, fixed: bool = True) -> tuple[np.ndarray, pa.Table]:
    x, table = make_rows(n, seed, id0)
    pq.write_table(with_vectors(x, table, fixed), path)
    return x, table


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def exact_ids(x: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[int]:
    scores = x @ q
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k] if np.isfinite(scores[i])]


@pytest.fixture
def built(tmp_path, capsys):
    """A flat collection of 60 rows built from a Parquet file with a fixed_size_list<float32> column."""
    x, table = parquet(tmp_path / "rows.parquet")
    out = tmp_path / "c.vdb"
    rc, stdout, _ = cli(capsys, "build", tmp_path / "rows.parquet", "--out", out, "--index", "flat")
    assert rc == 0 and "built" in stdout and "60 rows" in stdout
    return out, x, table


# ----------------------------------------------------------------------------- build
def test_build_from_parquet_detects_vector_and_id_columns(built):
    out, x, table = built
    coll = vecdb.open(out)
    assert len(coll) == 60 and coll.dim == DIM and coll.metric == "cosine"
    assert coll.schema.names == ["year", "tag", "day", "labels"]
    got = coll.get([0, 59], columns=["tag", "day"])
    assert got.column("tag").to_pylist() == ["a", "c"]
    np.testing.assert_allclose(np.asarray(got.column("vector").to_pylist()), x[[0, 59]], rtol=1e-6)
    assert not list(out.parent.glob("*.tmp-*"))


def test_build_from_directory_of_parquet_and_arrow_files(tmp_path, capsys):
    src = tmp_path / "parts"
    src.mkdir()
    x0, t0 = parquet(src / "part-0.parquet", n=30, seed=1, fixed=False)  # list<float>
    x1, t1 = make_rows(20, seed=2, id0=30)
    with ipc.new_file(src / "part-1.arrow", with_vectors(x1, t1).schema) as w:  # Arrow IPC file
        w.write_table(with_vectors(x1, t1))
    x2, t2 = make_rows(10, seed=3, id0=50)
    with ipc.new_stream(src / "part-2.arrows", with_vectors(x2, t2).schema) as w:  # Arrow IPC stream
        w.write_table(with_vectors(x2, t2))
    (src / "README.txt").write_text("not data")
    rc, out, err = cli(capsys, "build", src, "--out", tmp_path / "c.vdb", "--index", "flat", "--columns", "tag,year",
                       "--batch-size", "7")
    assert rc == 0, err
    coll = vecdb.open(tmp_path / "c.vdb")
    assert len(coll) == 60 and coll.schema.names == ["tag", "year"]
    stored = np.asarray(coll.get([45], columns=[]).column("vector").to_pylist())
    np.testing.assert_allclose(stored[0], x1[15], rtol=1e-6)
    assert err == ""  # not a terminal: no progress bar


def test_build_from_npy_and_attributes_with_hnsw_params(tmp_path, capsys):
    x, table = make_rows(200, seed=4)
    np.save(tmp_path / "v.npy", x.astype(np.float16))
    pq.write_table(table, tmp_path / "a.parquet")
    rc, out, err = cli(capsys, "build", "--vectors", tmp_path / "v.npy", "--attributes", tmp_path / "a.parquet",
                       "--id-column", "id", "--out", tmp_path / "c.vdb", "--metric", "ip", "--index", "hnsw",
                       "--index-param", "M=8", "--index-param", "ef_search=64,ef_construction=40", "--quiet")
    assert rc == 0 and out == "" and err == ""
    rc, out, _ = cli(capsys, "info", tmp_path / "c.vdb", "--format", "json")
    info = json.loads(out)
    assert info["metric"] == "ip" and info["rows"] == 200
    assert info["index"]["kind"] == "hnsw"
    assert info["index"]["config"] == {"M": 8, "ef_construction": 40, "ef_search": 64, "storage": "flat"}


@pytest.mark.parametrize("kind", index_kinds())
def test_every_index_kind_builds_and_finds_a_stored_row(tmp_path, capsys, kind):
    parquet(tmp_path / "rows.parquet", n=200)
    params = {"hnsw": ["M=8"], "hnswlib": ["M=8"], "ivf": ["nlist=4", "nprobe=4"]}.get(kind, [])
    extra = [a for p in params for a in ("--index-param", p)]
    rc, out, err = cli(capsys, "build", tmp_path / "rows.parquet", "--out", tmp_path / "c.vdb", "--index", kind,
                       "--device", "cpu", *extra)
    assert rc == 0, err
    assert f"index {kind}" in out
    rc, out, err = cli(capsys, "search", tmp_path / "c.vdb", "--row", "17", "-k", "3", "--format", "json")
    hits = json.loads(out)[0]
    assert rc == 0 and hits[0]["id"] == 17 and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_append_adds_rows_and_updates_the_index(built, tmp_path, capsys):
    out, x, _ = built
    x2, _ = parquet(tmp_path / "more.parquet", n=40, seed=9, id0=60)
    rc, stdout, err = cli(capsys, "build", tmp_path / "more.parquet", "--out", out, "--append")
    assert rc == 0, err
    assert "appended to" in stdout and "100 rows (40 added)" in stdout
    info = json.loads(cli(capsys, "info", out, "--format", "json")[1])
    assert info["rows"] == 100 and info["index"]["rows"] == 100  # optimize() covered the new rows
    hits = json.loads(cli(capsys, "search", out, "--row", "75", "-k", "1", "--format", "json")[1])
    assert hits[0][0]["id"] == 75
    rc, _, err = cli(capsys, "build", tmp_path / "more.parquet", "--out", out, "--append")
    assert rc == 1 and "ids already present" in err
    assert json.loads(cli(capsys, "info", out, "--format", "json")[1])["rows"] == 100


def test_overwrite_replaces_only_a_complete_collection(built, tmp_path, capsys):
    out, _, _ = built
    x, table = make_rows(30, seed=5)
    bad = with_vectors(x, table, fixed=False).to_pylist()
    bad[25]["vec"] = bad[25]["vec"][:5]
    schema = with_vectors(x, table, fixed=False).schema
    pq.write_table(pa.Table.from_pylist(bad, schema=schema), tmp_path / "bad.parquet")
    rc, _, err = cli(capsys, "build", tmp_path / "bad.parquet", "--out", out, "--overwrite", "--batch-size", "10")
    assert rc == 1 and "mixed length" in err and "row 25" in err
    assert len(vecdb.open(out)) == 60 and not list(tmp_path.glob("*.tmp-*"))
    parquet(tmp_path / "new.parquet", n=30, seed=6)
    rc, _, err = cli(capsys, "build", tmp_path / "new.parquet", "--out", out, "--overwrite", "--index", "flat")
    assert rc == 0, err
    assert len(vecdb.open(out)) == 30 and sorted(p.name for p in tmp_path.iterdir()) == \
        ["bad.parquet", "c.vdb", "new.parquet", "rows.parquet"]


def test_interrupted_build_leaves_nothing(tmp_path, capsys, monkeypatch):
    parquet(tmp_path / "rows.parquet")

    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vecdb.Collection, "build_index", interrupt)
    rc, _, err = cli(capsys, "build", tmp_path / "rows.parquet", "--out", tmp_path / "c.vdb")
    assert rc == 130 and err == "vecdb: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.parquet"]


# ----------------------------------------------------------------------------- search
def test_search_json_matches_the_exact_filtered_oracle(built, tmp_path, capsys):
    out, x, table = built
    q = x[3] + 0.1 * x[4]
    rc, stdout, err = cli(capsys, "search", out, "--vector", json.dumps(q.tolist()), "-k", "5",
                          "--where", "tag = 'b' AND year >= 2005", "--columns", "tag,year,day,labels",
                          "--format", "json")
    assert rc == 0, err
    hits = json.loads(stdout)
    year = np.array([v if v is not None else -1 for v in table.column("year").to_pylist()])
    mask = (np.array(table.column("tag").to_pylist()) == "b") & (year >= 2005)
    assert [h["id"] for h in hits[0]] == exact_ids(x, q / np.linalg.norm(q), 5, mask)
    first = hits[0][0]
    assert set(first) == {"id", "score", "tag", "year", "day", "labels"}
    assert first["tag"] == "b" and first["year"] >= 2005
    assert first["day"] == (dt.date(2024, 1, 1) + dt.timedelta(days=first["id"])).isoformat()
    assert first["labels"] == TAGS[: first["id"] % 3 + 1]


def test_search_many_queries_from_a_vector_file(built, tmp_path, capsys):
    out, x, _ = built
    np.save(tmp_path / "q.npy", x[[1, 2, 3]])
    rc, stdout, _ = cli(capsys, "search", out, "--vector-file", tmp_path / "q.npy", "-k", "4", "--format", "json",
                        "--output", tmp_path / "hits.json")
    assert rc == 0 and stdout == ""
    hits = json.loads((tmp_path / "hits.json").read_text())
    assert len(hits) == 3 and [h[0]["id"] for h in hits] == [1, 2, 3] and all(len(h) == 4 for h in hits)
    assert all(set(h) == {"id", "score"} for q in hits for h in q)


def test_search_table_csv_and_parquet_formats(built, tmp_path, capsys):
    out, x, _ = built
    args = ["search", out, "--row", "10", "-k", "3", "--columns", "tag,labels", "--plan", "exact"]
    rc, stdout, _ = cli(capsys, *args)
    lines = stdout.splitlines()
    assert rc == 0 and lines[0] == "query 0: 3 hits (plan exact)"
    assert lines[1].split() == ["#", "id", "score", "tag", "labels"]
    assert lines[2].split()[:4] == ["1", "10", "1", "b"] and "[a, b]" in lines[2]

    rc, stdout, _ = cli(capsys, *args, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert [r["id"] for r in rows][0] == "10" and rows[0]["tag"] == "b" and json.loads(rows[0]["labels"]) == ["a", "b"]
    assert list(rows[0]) == ["query", "rank", "id", "score", "tag", "labels"]

    rc, stdout, _ = cli(capsys, *args, "--format", "parquet", "--output", tmp_path / "h.parquet")
    got = pq.read_table(tmp_path / "h.parquet")
    assert rc == 0 and got.column_names == ["query", "rank", "id", "score", "tag", "labels"]
    assert got.column("id").to_pylist()[0] == 10 and got.num_rows == 3


def test_search_with_ann_params_and_where_finds_no_rows(tmp_path, capsys):
    parquet(tmp_path / "rows.parquet", n=200)
    cli(capsys, "build", tmp_path / "rows.parquet", "--out", tmp_path / "c.vdb", "--index-param", "M=8")
    rc, stdout, _ = cli(capsys, "search", tmp_path / "c.vdb", "--row", "1", "--params", "ef=64", "--format", "json")
    assert rc == 0 and json.loads(stdout)[0][0]["id"] == 1
    rc, stdout, _ = cli(capsys, "search", tmp_path / "c.vdb", "--row", "1", "--where", "year > 3000")
    assert rc == 0 and stdout.startswith("query 0: 0 hits")
    rc, stdout, _ = cli(capsys, "search", tmp_path / "c.vdb", "--row", "1", "--where", "year > 3000",
                        "--format", "json")
    assert json.loads(stdout) == [[]]


# ----------------------------------------------------------------------------- info / explain
def test_info_reports_statistics_index_sizes_and_format(built, capsys):
    out, _, table = built
    rc, stdout, _ = cli(capsys, "info", out, "--format", "json")
    info = json.loads(stdout)
    assert rc == 0 and info["rows"] == 60 and info["dim"] == DIM and info["metric"] == "cosine"
    assert info["format_version"] == 3 and info["index"]["kind"] == "flat"
    assert [(f["name"], f["dim"], [i["name"] for i in f["indexes"]]) for f in info["fields"]] == [("vector", DIM, ["flat"])]
    cols = {c["name"]: c for c in info["columns"]}
    assert cols["year"]["nulls"] == 9 and cols["year"]["min"] == 2000 and cols["year"]["max"] == 2019
    assert cols["day"]["min"] == "2024-01-01" and cols["day"]["max"] == "2024-02-29"
    assert cols["tag"]["distinct"] == 3
    assert cols["labels"]["top"] == [["a", 60], ["b", 40], ["c", 20]]
    sizes = info["size_bytes"]
    assert sizes["vectors"] >= 60 * DIM * 4 and sizes["total"] == sum(p.stat().st_size for p in out.iterdir())
    rc, text, _ = cli(capsys, "info", out)
    assert "rows: 60 in 1 segment(s)" in text and "dim: 8" in text and "index: flat" in text
    assert "format: vecdb-collection version 3" in text and "size on disk:" in text
    year_line = next(line for line in text.splitlines() if line.strip().startswith("year"))
    assert year_line.split()[:3] == ["year", "int32", "9"] and "min 2000, max 2019" in year_line
    assert "top a (60), b (40), c (20)" in text


def test_explain_shows_plan_and_selectivity(built, capsys):
    out, _, _ = built
    rc, text, _ = cli(capsys, "explain", out, "--where", "tag = 'a'")
    assert rc == 0 and "plan: exact" in text and "matches: 20 of 60 rows (selectivity 33.3333%)" in text
    rc, text, _ = cli(capsys, "explain", out, "--where", "tag = 'a'", "--format", "json")
    plan = json.loads(text)
    assert plan["name"] == "exact" and plan["matches"] == 20 and plan["selectivity"] == pytest.approx(1 / 3)


# ----------------------------------------------------------------------------- bad input
def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, substring of the one-line error)."""
    coll = str(tmp / "c.vdb")
    return {
        "missing file": (["build", str(tmp / "nope.parquet"), "--out", str(tmp / "n.vdb")], "does not exist"),
        "missing npy": (["build", "--vectors", str(tmp / "nope.npy"), "--out", str(tmp / "n.vdb")], "does not exist"),
        "no vector column": (["build", str(tmp / "attrs.parquet"), "--out", str(tmp / "n.vdb")], "no vector column"),
        "not a table file": (["build", str(tmp / "junk.parquet"), "--out", str(tmp / "n.vdb")], "cannot read"),
        "mixed lengths": (["build", str(tmp / "mixed.parquet"), "--out", str(tmp / "n.vdb")], "mixed length"),
        "nan vector": (["build", str(tmp / "nan.parquet"), "--out", str(tmp / "n.vdb")], "NaN"),
        "row count mismatch": (["build", "--vectors", str(tmp / "v.npy"), "--attributes", str(tmp / "attrs.parquet"),
                                "--out", str(tmp / "n.vdb")], "has 7 vectors but"),
        "unknown build column": (["build", str(tmp / "rows.parquet"), "--columns", "yaer", "--out", str(tmp / "n.vdb")],
                                 "unknown column 'yaer'"),
        "unknown index param": (["build", str(tmp / "rows.parquet"), "--index-param", "Mx=3", "--out",
                                 str(tmp / "n.vdb")], "unknown option(s) ['Mx']"),
        "existing out": (["build", str(tmp / "rows.parquet"), "--out", coll], "already exists"),
        "overwrite non-collection": (["build", str(tmp / "rows.parquet"), "--out", str(tmp), "--overwrite"],
                                     "is not a vecdb collection"),
        "bad filter": (["search", coll, "--row", "1", "--where", "year >>= 3"], "at offset"),
        "unknown filter column": (["search", coll, "--row", "1", "--where", "yaer > 3"], "did you mean 'year'"),
        "unknown search column": (["search", coll, "--row", "1", "--columns", "tga"], "unknown column 'tga'"),
        "unknown row": (["search", coll, "--row", "999"], "unknown id(s): [999]"),
        "bad json vector": (["search", coll, "--vector", "[0.1, oops]"], "not valid JSON"),
        "wrong dim": (["search", coll, "--vector", "[0.1, 0.2]"], "expected dim 8, got 2"),
        "parquet needs output": (["search", coll, "--row", "1", "--format", "parquet"], "needs --output"),
        "search non-collection": (["search", str(tmp), "--row", "1"], "is not a vecdb collection"),
        "info non-collection": (["info", str(tmp / "nope")], "is not a vecdb collection"),
        "explain bad filter": (["explain", coll, "--where", "tag = "], "at offset"),
    }


def test_every_bad_input_is_one_line_without_traceback(built, tmp_path, capsys):
    x, table = make_rows(5)
    pq.write_table(table, tmp_path / "attrs.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"this is not parquet")
    np.save(tmp_path / "v.npy", np.ones((7, DIM), np.float32))
    mixed = pa.table({"vec": pa.array([[0.1] * DIM, [0.2] * DIM, [0.3] * (DIM + 1)], pa.list_(pa.float32()))})
    pq.write_table(mixed, tmp_path / "mixed.parquet")
    nan = x.copy()
    nan[2, 3] = np.nan
    pq.write_table(with_vectors(nan, table), tmp_path / "nan.parquet")
    before = sorted(p.name for p in tmp_path.iterdir())
    manifest = (tmp_path / "c.vdb" / "manifest.json").read_text()
    for name, (argv, expected) in _bad_inputs(tmp_path).items():
        rc = main(argv)
        out, err = capsys.readouterr()
        assert rc == 1, name
        assert err.startswith("vecdb: error: ") and err.count("\n") == 1, (name, err)
        assert expected in err, (name, err)
        assert "Traceback" not in err and out == "", name
        assert sorted(p.name for p in tmp_path.iterdir()) == before, name  # nothing half-written
    assert (tmp_path / "c.vdb" / "manifest.json").read_text() == manifest


def test_usage_errors_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["search", "x.vdb"])
    _, err = capsys.readouterr()
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.startswith("vecdb: error: one of the arguments --vector-file --row --vector is required")
    assert main([]) == 2


def test_debug_raises_the_library_error(built, capsys):
    out, _, _ = built
    with pytest.raises(errors.FilterError):
        main(["search", str(out), "--row", "1", "--where", "year >>= 3", "--debug"])


def test_progress_bar_draws_only_when_enabled():
    stream = io.StringIO()
    bar = Progress("adding", total=1000, enabled=True, stream=stream, refresh=1e9)
    bar.update(250)
    bar.close()
    text = stream.getvalue()
    assert "250/1.0k rows" in text and "rows/s" in text and "ETA" in text and text.endswith("\n")
    assert "25.0%" in bar.line()
    quiet = io.StringIO()
    bar = Progress("adding", total=None, enabled=False, stream=quiet)
    bar.update(5)
    bar.close()
    assert quiet.getvalue() == "" and "5 rows" in bar.line()


# ----------------------------------------------------------------------------- the real console script
def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "vecdb.cli", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_console_script_end_to_end_on_the_bundled_slice(tmp_path):
    version = _run("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"vecdb {vecdb.__version__}"
    for command in ("build", "search", "info", "explain"):
        helped = _run(command, "--help", cwd=tmp_path)
        assert helped.returncode == 0 and "examples:" in helped.stdout and f"vecdb {command}" in helped.stdout

    built = _run("build", "--vectors", SLICE / "base.f16.npy", "--attributes", SLICE / "attributes.parquet",
                 "--id-column", "id", "--index", "flat", "--out", "slice.vdb", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert built.stderr == "" and "5,000 rows" in built.stdout
    queries = pq.read_table(SLICE / "queries.parquet")
    gt = np.load(SLICE / "gt_ids.npy")
    np.save(tmp_path / "q.npy", np.load(SLICE / "queries.f32.npy")[:1])
    where = queries.column("filter_sql")[0].as_py()
    found = _run("search", "slice.vdb", "--vector-file", "q.npy", "-k", "10", "--where", where, "--columns",
                 "title,categories,yyyymm", "--format", "json", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)[0]
    assert [h["id"] for h in hits] == gt[0, :10].tolist()
    assert all("cs.CL" in h["categories"] and 202512 <= h["yyyymm"] <= 202605 for h in hits)

    failed = _run("search", "slice.vdb", "--row", "1", "--where", "yaer > 1", cwd=tmp_path)
    assert failed.returncode == 1 and failed.stderr == "vecdb: error: unknown column 'yaer'; did you mean 'year'?\n"
    debug = _run("search", "slice.vdb", "--row", "1", "--where", "yaer > 1", "--debug", cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "FilterError" in debug.stderr


@pytest.mark.shared
def test_build_and_filtered_search_on_shared_arxiv(tmp_path):
    src = SHARED / "arxiv"
    built = _run("build", "--vectors", src / "base.f16.npy", "--attributes", src / "attributes.parquet",
                 "--id-column", "id", "--index", "flat", "--out", "arxiv.vdb", cwd=tmp_path)
    assert built.returncode == 0 and "72,000 rows" in built.stdout, built.stderr
    queries = pq.read_table(src / "queries.parquet")
    gt = np.load(src / "gt_ids.npy")
    np.save(tmp_path / "q.npy", np.load(src / "queries.f32.npy")[:1])
    found = _run("search", "arxiv.vdb", "--vector-file", "q.npy", "-k", "10", "--where",
                 queries.column("filter_sql")[0].as_py(), "--format", "json", cwd=tmp_path)
    assert [h["id"] for h in json.loads(found.stdout)[0]] == gt[0, :10].tolist()


def test_bench_command_lists_the_runners_registries(capsys):
    from vecdb.cli import main

    assert main(["bench", "list"]) == 0
    out = capsys.readouterr().out
    assert "arxiv-slice" in out and "faiss-hnsw" in out


def test_multivector_build_search_info_from_the_command_line(tmp_path, capsys):
    from vecdb.cli import main

    data = Path(__file__).resolve().parents[1] / "data" / "arxiv-tokens-slice"
    out = tmp_path / "mv.vdb"
    assert main(["build", "--vectors", str(data / "doc_tokens.f16.npy"), "--offsets", str(data / "doc_offsets.npy"),
                 "--attributes", str(data / "attributes.parquet"), "--out", str(out), "--quiet",
                 "--index-param", "candidates=100"]) == 0
    q_tokens = np.load(data / "query_tokens.f16.npy")
    q_offsets = np.load(data / "query_offsets.npy")
    np.save(tmp_path / "q.npy", q_tokens[q_offsets[0]:q_offsets[1]].astype(np.float32))
    capsys.readouterr()
    assert main(["search", str(out), "--vector-file", str(tmp_path / "q.npy"), "-k", "5",
                 "--where", "'cs.CV' IN categories", "--columns", "categories", "--format", "json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]
    assert len(hits) == 5 and all("cs.CV" in h["categories"] for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert main(["info", str(out)]) == 0
    assert "muvera" in capsys.readouterr().out


def test_multivector_build_rejects_offsets_that_do_not_cover_the_tokens(tmp_path, capsys):
    from vecdb.cli import main

    np.save(tmp_path / "t.npy", np.ones((10, 4), np.float32))
    np.save(tmp_path / "o.npy", np.array([0, 4, 9]))
    assert main(["build", "--vectors", str(tmp_path / "t.npy"), "--offsets", str(tmp_path / "o.npy"),
                 "--out", str(tmp_path / "mv.vdb")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vecdb: error: --offsets must rise from 0 to the 10 rows") and err.count("\n") == 1
    assert not (tmp_path / "mv.vdb").exists()


# ----------------------------------------------------------------------------- vector fields
def test_build_search_explain_info_with_two_vector_fields(tmp_path, capsys):
    x, table = make_rows(80)
    rng = np.random.default_rng(5)
    y = rng.normal(size=(80, 4)).astype(np.float32)
    data = with_vectors(x, table).append_column("small", pa.FixedSizeListArray.from_arrays(pa.array(y.reshape(-1)), 4))
    pq.write_table(data, tmp_path / "two.parquet")
    out = tmp_path / "two.vdb"
    rc, stdout, _ = cli(capsys, "build", tmp_path / "two.parquet", "--out", out, "--vector-column", "big=vec",
                        "--vector-column", "small=small", "--index", "hnsw", "--index-param", "M=8")
    assert rc == 0 and "80 rows" in stdout and "big (8-d cosine: hnsw)" in stdout and "small (4-d cosine: hnsw)" in stdout
    coll = vecdb.open(out)
    assert list(coll.fields) == ["big", "small"] and coll.fields["small"].dim == 4
    np.testing.assert_allclose(np.asarray(coll.get([3])["small"].to_pylist()), y[3:4] / np.linalg.norm(y[3]), rtol=1e-5)
    rc, stdout, _ = cli(capsys, "search", out, "--field", "small", "--row", "3", "-k", "1", "--format", "json")
    assert rc == 0 and json.loads(stdout)[0][0]["id"] == 3
    rc, stdout, _ = cli(capsys, "search", out, "--field", "big", "--vector", json.dumps(x[5].tolist()), "-k", "3",
                        "--where", "tag = 'c'", "--format", "json")
    hits = [h["id"] for h in json.loads(stdout)[0]]
    assert rc == 0 and hits == exact_ids(x, x[5], 3, np.array([t == "c" for t in table["tag"].to_pylist()]))
    rc, stdout, _ = cli(capsys, "explain", out, "--field", "small", "--format", "json")
    assert rc == 0 and json.loads(stdout)["index"] == "hnsw"
    rc, stdout, _ = cli(capsys, "info", out, "--format", "json")
    info = json.loads(stdout)
    assert [(f["name"], f["dim"], [i["name"] for i in f["indexes"]]) for f in info["fields"]] == \
        [("big", 8, ["hnsw"]), ("small", 4, ["hnsw"])]
    rc, text, _ = cli(capsys, "info", out)
    assert "vector fields (2):" in text and "index hnsw: hnsw" in text
    rc, _, err = cli(capsys, "search", out, "--row", "3")
    assert rc != 0 and "--field" in err
    rc, _, err = cli(capsys, "build", tmp_path / "two.parquet", "--out", tmp_path / "bad.vdb",
                     "--vector-column", "big=vec", "--vector-column", "small")
    assert rc != 0 and "FIELD=COLUMN" in err and not (tmp_path / "bad.vdb").exists()
