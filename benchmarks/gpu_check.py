"""GPU check for a machine with a GPU: installs nothing, needs FAISS' GPU build (README "GPU machines").

    python benchmarks/gpu_check.py            # synthetic 1M x 128 and ../shared/data/arxiv; < 8 minutes
    python benchmarks/gpu_check.py --smoke    # tiny sizes on the CPU: checks this script itself

1. Correctness against the CPU oracle (``exact_search``): for each GPU kind (``flat``, ``ivf``, ``ivf_pq``,
   ``cagra`` where FAISS has cuVS) built with ``device="gpu"``, filtered searches with ``device="gpu"``
   in every selectivity band return k hits when k rows match, every hit passes its filter; the exact
   plan on the GPU equals the CPU oracle (tie-aware); the collection reopens and answers ``device="cpu"``.
2. Timing, GPU against CPU at equal recall: the same index searched with ``device="gpu"`` and
   ``device="cpu"`` (IVF: one ``nprobe``, the smallest reaching the target recall; CAGRA: GPU
   ``itopk`` and CPU ``ef`` each the smallest reaching it), batch sizes 1, 64, 1,024, 10,000, per band;
   and with ``device="auto"`` (the CPU's options), where the planner places each batch: "auto / best"
   is its QPS over the better device's. "auto picks" is what ``explain`` says for the batch.
   Every cell stops after ``--cell-seconds``; the whole run stops timing at ``--budget`` seconds.
The table is printed last; exit status 1 if a correctness check failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vecdb  # noqa: E402
from vecdb.indexes import device as dev  # noqa: E402
from vecdb.indexes.flat import exact_search  # noqa: E402

BANDS = (0.001, 0.01, 0.1, 0.5, 1.0)  # fraction of rows passing: u < band * U
U = 1_000_000
BATCHES = (1, 64, 1024, 10_000)
K = 10
TARGET = 0.95


def synthetic(n: int, dim: int, nq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters (1,000 centres), queries drawn the same way."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    x = centres[rng.integers(0, 1000, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    q = centres[rng.integers(0, 1000, nq)] + 0.5 * rng.normal(size=(nq, dim)).astype(np.float32)
    return x.astype(np.float32), q.astype(np.float32)


def arxiv(path: Path, nq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    if not (path / "base.f16.npy").exists():
        return None
    x = np.load(path / "base.f16.npy").astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(x), nq), rng.integers(0, len(x), nq)
    q = (x[a] + x[b]) / 2  # out-of-sample, in-distribution queries
    return x, (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def where(band: float) -> str | None:
    return None if band >= 1.0 else f"u < {int(band * U)}"


def recall(found: np.ndarray, truth_scores: np.ndarray, found_scores: np.ndarray, eps: float = 1e-3) -> float:
    """Tie-aware: a hit counts when its score reaches the k-th true score (minus eps)."""
    kth = truth_scores[:, -1:]
    ok = (found >= 0) & (found_scores >= kth - eps * np.maximum(1.0, np.abs(kth)))
    return float(ok.sum() / max(1, (truth_scores > -np.inf).sum()))


def timed(fn, batch: int, queries: np.ndarray, cell_seconds: float) -> float:
    """Queries per second over batches of ``batch`` queries, until ``cell_seconds`` or the queries run out."""
    done, start = 0, time.perf_counter()
    fn(queries[:min(batch, 64)])  # warm-up (GPU resources, numba)
    start = time.perf_counter()
    for lo in range(0, len(queries), batch):
        fn(queries[lo:lo + batch])
        done += len(queries[lo:lo + batch])
        if time.perf_counter() - start > cell_seconds:
            break
    return done / (time.perf_counter() - start)


class Check:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def __call__(self, ok: bool, what: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"FAIL {what}", flush=True)


def run_dataset(name: str, x: np.ndarray, q: np.ndarray, metric: str, kinds: list[tuple[str, dict]], args, check: Check,
                rows: list[dict], deadline: float, device: str) -> None:
    n, dim = x.shape
    print(f"\n== {name}: {n:,} x {dim}, {len(q):,} queries, metric {metric}", flush=True)
    u = np.random.default_rng(1).integers(0, U, n)
    tmp = Path(tempfile.mkdtemp(prefix="vecdb-gpu-check-"))
    try:
        coll = vecdb.create(tmp / name, dim=dim, metric=metric)
        coll.add(x, {"u": u})
        vectors = coll.snapshot.store.vectors
        n_check = min(64, len(q))
        truth = {}
        for band in BANDS:  # CPU oracle for the correctness sample; GPU gathered exact for the timing set
            mask = None if band >= 1.0 else u < band * U
            truth[band] = exact_search(vectors, q[:n_check], K, metric, allow=mask)
        for kind, options in kinds:
            t0 = time.perf_counter()
            coll.build_index(kind, device=device, **options)
            build_s = time.perf_counter() - t0
            print(f"-- {kind} {options}: built on the {coll.index_info['device'].upper()} in {build_s:.1f} s", flush=True)
            check(coll.index_info["device"] == device, f"{name}/{kind}: built on {coll.index_info['device']}")
            # correctness: every band, device=gpu
            for band in BANDS:
                res = coll.search(q[:n_check], k=K, where=where(band), device=device)
                matches = int((u < band * U).sum()) if band < 1.0 else n
                check(bool((res.counts == min(K, matches)).all()), f"{name}/{kind}/band {band}: short results")
                hit = res.ids[res.ids >= 0]
                check(band >= 1.0 or bool((u[hit] < band * U).all()), f"{name}/{kind}/band {band}: a hit fails the filter")
                plan = coll.explain(q[:1], where=where(band), device=device)
                if plan.name == "exact":
                    r = recall(res.ids, truth[band].scores, _scores(res, metric))
                    check(r >= 0.999, f"{name}/{kind}/band {band}: exact plan on the GPU recall {r:.4f} < 1")
            reopened = vecdb.open(coll.root)
            res = reopened.search(q[:8], k=K, device="cpu")
            check(bool((res.counts == K).all()), f"{name}/{kind}: reopened, device='cpu' short")
            # timing at equal recall
            search_opts = _equal_recall_options(coll, kind, q[:n_check], truth[1.0], metric, device)
            for band in BANDS:
                for batch in BATCHES:
                    if time.perf_counter() > deadline:
                        rows.append({"dataset": name, "kind": kind, "band": band, "batch": batch, "skipped": True})
                        continue
                    nq = min(len(q), max(batch, 64 if batch == 1 else batch))
                    qs = q[:nq]
                    cell = {"dataset": name, "kind": kind, "band": band, "batch": batch, "build_s": round(build_s, 1)}
                    for dv in (device, "cpu", "auto"):  # auto: the planner places each batch itself
                        opts = search_opts["cpu" if dv == "auto" else dv]
                        fn = lambda b, dv=dv, opts=opts: coll.search(b, k=K, where=where(band), device=dv, **opts)  # noqa: E731
                        cell[f"qps_{dv}"] = timed(fn, batch, qs, args.cell_seconds)
                        sample = coll.search(q[:n_check], k=K, where=where(band), device=dv, **opts)
                        cell[f"recall_{dv}"] = recall(sample.ids, truth[band].scores, _scores(sample, metric))
                    cell["auto"] = coll.explain(qs[:batch], where=where(band)).params.get("device", "cpu")
                    rows.append(cell)
                    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in cell.items()}), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _scores(res, metric: str) -> np.ndarray:
    """Result scores back in the index layer's "higher is better" form (l2: negated squared distances)."""
    s = np.asarray(res.scores, dtype=np.float32)
    return np.where(res.ids >= 0, -s if metric == "l2" else s, -np.inf)


def _equal_recall_options(coll, kind: str, q: np.ndarray, truth, metric: str, device: str) -> dict[str, dict]:
    """Per device, the cheapest search option reaching TARGET recall unfiltered (the same for both where
    the engines compute the same thing: IVF lists are the same on either device)."""
    if kind == "flat":
        return {device: {}, "cpu": {}}
    if kind in ("ivf", "ivf_pq"):
        for nprobe in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
            res = coll.search(q, k=K, device="cpu", nprobe=nprobe)
            if recall(res.ids, truth.scores, _scores(res, metric)) >= TARGET:
                break
        return {device: {"nprobe": nprobe}, "cpu": {"nprobe": nprobe}}
    out = {}
    for dv in dict.fromkeys((device, "cpu")):
        for ef in (16, 32, 64, 128, 256, 512):
            res = coll.search(q, k=K, device=dv, ef=ef)
            if recall(res.ids, truth.scores, _scores(res, metric)) >= TARGET:
                break
        out[dv] = {"ef": ef}
    return out


def table(rows: list[dict], device: str) -> str:
    head = (f"| dataset | kind | band | batch | QPS {device} | QPS cpu | speed-up | QPS auto | auto / best | "
            f"recall {device} / cpu / auto | auto picks |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['dataset']} | {r['kind']} | {r['band']} | {r['batch']} | skipped (time) |" + " |" * 6)
            continue
        g, c, a = r[f"qps_{device}"], r["qps_cpu"], r["qps_auto"]
        lines.append(f"| {r['dataset']} | {r['kind']} | {r['band']} | {r['batch']:,} | {g:,.0f} | {c:,.0f} | "
                     f"{g / c:.1f}x | {a:,.0f} | {a / max(g, c):.2f} | {r[f'recall_{device}']:.3f} / "
                     f"{r['recall_cpu']:.3f} / {r['recall_auto']:.3f} | {r['auto']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (device='cpu'): checks the script")
    p.add_argument("--n", type=int, default=1_000_000, help="synthetic rows (default 1M)")
    p.add_argument("--nq", type=int, default=10_000, help="queries (default 10,000)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "arxiv"), help="the arxiv directory")
    p.add_argument("--cell-seconds", type=float, default=1.0, help="time per table cell and device")
    p.add_argument("--out", help="also write the device info, the correctness results and the rows here (JSON)")
    p.add_argument("--budget", type=float, default=300.0,
                   help="seconds after which synthetic timing cells are skipped (arxiv: 100 more)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    info = vecdb.device_info()
    print("device info:", json.dumps(info), flush=True)
    device = "cpu" if args.smoke else "gpu"
    if args.smoke:
        args.n, args.nq, args.cell_seconds = min(args.n, 20_000), min(args.nq, 1024), min(args.cell_seconds, 0.2)
    elif dev.gpu_count() == 0:
        print("no GPU visible to FAISS (faiss_build={}): nothing to check here; see README 'GPU machines'"
              .format(info["faiss_build"]))
        return 2
    kinds: list[tuple[str, dict]] = [("flat", {}), ("ivf", {}), ("ivf_pq", {})]
    if info["cagra"] or args.smoke:
        kinds.append(("cagra", {"graph_degree": 32, "intermediate_graph_degree": 64}))
    check = Check()
    rows: list[dict] = []
    deadline = start + args.budget
    x, q = synthetic(args.n, 128, args.nq)
    run_dataset(f"synthetic-{args.n // 1000}k", x, q, "l2", kinds, args, check, rows, deadline, device)
    del x, q
    data = arxiv(Path(args.data), args.nq)
    if data is None:
        print(f"\n{args.data} not found: arxiv skipped", flush=True)
    else:
        x, q = data
        if args.smoke:
            x = x[:args.n]
        run_dataset("arxiv", x, q, "cosine", kinds, args, check, rows, start + args.budget + 100, device)
    elapsed = time.perf_counter() - start
    print(f"\ncorrectness: {check.passed} checks passed, {len(check.failures)} failed" +
          "".join(f"\n  - {f}" for f in check.failures))
    print(f"elapsed {elapsed:.0f} s; k={K}; recall target {TARGET} (unfiltered, tie-aware); faiss "
          f"{info['faiss_version']} {info['faiss_build']} build, GPUs: "
          f"{', '.join(g.get('name', '?') for g in info['gpus']) or 'none'}\n")
    print(table(rows, device))
    if args.out:
        Path(args.out).write_text(json.dumps({"device_info": info, "elapsed_s": round(elapsed, 1), "k": K,
                                              "target_recall": TARGET, "checks_passed": check.passed,
                                              "failures": check.failures, "rows": rows}, indent=1))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
