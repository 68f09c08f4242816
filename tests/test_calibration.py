"""Build-time recall calibration (``vecdb/calibration.py``): the query model, the masks of each band of
selectivity, the curves measured the way the planner walks, and the beam read back per selectivity."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb import calibration, planner
from vecdb.indexes.flat import exact_search


def test_calibration_queries_sit_off_the_rows():
    """Calibration queries are rows moved by ``PERTURB`` x their 1-NN distance: none equals a stored
    row, each is farther from its nearest row than that row's own nearest neighbour."""
    from vecdb.calibration import calibration_queries

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = calibration_queries(x, "cosine", 50, np.random.default_rng(1))
    assert q.shape == (50, 16) and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    nearest = exact_search(x, q, 1, "cosine")
    assert np.all(nearest.scores[:, 0] < 0.9999)


def test_old_calibrations_keep_the_fixed_default_beam():
    """Curves saved before ``method`` existed (midpoint queries, one filtered curve) drive
    ``target_recall`` only; the default stays the index's ef_search."""
    from vecdb.calibration import ef_for

    old = {"unfiltered": [[16, 0.8], [64, 0.94], [128, 0.97]], "filtered_graph": [[16, 0.9], [64, 0.97]]}
    assert ef_for(old, "index", 0.95) == 128 and ef_for(old, "filtered_graph", 0.95) == 64
    new = {"method": "m", "unfiltered": [[16, 0.8]], "filtered_bands": [[0.5, [[16, 0.99]]], [0.05, [[16, 0.5],
                                                                                                    [32, 0.96]]]]}
    assert ef_for(new, "filtered_graph", 0.95, 0.6) == 16 and ef_for(new, "filtered_graph", 0.95, 0.1) == 32
    assert ef_for(new, "filtered_graph", 0.95, 0.01) == 32  # below every band: the sparsest


def test_filtered_beam_interpolates_between_bands():
    """Between two calibrated bands each beam's recall is interpolated in log selectivity: the beam
    needed for a target never drops as the selectivity moves from the easy band to the hard one, and at
    a band it is that band's own answer."""
    curves = {"method": "m", "unfiltered": [[16, 0.9]],
              "filtered_bands": [[0.5, [[16, 0.80], [32, 0.90], [64, 0.97]]],
                                 [0.05, [[16, 0.95], [32, 0.98], [64, 0.99]]]]}
    assert calibration.ef_for(curves, "filtered_graph", 0.9, 0.5) == 32
    assert calibration.ef_for(curves, "filtered_graph", 0.9, 0.05) == 16
    # halfway in log selectivity: 16 reads 0.875, 32 reads 0.94
    assert calibration.ef_for(curves, "filtered_graph", 0.9, float(np.sqrt(0.5 * 0.05))) == 32
    assert calibration.ef_for(curves, "filtered_graph", 0.87, float(np.sqrt(0.5 * 0.05))) == 16
    beams = [calibration.ef_for(curves, "filtered_graph", 0.96, s) for s in np.geomspace(0.9, 0.01, 30)]
    assert beams == sorted(beams, reverse=True) and beams[0] == 64 and beams[-1] == 32


def test_band_masks_pass_the_band_share_and_topic_masks_take_whole_regions():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 8)).astype(np.float32) * 4
    x = (centres[rng.integers(0, 10, 3000)] + rng.normal(size=(3000, 8))).astype(np.float32)
    region = calibration.regions(x, "l2", rng, count=10)
    assert region.shape == (3000,) and set(np.unique(region)) <= set(range(10))
    # each row's region is its nearest sampled centre: rows of one region sit closer together
    same = region[:, None] == region[None, :300]
    dist = np.linalg.norm(x[:, None, :] - x[None, :300, :], axis=2)
    assert dist[same].mean() < 0.8 * dist[~same].mean()
    masks = calibration.band_masks(region, 0.2, 6, rng)
    assert masks.shape == (6, 3000) and np.all(masks.sum(1) == 600)
    for i, mask in enumerate(masks):
        partial = [r for r in np.unique(region[mask]) if not mask[region == r].all()]
        if i % 2 == 0:  # topic: whole regions but the last one taken
            assert len(partial) <= 1
        else:  # random rows: scattered over (nearly) every region
            assert len(np.unique(region[mask])) >= 8


class _Spy:
    """Wraps a FAISS HNSW index and records the gather width of every filtered walk."""

    def __init__(self, index):
        self._index, self.gathers, self.masks = index, [], set()

    def __getattr__(self, name):
        return getattr(self._index, name)

    def search_filtered_graph(self, queries, k, allow, *, ef=None, budget=None, gather=None):
        self.gathers.append((round(float(allow.mean()), 2), gather))
        self.masks.add((round(float(allow.mean()), 2), np.packbits(allow).tobytes()))
        return self._index.search_filtered_graph(queries, k, allow, ef=ef, budget=budget, gather=gather)


def test_filtered_curves_measure_the_walk_the_planner_runs(tmp_path):
    """Each band's walk uses the planner's gather width at that selectivity, and the curves are
    recalls of the exact oracle, rising with the beam."""
    from vecdb.indexes.base import BeamIndex, FilteredGraphIndex
    from vecdb.indexes.faiss_indexes import HNSWIndex

    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 16)).astype(np.float32)
    index = HNSWIndex(16, "l2", M=8, ef_construction=40)
    index.build(x)
    spy = _Spy(index)
    assert isinstance(spy, BeamIndex) and isinstance(spy, FilteredGraphIndex)
    curves = calibration.calibrate(spy, x, "l2", n_queries=40, n_filtered=40)
    assert [s for s, _ in curves["filtered_bands"]] == list(calibration.SELECTIVITIES)
    for sel, gather in spy.gathers:
        band = min(calibration.SELECTIVITIES, key=lambda s: abs(s - sel))
        assert gather == planner.gather_width(8, band)
    for _, curve in curves["filtered_bands"]:
        recalls = [r for _, r in curve]
        assert all(0 <= r <= 1 for r in recalls) and recalls[-1] >= recalls[0] and recalls[-1] > 0.8


def test_calibration_choices_can_be_given():
    """``masks``, ``perturb`` and ``filtered_perturb`` (for measuring other choices than the module's,
    ``tools/calibration_seeds.py``): each band is measured under that many masks, and queries moved
    farther sit farther from the rows."""
    from vecdb.indexes.faiss_indexes import HNSWIndex

    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 16)).astype(np.float32)
    index = HNSWIndex(16, "l2", M=8, ef_construction=40)
    index.build(x)
    spy = _Spy(index)
    calibration.calibrate(spy, x, "l2", n_queries=40, n_filtered=40, masks=4)
    per_band = {}
    for sel, _ in spy.masks:
        per_band[sel] = per_band.get(sel, 0) + 1
    assert sorted(per_band) == sorted(calibration.SELECTIVITIES) and set(per_band.values()) == {4}
    near, far = (exact_search(x, calibration.calibration_queries(x, "l2", 200, np.random.default_rng(5), perturb=p),
                              1, "l2").scores[:, 0] for p in (0.5, 3.0))
    assert np.median(far) < np.median(near)  # (l2 scores: negated squared distances)


def _clusters(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float = 0.35) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), n)] + spread * rng.normal(size=(n, centres.shape[1]))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_calibrate_on_a_sample_of_real_queries(tmp_path):
    """``Collection.calibrate(queries)``: curves measured on the user's queries, saved as a version of
    their own (the index files unchanged, older versions keep their curves), read by ``target_recall``
    and the default beam; queries from the same source then get at least the target."""
    from .conftest import small_table

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 24))
    c = vecdb.create(tmp_path / "c.vdb", dim=24, metric="cosine")
    c.add(_clusters(rng, 6000, centres), small_table(rng, 6000))
    c.build_index("hnsw", M=8, ef_construction=60)
    built = dict(c.snapshot.store.calibration)
    version = c.version
    curves = c.calibrate(_clusters(rng, 150, centres))
    assert curves["method"] == calibration.SAMPLE_METHOD and curves["queries"] == 150
    assert curves != built and [s for s, _ in curves["filtered_bands"]] == list(calibration.SELECTIVITIES)
    assert c.version == version + 1 and c.versions()[-1]["operation"] == "calibrate"
    assert dict(c.snapshot.store.calibration) == curves
    again = vecdb.open(tmp_path / "c.vdb")
    assert dict(again.snapshot.store.calibration) == curves
    assert dict(vecdb.open(tmp_path / "c.vdb", version=version).snapshot.store.calibration) == built

    held_out = _clusters(rng, 60, centres)
    exact = c.search(held_out, 10, plan="exact")
    for target in (0.9, 0.99):
        ef = c.explain(held_out[0], target_recall=target).params["ef"]
        assert ef == calibration.ef_for(curves, "index", target)
        got = c.search(held_out, 10, target_recall=target)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.ids, exact.ids)])
        assert recall >= target - 0.02, (target, recall)
    assert c.explain(held_out[0]).params["ef"] == calibration.ef_for(curves, "index", 0.95)  # the default


def test_calibrate_under_the_samples_own_filters(tmp_path):
    """``Collection.calibrate(queries, where=...)``: a band that the sample's filters fill is measured
    under those filters, read at their median selectivity; the bands they leave empty keep made-up
    masks; filtered queries like the sample's then get at least the target through the walk; a list
    of the wrong length or a bad filter is refused before anything is written."""
    from vecdb.errors import FilterError, InvalidParameterError

    from .conftest import small_table

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(40, 24))
    c = vecdb.create(tmp_path / "c.vdb", dim=24, metric="cosine")
    c.add(_clusters(rng, 6000, centres), small_table(rng, 6000))  # price ~ N(10, 5)
    c.build_index("hnsw", M=8, ef_construction=60)
    q = _clusters(rng, 200, centres)
    half = [f"price > {10 + 0.2 * rng.random():.3f}" for _ in range(80)]  # ~50%, each its own
    tenth = [f"price > {17 + 0.2 * rng.random():.3f}" for _ in range(70)]  # ~8%
    where = [None] * 40 + half + tenth + ["price > 30"] * 10  # (~0.1%: in no band)
    version = c.version
    with pytest.raises(InvalidParameterError, match="one per query"):
        c.calibrate(q, where=where[:-1])
    with pytest.raises(FilterError):
        c.calibrate(q, where=where[:-1] + ["no_such_column > 1"])
    assert c.version == version
    curves = c.calibrate(q, where=where)
    assert c.version == version + 1 and dict(c.snapshot.store.calibration) == curves
    assert curves["method"] == calibration.SAMPLE_METHOD + ";own-filters"
    shares = {w: c.count(w) / 6000 for w in half + tenth}
    own = curves["own_filter_bands"]
    assert len(own) == 2
    assert own[0] == pytest.approx(np.median([shares[w] for w in tenth]))
    assert own[1] == pytest.approx(np.median([shares[w] for w in half]))
    bands = [s for s, _ in curves["filtered_bands"]]
    assert sorted(bands, reverse=True) == [own[1], 0.2, own[0], 0.03]  # 0.5 and 0.08 replaced by the filters'

    held_out = _clusters(rng, 60, centres)
    where = "price > 17.1"
    sel = c.count(where) / 6000
    exact = c.search(held_out, 10, where=where, plan="exact")
    for target in (0.9, 0.99):
        plan = c.explain(held_out[0], where=where, plan="filtered_graph", target_recall=target)
        assert plan.params["ef"] == calibration.ef_for(curves, "filtered_graph", target, sel)
        got = c.search(held_out, 10, where=where, plan="filtered_graph", target_recall=target)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.ids, exact.ids)])
        assert recall >= target - 0.03, (target, recall)


def test_own_bands_take_filters_near_a_band_and_enough_queries():
    """``calibration.own_bands``: a filter joins the band nearest its selectivity (log scale) within half
    the step to the next; a band needs ``MIN_SAMPLE`` queries and keeps at most ``SAMPLE_FILTERED``,
    whole filters first; its selectivity is its queries' median."""
    rng = np.random.default_rng(0)
    mask = lambda n: np.ones(n, bool)  # noqa: E731 (not read here)
    f = lambda count, share: calibration.SampleFilter(np.arange(count), share, mask)  # noqa: E731
    bands = calibration.SELECTIVITIES  # 0.5, 0.2, 0.08, 0.03: steps of ~2.5x, reach ~1.58x
    got = calibration.own_bands([f(15, 0.45), f(10, 0.6), f(30, 0.9), f(30, 0.1), f(5, 0.2), f(40, 0.005)],
                                bands, 100_000, 10, rng)
    assert set(got) == {0.5, 0.08}  # 0.9 and 0.005 near none; 0.2 has 5 queries
    assert got[0.5][0] == pytest.approx(0.45) and sum(len(m) for m, _ in got[0.5][1]) == 25
    assert got[0.08][0] == pytest.approx(0.1)
    many = calibration.own_bands([f(300, 0.5), f(300, 0.4)], bands, 100_000, 10, rng)
    assert sum(len(m) for m, _ in many[0.5][1]) == calibration.SAMPLE_FILTERED
    assert calibration.own_bands([f(50, 1e-4)], bands, 100_000, 10, rng) == {}  # fewer rows than 4k pass


def test_calibrate_refuses_bad_input_and_changes_nothing(tmp_path):
    from vecdb.errors import DimensionError, InvalidParameterError, InvalidVectorError

    from .conftest import small_table

    rng = np.random.default_rng(4)
    c = vecdb.create(tmp_path / "c.vdb", dim=8, metric="l2")
    c.add(rng.normal(size=(500, 8)).astype(np.float32), small_table(rng, 500))
    q = rng.normal(size=(30, 8)).astype(np.float32)
    with pytest.raises(InvalidParameterError, match="0 indexes"):
        c.calibrate(q)  # no index yet
    c.build_index("hnsw", M=8, ef_construction=40)
    c.build_index("flat", name="exact")
    version, curves = c.version, dict(c.snapshot.store.calibration)
    with pytest.raises(InvalidParameterError, match="at least"):
        c.calibrate(q[:5])
    with pytest.raises(DimensionError):
        c.calibrate(rng.normal(size=(30, 9)))
    with pytest.raises(InvalidVectorError):
        c.calibrate(np.full((30, 8), np.nan))
    with pytest.raises(InvalidParameterError, match="no index"):
        c.calibrate(q, index="nope")
    with pytest.raises(InvalidParameterError, match="no beam"):
        c.calibrate(q, index="exact")
    assert c.version == version and dict(c.snapshot.store.calibration) == curves
    assert c.calibrate(q, index="hnsw")["method"] == calibration.SAMPLE_METHOD
