"""``python -m benchmarks distributed``: a sharded collection (``vecdb.distributed``) with 1, 2, 4 ... shards
against one collection, in the same run on the same machine.

Per shard count: build time (Ray Data routing + one Ray task per shard, or in-process with ``--local-build``),
then per selectivity band the batch QPS and recall@k of the single collection, the sharded collection in
local mode (threads) and in Ray mode (one actor per shard), the shards pruned, and the cost of the Ray hop
(a no-op call to every actor, and single-query latency Ray vs local). Writes ``distributed.json`` and
``distributed.md`` under ``--out``.

    python -m benchmarks distributed --dataset arxiv --shards 1,2,4 --out results/distributed-arxiv

On one machine the shards share its cores: the figures show the overheads (routing, merging, the Ray hop)
and the per-shard costs, not a speed-up; see vecdb/distributed/NOTES.md for what they imply at scale.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .datasets import BANDS, DataOptions, load_dataset

log = logging.getLogger(__name__)


def _recall(gt: np.ndarray, ids: np.ndarray, k: int) -> float:
    hits = total = 0
    for t, r in zip(gt[:, :k], ids[:, :k]):
        t = t[t >= 0]
        hits += int(np.isin(r[r >= 0], t).sum())
        total += len(t)
    return hits / max(total, 1)


def _timed_batches(search, q: np.ndarray, filters: list, k: int, repeat: int) -> tuple[float, np.ndarray]:
    best, ids = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = search(q, k, filters)
        best = min(best, time.perf_counter() - t0)
        ids = res.ids
    return len(q) / best, ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks distributed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="arxiv")
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--cpus", type=int, default=min(2, os.cpu_count() or 1), help="CPUs of the local Ray")
    ap.add_argument("--repeat", type=int, default=2, help="batch passes per band (the best is kept)")
    ap.add_argument("--single-queries", type=int, default=50, help="one-query calls for the latency of the hop")
    ap.add_argument("--local-build", action="store_true", help="build in-process instead of with Ray")
    ap.add_argument("--partition", default=None, help="shard by this attribute column instead of the id hash")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--cache-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    import ray

    import vecdb
    import vecdb.distributed as vd

    default = DataOptions()
    ds = load_dataset(args.dataset, DataOptions(data_dir=args.data_dir or default.data_dir,
                                                cache_dir=args.cache_dir or default.cache_dir,
                                                max_queries=args.queries))
    work = Path(tempfile.mkdtemp(prefix="vecdb-dist-", dir=args.workdir))
    args.out.mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(vecdb.__file__).resolve().parents[1]),
                                       "RAY_USAGE_STATS_ENABLED": "0"}})
    hnsw = {"M": args.M, "ef_construction": args.ef_construction}
    bands = ds.bands
    k = args.k
    out: dict = {"dataset": ds.name, "partition": args.partition, "n": ds.n, "dim": ds.dim, "nq": ds.nq, "k": k, "cpus": args.cpus,
                 "machine_cpus": os.cpu_count(), "hnsw": hnsw, "runs": []}
    try:
        attrs = ds.attributes if ds.attributes is not None else pa.table({})
        if "id" in attrs.column_names:
            attrs = attrs.drop(["id"])
        table = attrs.append_column("id", pa.array(np.arange(ds.n, dtype=np.int64))).append_column(
            "vector", pa.FixedSizeListArray.from_arrays(pa.array(ds.base.ravel()), ds.dim))
        source = work / "input.parquet"
        pq.write_table(table, source, row_group_size=65_536)
        del table

        t0 = time.perf_counter()
        one = vecdb.create(work / "single", ds.dim, ds.metric)
        one.add(ds.base, attrs if attrs.num_columns else None, ids=np.arange(ds.n))
        one.build_index("hnsw", **hnsw)
        single_build = time.perf_counter() - t0
        log.info("single collection built in %.1f s", single_build)

        def band_rows(search) -> dict:
            rows = {}
            for band in BANDS:
                sel = [i for i, b in enumerate(bands) if b == band]
                if not sel:
                    continue
                q = ds.queries[sel]
                filters = [ds.filters[i] for i in sel]
                qps, ids = _timed_batches(search, q, filters, k, args.repeat)
                rows[band] = {"queries": len(sel), "qps": qps, "recall": _recall(ds.gt_ids[sel], ids, k)}
            return rows

        single = band_rows(lambda q, kk, f: one.search(q, kk, where=f))
        out["single"] = {"build_s": single_build, "bands": single}
        lat_q = ds.queries[: args.single_queries]
        lat_f = ds.filters[: args.single_queries]

        def latency(search) -> float:
            t0 = time.perf_counter()
            for i in range(len(lat_q)):
                search(lat_q[i:i + 1], k, lat_f[i])
            return (time.perf_counter() - t0) / max(len(lat_q), 1) * 1e3

        out["single"]["latency_ms"] = latency(lambda q, kk, f: one.search(q, kk, where=f))
        for shards in [int(s) for s in args.shards.split(",")]:
            path = work / f"sharded-{shards}"
            report = vd.build(source, path, shards=shards, metric=ds.metric, index="hnsw", index_options=hnsw,
                              ray=not args.local_build, partition=args.partition,
                              progress=lambda *a: None)
            log.info("%d shard(s) built in %.1f s", shards, report.seconds["total"])
            run = {"shards": shards, "build": report.seconds, "shard_seconds": list(report.shard_seconds),
                   "shard_rows": list(report.shard_rows), "build_mode": report.mode}
            pruned = {}
            for mode in ("local", "ray"):
                coll = vd.open(path, ray=(mode == "ray"))
                run[mode] = {"bands": band_rows(lambda q, kk, f: coll.search(q, kk, where=f))}
                run[mode]["latency_ms"] = latency(lambda q, kk, f: coll.search(q, kk, where=f))
                if mode == "ray":
                    actors = coll._backend.actors
                    t0 = time.perf_counter()
                    for _ in range(50):
                        ray.get([a.ping.remote() for a in actors])
                    run["ray_ping_all_ms"] = (time.perf_counter() - t0) / 50 * 1e3
                    t0 = time.perf_counter()
                    for _ in range(50):
                        ray.get(actors[0].ping.remote())
                    run["ray_ping_one_ms"] = (time.perf_counter() - t0) / 50 * 1e3
                else:
                    res = coll.search(ds.queries, k, where=list(ds.filters))
                    for band in BANDS:
                        sel = [i for i, b in enumerate(bands) if b == band]
                        if sel:
                            pruned[band] = float(res.shards_pruned[sel].mean())
                coll.close()
            run["pruned_mean"] = pruned
            out["runs"].append(run)
            shutil.rmtree(path)
            (args.out / "distributed.json").write_text(json.dumps(out, indent=1))
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "distributed.md").write_text(markdown(out))
    print(markdown(out))
    return 0


def markdown(out: dict) -> str:
    lines = [f"## {out['dataset']}: {out['n']:,} x {out['dim']}, {out['nq']} queries, k={out['k']}, "
             f"HNSW M={out['hnsw']['M']} efC={out['hnsw']['ef_construction']}; local Ray with {out['cpus']} CPUs "
             f"on a {out['machine_cpus']}-core machine", "",
             "| setup | build s | band | QPS (batch) | recall@k | shards pruned (mean) |", "|---|---|---|---|---|---|"]
    for band, row in out["single"]["bands"].items():
        lines.append(f"| one collection | {out['single']['build_s']:.1f} | {band} | {row['qps']:.0f} | "
                     f"{row['recall']:.3f} | - |")
    for run in out["runs"]:
        for mode in ("local", "ray"):
            for band, row in run[mode]["bands"].items():
                lines.append(f"| {run['shards']} shard(s), {mode} | {run['build']['total']:.1f} | {band} | "
                             f"{row['qps']:.0f} | {row['recall']:.3f} | {run['pruned_mean'].get(band, 0):.2f} |")
    lines += ["", "| setup | one-query latency ms | Ray no-op hop ms (one actor / all) | build: route s, shards s, "
              "slowest shard add+index s |", "|---|---|---|---|"]
    lines.append(f"| one collection | {out['single']['latency_ms']:.2f} | - | - |")
    for run in out["runs"]:
        slow = max(run["shard_seconds"], key=lambda s: s["total"])
        lines.append(f"| {run['shards']} shard(s) local | {run['local']['latency_ms']:.2f} | - | "
                     f"{run['build']['route']:.1f}, {run['build']['shards']:.1f}, "
                     f"{slow['add']:.1f}+{slow['index']:.1f} |")
        lines.append(f"| {run['shards']} shard(s) Ray | {run['ray']['latency_ms']:.2f} | "
                     f"{run['ray_ping_one_ms']:.2f} / {run['ray_ping_all_ms']:.2f} | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
