"""How far ``target_recall`` moves with the calibration's seed, on ../shared/data/arxiv's public queries
(how ``vecdb/calibration.py``'s sample sizes and query moves were chosen).

For each seed, the HNSW index's recall curves are measured again (``calibration.calibrate``, the
build's own procedure with that seed) and put in place of the saved ones in memory (the collection on
disk is not touched); then every public query of the unfiltered, ~50% and ~10% bands is searched one at
a time with ``target_recall`` 0.90 / 0.95 / 0.99, and the delivered recall@10 per band is printed,
marked ``LOW`` below the target and ``OVER`` above target + 0.03 (#16's window). Below ~1% the planner
runs the exact scan (recall 1.0), so those bands are left out.

    python tools/calibration_seeds.py --collection /tmp/arxiv.vdb --seeds 0-6   # built on first use

``--perturb``, ``--filtered-perturb``, ``--queries``, ``--filtered-queries`` and ``--masks`` override
the module's choices for the run (the choices compared in its docstring).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets import DataOptions, load_dataset
import vecdb
from vecdb import calibration

from calibrate_planner import SHARED, load_or_build

BANDS = ("all", "~50%", "~10%")
TARGETS = (0.90, 0.95, 0.99)
WINDOW = 0.03


def seeds(text: str) -> list[int]:
    """``0-6`` or ``0,3,7``."""
    if "-" in text:
        first, last = (int(part) for part in text.split("-"))
        return list(range(first, last + 1))
    return [int(part) for part in text.split(",")]


def delivered(coll, ds, band: str, target: float) -> float:
    """Mean recall@10 of the band's public queries searched one at a time with ``target_recall``."""
    rows = np.flatnonzero(np.asarray(ds.bands) == band)
    total = 0.0
    for j in rows:
        hits = coll.search(ds.queries[j], 10, where=ds.filters[j], target_recall=target)
        found = set(np.asarray(hits.ids[0]).tolist())
        truth = ds.gt_ids[j, :10]
        truth = truth[truth >= 0]
        total += len(found & set(truth.tolist())) / max(1, len(truth))
    return total / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", type=Path, default=Path("/tmp/arxiv.vdb"))
    parser.add_argument("--seeds", type=seeds, default=seeds("0-6"))
    parser.add_argument("--perturb", type=float, default=calibration.PERTURB)
    parser.add_argument("--filtered-perturb", type=float, default=calibration.FILTERED_PERTURB)
    parser.add_argument("--queries", type=int, default=calibration.QUERIES)
    parser.add_argument("--filtered-queries", type=int, default=calibration.FILTERED_QUERIES)
    parser.add_argument("--masks", type=int, default=calibration.MASKS)
    args = parser.parse_args()
    ds = load_dataset("arxiv", DataOptions(data_dir=SHARED.parent))
    load_or_build(args.collection)
    misses = cells = 0
    for seed in args.seeds:
        coll = vecdb.open(args.collection)  # (a fresh handle: nothing chosen with the curves before)
        store = coll.snapshot.store
        start = time.perf_counter()
        curves = calibration.calibrate(store.index, store.vectors, store.metric, seed=seed, n_queries=args.queries,
                                       n_filtered=args.filtered_queries, perturb=args.perturb,
                                       filtered_perturb=args.filtered_perturb, masks=args.masks)
        took = time.perf_counter() - start
        store.calibration.clear()  # (in memory only: the saved curves stay)
        store.calibration.update(curves)
        line = []
        for band in BANDS:
            got = [delivered(coll, ds, band, t) for t in TARGETS]
            for t, r in zip(TARGETS, got):
                cells += 1
                misses += not t <= r <= t + WINDOW
            line.append(f"{band} " + " / ".join(
                f"{r:.3f}" + (" LOW" if r < t else " OVER" if r > t + WINDOW else "") for t, r in zip(TARGETS, got)))
        print(f"seed {seed} (calibrated in {took:.0f} s): " + "; ".join(line), flush=True)
    print(f"{cells - misses} of {cells} cells within [t, t + {WINDOW}]")


if __name__ == "__main__":
    main()
