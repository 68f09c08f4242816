"""Binary codes on arXiv/MiniLM: size, recall@10 after rerank per candidate count C, scan GB/s, and where
the filtered code scan beats the exact float scan of the matching rows. One process, one run, one thread
(BLAS, FAISS and the scan), so every figure is a ratio against a baseline measured beside it.

1. Per ``bits`` (and rotation): build ``BinaryIndex`` over the 72,000 rows (timed), bytes a row.
2. Recall@10 as a function of C, unfiltered (all queries, no filter, vs ``gt_unfiltered_*``) and
   filtered (each query with its ``filter_sql``, vs ``gt_*``) per selectivity band. Tie-aware: a
   returned row counts when its exact score is >= the 10th true score - 1e-5; the denominator is
   min(10, rows passing). The scan runs once at the largest C; a smaller C is its prefix (the scan is
   deterministic, ties to the smaller row), reranked exactly.
3. Scan throughput (GB/s of codes read) on the index's 1-bit codes: our kernel, FAISS ``IndexBinaryFlat``
   on the same bytes (uint8) and numpy (``bitwise_count`` of XOR + argpartition); same queries, same k.
   Also our 2/4-bit scans and the float32 BLAS scan (``exact_search``) for scale.
4. Latency per query (one at a time, median) per band: ``BinaryIndex.search`` (default C, with the
   mask) against ``exact_search(vectors, q, 10, allow=mask)``, with the recall of each; then the same on
   seeded random masks of fixed selectivities, to place the crossover.

    python tools/binary_report.py --data ../shared/data/arxiv [--bits 1,2,4] [--json out.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one thread everywhere (set before numpy loads BLAS)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import vecdb.binary as vb  # noqa: E402
from vecdb.filters import bind, parse  # noqa: E402
from vecdb.indexes.binary_index import BinaryIndex  # noqa: E402
from vecdb.indexes.flat import exact_search  # noqa: E402

BANDS = ["unfiltered", "~50%", "~10%", "~1%", "~0.1%", "very_low"]
EPS = 1e-5
K = 10


def load(data: Path) -> dict[str, Any]:
    base = np.load(data / "base.f16.npy").astype(np.float32)
    table = pq.read_table(data / "queries.parquet")
    attrs = pq.read_table(data / "attributes.parquet")
    where = [s or None for s in table.column("filter_sql").to_pylist()]
    masks = [None if w is None else bind(parse(w), attrs.schema).evaluate(attrs) for w in where]
    return {"x": np.ascontiguousarray(base / np.linalg.norm(base, axis=1, keepdims=True)),
            "q": np.load(data / "queries.f32.npy"), "bands": table.column("filter_band").to_pylist(),
            "masks": masks, "gt": np.load(data / "gt_ids.npy"), "gt_s": np.load(data / "gt_scores.npy"),
            "gt_u": np.load(data / "gt_unfiltered_ids.npy"), "gt_u_s": np.load(data / "gt_unfiltered_scores.npy")}


def tie_recall(x: np.ndarray, q: np.ndarray, rows: np.ndarray, gt: np.ndarray, gt_s: np.ndarray) -> float:
    """Recomputed exact scores of ``rows`` against the k-th true score (tie-aware recall@K)."""
    valid = gt[:K] >= 0
    if not valid.any():
        return 1.0
    kth = gt_s[:K][valid][-1]
    got = rows[rows >= 0]
    return min(1.0, float(np.sum(x[got] @ q >= kth - EPS)) / int(valid.sum()))


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(min, median) seconds of ``repeat`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def recall_curves(d: dict[str, Any], index: BinaryIndex, cs: list[int]) -> dict[str, dict[int, float]]:
    """Mean recall@10 per C: key ``all`` (no filters) and one key per band (with the filters)."""
    x, q = d["x"], d["q"]
    out: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    cmax = max(cs)
    _, rows_u = index.scan(q, cmax, threads=1)
    for i in range(len(q)):
        for c in cs:
            hits = index.rerank(q[i: i + 1], rows_u[i: i + 1, :c], K)
            out["all"][c].append(tie_recall(x, q[i], hits.rows[0], d["gt_u"][i], d["gt_u_s"][i]))
        _, rows = index.scan(q[i: i + 1], cmax, allow=d["masks"][i], threads=1)
        for c in cs:
            hits = index.rerank(q[i: i + 1], rows[:, :c], K)
            out[d["bands"][i]][c].append(tie_recall(x, q[i], hits.rows[0], d["gt"][i], d["gt_s"][i]))
    return {key: {c: float(np.mean(v)) for c, v in per_c.items()} for key, per_c in out.items()}


def throughput(d: dict[str, Any], indexes: dict[int, BinaryIndex], nq: int, ks: list[int], repeat: int) -> list[dict]:
    """GB/s of codes scanned, single thread: ours vs FAISS IndexBinaryFlat vs numpy on the 1-bit codes."""
    rows = []
    q = d["q"][:nq]
    if 1 in indexes:
        idx1 = indexes[1]
        codes = np.ascontiguousarray(idx1.codes)
        qcodes = idx1.encoder.encode(q)
        gb = nq * codes.nbytes / 1e9
        fidx = faiss.IndexBinaryFlat(codes.shape[1] * 64)
        fidx.add(codes.view(np.uint8))
        w = idx1.encoder.kernel_weights("ip")
        for k in ks:
            ours = lambda: vb.scan(qcodes, codes, bits=1, dim=idx1.dim, weights=w, c=k, threads=1)  # noqa: E731
            theirs = lambda: fidx.search(qcodes.view(np.uint8), k)  # noqa: E731

            def numpy_scan() -> None:
                for j in range(nq):
                    h = np.bitwise_count(codes ^ qcodes[j]).sum(axis=1, dtype=np.int32)
                    np.argpartition(h, k)[:k]

            same = np.array_equal(ours()[1], theirs()[1])
            for name, fn in (("vecdb 1-bit scan", ours), ("faiss IndexBinaryFlat", theirs), ("numpy", numpy_scan)):
                t_min, t_med = best_time(fn, repeat if name != "numpy" else 1)
                rows.append({"what": name, "bits": 1, "k": k, "GB/s (best)": gb / t_min, "GB/s (median)": gb / t_med,
                             "same rows as faiss": same if name != "numpy" else ""})
    for bits, index in indexes.items():
        if bits == 1:
            continue
        codes = np.ascontiguousarray(index.codes)
        qcodes = index.encoder.encode(q)
        gb = nq * codes.nbytes / 1e9
        k = max(ks)
        t_min, t_med = best_time(lambda: vb.scan(qcodes, codes, bits=bits, dim=index.dim, c=k, threads=1,
                                                 weights=index.encoder.kernel_weights("ip"),
                                                 row_term=index._row_term), repeat)
        rows.append({"what": f"vecdb {bits}-bit scan", "bits": bits, "k": k, "GB/s (best)": gb / t_min,
                     "GB/s (median)": gb / t_med, "same rows as faiss": ""})
    gb = nq * d["x"].nbytes / 1e9
    for mode, fn in (("float32 exact_search, batch", lambda: exact_search(d["x"], q, K, "ip")),
                     ("float32 exact_search, 1 query/call", lambda: [exact_search(d["x"], q[j: j + 1], K, "ip")
                                                                     for j in range(nq)])):
        t_min, t_med = best_time(fn, max(1, repeat // 2))
        rows.append({"what": mode, "bits": 32, "k": K, "GB/s (best)": gb / t_min, "GB/s (median)": gb / t_med,
                     "same rows as faiss": ""})
    return rows


def latency(d: dict[str, Any], index: BinaryIndex, per_band: int) -> dict[str, dict[str, float]]:
    """Median ms per query (one at a time) per band: binary search (with mask) vs exact float scan."""
    out = {}
    for band in BANDS:
        members = [i for i, b in enumerate(d["bands"]) if b == band][:per_band]
        t_bin, t_ex, r_bin, matches = [], [], [], []
        for i in members:
            q, mask = d["q"][i: i + 1], d["masks"][i]
            index.search(q, K, allow=mask)
            t0 = time.perf_counter()
            hits = index.search(q, K, allow=mask)
            t_bin.append(time.perf_counter() - t0)
            exact_search(d["x"], q, K, "ip", allow=mask)
            t0 = time.perf_counter()
            exact_search(d["x"], q, K, "ip", allow=mask)
            t_ex.append(time.perf_counter() - t0)
            r_bin.append(tie_recall(d["x"], d["q"][i], hits.rows[0], d["gt"][i], d["gt_s"][i]))
            matches.append(len(d["x"]) if mask is None else int(mask.sum()))
        out[band] = {"queries": len(members), "median rows passing": float(np.median(matches)),
                     "binary ms": 1e3 * statistics.median(t_bin), "exact ms": 1e3 * statistics.median(t_ex),
                     "binary recall": float(np.mean(r_bin))}
        out[band]["speedup"] = out[band]["exact ms"] / out[band]["binary ms"]
    return out


def sweep(d: dict[str, Any], indexes: dict[int, BinaryIndex], fractions: list[float], nq: int) -> list[dict]:
    """Median ms per query (one at a time) on seeded random masks of each fraction: binary vs exact."""
    rng = np.random.default_rng(0)
    n = len(d["x"])
    out = []
    for frac in fractions:
        mask = rng.random(n) < frac if frac < 1 else None
        row: dict[str, Any] = {"selectivity": frac, "rows passing": n if mask is None else int(mask.sum())}
        for name, fn in [("exact ms", lambda q: exact_search(d["x"], q, K, "ip", allow=mask))] + [
                (f"{b}-bit ms", lambda q, index=index: index.search(q, K, allow=mask)) for b, index in indexes.items()]:
            times = []
            for i in range(nq):
                q = d["q"][i: i + 1]
                fn(q)
                t0 = time.perf_counter()
                fn(q)
                times.append(time.perf_counter() - t0)
            row[name] = 1e3 * statistics.median(times)
        out.append(row)
    return out


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                     + ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows])


def build_and_recall(d: dict[str, Any], bits: int, rotation: bool, cs: list[int], with_recall: bool,
                     ablate: bool) -> tuple[BinaryIndex, dict[str, Any]]:
    """Build one index (timed), its sizes, and (optionally) its recall curves."""
    n, dim = d["x"].shape
    index = BinaryIndex(dim, "ip", bits=bits, rotation=rotation)
    t0 = time.perf_counter()
    index.build(d["x"])
    build_s = time.perf_counter() - t0
    mem = index.memory_bytes()
    entry: dict[str, Any] = {
        "bits": bits, "rotation": rotation, "build_s": build_s, "default_candidates": index.candidates,
        "code_bytes_per_row": mem["codes"] / n, "row_term_bytes_per_row": mem["row_term"] / n,
        "encoder_bytes": mem["encoder"], "float32_bytes_per_row": 4 * dim, "ratio_codes": 4 * dim * n / mem["codes"],
        "ratio_codes_and_term": 4 * dim * n / (mem["codes"] + mem["row_term"]),
        "ratio_all": 4 * dim * n / sum(mem.values())}
    print(f"## bits={bits} rotation={rotation}: build {build_s:.1f} s; "
          f"{entry['code_bytes_per_row']:.0f} B codes + {entry['row_term_bytes_per_row']:.0f} B row term a row vs "
          f"{4 * dim} B float32: {entry['ratio_codes']:.2f}x (codes), {entry['ratio_codes_and_term']:.2f}x "
          f"(codes + term), {entry['ratio_all']:.2f}x (with the {mem['encoder'] / 1e3:.0f} kB encoder)\n")
    if with_recall:
        entry["recall"] = recall_curves(d, index, cs)
        if ablate:  # the other choice: without the term for 2+ bits, with it for 1 bit
            saved = index._row_term
            index._row_term = index.encoder.row_terms(index.codes, "ip") if saved is None else None
            entry["recall_with_row_term" if saved is None else "recall_without_row_term"] = recall_curves(d, index, cs)
            index._row_term = saved
    for key in ("recall", "recall_without_row_term", "recall_with_row_term"):
        if key in entry:
            rows = [{"queries": name, **{f"C={c}": entry[key][name][c] for c in cs}}
                    for name in ["all"] + BANDS if name in entry[key]]
            print(f"{key} @10 (`all` = every query without its filter; bands = with it)\n\n{table(rows)}\n",
                  flush=True)
    return index, entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv")
    ap.add_argument("--bits", default="1,2,4")
    ap.add_argument("--rotation", default="true", help="comma list of true/false")
    ap.add_argument("--sections", default="recall,throughput,latency,sweep")
    ap.add_argument("--candidates", default="10,20,50,100,200,300,500,1000")
    ap.add_argument("--ablate-row-term", action="store_true",
                    help="also recall with the other row-term choice (off for 2+ bits, on for 1 bit)")
    ap.add_argument("--tp-queries", type=int, default=200)
    ap.add_argument("--tp-k", default="10,100")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--latency-per-band", type=int, default=100)
    ap.add_argument("--sweep", default="0.001,0.003,0.01,0.03,0.1,0.3,1")
    ap.add_argument("--sweep-queries", type=int, default=50)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    sections = set(args.sections.split(","))
    cs = [int(c) for c in args.candidates.split(",")]
    d = load(args.data)
    n, dim = d["x"].shape
    report: dict[str, Any] = {"data": str(args.data), "n": n, "dim": dim, "queries": len(d["q"]), "builds": []}
    print(f"# binary codes on {args.data} ({n} x {dim}, {len(d['q'])} queries, one thread)\n")
    indexes: dict[int, BinaryIndex] = {}
    for rotation in [r.strip().lower() == "true" for r in args.rotation.split(",")]:
        for bits in [int(b) for b in args.bits.split(",")]:
            index, entry = build_and_recall(d, bits, rotation, cs, "recall" in sections, args.ablate_row_term)
            report["builds"].append(entry)
            if rotation and bits not in indexes:
                indexes[bits] = index
    if "throughput" in sections:
        report["throughput"] = throughput(d, indexes, args.tp_queries, [int(k) for k in args.tp_k.split(",")],
                                          args.repeat)
        print(f"## scan throughput, {args.tp_queries} queries x {n} rows, one thread\n\n"
              f"{table(report['throughput'])}\n")
    if "latency" in sections:
        report["latency"] = {}
        for bits, index in indexes.items():
            lat = report["latency"][bits] = latency(d, index, args.latency_per_band)
            print(f"## filtered search, one query per call, bits={bits} (C={index.candidates}) vs exact float scan\n")
            print(table([{"band": b, **v} for b, v in lat.items()]) + "\n", flush=True)
    if "sweep" in sections:
        report["sweep"] = sweep(d, indexes, [float(f) for f in args.sweep.split(",")], args.sweep_queries)
        print(f"## random masks, one query per call, median of {args.sweep_queries} queries: binary (default C) "
              f"vs exact float scan of the passing rows\n\n{table(report['sweep'])}\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
