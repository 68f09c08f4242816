"""Changing data: upsert throughput and the search right after it, and compaction (disk, resident memory,
recall and speed) against a fresh build, in one run.

    python -m benchmarks changes --dataset arxiv --out results/changes            # upserts on arxiv
    python -m benchmarks changes --compact-dataset synthetic-100k --out ...       # + compaction

Upserts: batches of ``--batch`` replaced rows (existing ids, vectors moved a little), each timed; after
each, the median latency of the dataset's queries (filters included) with the rows beside the index
scanned exactly, and once more after ``optimize``. LanceDB's ``merge_insert`` on the same batches when
lancedb is installed. Compaction: delete 90% of the rows, ``compact()`` + ``cleanup()``; bytes on disk,
resident memory of a fresh process that opens the collection and runs the queries, recall@10 and QPS,
beside a fresh build over the surviving rows. Writes ``results.json`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

import vecdb

from .datasets import DataOptions, load_dataset


def _latency(coll: vecdb.Collection, queries: np.ndarray, filters: list, k: int = 10) -> float:
    """Median single-query latency in ms (filters included)."""
    times = []
    for q, where in zip(queries, filters):
        t = time.perf_counter()
        coll.search(q, k, where=where)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def upserts(name: str, batch: int, batches: int, queries: int, workdir: Path) -> dict:
    ds = load_dataset(name, DataOptions(max_queries=queries))
    rng = np.random.default_rng(0)
    coll = vecdb.create(workdir / "up.vdb", dim=ds.base.shape[1], metric=ds.metric)
    coll.add(ds.base, ds.attributes)
    t = time.perf_counter()
    coll.build_index("hnsw")
    out = {"dataset": name, "rows": int(ds.base.shape[0]), "batch": batch, "build_s": time.perf_counter() - t,
           "search_ms_before": _latency(coll, ds.queries, ds.filters), "vecdb": []}
    plans = []
    for b in range(batches):
        ids = rng.choice(ds.base.shape[0], batch, replace=False)
        moved = ds.base[ids] + rng.normal(scale=0.01, size=(batch, ds.base.shape[1])).astype(np.float32)
        attrs = ds.attributes.take(ids) if ds.attributes is not None else None
        t = time.perf_counter()
        coll.upsert(moved, attrs, ids=ids)
        secs = time.perf_counter() - t
        out["vecdb"].append({"upsert_s": secs, "rows_per_s": batch / secs,
                             "search_ms_after": _latency(coll, ds.queries, ds.filters)})
        plans.append(coll.explain(ds.queries[0]).tail_rows)
    t = time.perf_counter()
    coll.optimize()
    out["optimize_s"] = time.perf_counter() - t
    out["search_ms_after_optimize"] = _latency(coll, ds.queries, ds.filters)
    out["rows_beside_index_before_optimize"] = plans[-1]
    out["lancedb"] = _lancedb(ds, batch, batches, workdir)
    return out


def _lancedb(ds, batch: int, batches: int, workdir: Path) -> dict | str:
    try:
        import lancedb
        import pyarrow as pa
    except ImportError:
        return "not installed"
    rng = np.random.default_rng(0)
    table = ds.attributes if ds.attributes is not None else pa.table({})
    table = table.append_column("vector", pa.FixedSizeListArray.from_arrays(pa.array(ds.base.ravel()),
                                                                            ds.base.shape[1]))
    if "id" not in table.column_names:
        table = table.append_column("id", pa.array(np.arange(ds.base.shape[0])))
    db = lancedb.connect(str(workdir / "lance"))
    tbl = db.create_table("t", table)
    runs = []
    for _ in range(batches):
        ids = rng.choice(ds.base.shape[0], batch, replace=False)
        moved = ds.base[ids] + rng.normal(scale=0.01, size=(batch, ds.base.shape[1])).astype(np.float32)
        rows = table.take(ids).set_column(table.schema.get_field_index("vector"), "vector",
                                          pa.FixedSizeListArray.from_arrays(pa.array(moved.ravel()), ds.base.shape[1]))
        t = time.perf_counter()
        tbl.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows)
        secs = time.perf_counter() - t
        runs.append({"upsert_s": secs, "rows_per_s": batch / secs})
    return {"runs": runs}


_RSS = textwrap.dedent("""
    import sys, numpy as np, vecdb
    coll = vecdb.open(sys.argv[1])
    q = np.load(sys.argv[2])
    for x in q:
        coll.search(x, 10)
    with open("/proc/self/status") as f:
        print(next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) * 1024)
""")


def _rss(path: Path, queries: np.ndarray, workdir: Path) -> int:
    np.save(workdir / "q.npy", queries)
    proc = subprocess.run([sys.executable, "-c", _RSS, str(path), str(workdir / "q.npy")], capture_output=True,
                          text=True, check=True)
    return int(proc.stdout.strip().splitlines()[-1])


def _quality(coll: vecdb.Collection, queries: np.ndarray) -> dict:
    exact = coll.search(queries, 10, plan="exact").ids
    for q in queries[:20]:  # warm up (kernels, caches)
        coll.search(q, 10)
    t = time.perf_counter()
    got = np.concatenate([coll.search(q, 10).ids for q in queries])
    qps = len(queries) / (time.perf_counter() - t)
    recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(got.tolist(), exact.tolist())]))
    return {"recall@10": recall, "qps": qps}


def compaction(name: str, queries: int, workdir: Path) -> dict:
    ds = load_dataset(name, DataOptions(max_queries=queries))
    n = ds.base.shape[0]
    coll = vecdb.create(workdir / "c.vdb", dim=ds.base.shape[1], metric=ds.metric)
    for part in np.array_split(np.arange(n), 10):  # ten segments
        coll.add(ds.base[part], ids=part)
    coll.build_index("hnsw")
    tiny = vecdb.create(workdir / "tiny.vdb", dim=ds.base.shape[1], metric=ds.metric)
    tiny.add(ds.base[:64])
    tiny.build_index("hnsw")
    out = {"dataset": name, "rows": int(n), "baseline_rss": _rss(tiny.root, ds.queries, workdir),
           "fresh": {**coll.stats(), **_quality(coll, ds.queries),
                                                     "rss": _rss(coll.root, ds.queries, workdir)}}
    rng = np.random.default_rng(1)
    coll.delete(ids=rng.choice(n, int(n * 0.9), replace=False))
    out["deleted_90"] = {**coll.stats(), **_quality(coll, ds.queries), "rss": _rss(coll.root, ds.queries, workdir)}
    t = time.perf_counter()
    coll.compact()
    out["compact_s"] = time.perf_counter() - t
    coll.cleanup(keep_last=1, older_than=0)
    index_bytes = sum(e.bytes for e in coll.snapshot.manifest.index.all_files())
    out["compacted"] = {**coll.stats(), **_quality(coll, ds.queries), "rss": _rss(coll.root, ds.queries, workdir),
                        "index_bytes": index_bytes}
    survivors = coll.snapshot.ids
    fresh = vecdb.create(workdir / "f.vdb", dim=ds.base.shape[1], metric=ds.metric)
    fresh.add(ds.base[survivors], ids=survivors)
    fresh.build_index("hnsw")
    out["fresh_survivors"] = {**fresh.stats(), **_quality(fresh, ds.queries),
                              "rss": _rss(fresh.root, ds.queries, workdir)}
    return out


def summary(results: dict) -> str:
    lines = ["# Changing data", ""]
    up = results.get("upserts")
    if up:
        rates = [r["rows_per_s"] for r in up["vecdb"]]
        after = [r["search_ms_after"] for r in up["vecdb"]]
        lines += [f"## Upserts on {up['dataset']} ({up['rows']:,} rows, batches of {up['batch']:,} replaced rows)", "",
                  f"- vecdb upsert: median {statistics.median(rates):,.0f} rows/s "
                  f"(min {min(rates):,.0f}, max {max(rates):,.0f}) over {len(rates)} batches",
                  f"- median query latency (filters included): {up['search_ms_before']:.3f} ms before, "
                  f"{statistics.median(after):.3f} ms right after an upsert (up to {max(after):.3f} ms with "
                  f"{up['rows_beside_index_before_optimize']:,} rows beside the index), "
                  f"{up['search_ms_after_optimize']:.3f} ms after optimize ({up['optimize_s']:.1f} s)"]
        lance = up["lancedb"]
        if isinstance(lance, dict):
            lr = [r["rows_per_s"] for r in lance["runs"]]
            lines.append(f"- LanceDB merge_insert: median {statistics.median(lr):,.0f} rows/s "
                         f"(vecdb / LanceDB: {statistics.median(rates) / statistics.median(lr):.2f}x)")
        else:
            lines.append(f"- LanceDB: {lance}")
        lines.append("")
    comp = results.get("compaction")
    if comp:
        base = comp["baseline_rss"]
        lines += [f"## Compaction on {comp['dataset']} ({comp['rows']:,} rows, 90% deleted)", "",
                  f"Resident MB: a fresh process that opens the collection and runs the queries, less "
                  f"{base / 2**20:.0f} MB for one that does the same on a 64-row collection (Python, numpy, FAISS, numba).", "",
                  "| state | live rows | stored rows | segments | bytes on disk | resident MB | recall@10 | QPS |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for key in ("fresh", "deleted_90", "compacted", "fresh_survivors"):
            s = comp[key]
            lines.append(f"| {key} | {s['rows']:,} | {s['rows'] + s['deleted_rows']:,} | {s['segments']} | "
                         f"{s['bytes_on_disk']:,} | {(s['rss'] - base) / 2**20:.1f} | {s['recall@10']:.3f} | "
                         f"{s['qps']:,.0f} |")
        f, c = comp["fresh"], comp["compacted"]
        lines += ["", f"- compact: {comp['compact_s']:.1f} s; disk after / before: "
                      f"{c['bytes_on_disk'] / f['bytes_on_disk']:.3f} "
                      f"({(c['bytes_on_disk'] - c['index_bytes']) / f['bytes_on_disk']:.3f} without the index); "
                      f"resident memory after / before: {(c['rss'] - base) / max(f['rss'] - base, 1):.3f}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks changes", description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="arxiv", help="dataset for the upserts ('' to skip)")
    ap.add_argument("--compact-dataset", default="synthetic-100k", help="dataset for compaction ('' to skip)")
    ap.add_argument("--batch", type=int, default=1000, help="rows replaced per upsert")
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--queries", type=int, default=200, help="queries timed after each upsert")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"command": "python -m benchmarks changes " + " ".join(argv or sys.argv[1:])}
    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset:
            results["upserts"] = upserts(args.dataset, args.batch, args.batches, args.queries, Path(tmp))
        if args.compact_dataset:
            results["compaction"] = compaction(args.compact_dataset, args.queries, Path(tmp))
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    text = summary(results)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0
