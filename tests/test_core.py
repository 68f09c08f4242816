"""The collection core: typed manifest with its own checksum, declared index capabilities, one rule for
filter lists, one collection kind for single and multi-vector rows, and the bugs found on the way."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import vecdb
from vecdb import errors, planner
from vecdb.cli import main as cli_main
from vecdb.storage.manifest import checksum

ROOT = Path(__file__).resolve().parents[1]


def small(tmp_path: Path, rng, *, n: int = 120, dim: int = 8, name: str = "c.vdb") -> vecdb.Collection:
    coll = vecdb.create(tmp_path / name, dim=dim, metric="ip")
    ids = np.arange(n)
    coll.add(rng.normal(size=(n, dim)), {"g": ids % 10, "tag": [["a", "b", "c"][i % 3] for i in ids]}, ids=ids)
    coll.delete(ids=[3, 4])
    return coll


def rewrite(root: Path, change) -> None:
    """Edit the manifest as data and give it a valid checksum again (what a buggy writer could do)."""
    data = json.loads((root / "manifest.json").read_text())
    change(data)
    data["checksum"] = checksum(data)
    (root / "manifest.json").write_text(json.dumps(data))


def test_a_flipped_bit_in_the_manifest_is_caught(tmp_path, rng):
    coll = small(tmp_path, rng)
    path = coll.root / "manifest.json"
    text = path.read_text()
    assert '"deleted"' in text
    path.write_text(text.replace('"deleted"', '"deletad"'))  # once opened silently, bringing rows 3 and 4 back
    with pytest.raises(errors.CorruptCollectionError, match="checksum"):
        vecdb.open(coll.root)


def test_every_bit_flip_of_the_manifest_is_a_typed_error_or_changes_nothing(tmp_path, rng):
    coll = small(tmp_path, rng)
    path = coll.root / "manifest.json"
    original = path.read_bytes()
    want = sorted(coll.to_arrow().column("id").to_pylist())
    flips = np.random.default_rng(5).integers(0, len(original) * 8, 300)
    outcomes = {"typed error": 0, "same answer": 0}
    for bit in flips.tolist():
        data = bytearray(original)
        data[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(data))
        try:
            got = sorted(vecdb.open(coll.root).to_arrow().column("id").to_pylist())
        except (errors.CorruptCollectionError, errors.NotACollectionError):
            outcomes["typed error"] += 1
            continue
        assert got == want, f"bit {bit} changed the answer"
        outcomes["same answer"] += 1
    path.write_bytes(original)
    assert outcomes["typed error"] > 250, outcomes


@pytest.mark.parametrize("field, change", [
    ("segments[0].rows", lambda d: d["segments"][0].update(rows="12")),
    ("segments[0].ids", lambda d: d["segments"][0].pop("ids")),
    ("segments[0].fields.vector.vectors.sha256",
     lambda d: d["segments"][0]["fields"]["vector"]["vectors"].update(sha256="xyz")),
    ("segments[0].fields.vector.vectors.file",
     lambda d: d["segments"][0]["fields"]["vector"]["vectors"].update(file="../../etc/passwd")),
    ("segments[0].fields", lambda d: d["segments"][0]["fields"].update(other=d["segments"][0]["fields"]["vector"])),
    ("fields[0].dim", lambda d: d["fields"][0].update(dim=-3)),
    ("fields[0].metric", lambda d: d["fields"][0].update(metric="hamming")),
    ("fields[0].name", lambda d: d["fields"][0].update(name="no spaces allowed")),
    ("fields", lambda d: d.update(fields=[])),
    ("schema.arrow_ipc", lambda d: d["schema"].update(arrow_ipc="not base64!")),
    ("deleted", lambda d: d.update(deleted=[1, 2])),
    ("segments", lambda d: d.update(segments={"a": 1})),
    ("format_version", lambda d: d.update(format_version=99)),
    ("next_id", lambda d: d.update(next_id=True)),
])
def test_a_malformed_manifest_field_is_named(tmp_path, rng, field, change):
    coll = small(tmp_path, rng)
    rewrite(coll.root, change)
    with pytest.raises(errors.CorruptCollectionError) as info:
        vecdb.open(coll.root)
    assert repr(field) in str(info.value) and "manifest.json" in str(info.value)


def test_a_forced_plan_the_index_cannot_run_is_a_parameter_error(tmp_path, rng):
    coll = small(tmp_path, rng)
    coll.build_index("hnsw", engine="hnswlib", M=8)
    q = rng.normal(size=8)
    with pytest.raises(errors.InvalidParameterError, match="filters inside"):
        coll.search(q, 5, where="g = 1", plan="index")
    with pytest.raises(errors.InvalidParameterError, match="filtered_graph"):
        coll.search(q, 5, where="g = 1", plan="filtered_graph")
    hits = coll.search(q, 5, where="g = 1", plan="post_filter")
    assert hits.counts.tolist() == [5] and all(i % 10 == 1 for i in hits.ids[0])
    with pytest.raises(errors.InvalidParameterError) as info:
        coll.search(q, 5, efs=3)
    assert all(name in str(info.value) for name in ("ef", "plan", "target_recall"))


def test_an_index_that_does_not_filter_inside_is_post_filtered():
    """GPU IVF takes no selector: it declares so, and the planner over-fetches and refills instead."""

    class GpuIvf:
        kind, exact, walks_graph, filters_inside, dim = "ivf", False, False, False, 64
        search_options: dict = {"nprobe": int}

    plan = planner.choose(index=GpuIvf(), matches=40_000, total=100_000, k=10, filtered=True,
                          params=planner.SearchParams(), config=planner.PlannerConfig())
    assert plan.name == "post_filter"
    with pytest.raises(errors.InvalidParameterError, match="filters inside"):
        planner.choose(index=GpuIvf(), matches=40_000, total=100_000, k=10, filtered=True,
                       params=planner.SearchParams(plan="index"), config=planner.PlannerConfig())
    from vecdb.indexes.faiss_indexes import IVFIndex

    assert IVFIndex(8, "ip", device="cpu").filters_inside


def test_post_filter_sends_only_the_short_queries_round_again():
    """A query whose whole neighbourhood the filter rejects fetches more by itself (x4 a round); the
    others keep their first answer, the one they would get alone, and all equal the exact oracle."""
    from vecdb.indexes.flat import exact_search

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    q = np.concatenate([x[:1], rng.normal(size=(30, 8)).astype(np.float32)])
    allow = np.arange(2000) % 2 == 0
    allow[np.argsort(((x - x[0]) ** 2).sum(1))[:300]] = False  # query 0's 300 nearest rows fail
    calls = []

    class CountingIvf:  # an index that does not filter inside, answering exactly, counting its calls
        kind, exact, walks_graph, filters_inside, dim, metric, ntotal = "ivf", False, False, False, 8, "l2", 2000
        search_options: dict = {}

        def search(self, queries, k, **params):
            calls.append((len(queries), k, bool((queries == q[0]).all(axis=1).any())))
            return exact_search(x, queries, k, "l2")

    plan = planner.Plan("post_filter", int(allow.sum()), 2000, "test")
    hits = planner.run(plan, vectors=x, index=CountingIvf(), index_rows=2000, queries=q, k=10, selection=allow,
                       metric="l2", config=planner.PlannerConfig())
    fetch = int(np.ceil(10 / plan.selectivity * planner.PlannerConfig().overfetch)) + 10
    assert calls[0] == (31, fetch, True) and len(calls) == 3  # query 0 needs three rounds
    assert [c[1:] for c in calls[1:]] == [(fetch * 4, True), (fetch * 16, True)]
    assert calls[1][0] < 31 // 4 and calls[2][0] <= calls[1][0]  # only the short ones go round again
    np.testing.assert_array_equal(hits.rows, exact_search(x, q, 10, "l2", allow=allow).rows)


def test_a_list_of_filters_is_one_per_query_everywhere(tmp_path, rng):
    coll = small(tmp_path, rng)
    q = rng.normal(size=(2, 8))
    res = coll.search(q, 4, where=["g = 1", {"eq": ["tag", "b"]}])
    assert all(i % 10 == 1 for i in res.ids[0]) and all(i % 3 == 1 for i in res.ids[1])
    plans = coll.explain(q, where=["g = 1", "tag = 'b'"])
    assert [p.filter for p in plans] == ["g = 1", "tag = 'b'"] and [p.matches for p in plans] == [12, 39]
    with pytest.raises(errors.InvalidParameterError, match="one per query"):
        coll.search(q[0], 4, where=["g = 1", "tag = 'b'"])  # two filters for one query: AND them instead
    with pytest.raises(errors.InvalidParameterError, match="one per query"):
        coll.explain(q, where=["g = 1"])
    with pytest.raises(errors.FilterError, match="one filter per query"):
        vecdb.filters.parse(["g = 1", "tag = 'b'"])


def test_results_compare_without_raising_and_join_the_version_searched(tmp_path, rng):
    coll = small(tmp_path, rng)
    q = rng.normal(size=8)
    a, b = coll.search(q, 3), coll.search(q, 3)
    assert a == a and a != b and a.ids.tolist() == b.ids.tolist()
    first = a.ids[0, 0]
    coll.delete(ids=[first])
    assert a.to_arrow(["g"]).column("id").to_pylist()[0] == first  # the version the search read
    with pytest.raises(errors.UnknownIdError):
        coll.get([first])


def test_one_collection_kind_for_single_and_multi_vector_rows(tmp_path, rng):
    dense = small(tmp_path, rng)
    multi = vecdb.create(tmp_path / "m.vdb", dim=8, metric="ip", multivector=True)
    multi.add([rng.normal(size=(3, 8)) for _ in range(30)], {"g": np.arange(30) % 10})
    assert type(dense) is type(multi) and multi.multivector and not dense.multivector
    q = rng.normal(size=(4, 8))  # one query set
    res = multi.search(q, 5, where="g < 5")
    assert res.ids.shape == (1, 5) and all(i % 10 < 5 for i in res.ids[0])
    assert multi.explain(q, where="g < 5").name == "chamfer_exact"
    multi.build_index(r_reps=2, k_sim=2, d_proj=8, candidates=10)
    assert multi.index_info["kind"] == "muvera"
    assert multi.explain(q).name.endswith("+rerank") and multi.search(q, 5).plans[0].endswith("+rerank")


def test_cli_search_by_row_on_a_multi_vector_collection(tmp_path, rng, capsys):
    multi = vecdb.create(tmp_path / "m.vdb", dim=8, metric="ip", multivector=True)
    multi.add([rng.normal(size=(3, 8)) for _ in range(30)])
    assert cli_main(["search", str(multi.root), "--row", "7", "-k", "2", "--format", "json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]
    assert hits[0]["id"] == 7  # a row's own set is its best Chamfer match


def test_multi_vector_filter_groups_on_threads_do_not_enter_the_parallel_kernel(tmp_path):
    """One filter per query runs the groups on a thread pool; the Chamfer kernels there are serial (numba's
    parallel kernel entered from several threads at once aborts the process). In a subprocess: an abort
    fails this test instead of ending the suite."""
    script = textwrap.dedent(f"""
        import numpy as np, vecdb
        rng = np.random.default_rng(0)
        coll = vecdb.create({str(tmp_path / "m.vdb")!r}, dim=16, metric="ip", multivector=True)
        coll.add([rng.normal(size=(6, 16)) for _ in range(3000)], {{"g": np.arange(3000) % 4}})
        coll.build_index(r_reps=2, k_sim=2, d_proj=16, candidates=400)
        queries = [rng.normal(size=(8, 16)) for _ in range(16)]
        where = [f"g = {{i % 4}}" for i in range(16)]
        for _ in range(3):
            res = coll.search(queries, 10, where=where)
            exact = coll.search(queries, 10, where=where, plan="exact")
            assert all((res.ids[i] % 4 == i % 4).all() for i in range(16))
        print("ok", (res.ids == exact.ids).mean())
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-3000:]
