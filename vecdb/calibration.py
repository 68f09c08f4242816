"""Recall calibration at build time, so ``search(..., target_recall=0.95)`` (and the default, a recall
target too: ``PlannerConfig.default_target_recall``) can pick the beam width.

Calibration queries must resemble real ones, or every target is missed or over-served. Measured on
arxiv (72,000 x 384, HNSW M=32, the 1,000 public queries unfiltered, recall@10 at ef 16 / 32 / 64 / 128):

- real queries:                                   0.862 / 0.939 / 0.975 / 0.992
- stored rows searched without themselves:        0.974 / 0.993 / 0.999 / 0.999 (far too easy: each
  sits on a graph node, and its neighbours are that node's links)
- midpoints of two random rows (the old choice):  0.768 / 0.876 / 0.940 / 0.978 (too hard)
- a row moved in a random direction by 1.5x / 2x its own 1-NN distance:
                                                  0.901 / 0.949 / 0.979 / 0.992, 0.850 / 0.919 / 0.964 / 0.986

Real queries sit about 1.2x farther from their nearest stored row than a stored row sits from its own
nearest neighbour (0.86 against 0.71 on arxiv), which a move of about 1.7x would match; ``PERTURB`` is
2.1, a little harder than real queries, so that a target is met rather than missed: on arxiv the real
curve passes 0.95 between ef 40 (0.949) and 48 (0.963), and at 2.0 the model read 0.95 at 40 in 2 of 5
seeds (the choice is documented here because it was fitted on one dataset). Each query is a sampled row
moved by ``PERTURB`` times that row's 1-NN distance in a random direction (renormalised for cosine).

Filtered queries are harder to model: the walk's recall depends on the filter's shape as much as on
the query. Real attribute filters are of two kinds: ones that follow the content (a category, a
subject: the passing rows sit together) and ones independent of it (a date range, an author count: the
passing rows are scattered). Random row masks model only the second; on arxiv's ~10% band the first
kind makes the walk need more beam than random masks say. So each band of selectivity is measured with
``MASKS`` masks, half "topic" masks (whole regions around ``REGIONS`` sampled rows, taken in a random
order until the band's share passes) and half random rows, each mask shared by a few queries, and the
filtered queries are rows moved ``FILTERED_PERTURB`` x their 1-NN distance. That move was fitted per
band on arxiv (recall@10 at ef 20, model at 1.7x / 1.5x against real queries): ~50%, topic masks 0.881 /
0.911 against 0.918 for real category filters, random masks 0.884 / 0.905 against 0.936 for dates and
author counts; ~10%, topic 0.902 / 0.904 against 0.922, random 0.956 / 0.960 against 0.973. At 1.7 the
~50% band read ~0.03 low and its 0.90 target was over-served in every seed of five; at 1.5 the ~10% band's
0.99 target fell to 0.988 in one seed of five; 1.55 is between. (With 2.0 the filtered curves read
0.03-0.05 below what real queries get.) The walk is measured as the planner runs it: the planner's
gather width at the band's selectivity (``planner.gather_width``; the curves made before measured a
fixed 2M and read ~0.06 low for the ~10% band, which the planner walks with 4M). A search reads the
curve at its own selectivity, each beam's recall interpolated in log selectivity between the two bands
around it.

The curves are averages over ``QUERIES`` unfiltered queries and ``FILTERED_QUERIES`` filtered ones under
``MASKS`` masks per band: with 200 / 400 / 40 the beam a target got moved with the seed (arxiv, 9
seeds: ~50% at 0.90 delivered 0.925-0.954, unfiltered 0.95 0.949-0.963), and 13 of the 81 target cells
below fell outside [t, t + 0.03]; with 1,000 / 1,000 / 100 (arxiv: 13 -> 32 s at build) and the moves
above, 1 of 63 (7 seeds).

Delivered on the arxiv public queries (HNSW M=32, recall@10, one query at a time; 142 queries in the
~50% band, 201 in ~10%; calibration seeds 0-6, seed 0 the build's), target 0.90 / 0.95 / 0.99:

- unfiltered 0.915 / 0.963 / 0.991-0.994;
- ~50%: 0.922-0.934 (0.934 in seed 1, 0.004 over; seed 0 0.925) / 0.972-0.973 / 0.991-0.994;
- ~10%: 0.917-0.918 / 0.951-0.968 / 0.991-0.993;
- at or below ~1% the exact scan is the cheaper plan and delivers 1.0.

Targets are read at the measured widths. Reading the curve between them (the straight line between two
widths) put more cells off by a little either way (with the moves before, 9 seeds: unfiltered 0.90
down to 0.876, 0.99 to 0.988), and on synthetic-1M calibrated on a sample of its own queries the
curves read a little high, which rounding up to a measured width had hidden: the default (0.95) delivered 0.941 at
~50% and target 0.99 0.989 unfiltered (runner, 2e688d5). With 64 regions instead of 16 (smaller,
scattered topics), ~10% at 0.99 fell to 0.986 in one seed of three.

On data whose real queries sit as close to the rows as the rows to each other (synthetic Gaussian
clusters: ratio 0.99 against arxiv's 1.21), every query model here is too hard and the targets are
over-served: on synthetic-1M the 0.95 default runs ef 256 and delivers 1.000. There
``Collection.calibrate(queries)`` measures the curves on a sample of the user's own queries instead
(``SAMPLE_METHOD``: unfiltered, and under topic and random masks per band).

A sample keeps the smaller filtered measurement (``SAMPLE_FILTERED`` queries under ``SAMPLE_MASKS``
masks a band): on synthetic-1M, whose ~50% filters are ranges over a column independent of the
vectors, 1,000 queries under 100 masks read that band's curve lower, and the default (0.95) delivered
0.991 there instead of 0.958 and target 0.99 1.000 instead of 0.991 (runner, 4ee8bc1; the other
bands unchanged). Half of every band's masks are topics, which fit filters that follow the content
(arxiv's categories), not ranges over an unrelated column; a larger sample measures that mismatch
more surely, not less. So a sample may come with the filters its queries carried
(``Collection.calibrate(queries, where=...)``): each band that ``MIN_SAMPLE`` of them fall in is
measured under them, read at their median selectivity (``own_bands``), and only the bands they leave
empty under made-up masks.

Curves: recall@k against the exact oracle per beam width, unfiltered, and for the filtered graph walk
once per band of selectivity (``SELECTIVITIES``). The curves are saved in the manifest beside the index
(``method`` names how they were made; collections calibrated before it keep their fixed default beam).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from . import parallel
from .indexes.base import BeamIndex, FilteredGraphIndex
from .indexes.flat import exact_search

EFS = (12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512)
SELECTIVITIES = (0.5, 0.2, 0.08, 0.03)
PERTURB = 2.1  # unfiltered queries
FILTERED_PERTURB = 1.55  # filtered queries
REGIONS = 16  # topic masks: regions around this many sampled rows (a few broad subjects)
QUERIES = 1000  # unfiltered queries
FILTERED_QUERIES = 1000  # filtered queries, spread over the masks of each band
MASKS = 100  # distinct masks per band of selectivity, half topic, half random
METHOD = "perturbed-rows-2.1x-1nn;filtered-1.55x-topic-and-random-masks"
SAMPLE_METHOD = "sample-queries;topic-and-random-masks"  # Collection.calibrate(queries)
MIN_SAMPLE = 20  # queries Collection.calibrate needs at least
SAMPLE_MAX = 1000  # of a larger sample, this many measured unfiltered
SAMPLE_FILTERED = 400  # ... and this many of them filtered, under SAMPLE_MASKS masks a band (see below)
SAMPLE_MASKS = 40
FILTERED_MARGIN = 0.02  # the old single filtered curve (random masks, midpoint queries) only


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f[f >= 0], t[t >= 0])) for f, t in zip(found, truth))
    return hits / max(1, int((truth >= 0).sum()))


def calibration_queries(vectors: np.ndarray, metric: str, n_queries: int, rng: np.random.Generator, *,
                        perturb: float = PERTURB) -> np.ndarray:
    """Sampled rows, each moved ``perturb`` x its 1-NN distance (among the other rows) in a random
    direction: out-of-sample queries about as far from the data as real ones (see the module doc)."""
    n = vectors.shape[0]
    picked = rng.choice(n, min(n, n_queries), replace=False)
    base = np.ascontiguousarray(vectors[picked], dtype=np.float32)
    nearest = exact_search(vectors, base, 2, metric).rows
    other = np.where(nearest[:, 0] == picked, nearest[:, 1], nearest[:, 0])
    gap = np.linalg.norm(np.asarray(vectors[np.maximum(other, 0)], dtype=np.float32) - base, axis=1)
    direction = rng.normal(size=base.shape).astype(np.float32)
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
    queries = base + (perturb * gap)[:, None] * direction
    if metric == "cosine":
        queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(queries, dtype=np.float32)


def regions(vectors: np.ndarray, metric: str, rng: np.random.Generator, count: int = REGIONS) -> np.ndarray:
    """Each row's nearest of ``count`` sampled rows: coarse topics, the way attribute filters that follow
    the content (a category, a subject) carve the rows."""
    centres = np.ascontiguousarray(vectors[rng.choice(vectors.shape[0], min(count, vectors.shape[0]),
                                                      replace=False)], dtype=np.float32)
    out = np.empty(vectors.shape[0], dtype=np.int64)
    step = 65536
    for a in range(0, vectors.shape[0], step):
        block = np.ascontiguousarray(vectors[a:a + step], dtype=np.float32)
        out[a:a + step] = exact_search(centres, block, 1, metric).rows[:, 0]
    return out


def band_masks(region: np.ndarray, selectivity: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` masks passing ``selectivity`` of the rows: even ones whole topic regions taken in a random
    order (the last one in part), odd ones rows drawn at random (filters independent of the content, a
    date range)."""
    n = region.shape[0]
    want = max(1, int(round(selectivity * n)))
    masks = np.zeros((count, n), dtype=bool)
    for i in range(count):
        if i % 2:
            masks[i, rng.choice(n, want, replace=False)] = True
            continue
        rank = rng.permutation(int(region.max()) + 1)[region]  # each row's region's place in the draw
        order = np.lexsort((rng.random(n), rank))
        masks[i, order[:want]] = True
    return masks


def calibrate(index: Any, vectors: np.ndarray, metric: str, *, k: int = 10, n_queries: int = QUERIES,
              n_filtered: int | None = None, selectivities: tuple[float, ...] = SELECTIVITIES, seed: int = 0,
              sample: np.ndarray | None = None, sample_filters: Sequence[SampleFilter] = (),
              perturb: float = PERTURB, filtered_perturb: float = FILTERED_PERTURB,
              masks: int | None = None) -> dict[str, Any]:
    """Recall@k per beam width: ``{"unfiltered": [[ef, r], ...], "filtered_bands": [[sel, [[ef, r], ...]],
    ...], ...}``. The filtered walk is measured as the planner runs it (its gather width at the band's
    selectivity, ``planner.gather_width``). ``sample``: real queries (prepared: float32, unit length for
    cosine) measured instead of moved rows, unfiltered and under each band's masks
    (``Collection.calibrate``); ``sample_filters``: the filters some of them carry (``SampleFilter``),
    which replace the made-up masks in the bands they fill (``own_bands``). ``perturb``,
    ``filtered_perturb`` and ``masks``: the module's choices, given for measuring others
    (``tools/calibration_seeds.py``); ``n_filtered`` and ``masks`` default to ``FILTERED_QUERIES`` and
    ``MASKS``, or for a sample to ``SAMPLE_FILTERED`` and ``SAMPLE_MASKS``."""
    from .planner import gather_width  # the planner reads these curves (``ef_for``)

    n = index.ntotal
    if n < 2 * k or not isinstance(index, BeamIndex):
        return {}
    rng = np.random.default_rng(seed)
    if n_filtered is None:
        n_filtered = FILTERED_QUERIES if sample is None else SAMPLE_FILTERED
    if masks is None:
        masks = MASKS if sample is None else SAMPLE_MASKS
    head = vectors[:n]
    if sample is None:
        queries, method = calibration_queries(head, metric, n_queries, rng, perturb=perturb), METHOD
    else:
        picked = rng.choice(len(sample), min(len(sample), SAMPLE_MAX), replace=False)
        queries, method = np.ascontiguousarray(sample[np.sort(picked)], dtype=np.float32), SAMPLE_METHOD
    truth = exact_search(head, queries, k, metric).rows
    curves: dict[str, Any] = {"k": k, "queries": len(queries), "method": method, "unfiltered": []}
    for ef in EFS:
        curves["unfiltered"].append([ef, _recall(index.search(queries, k, ef=ef).rows, truth)])
    if not isinstance(index, FilteredGraphIndex):
        return curves
    if sample is None:
        queries = calibration_queries(head, metric, n_filtered, rng, perturb=filtered_perturb)
    else:
        queries = queries[:n_filtered]
    own = own_bands(sample_filters, selectivities, n, k, rng) if sample is not None else {}
    region = regions(head, metric, rng) if len(own) < len(selectivities) else None
    groups = np.arange(len(queries)) % masks
    walk_efs = EFS[:-2]  # the walk past 256 is never what a target needs (the widest stands in)
    curves["filtered_bands"] = []
    for s in selectivities:
        if s * n < 4 * k:
            continue
        if s in own:  # the sample's own filters: the band read at their median selectivity
            at, items = own[s][0], [(sample[members], mask) for members, mask in own[s][1]]
        else:
            at, items = s, [(queries[groups == g], lambda _, mask=mask: mask)
                            for g, mask in enumerate(band_masks(region, s, masks, rng)) if (groups == g).any()]
        gather = gather_width(index.M, at)

        def measure(item: tuple[np.ndarray, Any]) -> tuple[np.ndarray, list[np.ndarray]]:
            mine, mask_of = item
            mask = mask_of(n)
            truth = exact_search(head, mine, k, metric, allow=mask).rows
            found = []
            for ef in walk_efs:
                hits, complete = index.search_filtered_graph(mine, k, mask, ef=ef, budget=n, gather=gather)
                found.append(np.where(complete[:, None], hits.rows, truth))
            return truth, found

        with parallel.blas_threads(1):  # the groups are the parallelism
            parts = parallel.run_all(measure, items, parallel.get_threads())
        truth = np.concatenate([t for t, _ in parts])
        curve = [[ef, _recall(np.concatenate([found[j] for _, found in parts]), truth)]
                 for j, ef in enumerate(walk_efs)]
        curves["filtered_bands"].append([at, curve])
    if own:
        curves["method"] = f"{SAMPLE_METHOD};own-filters"
        curves["own_filter_bands"] = sorted(at for at, _ in own.values())
    return curves


class SampleFilter(NamedTuple):
    """A filter that queries of a calibration sample carry (``Collection.calibrate(queries, where=...)``)."""

    queries: np.ndarray  # the sample's queries carrying it (positions in the sample)
    selectivity: float  # the share of the live rows passing it (what the planner reads a curve at)
    mask: Callable[[int], np.ndarray]  # n -> its bool mask over the index's first n rows (made when measured)


def own_bands(filters: Sequence[SampleFilter], selectivities: tuple[float, ...], n: int, k: int,
              rng: np.random.Generator) -> dict[float, tuple[float, list[tuple[np.ndarray, Any]]]]:
    """The bands that a sample's own filters fill: ``{band: (the median selectivity of its queries,
    [(queries, mask), ...])}``. A filter falls in the band nearest its selectivity in log scale, when
    within half the step to the next one (a filter passing 90% or 0.5% of the rows is in none); a band
    needs ``MIN_SAMPLE`` queries, and keeps whole filters in a random order up to ``SAMPLE_FILTERED``."""
    logs = np.log(np.asarray(selectivities, dtype=np.float64))
    reach = 0.5 * float(np.min(np.abs(np.diff(logs)))) if len(logs) > 1 else math.log(2.0)
    by_band: dict[float, list[SampleFilter]] = {}
    for f in filters:
        if f.selectivity * n < 4 * k or not len(f.queries):
            continue
        distance = np.abs(logs - math.log(f.selectivity))
        nearest = int(np.argmin(distance))
        if distance[nearest] <= reach + 1e-9:
            by_band.setdefault(selectivities[nearest], []).append(f)
    out = {}
    for band, found in by_band.items():
        if sum(len(f.queries) for f in found) < MIN_SAMPLE:
            continue
        kept, shares, total = [], [], 0
        for i in rng.permutation(len(found)):
            f = found[i]
            members = f.queries[:SAMPLE_FILTERED - total]
            kept.append((members, f.mask))
            shares += [f.selectivity] * len(members)
            total += len(members)
            if total >= SAMPLE_FILTERED:
                break
        out[band] = (float(np.median(shares)), kept)
    return out


def _recall_at(curve: list, ef: int) -> float:
    """Recall of the widest calibrated beam not wider than ``ef`` (0 below the narrowest)."""
    best = 0.0
    for width, recall in curve:
        if width <= ef:
            best = recall
    return best


def _band_curve(bands: list, selectivity: float) -> list:
    """The filtered curve at ``selectivity``: between two calibrated bands, each beam's recall
    interpolated in log selectivity; outside them, the nearest band."""
    bands = sorted(bands, key=lambda band: band[0])
    if selectivity <= bands[0][0]:
        return bands[0][1]
    if selectivity >= bands[-1][0]:
        return bands[-1][1]
    upper = next(i for i, band in enumerate(bands) if band[0] >= selectivity)
    (lo, lo_curve), (hi, hi_curve) = bands[upper - 1], bands[upper]
    w = math.log(selectivity / lo) / math.log(hi / lo)
    return [[ef, (1 - w) * recall + w * _recall_at(hi_curve, ef)] for ef, recall in lo_curve]


def ef_for(curves: dict[str, Any], plan: str, target: float, selectivity: float = 1.0) -> int | None:
    """The smallest calibrated beam width reaching ``target`` for ``plan`` (the widest if none does);
    the filtered walk reads the curve at ``selectivity`` (``_band_curve``)."""
    margin = 0.0
    if plan == "filtered_graph" and curves.get("filtered_bands"):
        curve = _band_curve(curves["filtered_bands"], selectivity)
    elif plan == "filtered_graph":
        curve, margin = curves.get("filtered_graph"), FILTERED_MARGIN
    else:
        curve = curves.get("unfiltered")
    if not curve:
        return None
    need = min(1.0, target + margin)
    for ef, recall in curve:
        if recall >= need:
            return int(ef)
    return int(curve[-1][0])
