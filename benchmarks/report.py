"""Score a results folder and write ``summary.md``, ``metrics/`` and ``plots/`` into it.

``report([dir])`` handles one run; a folder whose sub-folders are runs (``run --dataset a,b``), or several
folders, give one summary with a section per dataset and the cost-vs-N plot across them.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from . import plots
from .datasets import BANDS, DataOptions, load_dataset
from .metrics import aggregate, best_at, score
from .results import Results, load_results

log = logging.getLogger(__name__)

TARGETS = (0.9, 0.95)


def run_dirs(paths: list[Path]) -> list[Path]:
    """Folders holding a ``meta.json``: the paths themselves, or their direct sub-folders."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "meta.json").is_file():
            out.append(p)
        else:
            out.extend(sorted(d for d in p.iterdir() if (d / "meta.json").is_file()) if p.is_dir() else [])
    if not out:
        raise FileNotFoundError(f"no results folder (with meta.json) in {[str(p) for p in paths]}")
    return out


def _fmt(x: float | None, digits: int = 0) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x:,.{digits}f}"


def _setting(row: dict, multi_build: set[str]) -> str:
    s = " ".join(f"{k}={v}" for k, v in row["search_params"].items()) or "default"
    if row["engine"] in multi_build:
        s = row["build_id"].split(":", 1)[1] + " " + s
    if row.get("partial"):
        s += f" (run timeout: {row['partial']} queries)"
    return s


def _band_selectivity(results: Results) -> dict[str, float]:
    bands = np.array(results.queries.column("band").to_pylist())
    sel = results.queries.column("selectivity").to_numpy()
    return {b: float(np.median(sel[bands == b])) for b in BANDS if (bands == b).any()}


def best_table(rows: list[dict], k: int, multi_build: set[str]) -> list[str]:
    """Markdown: per band and engine, best QPS at each recall target and the ratio to ``exact``."""
    head = ("| band | engine | QPS @0.9 | × exact | p50 / p95 ms | setting | QPS @0.95 | × exact | setting "
            "| batch QPS @0.9 | max recall |")
    lines = [head, "|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|"]
    for band in BANDS:
        exact = {t: best_at(rows, "exact", band, k, t) for t in TARGETS}
        for engine in plots.engine_order(rows):
            mine = [r for r in rows if r["engine"] == engine and r["band"] == band and r["k"] == k]
            if not mine:
                continue
            cells = [band, engine + (f" ({mine[0]['note']})" if mine[0]["note"] else "")]
            for t in TARGETS:
                b = best_at(rows, engine, band, k, t)
                ratio = b["qps"] / exact[t]["qps"] if b and exact[t] else None
                cells.append(_fmt(b["qps"] if b else None))
                cells.append(_fmt(ratio, 2) if ratio else "—")
                if t == TARGETS[0]:
                    cells.append(f"{_fmt(b['p50_ms'], 2)} / {_fmt(b['p95_ms'], 2)}" if b else "—")
                cells.append(_setting(b, multi_build) if b else "—")
            bb = best_at(rows, engine, band, k, TARGETS[0], key="batch_qps")
            cells.append(_fmt(bb["batch_qps"] if bb else None))
            cells.append(_fmt(max(r["recall"] for r in mine), 3))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _default_row(rows: list[dict], k: int, band: str, engine: str = "vecdb") -> dict | None:
    """``engine``'s run at its default settings (search_params == {}; the first build's if several) in ``band``."""
    run_id = next((r["run_id"] for r in rows if r["engine"] == engine and r["k"] == k and r["search_params"] == {}),
                  None)
    return next((r for r in rows if r["run_id"] == run_id and r["band"] == band), None) if run_id else None


def batch_equal_recall_table(rows: list[dict], k: int, engine: str = "vecdb") -> list[str]:
    """Per band: ``engine``'s batch QPS at its default setting (recall R) against each other engine's best
    batch QPS among its settings reaching recall >= R (every thread; cell: the ratio, then that QPS)."""
    others = [e for e in plots.engine_order(rows) if e != engine]
    lines = ["| band | R | batch QPS | " + " | ".join(others) + " |", "|---|---:|---:|" + "---:|" * len(others)]
    for band in BANDS:
        d = _default_row(rows, k, band, engine)
        if d is None or not np.isfinite(d.get("batch_qps", np.nan)):
            continue
        cells = [band, f"{d['recall']:.3f}", _fmt(d["batch_qps"])]
        for e in others:
            b = best_at(rows, e, band, k, d["recall"] - 1e-9, key="batch_qps")
            cells.append(f"{_fmt(d['batch_qps'] / b['batch_qps'], 2)} ({_fmt(b['batch_qps'])})" if b else "never reaches R")
        lines.append("| " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def head_to_head_table(results: Results, rows: list[dict]) -> list[str]:
    """The runner's head-to-head pass (``runner._head_to_head``): per engine, its setting with the highest
    batch QPS among those whose recall in the band's own queries is at least vecdb's default's there (R),
    timed in turns with vecdb's default; ratio: vecdb's QPS over the engine's (the medians of the repeats),
    lowest-highest: over each repeat's pair."""
    lines = ["| band | engine | setting | recall (R) | vecdb batch QPS | engine batch QPS | ratio "
             "| ratio per repeat: lowest-highest |", "|---|---|---|---:|---:|---:|---:|---:|"]

    def recall(engine: str, build_id: str, params: dict, k: int, band: str) -> float | None:
        row = next((r for r in rows if r["engine"] == engine and r["build_id"] == build_id and r["k"] == k
                    and r["band"] == band and r["search_params"] == params and not r["run_error"]), None)
        return row["recall"] if row is not None and np.isfinite(row["recall"]) else None

    by_engine: dict[tuple[str, str], list[dict]] = {}
    for p in results.pairs:
        by_engine.setdefault((p["band"], p["engine"]), []).append(p)
    for (band, engine), pairs in by_engine.items():
        ref = pairs[0]["reference"]
        r_ref = recall(ref["engine"], ref["build_id"], ref["params"], pairs[0]["k"], band)
        if r_ref is None:
            continue
        timed = [p for p in pairs if p.get("engine_s")]
        reaching = [p for p in timed
                    if (recall(engine, p["build_id"], p["params"], p["k"], band) or -1.0) >= r_ref - 1e-9]
        if not reaching:
            skipped = [p for p in pairs if not p.get("engine_s")]
            why = "never reaches R" + (f" among the settings timed ({len(skipped)} too slow or failed)"
                                       if skipped else "")
            lines.append(f"| {band} | {engine} | — | ({r_ref:.3f}) | — | — | {why} | — |")
            continue
        best = min(reaching, key=lambda p: float(np.median(p["engine_s"])))
        n = best["queries"]
        ref_qps, qps = n / float(np.median(best["reference_s"])), n / float(np.median(best["engine_s"]))
        ratios = [b / a for a, b in zip(best["reference_s"], best["engine_s"]) if a > 0]
        got = recall(engine, best["build_id"], best["params"], best["k"], band)
        setting = ", ".join(f"{key}={val}" for key, val in best["params"].items()) or "default"
        lines.append(f"| {band} | {engine} | {setting} | {got:.3f} ({r_ref:.3f}) | {ref_qps:,.0f} | {qps:,.0f} | "
                     f"{ref_qps / qps:.2f} | {min(ratios):.2f}-{max(ratios):.2f} |")
    return lines if len(lines) > 2 else []


TARGET_SLACK = 0.03  # a recall target holds when it delivers between t and t + this (issue #16)


def targets_table(rows: list[dict], k: int, engine: str = "vecdb") -> list[str]:
    """Markdown: per band, what each ``target_recall=t`` setting of ``engine`` delivered: its recall (marked
    ``below`` under t, ``over`` past t + ``TARGET_SLACK`` but short of 1.0, which the exact scan delivers
    wherever the planner finds it cheaper) and single-thread QPS. The first build's runs."""
    mine = [r for r in rows if r["engine"] == engine and r["k"] == k
            and set(r["search_params"]) == {"target_recall"}]
    first = {}
    for r in mine:  # the first build's run of each target (several builds: the others left out)
        first.setdefault(r["search_params"]["target_recall"], r["build_id"])
    targets = sorted(first)
    if not targets:
        return []
    lines = ["| band | " + " | ".join(f"target {t:g}: recall | QPS" for t in targets) + " |",
             "|---|" + "---:|---:|" * len(targets)]
    for band in BANDS:
        cells, seen = [band], False
        for t in targets:
            r = next((r for r in mine if r["band"] == band and r["search_params"]["target_recall"] == t
                      and r["build_id"] == first[t]), None)
            if r is None or r["run_error"] or not np.isfinite(r["recall"]):
                cells += ["—", "—"]
                continue
            seen = True
            # 1.000 is not marked: where the exact scan is the cheaper plan there is no beam to trim
            over = t + TARGET_SLACK + 1e-9 < r["recall"] < 1 - 1e-9
            mark = " below" if r["recall"] < t - 1e-9 else " over" if over else ""
            cells += [f"{r['recall']:.3f}{mark}", _fmt(r["qps"])]
        if seen:
            lines.append("| " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def _max_recall(rows: list[dict], engine: str, band: str, k: int) -> float | None:
    rec = [r["recall"] for r in rows if r["engine"] == engine and r["band"] == band and r["k"] == k
           and not r["run_error"] and np.isfinite(r["recall"])]
    return max(rec) if rec else None


def default_vs_all_table(rows: list[dict], k: int, multi_build: set[str], engine: str = "vecdb",
                         yardstick: float = 0.95) -> list[str]:
    """Markdown: per band, ``engine`` at its default settings (recall R, QPS Q) against every other engine's best
    single-thread QPS among its settings reaching recall >= R (cell: Q ÷ that QPS, then the QPS), and against the
    issue's yardstick: the faster of faiss-hnsw's best setting reaching ``yardstick`` and the exact scan."""
    others = [e for e in plots.engine_order(rows) if e != engine]
    cols = [f"{engine}, best setting", *others]
    lines = ["| band | R | Q | p50 ms | yardstick QPS | Q ÷ yardstick | " + " | ".join(cols) + " |",
             "|---|---:|---:|---:|---|---:|" + "---:|" * len(cols)]
    for band in BANDS:
        d = _default_row(rows, k, band, engine)
        if d is None:
            continue
        q, r = d["qps"], d["recall"]
        cells = [band]
        if d["run_error"] or not np.isfinite(r) or not np.isfinite(q):
            why = f"run error: {d['run_error']}" if d["run_error"] else "no answered query (run timeout)"
            lines.append("| " + " | ".join([band, why, *["—"] * (4 + len(cols))]) + " |")
            continue
        partial = f" (run timeout: {d['partial']} queries)" if d.get("partial") else ""
        cells += [f"{r:.3f}", _fmt(q) + partial, _fmt(d["p50_ms"], 2)]
        yard = [(b, e) for e in ("faiss-hnsw", "exact") if (b := best_at(rows, e, band, k, yardstick - 1e-9))]
        if yard:
            best, who = max(yard, key=lambda be: be[0]["qps"])
            setting = _setting(best, multi_build)
            cells.append(f"{_fmt(best['qps'])} ({who}{'' if setting == 'default' else ' ' + setting})")
            cells.append(_fmt(q / best["qps"], 2) if r >= yardstick - 1e-9 else f"— (R < {yardstick})")
        else:
            cells += [f"— (neither reaches {yardstick})", "—"]
        for e in [engine, *others]:
            if not any(x["engine"] == e and x["band"] == band and x["k"] == k for x in rows):
                cells.append("—")
                continue
            b = best_at(rows, e, band, k, r - 1e-9)  # recall >= R, without float-equality trouble
            if b:
                cells.append(f"{_fmt(q / b['qps'], 2)} ({_fmt(b['qps'])})")
            else:
                top = _max_recall(rows, e, band, k)
                if top is not None:
                    cells.append(f"never reaches R (max recall {top:.3f})")
                elif any(x["run_error"] for x in rows if x["engine"] == e and x["band"] == band and x["k"] == k):
                    cells.append("run error")
                else:
                    cells.append("no answered query (run timeout)")
        lines.append("| " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return [f"(no `{engine}` run at its default settings at k = {k})"]
    notes = {r["engine"]: r["note"] for r in rows if r.get("note")}
    if notes:
        lines += ["", "Engines: " + "; ".join(f"{e}: {n}" for e, n in notes.items())]
    return lines


def other_k_table(rows: list[dict], k: int, multi_build: set[str]) -> list[str]:
    lines = ["| band | engine | setting | recall | QPS | p50 / p95 ms | batch QPS |",
             "|---|---|---|---:|---:|---:|---:|"]
    for band in BANDS:
        for r in (r for r in rows if r["k"] == k and r["band"] == band):
            lines.append(f"| {band} | {r['engine']} | {_setting(r, multi_build)} | {r['recall']:.3f} | "
                         f"{_fmt(r['qps'])} | {_fmt(r['p50_ms'], 2)} / {_fmt(r['p95_ms'], 2)} | "
                         f"{_fmt(r['batch_qps'])} |")
    return lines


def correctness_table(rows: list[dict]) -> list[str]:
    lines = ["| engine | runs | filter failures | short results | duplicates | unanswered | run errors "
             "| runs timed out | max score error |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for engine in plots.engine_order(rows):
        mine = [r for r in rows if r["engine"] == engine and r["band"] == "overall"]
        lines.append(f"| {engine} | {len(mine)} | {sum(r['filter_fail'] for r in mine)} | "
                     f"{sum(r['short'] for r in mine)} | {sum(r['duplicates'] for r in mine)} | "
                     f"{sum(r['unanswered'] for r in mine)} | {sum(bool(r['run_error']) for r in mine)} | "
                     f"{sum(bool(r['partial']) for r in mine)} | "
                     f"{max(r['max_score_err'] for r in mine):.2g} |")
    return lines


def builds_table(results: Results) -> list[str]:
    """``RSS after queries``: the most any of the build's runs held over the process before the build
    (index, data it keeps, and what its searches touched or allocated), per engine."""
    lines = ["| family | build settings | engines | build s | RSS Δ MB | RSS after queries Δ MB | on disk MB | error |",
             "|---|---|---|---:|---:|---|---:|---|"]
    for b in results.builds:
        after = {}
        for r in results.runs:
            if r.get("build_id") == b["build_id"] and r.get("rss_after_bytes") and b.get("rss_before_bytes"):
                after[r["engine"]] = max(after.get(r["engine"], 0), r["rss_after_bytes"] - b["rss_before_bytes"])
        cell = ", ".join(f"{e} {v / 2**20:.0f}" for e, v in after.items()) or "-"
        lines.append(f"| {b['family']} | {json.dumps(b['params'])} | {', '.join(b['engines'])} | "
                     f"{_fmt(b.get('build_s'), 1)} | {_fmt((b.get('rss_delta_bytes') or 0) / 2**20, 0)} | {cell} | "
                     f"{_fmt((b.get('disk_bytes') or 0) / 2**20, 1)} | {b.get('error') or ''} |")
    return lines


def memory_table(results: Results) -> list[str]:
    """Resident memory of each saved build reopened in a fresh process (``benchmarks.memory``), and its
    ratio to FAISS HNSW's (``faiss-hnsw``) when it was measured in the same run."""
    if not results.memory:
        return []
    faiss = [m["after_queries_bytes"] for m in results.memory if m.get("engine") == "faiss-hnsw" and not m.get("error")]
    lines = ["| engine | build | open MB | after queries MB | queries | × faiss-hnsw | per-process MB (left out) | error |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for m in results.memory:
        if m.get("error"):
            lines.append(f"| {m['engine']} | {m['build_id']} | - | - | - | - | - | {m['error']} |")
            continue
        ratio = _fmt(m["after_queries_bytes"] / faiss[0], 2) if faiss else "-"
        lines.append(f"| {m['engine']} | {m['build_id']} | {m['open_bytes'] / 2**20:.0f} | "
                     f"{m['after_queries_bytes'] / 2**20:.0f} | {m['queries']} | {ratio} | "
                     f"{m['warm_bytes'] / 2**20:.0f} | |")
    return lines


def batch_scaling_table(results: Results) -> list[str]:
    """Batch QPS of each engine's default setting with every thread against one thread, per band: the
    runner's scaling pass (``runner.scaling_batch``: 1,000 queries a band) beside the band's own queries in
    one call (results written before the scaling pass have only the latter)."""
    threads = results.meta.get("threads")
    lines = [f"| engine | band | queries (filters) | batch QPS, {threads} threads | batch QPS, 1 thread | ratio "
             f"| ratio per repeat: lowest-highest | band's own queries: ratio |", "|---|---|---:|---:|---:|---:|---:|---:|"]

    def qps(timing: list | None) -> float:
        return timing[0] / timing[1] if timing and timing[1] > 0 else float("nan")

    for r in results.runs:
        one = r.get("batch_one_thread") or {}
        scaled = r.get("scaling") or {}
        many_s, one_s = scaled.get(str(threads), {}), scaled.get("1", {})
        for band, timing in (r.get("batch") or {}).items():
            if band not in one:
                continue
            own = qps(timing) / qps(one[band])
            if band in many_s and band in one_s:
                n, _, distinct = many_s[band][:3]
                many, single = qps(many_s[band]), qps(one_s[band])
                # each repeat's walls (results written before they were kept have none): repeat i of each
                # thread count ran in the same stretch of time
                many_turns, one_turns = many_s[band][3:], one_s[band][3:]
                ratios = [a / b for a, b in zip(one_turns[0], many_turns[0]) if b > 0] \
                    if many_turns and one_turns else []
                spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "—"
                lines.append(f"| {r['engine']} | {band} | {n:,} ({distinct}) | {many:.0f} | {single:.0f} | "
                             f"{many / single:.2f} | {spread} | {_fmt(own, 2)} |")
            elif np.isfinite(own):
                lines.append(f"| {r['engine']} | {band} | {timing[0]:,} (own) | {qps(timing):.0f} | "
                             f"{qps(one[band]):.0f} | {own:.2f} | — | {own:.2f} |")
    return lines if len(lines) > 2 else []


def cost_points(results: Results, rows: list[dict]) -> list[dict]:
    """Per engine: cheapest overall latency at recall@10 >= 0.9 (NaN if never reached) and the build time
    (of that setting's build, else the engine's first build; None without an index), at this N."""
    n = results.meta["dataset"]["n"]
    build_s = {b["build_id"]: b.get("build_s") for b in results.builds}
    out = []
    k = min(r["k"] for r in rows) if rows else 10
    first_build = {}
    for r in results.runs:
        first_build.setdefault(r["engine"], r["build_id"])
    for engine in plots.engine_order(rows):
        best = best_at(rows, engine, "overall", k, 0.9)
        build = best["build_id"] if best else first_build.get(engine)
        seconds = build_s.get(build)
        out.append({"engine": engine, "n": n, "dataset": results.meta["dataset"]["name"],
                    "latency_ms": best["mean_ms"] if best else float("nan"),
                    "build_s": seconds if seconds is not None and seconds > 0.01 else None})
    return out


DEFAULT_SERIES = "vecdb (default)"


def cost_points_by_band(results: Results, rows: list[dict], multi_build: set[str] = frozenset(),
                        target: float = 0.9) -> list[dict]:
    """Per band and engine: mean single-thread latency (ms) of the cheapest setting with recall >= ``target`` in
    that band (NaN if none reaches it), plus vecdb's default setting as its own series whatever its recall."""
    n = results.meta["dataset"]["n"]
    name = results.meta["dataset"]["name"]
    k = min(r["k"] for r in rows) if rows else 10
    out = []
    for band in BANDS:
        if not any(r["band"] == band and r["k"] == k for r in rows):
            continue
        for engine in plots.engine_order(rows):
            best = best_at(rows, engine, band, k, target)  # highest QPS = lowest mean latency (QPS = 1000 / mean ms)
            out.append({"dataset": name, "n": n, "band": band, "engine": engine, "series": engine,
                        "latency_ms": best["mean_ms"] if best else float("nan"),
                        "recall": best["recall"] if best else _max_recall(rows, engine, band, k),
                        "setting": _setting(best, multi_build) if best else None, "default": False})
        d = _default_row(rows, k, band)
        if d is not None and not d["run_error"] and np.isfinite(d["mean_ms"]):
            out.append({"dataset": name, "n": n, "band": band, "engine": "vecdb", "series": DEFAULT_SERIES,
                        "latency_ms": d["mean_ms"], "recall": d["recall"], "setting": "default", "default": True})
    return out


def cost_by_band_table(points: list[dict]) -> list[str]:
    """Markdown: rows band x engine, columns N (one per dataset), cells mean latency ms of the cheapest setting
    reaching recall 0.9 ("—" if none, "not run" without a run) with that setting; the default series shows its
    recall instead. Last column: latency at the largest N ÷ at the smallest."""
    datasets = sorted({(p["n"], p["dataset"]) for p in points})
    dup = {n for n, _ in datasets if sum(m == n for m, _ in datasets) > 1}
    head = [f"N = {n:,}" + (f" ({name})" if n in dup else "") for n, name in datasets]
    lines = ["| band | engine | " + " | ".join(head) + " | × first → last N |",
             "|---|---|" + "---:|" * (len(head) + 1)]
    series: list[str] = []
    for p in points:
        if p["series"] not in series:
            series.append(p["series"])
    for band in BANDS:
        for s in series:
            cell = {(p["n"], p["dataset"]): p for p in points if p["band"] == band and p["series"] == s}
            if not cell:
                continue
            cells, lat = [band, s], []
            for key in datasets:
                p = cell.get(key)
                ok = p is not None and np.isfinite(p["latency_ms"])
                lat.append(p["latency_ms"] if ok else None)
                if p is None:
                    cells.append("not run")
                elif not ok:
                    cells.append("—")
                elif p["default"]:
                    cells.append(f"{_fmt(p['latency_ms'], 3)} (R {p['recall']:.3f})")
                else:
                    cells.append(f"{_fmt(p['latency_ms'], 3)} ({p['setting']})")
            cells.append(_fmt(lat[-1] / lat[0], 1) if len(lat) > 1 and lat[0] and lat[-1] else "—")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def report_one(path: Path, data: DataOptions | None = None) -> tuple[list[str], list[dict], list[dict]]:
    """Score one results folder, write its metrics, plots and summary; returns (markdown lines, cost points,
    cost points per band)."""
    results = load_results(path)
    meta = results.meta
    opts = data or DataOptions(**{k: Path(v) if k != "max_queries" else v
                                  for k, v in meta["data_options"].items()})
    ds = load_dataset(meta["dataset_name"], dataclasses.replace(opts, max_queries=meta["data_options"]["max_queries"]))
    per_query = score(results, ds)
    rows = aggregate(per_query, results)
    (path / "metrics").mkdir(exist_ok=True)
    pq.write_table(per_query, path / "metrics" / "per_query.parquet")
    with open(path / "metrics" / "aggregate.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["run_id"])
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "search_params": json.dumps(r["search_params"])})
    (path / "plots").mkdir(exist_ok=True)
    ks = sorted({r["k"] for r in rows})
    name = meta["dataset"]["name"]
    files = []
    if ks:
        k = ks[0]
        files.append(plots.recall_vs_qps(rows, path / "plots" / f"recall_qps_k{k}.png", k,
                                         f"{name}: recall vs QPS per selectivity band (Pareto fronts)"))
        files.append(plots.qps_vs_selectivity(rows, _band_selectivity(results), path / "plots" /
                                              f"qps_selectivity_k{k}.png", k, f"{name}: QPS vs selectivity"))
    points = cost_points(results, rows)
    cost_plot = plots.cost_vs_n(points, path / "plots" / "cost_vs_n.png", f"{name}: cost vs N")
    if cost_plot is not None:  # one dataset is one N: drawn only by a report over several (``report``)
        files.append(cost_plot)
    builds_per_family: dict[str, int] = {}
    for b in results.builds:
        builds_per_family[b["family"]] = builds_per_family.get(b["family"], 0) + 1
    multi = {r["engine"] for r in results.runs if builds_per_family.get(r["family"], 0) > 1}
    band_points = cost_points_by_band(results, rows, multi)
    d = meta["dataset"]
    started = dt.datetime.fromtimestamp(meta["started"]).isoformat(timespec="seconds")
    v = meta["versions"]
    lines = [
        f"## {name}: N = {d['n']:,}, dim {d['dim']}, {d['metric']}, {d['nq']} queries",
        "",
        f"- command: `{meta['command']}` (grid `{meta['profile']}`, k = {meta['ks']}, {meta['threads']} threads "
        f"for builds and batches, 1 for latency; BLAS limited via {meta['blas_threads_via']}; "
        f"run timeout {meta.get('run_timeout_s')} s)",
        f"- started {started}, wall {_fmt(meta.get('wall_s'), 0)} s; git {meta.get('git')}",
        f"- machine: {meta['machine']['cpu']}, {meta['machine']['usable_cpus']} usable CPUs, "
        f"{_fmt((meta['machine']['memory_bytes'] or 0) / 2**30, 1)} GiB",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "- engines skipped (not installed): " + (", ".join(meta["engines_skipped"]) or "none"),
        "- queries per band: " + ", ".join(f"{b} {c}" for b, c in d["bands"].items()),
        *(["- vecdb's builds were calibrated on the dataset's held-out sample queries and the filters they "
           "carried (`--calibrate-sample`, `Collection.calibrate(queries, where=...)`), not the build-time query "
           "model"] if meta.get("calibrate_sample") else []),
        "",
    ]
    if ks:
        lines += ["### vecdb at its default settings against every engine at equal recall", "",
                  f"vecdb's default run (search settings {{}}; the first build's if several) gives recall@{ks[0]} R "
                  "and single-thread QPS Q per band. Each engine cell: Q ÷ the engine's best single-thread QPS among "
                  "its settings with recall >= R in that band (above 1 = vecdb's default is faster), then that QPS; "
                  "\"never reaches R\" when no setting does. Yardstick: the faster of faiss-hnsw at its best "
                  "setting reaching recall 0.95 and the exact scan (Q ÷ yardstick only where R >= 0.95). "
                  "\"vecdb, best setting\" compares the default with vecdb's own search grid.", "",
                  *default_vs_all_table(rows, ks[0], multi), ""]
        if any(r["engine"] == "vecdb-indexes" for r in rows):
            lines += ["### Several indexes on one field: the planner's pick against each index forced", "",
                      "`vecdb-indexes`: one field with an HNSW and a 2-bit binary index, the planner picking one (or "
                      "the exact scan) per filter by cost; `-hnsw` / `-binary` force one on the same build. Cells as "
                      "above: the pick's QPS ÷ each engine's best QPS at recall >= R (at least 1 = the pick is as "
                      "fast as that index forced).", "",
                      *default_vs_all_table(rows, ks[0], multi, engine="vecdb-indexes"), ""]
        lines += [f"### Best single-thread QPS at recall@{ks[0]} >= 0.9 / 0.95 (× exact = ratio to the exact "
                  "pre-filter scan in the same band and run)", "", *best_table(rows, ks[0], multi), ""]
        targets = targets_table(rows, ks[0])
        if targets:
            lines += ["### Recall targets: what `target_recall=t` delivers per band", "",
                      f"vecdb searched with `target_recall=t` (the beam its calibration says reaches t at the "
                      f"filter's selectivity; exact plans deliver 1.0): recall@{ks[0]} and single-thread QPS. The "
                      f"target holds between t and t + {TARGET_SLACK} (\"below\" / \"over\" mark a miss; 1.000 is the exact "
                      f"scan where the planner finds it cheaper than any beam, and is not marked).", "",
                      *targets, ""]
    for k in ks[1:]:
        lines += [f"### k = {k} (default search settings)", "", *other_k_table(rows, k, multi), ""]
    lines += ["### Correctness (all runs; filter failures must be 0)", "", *correctness_table(rows), "",
              "### Builds", "", *builds_table(results), ""]
    batch_eq = batch_equal_recall_table(rows, ks[0])
    if batch_eq:
        lines += [f"### Batches at equal recall: vecdb's default against each engine's best batch reaching its recall "
                  f"(k = {ks[0]}, {meta.get('threads')} threads)", "",
                  "Each band's queries in one call. Cell: vecdb's batch QPS ÷ the engine's best batch QPS among its "
                  "settings with recall >= R, then that QPS.", "", *batch_eq, ""]
    pairs = head_to_head_table(results, rows)
    if pairs:
        lines += [f"### Unfiltered batches head to head: vecdb's default against each engine at equal recall, timed "
                  f"in turns (k = {ks[0]}, {meta.get('threads')} threads)", "",
                  "The unfiltered band's batch of 1,000 queries (`runner.scaling_batch`), vecdb's default and each "
                  "setting of each engine taking turns, each repeat's two timings from the same stretch of time "
                  "(`runner._head_to_head`). Per engine: its fastest setting whose recall in the band's own queries "
                  "is at least R, vecdb's default's; ratio: vecdb's batch QPS ÷ the engine's (medians of the "
                  "repeats).", "", *pairs, ""]
    memory = memory_table(results)
    if memory:
        lines += ["### Resident memory: each build reopened in a fresh process, every query answered once",
                  "", "RSS after opening the saved build and answering every query (one thread, default "
                  "setting, filters applied) minus RSS before opening it, after a warm-up on the same files "
                  "(per-process costs such as compiled kernels: the last column). `benchmarks/memory.py`.",
                  "", *memory, ""]
    scaling = batch_scaling_table(results)
    if scaling:
        lines += ["### Batches: every thread against one (default settings)", "",
                  "Each band as a batch of 1,000 queries (the dataset's query vectors in turn, each with the "
                  "band's filters in turn: `runner.scaling_batch`; filters: how many distinct), with every thread "
                  "and with one, taking turns; ratio per repeat: each repeat's one-thread time over its every-thread "
                  "time (the two run in the same stretch of time), the lowest and highest over the repeats: how "
                  "far the machine's noise moves the ratio; the last column: the band's own queries in one call. "
                  "A band is left out (shown as `own`) for an engine whose 1,000-query call would take over "
                  "`runner.SCALING_MAX_S`.", "", *scaling, ""]
    lines += ["### Files", ""]
    lines += [f"- `{f.relative_to(path)}`" for f in files]
    lines += ["- `metrics/aggregate.csv` (per run and band), `metrics/per_query.parquet` (per run and query)", ""]
    (path / "summary.md").write_text("# Benchmark summary\n\n" + "\n".join(lines))
    return lines, points, band_points


def report(paths: list[Path], out: Path | None = None, data: DataOptions | None = None) -> Path:
    """Write the summary (and plots) for one or more results folders; returns the summary's path."""
    dirs = run_dirs(paths)
    if len(dirs) == 1 and out is None:
        report_one(dirs[0], data)
        return dirs[0] / "summary.md"
    out = Path(out) if out is not None else (Path(paths[0]) if len(paths) == 1 else Path("results/report"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    sections, points, band_points = [], [], []
    for d in dirs:
        lines, pts, bpts = report_one(d, data)
        sections += lines + [f"(full summary: `{d}/summary.md`)", ""]
        points += pts
        band_points += bpts
    plots.cost_vs_n(points, out / "plots" / "cost_vs_n.png", "cost vs N across datasets")
    plots.cost_vs_n_by_band(band_points, out / "plots" / "cost_vs_n_by_band.png",
                            "cost vs N per selectivity band (cheapest setting at recall@10 >= 0.9)")
    cost = ["## Cost vs N (cheapest setting at overall recall@10 >= 0.9)", "",
            "| dataset | N | engine | mean latency ms | build s |", "|---|---:|---|---:|---:|"]
    cost += [f"| {p['dataset']} | {p['n']:,} | {p['engine']} | {_fmt(p['latency_ms'], 3)} | {_fmt(p['build_s'], 1)} |"
             for p in sorted(points, key=lambda p: (p["engine"], p["n"]))]
    cost += ["", "## Cost vs N per band (mean single-thread latency ms of the cheapest setting at recall@10 >= 0.9 "
             "in that band)", "",
             "\"—\": no setting reaches 0.9 at that N (\"not run\": the engine was not in that run). `vecdb (default)`: vecdb's default settings whatever their "
             "recall (R = its recall in the band). Last column: latency at the largest N ÷ at the smallest.", "",
             *cost_by_band_table(band_points)]
    text = "# Benchmark summary\n\n" + "\n".join(
        sections + cost + ["", "Plots: `plots/cost_vs_n.png`, `plots/cost_vs_n_by_band.png`", ""])
    (out / "summary.md").write_text(text)
    return out / "summary.md"
