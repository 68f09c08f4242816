"""Multi-vector benchmark: MUVERA recall@k against exact Chamfer and queries per second, per candidate count.

Builds a multi-vector collection from a data set in the ``arxiv-tokens`` layout (doc_tokens.f16.npy,
doc_offsets.npy, attributes.parquet, query_tokens.f16.npy, query_offsets.npy, queries.parquet with
``filter_sql``, gt_ids.npy / gt_scores.npy), then, in one process and one run:

1. the exact Chamfer scan (``chamfer_exact``, the oracle) over every query with its filter, timed;
2. ``search`` for each candidate count C, timed the same way;
3. tie-aware recall@k: a returned id counts when its Chamfer score (recomputed here in numpy) is at
   least the k-th exact score - 1e-5; per query the denominator is min(k, rows passing the filter);
4. the correlation of FDE inner products with Chamfer scores (queries x all docs).

Both modes are timed: ``batch`` (all queries in one call) and ``single`` (one query per call). Every
timing is the best of ``--repeat`` runs, and the exact scan is timed both before and after the MUVERA
runs (best of all), so a machine whose load changes during the run does not flatter MUVERA.
Threads: numba's default (every core) for the Chamfer kernels of both paths; on a machine shared with
other jobs, set ``OPENBLAS_NUM_THREADS=1`` (OpenBLAS threads thrash on the small FDE products there).

    python -m benchmarks multivector --dataset arxiv-tokens --candidates 50,100,200,400 --out results/muvera
    vecdb bench multivector --dataset arxiv-tokens-slice --out results/muvera-slice

Datasets: ``arxiv-tokens`` (../shared/data/arxiv-tokens), ``arxiv-tokens-slice`` (bundled in data/),
or a folder in the same layout. Writes ``summary.md``, ``report.json`` and ``recall_qps.png`` to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pyarrow.parquet as pq

import vecdb
from vecdb.kernels.multivector import chamfer_pairs
from vecdb.multivector import FDEConfig, FDEEncoder

EPS = 1e-5


def load(data: Path) -> dict[str, Any]:
    attrs = pq.read_table(data / "attributes.parquet")
    queries = pq.read_table(data / "queries.parquet")
    return {
        "tokens": np.load(data / "doc_tokens.f16.npy").astype(np.float32),
        "offsets": np.load(data / "doc_offsets.npy"),
        "ids": attrs.column("id").to_numpy(), "attributes": attrs.drop(["id"]),
        "q": np.load(data / "query_tokens.f16.npy").astype(np.float32),
        "q_offsets": np.load(data / "query_offsets.npy"),
        "where": [s or None for s in queries.column("filter_sql").to_pylist()],
        "bands": queries.column("filter_band").to_pylist(),
        "n_match": queries.column("n_match").to_numpy(),
        "gt_ids": np.load(data / "gt_ids.npy"),
    }


def chamfer_numpy(d: dict[str, Any], j: int, ids: np.ndarray, row_of: np.ndarray) -> np.ndarray:
    """Chamfer of query j with docs ``ids`` (-1 -> -inf), in plain numpy (independent of the kernel)."""
    q = d["q"][d["q_offsets"][j]: d["q_offsets"][j + 1]]
    out = np.full(ids.shape, -np.inf)
    for c, i in enumerate(ids):
        if i >= 0:
            r = row_of[i]
            out[c] = (q @ d["tokens"][d["offsets"][r]: d["offsets"][r + 1]].T).max(axis=1).sum()
    return out


def recall(d: dict[str, Any], ids: np.ndarray, exact_ids: np.ndarray, k: int, row_of: np.ndarray) -> np.ndarray:
    """Per-query tie-aware recall@k of ``ids`` against the exact answer ``exact_ids``."""
    out = np.empty(ids.shape[0])
    for j in range(ids.shape[0]):
        truth = chamfer_numpy(d, j, exact_ids[j, :k], row_of)
        want = min(k, int(d["n_match"][j]), int((exact_ids[j, :k] >= 0).sum()))
        if want == 0:
            out[j] = 1.0
            continue
        kth = truth[want - 1]
        got = chamfer_numpy(d, j, ids[j, :k], row_of)
        out[j] = min(want, int((got >= kth - EPS).sum())) / want
    return out


def timed(fn, queries: tuple[np.ndarray, np.ndarray], where: list, mode: str, repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs over all queries, and the ids of the last run."""
    q, qo = queries
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        if mode == "batch":
            ids = fn((q, qo), where).ids
        else:
            ids = np.stack([fn(q[qo[j]: qo[j + 1]], where[j]).ids[0] for j in range(qo.shape[0] - 1)])
        best = min(best, time.perf_counter() - t0)
    return best, ids


def correlation(d: dict[str, Any], config: FDEConfig, n_queries: int) -> dict[str, float]:
    """Pearson / Spearman of FDE inner product vs Chamfer over (query, doc) pairs, overall and per query."""
    enc = FDEEncoder(config)
    fd = enc.encode_documents(d["tokens"], d["offsets"])
    nq = min(n_queries, d["q_offsets"].shape[0] - 1)
    qo = d["q_offsets"][: nq + 1]
    fq = enc.encode_queries(d["q"], qo)
    approx = fq @ fd.T
    rows = np.tile(np.arange(fd.shape[0], dtype=np.int64), (nq, 1))
    exact = np.empty(approx.shape, np.float32)
    chamfer_pairs(d["q"], qo, d["tokens"], d["offsets"], rows, exact)
    rank = lambda a: np.argsort(np.argsort(a, axis=1), axis=1).astype(np.float64)  # noqa: E731
    per_q = [np.corrcoef(approx[i], exact[i])[0, 1] for i in range(nq)]
    ra, re = rank(approx), rank(exact)
    per_q_s = [np.corrcoef(ra[i], re[i])[0, 1] for i in range(nq)]
    return {"queries": nq, "pairs": int(approx.size),
            "pearson_all": float(np.corrcoef(approx.ravel(), exact.ravel())[0, 1]),
            "pearson_per_query_mean": float(np.mean(per_q)), "spearman_per_query_mean": float(np.mean(per_q_s))}


ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"arxiv-tokens": ROOT.parent / "shared" / "data" / "arxiv-tokens",
            "arxiv-tokens-slice": ROOT / "data" / "arxiv-tokens-slice"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks multivector", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="arxiv-tokens-slice",
                    help=f"{', '.join(DATASETS)}, or a folder in the arxiv-tokens layout")
    ap.add_argument("--r-reps", type=int, default=3)
    ap.add_argument("--k-sim", type=int, default=2)
    ap.add_argument("--d-proj", type=int, default=None, help="default: min(128, dim), i.e. no projection")
    ap.add_argument("--d-final", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--inner", default="flat",
                    help="comma-separated inner indexes with options, e.g. flat,hnsw:M=16,ivf:nprobe=32")
    ap.add_argument("--candidates", default="50,100,200,400")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--modes", default="batch,single")
    ap.add_argument("--corr-queries", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="MUVERA timings: best of this many runs")
    ap.add_argument("--out", type=Path, default=Path("results/multivector"),
                    help="folder for summary.md, report.json and recall_qps.png")
    args = ap.parse_args(argv)
    data = DATASETS.get(args.dataset, Path(args.dataset))
    if not (data / "doc_tokens.f16.npy").is_file():
        ap.error(f"no multi-vector data set at {str(data)!r}")
    d = load(data)
    k, cands, modes = args.k, [int(c) for c in args.candidates.split(",")], args.modes.split(",")
    queries, where = (d["q"], d["q_offsets"]), d["where"]
    row_of = np.empty(int(d["ids"].max()) + 1, np.int64)
    row_of[d["ids"]] = np.arange(d["ids"].shape[0])
    report: dict[str, Any] = {"data": str(data), "k": k, "docs": int(d["ids"].shape[0]), "repeat": args.repeat,
                              "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                              "numba_threads": numba.get_num_threads(),
                              "doc_vectors": int(d["tokens"].shape[0]), "queries": int(d["q_offsets"].shape[0] - 1),
                              "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        coll = vecdb.create(Path(tmp) / "mv.vdb", dim=d["tokens"].shape[1], metric="ip", multivector=True)
        t0 = time.perf_counter()
        coll.add((d["tokens"], d["offsets"]), attributes=d["attributes"], ids=d["ids"])
        report["add_s"] = time.perf_counter() - t0
        coll.chamfer_exact(queries, k, where)  # warm up: numba cache load, filter binding
        exact: dict[str, dict[str, float]] = {}

        def time_exact() -> np.ndarray:
            for mode in modes:
                secs, ids = timed(lambda q, w: coll.chamfer_exact(q, k, w), queries, where, mode, 1)
                if secs < exact.get(mode, {}).get("seconds", np.inf):
                    exact[mode] = {"seconds": secs, "qps": report["queries"] / secs}
            return ids

        exact_ids = time_exact()
        report["exact"] = exact  # filled in again after the MUVERA runs (best of both timings)
        report["exact_recall_vs_dataset_gt"] = float(recall(d, exact_ids, d["gt_ids"], k, row_of).mean())
        for spec in args.inner.split(","):
            inner, *opts = spec.split(":")
            inner_options = {name: int(value) for name, value in (o.split("=") for o in opts)}
            t0 = time.perf_counter()
            coll.build_index("muvera", r_reps=args.r_reps, k_sim=args.k_sim, d_proj=args.d_proj,
                             d_final=args.d_final, seed=args.seed, inner=inner, **inner_options)
            build_s = time.perf_counter() - t0
            info = coll.index_info
            for c in cands:
                coll.search(queries, k, where, candidates=c)  # warm up
                for mode in modes:
                    secs, ids = timed(lambda q, w: coll.search(q, k, w, candidates=c), queries, where, mode,
                                      args.repeat)
                    rec = recall(d, ids, exact_ids, k, row_of)
                    by_band = {b: float(rec[[i for i, x in enumerate(d["bands"]) if x == b]].mean())
                               for b in sorted(set(d["bands"]))}
                    report["runs"].append({
                        "inner": spec, "fde": info["fde"], "fde_dim": info["fde_dim"],
                        "fde_bytes_per_doc": info["fde_bytes_per_row"], "build_s": build_s, "candidates": c,
                        "mode": mode, "seconds": secs, "qps": report["queries"] / secs,
                        "recall": float(rec.mean()),
                        "recall_by_band": by_band})
        time_exact()  # again at the end: the exact baseline is the best of both
        for run in report["runs"]:
            run["exact_qps"] = exact[run["mode"]]["qps"]
            run["speedup_vs_exact"] = exact[run["mode"]]["seconds"] / run["seconds"]
        report["correlation"] = correlation(d, FDEConfig.from_json(coll.index_info["fde"]), args.corr_queries)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    (args.out / "summary.md").write_text("# Multi-vector benchmark\n\n" + markdown(report) + "\n")
    plot(report, args.out / "recall_qps.png")
    print(args.out / "summary.md")
    return 0


def plot(report: dict[str, Any], path: Path) -> None:
    """Recall@k against QPS over the candidate counts, one line per inner index and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in report["runs"]:
        series.setdefault((run["inner"], run["mode"]), []).append(run)
    for (inner, mode), runs in series.items():
        ax.plot([r["recall"] for r in runs], [r["qps"] for r in runs], marker="o", label=f"muvera {inner} ({mode})")
        for r in runs:
            ax.annotate(f"C={r['candidates']}", (r["recall"], r["qps"]), fontsize=7)
    for mode, v in report["exact"].items():
        ax.axhline(v["qps"], linestyle="--", color="grey", linewidth=1)
        ax.annotate(f"exact Chamfer ({mode})", (ax.get_xlim()[0], v["qps"]), fontsize=7)
    ax.set_xlabel(f"recall@{report['k']} vs exact Chamfer")
    ax.set_ylabel("queries per second")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict[str, Any]) -> str:
    lines = [f"data {report['data']}: {report['docs']} docs, {report['doc_vectors']} vectors, "
             f"{report['queries']} queries (with their filters), k = {report['k']}; numba threads "
             f"{report['numba_threads']}, OPENBLAS_NUM_THREADS={report['openblas_threads']}, "
             f"best of {report['repeat']}",
             "exact Chamfer scan (best of the timings before and after): "
             + ", ".join(f"{m} {v['qps']:.1f} QPS" for m, v in report["exact"].items())
             + f" (recall vs the data set's ground truth {report['exact_recall_vs_dataset_gt']:.4f})", "",
             "| inner | r_reps | k_sim | d_proj | d_final | FDE dim | FDE bytes/doc | C | mode | recall@k "
             "| recall@k unfiltered | QPS | exact QPS | x exact |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        f = r["fde"]
        lines.append(f"| {r['inner']} | {f['r_reps']} | {f['k_sim']} | {f['d_proj']} | {f['d_final'] or '-'} | "
                     f"{r['fde_dim']} | {r['fde_bytes_per_doc']} | {r['candidates']} | {r['mode']} | "
                     f"{r['recall']:.4f} | {r['recall_by_band'].get('unfiltered', float('nan')):.4f} | "
                     f"{r['qps']:.1f} | {r['exact_qps']:.1f} | {r['speedup_vs_exact']:.1f} |")
    c = report["correlation"]
    lines += ["", f"FDE inner product vs Chamfer ({c['queries']} queries x all docs, {c['pairs']} pairs): "
              f"Pearson {c['pearson_all']:.4f} overall, per query mean Pearson {c['pearson_per_query_mean']:.4f}, "
              f"Spearman {c['spearman_per_query_mean']:.4f}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
