"""The benchmark runner: readers, synthetic data, engines, scoring, and the smoke run's outputs (not speed)."""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks import engines as eng
from benchmarks import formats, main, metrics, synthetic, translate
from benchmarks.datasets import BANDS, DataOptions, Dataset, DatasetError, band_of, load_dataset
from benchmarks.results import ResultWriter, load_results
from benchmarks.truth import exact_topk, true_scores

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    """2,000 synthetic rows (dim 128), 36 queries over every band, exact ground truth."""
    return synthetic.make(2000, nq=36)


# ----------------------------------------------------------------------------- datasets and readers
def test_bands_follow_actual_selectivity():
    assert band_of(False, 72000, 72000) == "all"
    assert band_of(True, 72000, 72000) == "~50%"
    assert band_of(True, 99, 1_000_000) == "<100"
    assert band_of(True, 100, 72000) == "~0.1%"
    assert band_of(True, 720, 72000) == "~1%"
    assert band_of(True, 7200, 72000) == "~10%"
    assert band_of(True, 36000, 72000) == "~50%"


def test_fvecs_ivecs_bvecs_round_trip(tmp_path, rng):
    x = rng.standard_normal((7, 5)).astype(np.float32)
    gt = rng.integers(0, 7, (3, 4)).astype(np.int32)
    formats.write_fvecs(tmp_path / "t_base.fvecs", x)
    formats.write_fvecs(tmp_path / "t_query.fvecs", x[:3])
    formats.write_ivecs(tmp_path / "t_groundtruth.ivecs", gt)
    assert np.array_equal(formats.read_fvecs(tmp_path / "t_base.fvecs"), x)
    assert np.array_equal(formats.read_ivecs(tmp_path / "t_groundtruth.ivecs"), gt)
    b = np.concatenate([np.full((2, 1), 3, np.int32).view(np.uint8), np.arange(6, dtype=np.uint8).reshape(2, 3)], 1)
    b.tofile(tmp_path / "b.bvecs")
    assert np.array_equal(formats.read_bvecs(tmp_path / "b.bvecs"), [[0, 1, 2], [3, 4, 5]])
    ds = load_dataset(f"fvecs:{tmp_path / 't'}")
    assert (ds.n, ds.dim, ds.nq, ds.metric) == (7, 5, 3, "l2")
    assert ds.filters == [None] * 3 and ds.bands == ["all"] * 3
    (tmp_path / "bad.fvecs").write_bytes(b"\x05\x00\x00\x00abc")
    with pytest.raises(DatasetError, match="whole number of rows"):
        formats.read_fvecs(tmp_path / "bad.fvecs")


def test_ann_benchmarks_hdf5(tmp_path, rng):
    path = tmp_path / "toy-angular.hdf5"
    try:
        import h5py
    except ImportError:
        with pytest.raises(DatasetError, match="h5py"):
            load_dataset(f"hdf5:{path}")
        return
    train = rng.standard_normal((50, 8)).astype(np.float32)
    test = rng.standard_normal((4, 8)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "angular"
        f["train"], f["test"] = train, test
        f["neighbors"] = np.zeros((4, 10), np.int32)
        f["distances"] = np.zeros((4, 10), np.float32)
    ds = load_dataset(f"hdf5:{path}")
    assert ds.metric == "ip" and ds.n == 50 and ds.nq == 4
    assert np.allclose(np.linalg.norm(ds.base, axis=1), 1, atol=1e-5)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DatasetError, match="arxiv-slice"):
        load_dataset("arxv")


def test_slice_loads_with_bands():
    ds = load_dataset("arxiv-slice", DataOptions(max_queries=50))
    assert (ds.n, ds.dim, ds.nq, ds.metric) == (5000, 384, 50, "ip")
    assert set(ds.bands) <= set(BANDS) and "all" in ds.bands


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_and_exact(tiny):
    again = synthetic.generate(2000, nq=36)
    assert np.array_equal(again[0], tiny.base) and again[3] == tiny.filters
    assert set(tiny.bands) >= {"all", "~50%", "~10%", "<100"}
    from vecdb.filters import bind, parse

    for j in range(0, tiny.nq, 5):
        mask = np.ones(tiny.n, bool) if tiny.filters[j] is None else \
            bind(parse(tiny.filters[j]), tiny.attributes.schema).evaluate(tiny.attributes)
        assert mask.sum() == tiny.match_counts[j]
        rows = np.flatnonzero(mask)
        s = tiny.base[rows].astype(np.float64) @ tiny.queries[j]
        want = rows[np.argsort(-s, kind="stable")[:10]]
        assert set(tiny.gt_ids[j, : min(10, rows.size)]) == set(want)


def test_synthetic_cache(tmp_path):
    ds = load_dataset("synthetic-1500", DataOptions(cache_dir=tmp_path))
    assert (tmp_path / "synthetic-1500-v1" / "meta.json").is_file()
    again = load_dataset("synthetic-1500", DataOptions(cache_dir=tmp_path))
    assert np.array_equal(ds.gt_ids, again.gt_ids) and ds.filters == again.filters


def test_synthetic_sample_queries_are_held_out_from_the_same_source(tiny):
    """The sample a user would calibrate on: drawn as the queries are (around the same centres, so as
    close to the rows), none of them a benchmark query, the same on every call."""
    sample = tiny.sample_queries
    assert sample.shape == (synthetic.N_SAMPLE, tiny.dim) and sample.dtype == np.float32
    assert np.allclose(np.linalg.norm(sample, axis=1), 1, atol=1e-5)
    assert np.array_equal(sample, synthetic.sample_queries(2000))
    assert not (sample[:, None, :] == tiny.queries[None, :, :]).all(-1).any()
    near = lambda q: (q @ tiny.base.T).max(1).mean()  # noqa: E731
    assert abs(near(sample) - near(tiny.queries)) < 0.05


def test_synthetic_sample_filters_are_drawn_as_the_benchmarks(tiny):
    """Each sample query's filter: the benchmark's bands in turn and shapes, from a stream of its own
    (the same on every call); each passes about as many rows as its band's benchmark filters."""
    from vecdb.filters import bind, parse

    wheres = tiny.sample_filters
    assert len(wheres) == synthetic.N_SAMPLE and wheres == synthetic.sample_filters(tiny.n, tiny.attributes)
    assert [w is None for w in wheres[:12]] == [t is None for t in synthetic.TARGETS] * 2
    ranges = lambda fs: {f for f in fs if f and "BETWEEN" in f}  # noqa: E731 (a label or tag can recur, as in use)
    assert ranges(wheres) and not ranges(wheres) & ranges(tiny.filters)  # their own draws
    counts = {}
    for j, where in enumerate(wheres[:120]):
        if where is not None:
            counts.setdefault(synthetic.TARGETS[j % len(synthetic.TARGETS)], []).append(
                int(bind(parse(where), tiny.attributes.schema).evaluate(tiny.attributes).sum()))
    bench = {}
    for j, where in enumerate(tiny.filters):
        if where is not None:
            bench.setdefault(synthetic.TARGETS[j % len(synthetic.TARGETS)], []).append(int(tiny.match_counts[j]))
    for target, got in counts.items():  # within a factor of 3 of the benchmark's median, band by band
        assert 1 / 3 <= (np.median(got) + 1) / (np.median(bench[target]) + 1) <= 3, (target, got, bench[target])


def test_vecdb_builds_calibrate_on_the_sample_when_asked(tiny, tmp_path):
    from vecdb import calibration

    engine = eng.Vecdb(tiny)
    coll = engine.build({**eng.Vecdb.build_grid["smoke"][0], "calibrate": "sample"}, tmp_path, 1)
    curves = coll.snapshot.store.calibration
    assert curves["method"] == calibration.SAMPLE_METHOD + ";own-filters" and curves["own_filter_bands"]
    assert coll.versions()[-1]["operation"] == "calibrate"
    bare = dataclasses.replace(tiny, sample_queries=None)
    with pytest.raises(ValueError, match="no sample queries"):
        eng.Vecdb(bare).build({**eng.Vecdb.build_grid["smoke"][0], "calibrate": "sample"}, tmp_path / "b", 1)


def test_exact_topk_l2_and_ties():
    base = np.array([[0, 0], [1, 0], [1, 0], [5, 5]], np.float32)
    ids, scores = exact_topk(base, np.array([[1, 0]], np.float32), 3, "l2",
                             lambda j: np.array([True, True, True, False]))
    assert ids.tolist() == [[1, 2, 0]] and scores[0, 0] == 0
    assert true_scores(base, np.array([1, 0], np.float32), np.array([3, -1]), "l2")[1] == -np.inf


# ----------------------------------------------------------------------------- engines
@pytest.mark.parametrize("name", [c.name for c in eng.CORE])
def test_core_engines_honour_filters(tiny, tmp_path, name):
    cls = eng.registry()[name]
    engine = cls(tiny)
    engine.build(cls.build_grid["smoke"][0], tmp_path, 1)
    params = cls.search_grid["smoke"][-1]
    for j in range(tiny.nq):
        ids, scores = engine.search(tiny.queries[j], 10, tiny.filters[j], params)
        assert ids.shape == (1, 10) and scores.dtype == np.float32
        got = ids[0][ids[0] >= 0]
        if tiny.filters[j] is not None:
            mask = engine.filters.mask(tiny.filters[j])
            assert mask[got].all(), f"{name} returned rows failing {tiny.filters[j]!r}"
    ids, _ = engine.search_batch(tiny.queries, tiny.filters, 10, params, 2)
    assert ids.shape == (tiny.nq, 10)
    if name in ("exact", "vecdb-exact"):
        assert np.array_equal(np.sort(ids, 1), np.sort(tiny.gt_ids[:, :10], 1))


def test_engine_aliases():
    assert eng.resolve("vecdb,exact,vecdb") == ["vecdb", "exact"]
    assert "faiss-hnsw" in eng.resolve("core") and "usearch" in eng.resolve("peers")
    with pytest.raises(ValueError, match="unknown engine"):
        eng.resolve("faiss-hnws")


# ----------------------------------------------------------------------------- filter translation
def test_translate_to_peer_languages():
    where = "'cs.LG' IN categories AND NOT (year BETWEEN 2020 AND 2022) AND (a = 'x' OR n >= 3)"
    assert translate.to_lance_sql(where) == ("(array_has(categories, 'cs.LG') AND NOT (year BETWEEN 2020 AND 2022) "
                                             "AND (a = 'x' OR n >= 3))")
    assert translate.to_chroma(where) == {"$and": [
        {"categories": {"$contains": "cs.LG"}},
        {"$or": [{"year": {"$lt": 2020}}, {"year": {"$gt": 2022}}]},
        {"$or": [{"a": {"$eq": "x"}}, {"n": {"$gte": 3}}]}]}
    assert translate.to_chroma("NOT ('x' IN tags OR label = 'a')") == {
        "$and": [{"tags": {"$not_contains": "x"}}, {"label": {"$ne": "a"}}]}
    assert translate.to_chroma(None) is None

    def node(kind):
        return lambda **kw: (kind, kw)

    models = types.SimpleNamespace(Filter=node("Filter"), FieldCondition=node("Field"), MatchValue=node("Value"),
                                   MatchAny=node("Any"), Range=node("Range"))
    flt = translate.to_qdrant("'cs.LG' IN categories AND year >= 2020", models)
    assert flt == ("Filter", {"must": [("Field", {"key": "categories", "match": ("Value", {"value": "cs.LG"})}),
                                       ("Field", {"key": "year", "range": ("Range", {"gte": 2020})})]})


# ----------------------------------------------------------------------------- scoring
class _Liar(eng.Exact):
    """Answers with one row failing the filter, one short result, and flattering scores."""

    name = "liar"
    family = "liar"

    def search_group(self, queries, k, where, params, threads):
        ids, scores = super().search_group(queries, k, where, params, threads)
        mask = self.filters.mask(where)
        if mask is not None and not mask.all():
            ids[:, -1] = np.flatnonzero(~mask)[0]
        ids[:, -2] = -1
        return ids, np.full_like(scores, 9.0)


def test_metrics_recompute_and_flag(tiny, tmp_path):
    from benchmarks import runner

    out = tmp_path / "res"
    writer = ResultWriter(out)
    writer.write_meta({})
    writer.write_queries(runner._queries_table(tiny))
    for cls in (eng.Exact, _Liar):
        engine = cls(tiny)
        engine.build({}, tmp_path, 1)
        ids, scores, lat, errors = runner._latency_pass(engine, tiny, 10, {}, 0)
        writer.add_run({"engine": cls.name, "family": cls.family, "build_id": cls.name, "search_params": {},
                        "k": 10, "batch": {}, "error": None}, ids, scores, lat, errors)
    res = load_results(out)
    per_query = metrics.score(res, tiny)
    rows = metrics.aggregate(per_query, res)
    exact, liar = (next(r for r in rows if r["engine"] == e and r["band"] == "overall") for e in ("exact", "liar"))
    assert exact["recall"] == 1.0 and exact["filter_fail"] == 0 and exact["short"] == 0
    assert exact["max_score_err"] < 1e-4
    filtered_partial = sum(1 for f, m in zip(tiny.filters, tiny.match_counts) if f and m < tiny.n)
    assert liar["filter_fail"] == filtered_partial
    assert liar["short"] > 0 and liar["recall"] < 1.0 and liar["max_score_err"] > 1.0


def test_run_timeout_leaves_queries_unasked_and_unscored(tiny, tmp_path):
    from benchmarks import runner

    engine = eng.Exact(tiny)
    engine.build({}, tmp_path, 1)
    _, _, _, errors = runner._latency_pass(engine, tiny, 10, {}, 0, timeout_s=0.0)
    assert errors.count("timeout") >= tiny.nq - 1
    ids, scores, lat, errors = runner._latency_pass(engine, tiny, 10, {}, 0)
    ids[6:], lat[6:], errors[6:] = -1, np.nan, ["timeout"] * (tiny.nq - 6)
    writer = ResultWriter(tmp_path / "res")
    writer.write_meta({})
    writer.write_queries(runner._queries_table(tiny))
    writer.add_run({"engine": "exact", "build_id": "b", "search_params": {}, "k": 10, "batch": {}, "error": None,
                    "partial": 6}, ids, scores, lat, errors)
    res = load_results(tmp_path / "res")
    overall = next(r for r in metrics.aggregate(metrics.score(res, tiny), res) if r["band"] == "overall")
    assert overall["timeouts"] == tiny.nq - 6 and overall["short"] == 0 and overall["recall"] == 1.0
    assert overall["partial"] == 6


def test_batch_pass_takes_turns_and_keeps_the_median(tiny, tmp_path, monkeypatch):
    from benchmarks import runner

    engine = eng.Exact(tiny)
    engine.build({}, tmp_path, 1)
    calls, search = [], engine.search_batch

    def recorded(queries, wheres, k, params, threads):
        calls.append((len(queries), threads))
        return search(queries, wheres, k, params, threads)

    monkeypatch.setattr(engine, "search_batch", recorded)
    # (start, end) of each timed call in turn: 2 threads 1, 5, 3 s; 1 thread 2, 2, 8 s
    walls = iter([0.0, 1.0, 0.0, 2.0, 0.0, 5.0, 0.0, 2.0, 0.0, 3.0, 0.0, 8.0] * len(BANDS))
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=lambda: next(walls)))
    out = runner._batch_pass(engine, tiny, 10, {}, (2, 1), repeat=3)
    bands = [b for b in BANDS if b in set(tiny.bands)]
    assert set(out) == {2, 1} and list(out[2]) == list(out[1]) == bands
    at = 0
    for band in bands:
        n = tiny.bands.count(band)
        warm = min(runner.BATCH_WARMUP, n)
        # one untimed warm-up per thread count, then the counts take turns, three times
        assert calls[at:at + 8] == [(warm, 2), (warm, 1)] + [(n, 2), (n, 1)] * 3
        assert out[2][band] == [n, 3.0] and out[1][band] == [n, 2.0]
        at += 8
    assert at == len(calls)


def test_batch_pass_repeats_a_fast_call_and_keeps_its_mean(tiny, tmp_path, monkeypatch):
    """A call faster than BATCH_MIN_S is made again until that long has passed; the mean time is kept."""
    from benchmarks import runner

    engine = eng.Exact(tiny)
    engine.build({}, tmp_path, 1)
    calls = []
    monkeypatch.setattr(engine, "search_batch", lambda queries, wheres, k, params, threads: calls.append(threads))
    clock = {"now": 0.0}

    def tick() -> float:  # every reading 0.03 s after the last: calls of ~0.03 s
        clock["now"] += 0.03
        return clock["now"]

    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=tick))
    band = next(b for b in BANDS if b in set(tiny.bands))
    out = runner._batch_pass(engine, tiny, 10, {}, (1,), repeat=1)
    per_band = 1 + 7  # the warm-up, then 7 calls: 0.21 s >= BATCH_MIN_S after the seventh reading
    assert calls[:per_band] == [1] * per_band
    assert out[1][band][1] == pytest.approx(0.03)
    monkeypatch.setattr(runner, "BATCH_MIN_S", 100.0)
    calls.clear()
    runner._batch_pass(engine, tiny, 10, {}, (1,), repeat=1)
    assert len(calls) == len(out[1]) * (1 + runner.BATCH_MAX_CALLS)  # never more calls than that


def test_scaling_pass_batches_a_thousand_queries_per_band(tiny, tmp_path, monkeypatch):
    """Each band's scaling batch: SCALING_QUERIES queries, the dataset's vectors in turn with the band's
    filters in turn; thread counts take turns after an untimed call each; a band whose batch would be too slow
    is left out."""
    from benchmarks import runner

    queries, wheres = runner.scaling_batch(tiny, "~10%", n=50)
    members = [i for i, b in enumerate(tiny.bands) if b == "~10%"]
    np.testing.assert_array_equal(queries, tiny.queries[np.arange(50) % tiny.nq])
    assert wheres == [tiny.filters[members[j % len(members)]] for j in range(50)]
    assert {tiny.bands[tiny.filters.index(w)] for w in wheres} == {"~10%"}

    engine = eng.Exact(tiny)
    engine.build({}, tmp_path, 1)
    calls = []
    monkeypatch.setattr(engine, "search_batch",
                        lambda q, w, k, params, threads: calls.append((len(q), len(set(w)), threads)))
    monkeypatch.setattr(runner, "BATCH_MIN_S", 0.0)
    fast, slow = ["~10%", [4, 1e-3]], ["<100", [4, 10.0]]  # 1,000 queries at 10 s / 4: far too slow
    out = runner._scaling_pass(engine, tiny, 10, {}, (2, 1), 2, dict([fast, slow]))
    distinct = len(set(tiny.filters[j] for j in members))
    assert list(out[2]) == list(out[1]) == ["~10%"]
    assert out[2]["~10%"][0] == runner.SCALING_QUERIES and out[2]["~10%"][2] == distinct
    for t in (2, 1):  # each repeat's time kept beside their median
        turns = out[t]["~10%"][3]
        assert len(turns) == 2 and out[t]["~10%"][1] == float(np.median(turns))
    n = runner.SCALING_QUERIES
    assert calls == [(n, distinct, 2), (n, distinct, 1)] * 3  # the untimed pair first


def test_head_to_head_times_each_setting_in_turns_with_vecdbs_default(tiny, tmp_path, monkeypatch):
    """After every family has run: the unfiltered band's 1,000-query batch, vecdb's default and each setting of
    each other family's engine taking turns (untimed first call each); vecdb's own variants are not paired; a
    setting whose first call is too slow is recorded as skipped, one that fails as an error."""
    from benchmarks import runner

    calls = []

    def engine(name: str, family: str, slow: dict | None = None, broken: dict | None = None):
        def search_batch(self, queries, wheres, k, params, threads):
            calls.append((name, params, len(queries), threads))
            assert wheres == [None] * len(queries) and k == 10
            if params == broken:
                raise RuntimeError("no such beam")
            clock["now"] += 10.0 if params == slow else 0.01
        return type(name, (), {"name": name, "family": family, "search_batch": search_batch})()

    clock = {"now": 0.0}
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))
    monkeypatch.setattr(runner, "BATCH_MIN_S", 0.0)
    vecdb, variant = engine("vecdb", "vecdb"), engine("vecdb-exact", "vecdb")
    faiss = engine("faiss-hnsw", "faiss-hnsw", slow={"ef": 512}, broken={"ef": 7})
    contenders = [(vecdb, "vecdb:{}", [{}, {"ef": 64}]), (variant, "vecdb:{}", [{}]),
                  (faiss, "faiss-hnsw:{}", [{"ef": 32}, {"ef": 512}, {"ef": 7}])]
    writer = ResultWriter(tmp_path / "out")
    cfg = runner.RunConfig(dataset="tiny", engines=(), out=tmp_path / "out", ks=(10,), threads=2, repeat=2)
    runner._head_to_head(cfg, tiny, writer, contenders)
    n = runner.SCALING_QUERIES
    assert calls == [("vecdb", {}, n, 2),  # untimed
                     ("faiss-hnsw", {"ef": 32}, n, 2), *[("vecdb", {}, n, 2), ("faiss-hnsw", {"ef": 32}, n, 2)] * 2,
                     ("faiss-hnsw", {"ef": 512}, n, 2),  # 10 s > SCALING_MAX_S: not timed
                     ("faiss-hnsw", {"ef": 7}, n, 2)]
    pairs = load_results_pairs(tmp_path / "out")
    assert [(p["engine"], p["params"]) for p in pairs] == [("faiss-hnsw", {"ef": 32}), ("faiss-hnsw", {"ef": 512}),
                                                           ("faiss-hnsw", {"ef": 7})]
    assert pairs[0]["reference"] == {"engine": "vecdb", "build_id": "vecdb:{}", "params": {}}
    assert pairs[0]["reference_s"] == pytest.approx([0.01, 0.01]) and pairs[0]["engine_s"] == pytest.approx([0.01] * 2)
    assert "skipped" in pairs[1] and "engine_s" not in pairs[1]
    assert pairs[2]["error"] == "RuntimeError: no such beam"


def load_results_pairs(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "pairs.jsonl").read_text().splitlines()]


def test_head_to_head_table_takes_each_engines_fastest_setting_at_vecdbs_recall():
    from benchmarks import report
    from benchmarks.results import Results

    def row(engine, build, params, recall):
        return {"engine": engine, "build_id": build, "k": 10, "band": "all", "search_params": params,
                "recall": recall, "run_error": None}

    rows = [row("vecdb", "v", {}, 0.95), row("faiss-hnsw", "f", {"ef": 16}, 0.90),
            row("faiss-hnsw", "f", {"ef": 32}, 0.96), row("faiss-hnsw", "f", {"ef": 64}, 0.99),
            row("hnswlib", "h", {"ef": 16}, 0.93), row("hnswlib", "h", {"ef": 512}, 1.0)]
    ref = {"engine": "vecdb", "build_id": "v", "params": {}}

    def pair(engine, build, params, ref_s, engine_s):
        return {"band": "all", "queries": 1000, "k": 10, "reference": ref, "engine": engine, "build_id": build,
                "params": params, "reference_s": ref_s, "engine_s": engine_s}

    pairs = [pair("faiss-hnsw", "f", {"ef": 16}, [0.1, 0.1], [0.01, 0.01]),  # fastest, but short of R
             pair("faiss-hnsw", "f", {"ef": 32}, [0.1, 0.12], [0.125, 0.15]),
             pair("faiss-hnsw", "f", {"ef": 64}, [0.1, 0.1], [0.2, 0.2]),
             pair("hnswlib", "h", {"ef": 16}, [0.1, 0.1], [0.05, 0.05]),
             {**pair("hnswlib", "h", {"ef": 512}, [], []), "skipped": "one call took 9.0 s"}]
    results = Results(path=Path("."), meta={}, queries=None, builds=[], runs=[], pairs=pairs)
    lines = report.head_to_head_table(results, rows)
    # ef=32: 1000 / median(0.1, 0.12) = 9,091 QPS against 1000 / 0.1375 = 7,273; repeats 1.25 and 1.25
    assert lines[2] == "| all | faiss-hnsw | ef=32 | 0.960 (0.950) | 9,091 | 7,273 | 1.25 | 1.25-1.25 |"
    assert lines[3] == "| all | hnswlib | — | (0.950) | — | — | never reaches R among the settings timed " \
                       "(1 too slow or failed) | — |"
    assert len(lines) == 4


def test_scaling_table_reads_the_scaling_pass():
    from benchmarks import report
    from benchmarks.results import Results

    runs = [{"engine": "vecdb", "batch": {"~1%": [200, 0.01], "all": [100, 0.02]},
             "batch_one_thread": {"~1%": [200, 0.015], "all": [100, 0.04]},
             "scaling": {"2": {"~1%": [1000, 0.04, 120]}, "1": {"~1%": [1000, 0.07, 120]}}}]
    results = Results(path=Path("."), meta={"threads": 2}, queries=None, builds=[], runs=runs)
    lines = report.batch_scaling_table(results)
    assert lines[2] == "| vecdb | ~1% | 1,000 (120) | 25000 | 14286 | 1.75 | — | 1.50 |"  # (written before repeats were kept)
    assert lines[3] == "| vecdb | all | 100 (own) | 5000 | 2500 | 2.00 | — | 2.00 |"
    runs[0]["scaling"] = {"2": {"~1%": [1000, 0.04, 120, [0.05, 0.04, 0.035]]},
                          "1": {"~1%": [1000, 0.07, 120, [0.065, 0.07, 0.0735]]}}
    lines = report.batch_scaling_table(results)
    assert lines[2] == "| vecdb | ~1% | 1,000 (120) | 25000 | 14286 | 1.75 | 1.30-2.10 | 1.50 |"  # 0.065/0.05, 0.0735/0.035


def test_memory_warmup_takes_the_first_queries_of_each_band(monkeypatch):
    from benchmarks import memory

    monkeypatch.setattr(memory, "WARMUP", 2)
    bands = ["all", "<100", "all", "all", "~1%", "<100", "<100", "~1%", "all"]
    assert memory.warmup_queries(bands) == [0, 1, 2, 4, 5, 7]


def test_tie_aware_recall_counts_equal_distances(tmp_path):
    base = np.array([[1, 0], [1, 0], [0, 1], [-1, 0]], np.float32)  # rows 0 and 1 tie
    ds = Dataset(name="ties", base=base, queries=np.array([[1, 0]], np.float32), metric="ip", attributes=None,
                 filters=[None], gt_ids=np.array([[0, 2, 3, 1]]), match_counts=np.array([4]))
    from benchmarks import runner

    writer = ResultWriter(tmp_path)
    writer.write_meta({})
    writer.write_queries(runner._queries_table(ds))
    writer.add_run({"engine": "e", "build_id": "b", "search_params": {}, "k": 1, "batch": {}, "error": None},
                   np.array([[1]]), np.array([[1.0]], np.float32), np.array([0.001]), [None])
    per_query = metrics.score(load_results(tmp_path), ds)
    assert per_query.column("recall").to_pylist() == [1.0]


def test_pareto_front():
    assert metrics.pareto([(0.5, 100), (0.9, 50), (0.8, 40), (0.99, 10)]) == [(0.5, 100), (0.9, 50), (0.99, 10)]


# ----------------------------------------------------------------------------- report tables and plots
def _row(engine, band, recall, qps, params=None, run_id=None, note="", error=None):
    params = {} if params is None else params
    return {"run_id": run_id or f"{engine}-{json.dumps(params)}", "engine": engine, "note": note,
            "build_id": f"{engine}:{{}}", "search_params": params, "k": 10, "band": band, "recall": recall,
            "qps": qps, "mean_ms": 1e3 / qps, "p50_ms": 1e3 / qps, "p95_ms": 2e3 / qps, "batch_qps": float("nan"),
            "run_error": error, "partial": None}


def _cells(lines, band):
    return next(line for line in lines if line.startswith(f"| {band} |")).strip("| ").split(" | ")


def test_targets_table_marks_targets_missed_either_way():
    from benchmarks.report import targets_table

    rows = [
        _row("vecdb", "all", 0.915, 3000.0, {"target_recall": 0.9}),
        _row("vecdb", "all", 0.949, 2000.0, {"target_recall": 0.95}),
        _row("vecdb", "all", 0.99, 900.0, {"target_recall": 0.99}),
        _row("vecdb", "~50%", 0.9350, 1500.0, {"target_recall": 0.9}),
        _row("vecdb", "~50%", 0.97, 1200.0, {"target_recall": 0.95}),
        _row("vecdb", "~50%", 1.0, 1000.0, {"target_recall": 0.99}),
        _row("vecdb", "~1%", 1.0, 4000.0, {"target_recall": 0.9}, error="boom"),
        _row("vecdb", "~0.1%", 1.0, 8000.0, {"target_recall": 0.9}),  # the exact scan: not "over"
        _row("vecdb", "~10%", 0.5, 10.0, {"ef": 16}),  # not a target setting: no row for the band
        _row("faiss-hnsw", "~10%", 0.9, 10.0, {"target_recall": 0.9}),  # another engine: left out
    ]
    lines = targets_table(rows, 10)
    assert lines[0] == ("| band | target 0.9: recall | QPS | target 0.95: recall | QPS | target 0.99: recall | "
                        "QPS |")
    assert _cells(lines, "all") == ["all", "0.915", "3,000", "0.949 below", "2,000", "0.990", "900"]
    assert _cells(lines, "~50%") == ["~50%", "0.935 over", "1,500", "0.970", "1,200", "1.000", "1,000"]
    assert _cells(lines, "~0.1%") == ["~0.1%", "1.000", "8,000", "—", "—", "—", "—"]
    assert not any(line.startswith(("| ~1% |", "| ~10% |")) for line in lines)
    assert targets_table([r for r in rows if "ef" in r["search_params"]], 10) == []


def test_default_vs_all_table_compares_at_equal_recall():
    from benchmarks.report import default_vs_all_table

    r = (0.9 + 0.93 + 0.99 + 0.99 + 0.99) / 5  # 0.9600000000000002: a mean of recalls, a hair above 0.96
    assert r > 0.96
    rows = [
        _row("vecdb", "all", r, 1000.0), _row("vecdb", "~1%", 0.9, 500.0),
        _row("vecdb", "all", 0.99, 800.0, {"ef": 64}), _row("vecdb", "all", 0.5, 9000.0, {"ef": 32}),
        _row("vecdb", "all", 0.98, 1200.0, {}, run_id="second-build"),  # a second build's default: ignored as R/Q
        _row("faiss-hnsw", "all", 0.93, 3000.0, {"ef": 32}), _row("faiss-hnsw", "all", 0.96, 2000.0, {"ef": 64}),
        _row("faiss-hnsw", "~1%", 0.7, 3000.0, {"ef": 64}),
        _row("exact", "all", 1.0, 100.0), _row("exact", "~1%", 1.0, 250.0),
        _row("lancedb", "all", 0.9, 5000.0, note="prefilter where"), _row("lancedb", "~1%", 0.95, 10.0),
        _row("qdrant", "all", 1.0, 1e6, error="boom"),
    ]
    lines = default_vs_all_table(rows, 10, set())
    head = lines[0].strip("| ").split(" | ")
    assert head[:6] == ["band", "R", "Q", "p50 ms", "yardstick QPS", "Q ÷ yardstick"]
    assert head[6:] == ["vecdb, best setting", "faiss-hnsw", "exact", "lancedb", "qdrant"]
    all_ = dict(zip(head, _cells(lines, "all")))
    assert all_["R"] == "0.960" and all_["Q"] == "1,000" and all_["p50 ms"] == "1.00"
    assert all_["faiss-hnsw"] == "0.50 (2,000)"  # ef=64 reaches R = 0.96 despite float rounding; ef=32 does not
    assert all_["exact"] == "10.00 (100)"
    assert all_["vecdb, best setting"] == "0.83 (1,200)"  # the other build's default at 0.98
    assert all_["lancedb"] == "never reaches R (max recall 0.900)"
    assert all_["qdrant"] == "run error"
    assert all_["yardstick QPS"] == "2,000 (faiss-hnsw ef=64)" and all_["Q ÷ yardstick"] == "0.50"
    low = dict(zip(head, _cells(lines, "~1%")))
    assert low["yardstick QPS"] == "250 (exact)" and low["Q ÷ yardstick"] == "— (R < 0.95)"
    assert low["faiss-hnsw"] == "never reaches R (max recall 0.700)" and low["lancedb"] == "50.00 (10)"
    assert low["qdrant"] == "—"
    assert not any(line.startswith("| ~50% |") for line in lines)  # no vecdb default run in that band
    assert lines[-1] == "Engines: lancedb: prefilter where"
    assert "no `vecdb` run" in default_vs_all_table([r for r in rows if r["engine"] != "vecdb"], 10, set())[0]


def _fake_band_points():
    """cost_points_by_band over three fake datasets: faiss-hnsw misses 0.9 at 1M in ~1% and everywhere in <100."""
    from benchmarks.report import cost_points_by_band

    points = []
    for n in (100_000, 300_000, 1_000_000):
        rows = []
        for band in BANDS:
            grow = n / 1e5
            rows += [_row("vecdb", band, 0.85 if band == "<100" else 0.95, 2000 / grow ** 0.3),
                     _row("vecdb", band, 0.97, 1500 / grow ** 0.3, {"ef": 64}),
                     _row("exact", band, 1.0, 400 / grow)]
            reach = band != "<100" and not (band == "~1%" and n == 1_000_000)
            rows.append(_row("faiss-hnsw", band, 0.92 if reach else 0.6, 3000 / grow ** 0.3, {"ef": 32}))
        res = types.SimpleNamespace(meta={"dataset": {"n": n, "name": f"synthetic-{n // 1000}k"}})
        points += cost_points_by_band(res, rows)
    return points


def test_cost_by_band_points_and_table():
    from benchmarks.report import DEFAULT_SERIES, cost_by_band_table

    points = _fake_band_points()
    assert {p["band"] for p in points} == set(BANDS)
    p = next(p for p in points if p["band"] == "all" and p["series"] == "vecdb" and p["n"] == 100_000)
    assert p["latency_ms"] == pytest.approx(0.5) and p["setting"] == "default"  # the cheapest one reaching 0.9
    d = next(p for p in points if p["band"] == "<100" and p["series"] == DEFAULT_SERIES and p["n"] == 300_000)
    assert d["recall"] == 0.85 and np.isfinite(d["latency_ms"])  # the default series whatever its recall
    lines = cost_by_band_table(points)
    assert lines[0] == "| band | engine | N = 100,000 | N = 300,000 | N = 1,000,000 | × first → last N |"
    assert _cells(lines, "~1%")[1] == "vecdb"
    rows = {tuple(c[:2]): c[2:] for c in (line.strip("| ").split(" | ") for line in lines[2:])}
    assert rows[("~1%", "faiss-hnsw")][2] == "—" and rows[("<100", "faiss-hnsw")] == ["—"] * 4
    assert rows[("all", "exact")] == ["2.500 (default)", "7.500 (default)", "25.000 (default)", "10.0"]
    assert rows[("<100", DEFAULT_SERIES)][0] == "0.500 (R 0.850)"
    assert rows[("all", "vecdb")][0] == "0.500 (default)" and rows[("<100", "vecdb")][0] == "0.667 (ef=64)"
    fewer = [p for p in points if not (p["series"] == "exact" and p["n"] == 300_000)]  # exact not in that run
    row = next(line for line in cost_by_band_table(fewer) if line.startswith("| all | exact |"))
    assert row.strip("| ").split(" | ")[2:] == ["2.500 (default)", "not run", "25.000 (default)", "10.0"]


def test_cost_vs_n_by_band_plot(tmp_path):
    from benchmarks import plots

    out = plots.cost_vs_n_by_band(_fake_band_points(), tmp_path / "cost_vs_n_by_band.png", "cost vs N per band")
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000


# ----------------------------------------------------------------------------- the smoke run (what CI runs)
@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "smoke"
    assert main(["--smoke", "--out", str(out)]) == 0
    return out


def test_smoke_writes_raw_results_with_provenance(smoke):
    meta = json.loads((smoke / "meta.json").read_text())
    assert meta["dataset"]["name"] == "arxiv-slice" and meta["dataset"]["n"] == 5000
    assert {"numpy", "faiss-cpu", "hnswlib", "pyarrow", "python"} <= set(meta["versions"])
    assert meta["machine"]["cpu_count"] >= 1 and "--smoke" in meta["command"] and meta["finished"]
    runs = [json.loads(line) for line in (smoke / "runs.jsonl").read_text().splitlines()]
    assert {r["engine"] for r in runs} == {c.name for c in eng.CORE}
    assert {r["k"] for r in runs} == {10, 100} and not any(r["error"] for r in runs)
    builds = [json.loads(line) for line in (smoke / "builds.jsonl").read_text().splitlines()]
    assert all(b["build_s"] >= 0 and "rss_delta_bytes" in b and b["disk_bytes"] >= 0 for b in builds)
    raw = pq.read_table(smoke / "raw" / f"{runs[0]['run_id']}.parquet")
    assert raw.num_rows == meta["dataset"]["nq"] and raw.schema.field("ids").type.list_size == runs[0]["k"]
    assert set(raw.column_names) == {"qid", "ids", "scores", "latency_s", "error"}
    # every engine with files of its own reopened in a fresh process, every query answered there
    memory = {m["engine"]: m for m in map(json.loads, (smoke / "memory.jsonl").read_text().splitlines())}
    assert {"vecdb", "faiss-hnsw", "hnswlib"} <= set(memory)
    for m in memory.values():
        assert not m.get("error") and m["queries"] == meta["dataset"]["nq"]
        assert m["after_queries_bytes"] >= m["open_bytes"] > 0
    # the head-to-head pass: every setting of the other families' engines against vecdb's default, in turns
    pairs = [json.loads(line) for line in (smoke / "pairs.jsonl").read_text().splitlines()]
    first_builds = {next(b["build_id"] for b in builds if b["family"] == f) for f in {b["family"] for b in builds}}
    assert {(p["engine"], json.dumps(p["params"])) for p in pairs} == \
        {(r["engine"], json.dumps(r["search_params"])) for r in runs
         if r["family"] != "vecdb" and r["build_id"] in first_builds and r["k"] == 10}
    assert not any("error" in p for p in pairs)
    assert all(p["reference"]["engine"] == "vecdb" and p["reference"]["params"] == {} and p["queries"] == 1000
               and len(p["reference_s"]) == len(p["engine_s"]) == meta["repeat"] for p in pairs if "skipped" not in p)


def test_smoke_summary_and_plots(smoke):
    text = (smoke / "summary.md").read_text()
    for heading in ("vecdb at its default settings against every engine at equal recall", "Q ÷ yardstick",
                    "Best single-thread QPS", "× exact", "k = 100", "Correctness", "Builds", "Resident memory",
                    "Recall targets: what `target_recall=t` delivers per band",
                    "Unfiltered batches head to head"):
        assert heading in text
    for engine in ("vecdb", "faiss-hnsw", "hnswlib", "exact"):
        assert f"| {engine} |" in text
    for name in ("recall_qps_k10.png", "qps_selectivity_k10.png"):
        data = (smoke / "plots" / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
    assert not (smoke / "plots" / "cost_vs_n.png").exists()  # one dataset, one N: no single-point plot
    agg = (smoke / "metrics" / "aggregate.csv").read_text().splitlines()
    assert agg[0].startswith("run_id,engine") and len(agg) > 20


def test_smoke_core_engines_never_return_rows_failing_their_filter(smoke):
    per_query = pq.read_table(smoke / "metrics" / "per_query.parquet")
    assert sum(per_query.column("filter_fail").to_pylist()) == 0
    recall = np.array(per_query.column("recall").to_pylist())
    assert ((recall >= 0) & (recall <= 1)).all()


def test_report_again_from_stored_results(smoke, tmp_path):
    summary = (smoke / "summary.md").read_text()
    (smoke / "summary.md").unlink()
    assert main(["report", str(smoke)]) == 0
    assert (smoke / "summary.md").read_text().split("### Correctness")[1] == summary.split("### Correctness")[1]
