"""Measure the planner's crossover points on ../shared/data/arxiv (how PlannerConfig's defaults were found).

For every public query, time each plan forced (exact scan of the matching rows; filtered HNSW at
several beam widths) one query at a time on one thread, and record recall@10 against the exact
ground truth. Prints, per selectivity band, median latency and mean recall per plan, so the crossover
is where the graph's latency at recall >= 0.95 drops below the exact scan's.

    python tools/calibrate_planner.py --collection /tmp/arxiv.vdb   # built on first use

``--sweep COLUMN`` instead times ``exact`` against ``filtered_graph`` at a ladder of selectivities
(random ranges of a numeric column, so any collection will do, e.g. the benchmark's 1M synthetic
set; the queries are the collection's own rows) and reports the graph's recall against the exact
answer: where the graph gets cheaper is ``exact_max_scan`` (rows x dim), where its recall holds is
``exact_max_selectivity``.

    python tools/calibrate_planner.py --collection /tmp/synthetic-1m.vdb --sweep value
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq

import vecdb

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "arxiv"


def load_or_build(path: Path) -> vecdb.Collection:
    if path.exists():
        return vecdb.open(path)
    coll = vecdb.create(path, dim=384, metric="cosine")
    attrs = pq.read_table(SHARED / "attributes.parquet")
    coll.add(np.load(SHARED / "base.f16.npy"), attrs.drop(["id"]), ids=attrs.column("id").to_numpy())
    coll.build_index("hnsw")
    return coll


def sweep(coll: vecdb.Collection, column: str, selectivities: list[float], n_queries: int) -> None:
    """Median latency of the exact scan and the filtered walk per selectivity, on random ranges."""
    rng = np.random.default_rng(1)
    values = np.sort(coll.snapshot.table.column(column).to_numpy())
    n = values.shape[0]
    rows = rng.integers(0, n, n_queries)
    queries = coll.get(coll.snapshot.ids[rows], with_vectors=True).column("vector").to_numpy(zero_copy_only=False)
    print("| selectivity | rows | rows x dim | exact ms | filtered_graph ms | graph recall | auto picks |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for sel in selectivities:
        width = max(1, int(n * sel))
        times: dict[str, list[float]] = defaultdict(list)
        recalls, picks = [], defaultdict(int)
        for i, q in enumerate(queries):
            start = int(rng.integers(0, n - width + 1))
            where = f"{column} BETWEEN {values[start]} AND {values[start + width - 1]}"
            coll.search(q, 10, where=where)  # parse once, outside the timings
            found = {}
            for plan in ("exact", "filtered_graph") if i % 2 else ("filtered_graph", "exact"):
                t0 = time.perf_counter()
                found[plan] = coll.search(q, 10, where=where, plan=plan).ids[0]
                times[plan].append(time.perf_counter() - t0)
            truth = found["exact"][found["exact"] >= 0]
            recalls.append(len(np.intersect1d(found["filtered_graph"], truth)) / max(1, len(truth)))
            picks[coll.explain(q, where=where).name] += 1
        print(f"| {sel:.3f} | {width} | {width * coll.dim} | {statistics.median(times['exact']) * 1e3:.2f} | "
              f"{statistics.median(times['filtered_graph']) * 1e3:.2f} | {statistics.mean(recalls):.3f} | "
              f"{dict(picks)} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--collection", type=Path, default=Path("/tmp/arxiv.vdb"))
    ap.add_argument("--efs", default="32,64,256,512")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--sweep", metavar="COLUMN", help="time exact against filtered_graph on ranges of COLUMN")
    ap.add_argument("--selectivities", default="0.002,0.005,0.01,0.02,0.03,0.05,0.08,0.12")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    coll = load_or_build(args.collection)
    if args.sweep:
        sweep(coll, args.sweep, [float(s) for s in args.selectivities.split(",")], min(args.limit, 60))
        return
    queries = pq.read_table(SHARED / "queries.parquet").to_pylist()[: args.limit]
    xq = np.load(SHARED / "queries.f32.npy")
    gt = np.load(SHARED / "gt_ids.npy")
    efs = [int(e) for e in args.efs.split(",")]
    stats: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for i, q in enumerate(queries):
        where = q["filter_sql"] or None
        truth = [t for t in gt[i, :10] if t >= 0]
        variants = [("exact", {"plan": "exact"})]
        if where is not None:
            variants += [(f"bitmap ef={e}", {"plan": "index", "ef": e}) for e in efs]
            variants += [(f"graph ef={e}", {"plan": "filtered_graph", "ef": e}) for e in efs]
            if q["selectivity"] >= 0.05:  # below, its refills cost seconds per query: not a contender
                variants += [("post_filter", {"plan": "post_filter"})]
        variants += [("auto", {})]
        for name, params in variants:
            coll.search(xq[i], 10, where=where, **params)  # warm the filter cache equally for every plan
            t0 = time.perf_counter()
            res = coll.search(xq[i], 10, where=where, **params)
            dt = time.perf_counter() - t0
            rec = len(set(res.ids[0].tolist()) & set(truth)) / max(1, len(truth))
            stats[(q["filter_band"], name)].append((dt, rec))
    bands = ["unfiltered", "~50%", "~10%", "~1%", "~0.1%", "very_low"]
    names = (["exact"] + [f"bitmap ef={e}" for e in efs] + [f"graph ef={e}" for e in efs]
             + ["post_filter", "auto"])
    print("| plan | " + " | ".join(bands) + " |")
    print("|---" * (len(bands) + 1) + "|")
    for n in names:
        cells = []
        for band in bands:
            rows = stats.get((band, n), [])
            if not rows:
                cells.append("—")
                continue
            ms = statistics.median(r[0] for r in rows) * 1e3
            rec = statistics.mean(r[1] for r in rows)
            cells.append(f"{ms:.2f} ms, {rec:.3f}")
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
