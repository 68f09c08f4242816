"""Define -> run -> store raw: the grid of build settings x search settings x k, over every query.

For each engine family and each of its build settings the index is built once (time, RSS delta, bytes
written) and shared by the family's engines. Each engine then runs every search setting at the first
k (10) and its default setting at the other k values (100). A run is:

- **latency**: every query alone, one thread everywhere (``set_threads(1)``), after a short warm-up;
  ``time.perf_counter()`` around the engine call, which includes evaluating the filter;
- **batch**: the queries of each band in one ``search_batch`` call with ``threads`` threads, the median
  of ``repeat`` timings (each the mean of calls made back to back for at least ``BATCH_MIN_S``); the
  default setting also on one thread, the two taking turns;
- **scaling** (the default setting): per band, a batch of ``SCALING_QUERIES`` queries (``scaling_batch``)
  with ``threads`` threads and with one, taking turns as above.

After every family has run, **head to head** (``_head_to_head``): the unfiltered band's scaling batch with
``threads`` threads, vecdb's default setting and each search setting of every other family's engines (their
first builds, kept until then) taking turns as above, so each ratio compares two timings from the same stretch of
time. Runs minutes apart compare less well on a shared machine: synthetic-1M's vecdb default and
``target_recall=0.95`` (the same beam) measured 11,972 and 15,328 batch QPS in one run.

A run whose latency pass exceeds ``run_timeout_s`` stops starting new queries (like ann-benchmarks'
per-run timeout): the rest are recorded as ``timeout``, the run as partial, and its batch pass skipped.
The query files are in random order, so the answered prefix is a fair sample of every band.

Raw ids/scores of the latency pass and all timings go to the results folder (``benchmarks.results``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from . import engines as eng
from .datasets import BANDS, DataOptions, Dataset, describe, load_dataset
from .results import ResultWriter, disk_bytes, git_commit, machine, package_versions, rss_bytes
from .threads import cpu_count, set_threads

log = logging.getLogger(__name__)

PROFILES = ("smoke", "full")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One benchmark run. ``overrides`` replace search-grid values by parameter name (e.g. ``ef``)."""

    dataset: str
    engines: tuple[str, ...]
    out: Path
    profile: str = "full"
    ks: tuple[int, ...] = (10, 100)
    threads: int = dataclasses.field(default_factory=cpu_count)
    data: DataOptions = dataclasses.field(default_factory=DataOptions)
    warmup: int = 10
    batch: bool = True
    overrides: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    workdir: Path | None = None
    command: str = ""
    run_timeout_s: float | None = 60.0
    repeat: int = 1  # latency passes per run (each query's fastest kept) and timed calls per batch (median)
    memory: bool = True  # each saved build reopened in a fresh process: resident memory after the queries
    calibrate_sample: bool = False  # vecdb builds calibrated on the dataset's held-out sample queries


def search_grid(cls: type[eng.Engine], profile: str, overrides: dict[str, tuple]) -> list[dict]:
    """The engine's search settings for ``profile``, with any overridden parameter's values replaced."""
    grid = [dict(p) for p in cls.search_grid[profile]]
    for name, values in overrides.items():
        if any(name in p for p in grid):
            keep_default = grid[0] == {}  # the engine's own defaults (vecdb: its recall target) stay first
            base = {k: v for k, v in grid[0].items() if k != name}
            grid = ([{}] if keep_default else []) + [{**base, name: v} for v in values]
    return grid


def _queries_table(ds: Dataset) -> pa.Table:
    return pa.table({"qid": np.arange(ds.nq, dtype=np.int32), "band": ds.bands,
                     "match_count": ds.match_counts.astype(np.int64), "selectivity": ds.selectivity,
                     "filter": [f or "" for f in ds.filters]})


BATCH_WARMUP = 8  # queries per band in the untimed batch call before the timed one
BATCH_MIN_S = 0.2  # a timed batch call is made again until this long has passed (its mean time is kept): one
# call of a small band takes ~2-10 ms, where a tick of the shared machine moves it by more than the
# differences the tables compare
BATCH_MAX_CALLS = 50  # ... at most this many calls
SCALING_QUERIES = 1000  # queries in each band's batch of the scaling pass (``scaling_batch``)
SCALING_MAX_S = 3.0  # ... skipped for an engine whose band batch predicts a longer call than this (one thread)
_EVICT_BYTES = 64 << 20  # twice the 32 MiB L3 of the machine the reports were made on


def _evict_caches() -> None:
    """Read through more memory than the CPU caches hold, so every run starts as cold as the first:
    otherwise the later settings of an engine find the rows its earlier runs touched still cached
    (measured: up to 2x on the low-selectivity bands), which favours engines run at many settings."""
    buf = getattr(_evict_caches, "buf", None)
    if buf is None:
        buf = _evict_caches.buf = np.ones(_EVICT_BYTES // 8, dtype=np.float64)
    float(buf.sum())


def _warmup_queries(ds: Dataset, warmup: int) -> list[int]:
    """The first ``warmup`` queries and the first two of every band, so one-time costs of each code path
    (JIT loading, lazily built state) land before the measured pass of every setting, not in the first."""
    picked = list(range(min(warmup, ds.nq)))
    seen: dict[str, int] = {}
    for j, band in enumerate(ds.bands):
        if seen.get(band, 0) < 2 and warmup > 0:
            seen[band] = seen.get(band, 0) + 1
            picked.append(j)
    return list(dict.fromkeys(picked))


def _latency_pass(engine: eng.Engine, ds: Dataset, k: int, params: dict, warmup: int,
                  timeout_s: float | None = None):
    """Every query alone on one thread; returns ids, scores, seconds per query, per-query errors
    (``timeout`` for the queries not started once ``timeout_s`` had passed)."""
    set_threads(1)
    _evict_caches()
    for j in _warmup_queries(ds, warmup):
        try:
            engine.search(ds.queries[j], k, ds.filters[j], params)
        except eng.UnsupportedFilter:
            pass
    ids = np.full((ds.nq, k), -1, np.int64)
    scores = np.full((ds.nq, k), -np.inf, np.float32)
    latency = np.full(ds.nq, np.nan)
    errors: list[str | None] = [None] * ds.nq
    start = time.perf_counter()
    for j in range(ds.nq):
        if timeout_s is not None and time.perf_counter() - start > timeout_s:
            errors[j:] = ["timeout"] * (ds.nq - j)
            break
        t0 = time.perf_counter()
        try:
            i, s = engine.search(ds.queries[j], k, ds.filters[j], params)
        except eng.UnsupportedFilter as exc:
            errors[j] = f"unsupported filter: {exc}"
            continue
        latency[j] = time.perf_counter() - t0
        ids[j], scores[j] = i[0], s[0]
    return ids, scores, latency, errors


def _batch_pass(engine: eng.Engine, ds: Dataset, k: int, params: dict, threads: tuple[int, ...],
                repeat: int = 1) -> dict[int, dict[str, list]]:
    """Each band's queries in one batch call, per thread count: ``{threads: {band: [queries, wall
    seconds]}}``, timed by ``_timed_turns`` (the thread counts take turns within each repeat, so a drift of
    the machine's speed reaches them alike). Each band's first ``BATCH_WARMUP``
    queries go through one untimed batch call per thread count first, so the kernels a batch runs (loaded
    or compiled on first use, which the single-query warm-up does not reach) are not timed."""
    bands = np.array(ds.bands)
    walls: dict[int, dict[str, list[float]]] = {t: {} for t in threads}
    sizes: dict[str, int] = {}
    for band in BANDS:
        members = np.flatnonzero(bands == band)
        if members.size == 0:
            continue
        warm, wheres = members[:BATCH_WARMUP], [ds.filters[j] for j in members]
        try:
            for t in threads:
                set_threads(t)
                engine.search_batch(ds.queries[warm], wheres[:len(warm)], k, params, t)
        except eng.UnsupportedFilter:
            continue
        sizes[band] = int(members.size)
        for t, wall in _timed_turns(engine, ds.queries[members], wheres, k, params, threads, repeat).items():
            walls[t][band] = wall
    return {t: {band: [sizes[band], wall] for band, wall in by_band.items()} for t, by_band in walls.items()}


def _timed_turns(engine: eng.Engine, queries: np.ndarray, wheres: list[str | None], k: int, params: dict,
                 threads: tuple[int, ...], repeat: int) -> dict[int, float]:
    """Seconds one ``search_batch`` call of these queries takes per thread count: the median of ``repeat``
    timings (``_turns``)."""
    return {t: float(np.median(w)) for t, w in _turns(engine, queries, wheres, k, params, threads, repeat).items()}


def _turns(engine: eng.Engine, queries: np.ndarray, wheres: list[str | None], k: int, params: dict,
           threads: tuple[int, ...], repeat: int) -> dict[int, list[float]]:
    """``repeat`` timings per thread count of one ``search_batch`` call of these queries (``_take_turns``)."""
    turns = [_batch_turn(engine, queries, wheres, k, params, t) for t in threads]
    return dict(zip(threads, _take_turns(turns, repeat)))


Turn = tuple[Callable[[], Any], Callable[[], Any]]  # (set-up before a turn's calls, untimed; the timed call)


def _batch_turn(engine: eng.Engine, queries: np.ndarray, wheres: list[str | None], k: int, params: dict,
                threads: int) -> Turn:
    """One ``search_batch`` call of these queries on ``threads`` threads, as a turn of ``_take_turns``."""
    return lambda: set_threads(threads), lambda: engine.search_batch(queries, wheres, k, params, threads)


def _take_turns(turns: list[Turn], repeat: int) -> list[list[float]]:
    """``repeat`` timings of each turn's call, each the mean of calls made back to back for at least
    ``BATCH_MIN_S`` (at most ``BATCH_MAX_CALLS``), the turns alternating within each repeat (timing i of
    every call comes from the same stretch of time)."""
    walls: list[list[float]] = [[] for _ in turns]
    for _ in range(repeat):
        for (setup, call), wall in zip(turns, walls):
            setup()
            calls, t0 = 0, time.perf_counter()
            while True:
                call()
                calls += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= BATCH_MIN_S or calls >= BATCH_MAX_CALLS:
                    break
            wall.append(elapsed / calls)
    return walls


def scaling_batch(ds: Dataset, band: str, n: int = SCALING_QUERIES) -> tuple[np.ndarray, list[str | None]]:
    """``n`` queries of ``band``: query vector j is the dataset's query j (mod its count), its filter the
    band's filter j (mod the band's count), so each filter keeps its band's selectivity, every filter of the
    band takes turns and the vectors are all the dataset's (a band holds 48-300 queries, fewer than the
    batch of 1,000 the scaling goal names). The pairs have no ground truth: the pass times them only."""
    members = np.flatnonzero(np.array(ds.bands) == band)
    j = np.arange(n)
    return ds.queries[j % ds.nq], [ds.filters[members[i]] for i in j % members.size]


def _scaling_pass(engine: eng.Engine, ds: Dataset, k: int, params: dict, threads: tuple[int, ...], repeat: int,
                  batch: dict[str, list]) -> dict[int, dict[str, list]]:
    """Each band's ``scaling_batch`` in one call per thread count (``_turns``): ``{threads: {band: [queries,
    wall seconds (the median), distinct filters, each repeat's wall seconds]}}``; the repeats pair up across
    thread counts, so the report can show how far the ratio moves between them. A band is left out when
    the engine's batch of the band's own queries (``batch``, the first thread count) predicts a call
    longer than ``SCALING_MAX_S``."""
    walls: dict[int, dict[str, list[float]]] = {t: {} for t in threads}
    distinct: dict[str, int] = {}
    for band, (n, wall) in batch.items():
        if wall / n * SCALING_QUERIES * threads[0] > SCALING_MAX_S:
            log.info("%s: %s band left out of the scaling pass (~%.0f s a call)", engine.name, band,
                     wall / n * SCALING_QUERIES * threads[0])
            continue
        queries, wheres = scaling_batch(ds, band)
        distinct[band] = len(set(wheres))
        for t in threads:  # an untimed call of the whole batch first: what its size reaches is loaded
            set_threads(t)
            engine.search_batch(queries, wheres, k, params, t)
        for t, turns in _turns(engine, queries, wheres, k, params, threads, repeat).items():
            walls[t][band] = turns
    return {t: {band: [SCALING_QUERIES, float(np.median(turns)), distinct[band], turns]
                for band, turns in by_band.items()} for t, by_band in walls.items()}


def _families(names: tuple[str, ...]) -> dict[str, list[type[eng.Engine]]]:
    known = eng.registry()
    families: dict[str, list[type[eng.Engine]]] = {}
    for name in names:
        cls = known[name]
        if not cls.available():
            log.warning("engine %s skipped: package(s) %s not installed (extra 'bench-peers')",
                        name, ", ".join(cls.requires))
            continue
        families.setdefault(cls.family, []).append(cls)
    return families


def run(cfg: RunConfig) -> Path:
    """Run the whole grid for one dataset and write the results folder; returns its path."""
    if cfg.profile not in PROFILES:
        raise ValueError(f"unknown grid profile {cfg.profile!r}; expected one of {PROFILES}")
    started = time.time()
    ds = load_dataset(cfg.dataset, cfg.data)
    log.info("dataset %s: N=%d dim=%d queries=%d metric=%s", ds.name, ds.n, ds.dim, ds.nq, ds.metric)
    if max(cfg.ks) > ds.gt_ids.shape[1]:
        raise ValueError(f"k={max(cfg.ks)} exceeds the ground truth depth {ds.gt_ids.shape[1]} of {ds.name}")
    writer = ResultWriter(cfg.out)
    families = _families(cfg.engines)
    meta = {
        "dataset": describe(ds), "dataset_name": cfg.dataset,
        "data_options": {"data_dir": str(cfg.data.data_dir), "cache_dir": str(cfg.data.cache_dir),
                         "max_queries": cfg.data.max_queries},
        "engines_requested": list(cfg.engines),
        "engines_skipped": [n for n in cfg.engines if not eng.registry()[n].available()],
        "profile": cfg.profile, "ks": list(cfg.ks), "threads": cfg.threads, "warmup": cfg.warmup,
        "overrides": {k: list(v) for k, v in cfg.overrides.items()}, "command": cfg.command,
        "run_timeout_s": cfg.run_timeout_s, "repeat": cfg.repeat, "calibrate_sample": cfg.calibrate_sample,
        "versions": package_versions(), "machine": machine(), "git": git_commit(),
        "blas_threads_via": set_threads(cfg.threads), "started": started, "finished": None,
    }
    writer.write_meta(meta)
    writer.write_queries(_queries_table(ds))
    with contextlib.ExitStack() as kept:  # each family's first build, until the head-to-head pass
        contenders: list[Contender] = []
        for family, classes in families.items():
            for i, build_params in enumerate(classes[0].build_grid[cfg.profile]):
                if cfg.calibrate_sample and classes[0].calibrates:
                    build_params = {**build_params, "calibrate": "sample"}
                keep = kept if cfg.batch and i == 0 else None
                contenders += _run_build(cfg, ds, writer, family, classes, build_params, keep)
        if contenders:
            _head_to_head(cfg, ds, writer, contenders)
    meta["finished"] = time.time()
    meta["wall_s"] = round(meta["finished"] - started, 2)
    writer.write_meta(meta)
    log.info("results in %s (%.0f s)", cfg.out, meta["wall_s"])
    return Path(cfg.out)


Contender = tuple[eng.Engine, str, list[dict]]  # an engine kept for the head-to-head pass, its build, its settings


def _run_build(cfg: RunConfig, ds: Dataset, writer: ResultWriter, family: str, classes: list[type[eng.Engine]],
               build_params: dict, keep: contextlib.ExitStack | None = None) -> list[Contender]:
    """Build once, run every engine of the family on it, measure its memory; then release it, or with
    ``keep`` leave its engines and files alive until ``keep`` closes and return them (``_head_to_head``)."""
    build_id = f"{family}:{json.dumps(build_params, sort_keys=True)}"
    engines = [cls(ds) for cls in classes]
    record: dict[str, Any] = {"build_id": build_id, "family": family, "engines": [c.name for c in classes],
                              "params": build_params, "threads": cfg.threads}
    with contextlib.ExitStack() as held:
        tmp = held.enter_context(tempfile.TemporaryDirectory(prefix="vecdb-bench-", dir=cfg.workdir))
        set_threads(cfg.threads)
        gc.collect()
        rss0 = rss_bytes()
        t0 = time.perf_counter()
        try:
            state = engines[0].build(build_params, Path(tmp), cfg.threads)
        except Exception as exc:  # noqa: BLE001  (a broken engine must not stop the others)
            log.exception("build %s failed", build_id)
            writer.add_build({**record, "error": f"{type(exc).__name__}: {exc}"})
            return []
        held.callback(gc.collect)  # (after the release below: callbacks run last first) what they held goes
        held.callback(lambda: [engine.release() for engine in engines])
        record["build_s"] = time.perf_counter() - t0
        gc.collect()
        record["rss_delta_bytes"] = rss_bytes() - rss0
        record["rss_before_bytes"] = rss0  # runs add rss_after_bytes: resident after their queries
        record["disk_bytes"] = disk_bytes(Path(tmp))
        record["error"] = None
        writer.add_build(record)
        log.info("built %s in %.1f s (RSS +%.0f MB, %.0f MB on disk)", build_id, record["build_s"],
                 record["rss_delta_bytes"] / 2**20, record["disk_bytes"] / 2**20)
        for engine in engines[1:]:
            engine.attach(state)
        del state
        for engine in engines:
            _run_engine(cfg, ds, writer, engine, build_id, build_params)
        if cfg.memory and type(engines[0]).reopen is not eng.Engine.reopen:  # siblings share its files
            _measure_memory(cfg, writer, type(engines[0]).name, build_id, Path(tmp))
        if keep is None:
            return []
        keep.enter_context(held.pop_all())
        return [(engine, build_id, search_grid(type(engine), cfg.profile, cfg.overrides)) for engine in engines]


HEAD_TO_HEAD_BAND = "all"  # the band the head-to-head pass times: unfiltered, where every engine competes
HEAD_TO_HEAD_REFERENCE = "vecdb"


def _head_to_head(cfg: RunConfig, ds: Dataset, writer: ResultWriter, contenders: list[Contender]) -> None:
    """The unfiltered band's scaling batch (``SCALING_QUERIES`` queries, no filter) with ``cfg.threads``
    threads at ``cfg.ks[0]``: vecdb's default setting and each setting of every other family's engines, the two taking
    turns (``_take_turns``, ``cfg.repeat`` timings each), one record per pair (``pairs.jsonl``). The report
    matches each engine's settings with their recall in the band's own queries. A setting whose untimed
    first call takes over ``SCALING_MAX_S`` is recorded as skipped."""
    reference = next(((e, b, g) for e, b, g in contenders if type(e).name == HEAD_TO_HEAD_REFERENCE), None)
    if reference is None or HEAD_TO_HEAD_BAND not in ds.bands:
        return
    ref_engine, ref_build, ref_grid = reference
    k, t = cfg.ks[0], cfg.threads
    queries, wheres = scaling_batch(ds, HEAD_TO_HEAD_BAND)

    set_threads(t)
    ref_engine.search_batch(queries, wheres, k, ref_grid[0], t)  # what the batch's size reaches is loaded
    for engine, build_id, grid in contenders:
        if type(engine).family == type(ref_engine).family:  # (vecdb's plans forced: its own tables compare them)
            continue
        for params in grid:
            record = {"band": HEAD_TO_HEAD_BAND, "queries": len(queries), "k": k, "threads": t,
                      "reference": {"engine": type(ref_engine).name, "build_id": ref_build, "params": ref_grid[0]},
                      "engine": type(engine).name, "build_id": build_id, "params": params}
            try:
                set_threads(t)
                t0 = time.perf_counter()
                engine.search_batch(queries, wheres, k, params, t)  # untimed: loads, and says how long a call takes
                first = time.perf_counter() - t0
                if first > SCALING_MAX_S:
                    writer.add_pair({**record, "skipped": f"one call took {first:.1f} s"})
                    continue
                ref_s, engine_s = _take_turns([_batch_turn(ref_engine, queries, wheres, k, ref_grid[0], t),
                                                  _batch_turn(engine, queries, wheres, k, params, t)], cfg.repeat)
            except Exception as exc:  # noqa: BLE001  (a broken engine must not stop the others)
                log.exception("head to head with %s %s failed", type(engine).name, params)
                writer.add_pair({**record, "error": f"{type(exc).__name__}: {exc}"})
                continue
            writer.add_pair({**record, "reference_s": ref_s, "engine_s": engine_s})
            log.info("head to head, %s band: vecdb %.0f QPS, %s %s %.0f QPS", HEAD_TO_HEAD_BAND,
                     len(queries) / np.median(ref_s), type(engine).name, params, len(queries) / np.median(engine_s))


def _measure_memory(cfg: RunConfig, writer: ResultWriter, name: str, build_id: str, workdir: Path) -> None:
    from .memory import measure_in_child

    record = measure_in_child(name, cfg.dataset, cfg.data, workdir, cfg.ks[0])
    writer.add_memory({"build_id": build_id, **record})
    if record.get("error"):
        log.warning("memory of %s (%s): %s", name, build_id, record["error"])
    else:
        log.info("memory of %s: %.0f MB resident after opening and %d queries (fresh process)", name,
                 record["after_queries_bytes"] / 2**20, record["queries"])


def _run_engine(cfg: RunConfig, ds: Dataset, writer: ResultWriter, engine: eng.Engine, build_id: str,
                build_params: dict) -> None:
    cls = type(engine)
    grid = search_grid(cls, cfg.profile, cfg.overrides)
    default = {**grid[0], **cls.default_search} if cls.default_search else grid[0]
    plan = [(cfg.ks[0], p) for p in grid] + [(k, default) for k in cfg.ks[1:]]
    for k, params in plan:
        record = {"engine": cls.name, "family": cls.family, "note": cls.note, "build_id": build_id,
                  "build_params": build_params, "search_params": params, "k": k, "threads": cfg.threads}
        t0 = time.perf_counter()
        try:
            ids, scores, latency, errors = _latency_pass(engine, ds, k, params, cfg.warmup, cfg.run_timeout_s)
            for _ in range(cfg.repeat - 1):  # the same answers again: keep each query's fastest pass
                if errors.count("timeout"):
                    break
                latency = np.fmin(latency, _latency_pass(engine, ds, k, params, 0, cfg.run_timeout_s)[2])
            timeouts = errors.count("timeout")
            # the default setting's batches on one thread too: how a batch scales with the cores
            scaling = cfg.threads > 1 and params == grid[0] and k == cfg.ks[0]
            counts = (cfg.threads, 1) if scaling else (cfg.threads,)
            passes = _batch_pass(engine, ds, k, params, counts, cfg.repeat) if cfg.batch and not timeouts else {}
            batch = passes.get(cfg.threads, {})
            batch_one = passes.get(1, {}) if scaling else {}
            scaled = _scaling_pass(engine, ds, k, params, counts, cfg.repeat, batch) if scaling and batch else {}
        except Exception as exc:  # noqa: BLE001
            log.exception("%s %s k=%d failed", cls.name, params, k)
            writer.add_run({**record, "batch": {}, "error": f"{type(exc).__name__}: {exc}",
                            "wall_s": time.perf_counter() - t0},
                           np.full((ds.nq, k), -1, np.int64), np.full((ds.nq, k), -np.inf, np.float32),
                           np.full(ds.nq, np.nan), ["engine error"] * ds.nq)
            continue
        wall = time.perf_counter() - t0
        if timeouts:
            log.warning("%s %s k=%d: run timeout (%.0f s) after %d of %d queries", cls.name, params, k,
                        cfg.run_timeout_s, ds.nq - timeouts, ds.nq)
        gc.collect()
        run_id = writer.add_run({**record, "batch": batch, "batch_one_thread": batch_one,
                                 "scaling": {str(t): by_band for t, by_band in scaled.items()}, "error": None,
                                 "wall_s": wall, "rss_after_bytes": rss_bytes(),
                                 "partial": ds.nq - timeouts if timeouts else None},
                                ids, scores, latency, errors)
        log.info("%s %s %s k=%d: %.1f s, median latency %.3f ms", run_id, cls.name, params, k, wall,
                 np.nanmedian(latency) * 1e3 if np.isfinite(latency).any() else float("nan"))
