"""Recall calibration at build time, so ``search(..., target_recall=0.95)`` can pick the beam width.

After an HNSW index is built, a sample of synthetic queries (midpoints of random pairs of stored
vectors: out-of-sample, in-distribution) is searched exactly and with the index at a ladder of beam
widths, unfiltered and through the filtered-graph plan with random row masks. The curves are saved in
the manifest beside the index. Random masks are uncorrelated with the queries, so the filtered curve
is optimistic for filters correlated with the query; ``target_recall`` therefore adds a margin there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .indexes.base import BeamIndex, FilteredGraphIndex
from .indexes.flat import exact_search

EFS = (16, 32, 48, 64, 128, 256, 512)
FILTERED_MARGIN = 0.02


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f[f >= 0], t[t >= 0])) for f, t in zip(found, truth))
    return hits / max(1, int((truth >= 0).sum()))


def calibrate(index: Any, vectors: np.ndarray, metric: str, *, k: int = 10, n_queries: int = 100,
              selectivities: tuple[float, ...] = (0.5, 0.1), seed: int = 0) -> dict[str, Any]:
    """Recall@k against the exact oracle per beam width: ``{"unfiltered": [[ef, r], ...], ...}``."""
    n = index.ntotal
    if n < 2 * k or not isinstance(index, BeamIndex):
        return {}
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n, n_queries), rng.integers(0, n, n_queries)
    queries = np.ascontiguousarray((vectors[a] + vectors[b]) / 2, dtype=np.float32)
    if metric == "cosine":
        queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    head = vectors[:n]
    truth = exact_search(head, queries, k, metric).rows
    curves: dict[str, Any] = {"k": k, "queries": n_queries, "unfiltered": []}
    for ef in EFS:
        curves["unfiltered"].append([ef, _recall(index.search(queries, k, ef=ef).rows, truth)])
    if isinstance(index, FilteredGraphIndex):
        masks = [rng.random(n) < s for s in selectivities]
        truths = [exact_search(head, queries, k, metric, allow=m).rows for m in masks]
        curves["filtered_graph"] = []
        for ef in EFS:
            recalls = []
            for mask, t in zip(masks, truths):
                hits, complete = index.search_filtered_graph(queries, k, mask, ef=ef, budget=n)
                recalls.append(_recall(np.where(complete[:, None], hits.rows, t), t))
            curves["filtered_graph"].append([ef, float(min(recalls))])
    return curves


def ef_for(curves: dict[str, Any], plan: str, target: float) -> int | None:
    """The smallest calibrated beam width reaching ``target`` for ``plan`` (the widest if none does)."""
    key = "filtered_graph" if plan == "filtered_graph" else "unfiltered"
    curve = curves.get(key)
    if not curve:
        return None
    need = min(1.0, target + (FILTERED_MARGIN if key == "filtered_graph" else 0.0))
    for ef, recall in curve:
        if recall >= need:
            return int(ef)
    return int(curve[-1][0])
