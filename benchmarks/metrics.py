"""Score stored results afterwards, against the dataset itself (never against what an engine reported).

Per query and run:

- ``recall``: tie-aware. The true scores of the returned ids are **recomputed from the vectors** (float64)
  and a returned id is a hit when it passes the filter and its score is within ``EPS`` of the k-th true
  score (``>= kth - EPS * max(1, |kth|)``). Divided by ``min(k, matches)``; duplicates count once.
- ``filter_fail``: returned ids that fail the query's filter (must be 0 for every engine).
- ``short``: fewer distinct valid ids than ``min(k, matches)`` (a short result when enough rows exist).
- ``score_err``: largest |reported - recomputed| score, to spot engines reporting flattering numbers.

Queries a run never started (its run timeout passed) get no recall and are counted as ``timeouts``.

Aggregates per (run, band): mean recall, latency p50 / p95, single-thread QPS (queries / summed
latency) and batch QPS (from the batch pass), and the counts above.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa

from .datasets import BANDS, Dataset
from .engines import FilterEvaluator
from .results import Results
from .truth import true_scores

log = logging.getLogger(__name__)

EPS = 1e-5


def score(results: Results, ds: Dataset) -> pa.Table:
    """One row per (run, query) with recall, counts and latency."""
    runs = [r for r in results.runs]
    raw = {r["run_id"]: results.raw(r["run_id"]) for r in runs}
    if ds.nq != results.queries.num_rows:
        raise ValueError(f"results have {results.queries.num_rows} queries, dataset {ds.name} has {ds.nq}")
    evaluator = FilterEvaluator(ds)
    cols: dict[str, list] = defaultdict(list)
    ks = sorted({int(r["k"]) for r in runs})
    for j in range(ds.nq):
        q = ds.queries[j]
        mask = evaluator.mask(ds.filters[j])
        gt = ds.gt_ids[j]
        gt_true = true_scores(ds.base, q, gt[gt >= 0], ds.metric)
        kth = {}
        for k in ks:
            m = min(k, int(gt_true.size))
            kth[k] = (m, float(gt_true[:m].min()) if m else -np.inf)
        for r in runs:
            ids, scores, latency, errors = raw[r["run_id"]]
            k = int(r["k"])
            if errors[j] == "timeout":  # never asked (run timeout): no recall, not a short result
                for name, value in (("run_id", r["run_id"]), ("qid", j), ("recall", np.nan), ("returned", 0),
                                    ("duplicates", 0), ("filter_fail", 0), ("short", False),
                                    ("score_err", 0.0), ("latency_s", np.nan), ("error", "timeout")):
                    cols[name].append(value)
                continue
            m, threshold = kth[k]
            row = ids[j]
            valid = row >= 0
            got, first = np.unique(row[valid], return_index=True)
            rec = true_scores(ds.base, q, got, ds.metric)
            passes = np.ones(got.size, bool) if mask is None else mask[np.clip(got, 0, ds.n - 1)] & (got < ds.n)
            hits = passes & (rec >= threshold - EPS * max(1.0, abs(threshold)))
            reported = scores[j][valid][first].astype(np.float64)
            err = float(np.max(np.abs(reported - rec))) if got.size else 0.0
            cols["run_id"].append(r["run_id"])
            cols["qid"].append(j)
            cols["recall"].append(min(int(hits.sum()), m) / m if m else 1.0)
            cols["returned"].append(int(got.size))
            cols["duplicates"].append(int(valid.sum() - got.size))
            cols["filter_fail"].append(int((~passes).sum()))
            cols["short"].append(bool(got.size < m))
            cols["score_err"].append(err if np.isfinite(err) else float("inf"))
            cols["latency_s"].append(float(latency[j]))
            cols["error"].append(errors[j])
    return pa.table(dict(cols))


def _percentile(x: np.ndarray, p: float) -> float:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, p)) if x.size else float("nan")


def aggregate(per_query: pa.Table, results: Results) -> list[dict[str, Any]]:
    """Rows per (run, band) plus an ``overall`` band per run."""
    bands = np.array(results.queries.column("band").to_pylist())
    run_ids = np.array(per_query.column("run_id").to_pylist())
    qids = per_query.column("qid").to_numpy()
    data = {name: per_query.column(name).to_numpy(zero_copy_only=False)
            for name in ("recall", "filter_fail", "short", "latency_s", "score_err", "duplicates")}
    error_text = per_query.column("error").to_pylist()
    errors = np.array([e is not None and e != "timeout" for e in error_text])
    timeouts = np.array([e == "timeout" for e in error_text])
    out = []
    for r in results.runs:
        sel_run = run_ids == r["run_id"]
        batch = r.get("batch") or {}
        for band in [*BANDS, "overall"]:
            sel = sel_run & ((bands[qids] == band) if band != "overall" else True)
            n = int(sel.sum())
            if n == 0:
                continue
            lat = data["latency_s"][sel]
            answered = np.isfinite(lat)
            if band == "overall":
                b_n = sum(v[0] for v in batch.values())
                b_wall = sum(v[1] for v in batch.values())
            else:
                b_n, b_wall = batch.get(band, (0, 0.0))
            out.append({
                "run_id": r["run_id"], "engine": r["engine"], "note": r.get("note", ""), "build_id": r["build_id"],
                "search_params": r["search_params"], "k": int(r["k"]), "band": band, "queries": n,
                "recall": float(np.nanmean(data["recall"][sel])) if (~timeouts[sel]).any() else float("nan"),
                "p50_ms": _percentile(lat, 50) * 1e3, "p95_ms": _percentile(lat, 95) * 1e3,
                "mean_ms": float(np.mean(lat[answered]) * 1e3) if answered.any() else float("nan"),
                "qps": float(answered.sum() / lat[answered].sum()) if answered.any() and lat[answered].sum() > 0
                else float("nan"),
                "batch_qps": float(b_n / b_wall) if b_wall > 0 else float("nan"),
                "filter_fail": int(data["filter_fail"][sel].sum()), "short": int(data["short"][sel].sum()),
                "duplicates": int(data["duplicates"][sel].sum()), "unanswered": int(errors[sel].sum()), "timeouts": int(timeouts[sel].sum()),
                "partial": r.get("partial"),
                "max_score_err": float(np.max(data["score_err"][sel])), "run_error": r.get("error"),
            })
    return out


def best_at(rows: list[dict], engine: str, band: str, k: int, target: float, key: str = "qps") -> dict | None:
    """The row of ``engine`` in ``band`` at ``k`` with the highest ``key`` among those with recall >= target."""
    ok = [r for r in rows if r["engine"] == engine and r["band"] == band and r["k"] == k
          and r["recall"] >= target and np.isfinite(r[key]) and not r["run_error"]]
    return max(ok, key=lambda r: r[key]) if ok else None


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (recall, qps) points not beaten on both axes, by increasing recall."""
    front: list[tuple[float, float]] = []
    for rec, qps in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or qps > front[-1][1]:
            front.append((rec, qps))
    return front[::-1]
