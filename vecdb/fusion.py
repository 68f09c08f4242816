"""Searching several vector fields at once and fusing their rankings (``Collection.search`` with a dict
of queries by field).

Each field is searched on its own, with the same filter and planner, for its ``FETCH * k`` best rows;
the union of those rows is ranked by:

- ``"rrf"`` (reciprocal rank fusion, Cormack et al. 2009): ``sum over fields of weight / (RRF_K + rank)``
  with ``rank`` from 1 in the field's list; a field whose list misses the row adds nothing. Only ranks
  are used, so fields with different metrics and score scales mix without tuning.
- ``"weighted"``: ``sum over fields of weight * similarity``, every candidate scored exactly on every
  field (cosine / inner product / Chamfer; ``l2`` adds the negative squared distance); a field where the
  row holds no value adds nothing. Scales differ between fields: choose the weights accordingly.

Every candidate passed the filter in the search that found it, so every fused hit does; ids are unique;
a query with at least k rows passing the filter (and holding a value in some queried field) gets k hits.
Ties go to the smaller row, as everywhere (``vecdb.topk``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from . import fields as fields_mod
from .errors import InvalidParameterError
from .indexes.base import Hits
from .topk import finish

FUSIONS = ("rrf", "weighted")
RRF_K = 60      # the constant of the RRF paper
FETCH = 3       # each field's list holds FETCH * k rows: rows ranked lower by one field still count


def fused(field_hits: Callable[..., tuple[Hits, tuple[str, ...]]], snap: Any, queries: Mapping[str, Any], want: int,
          weights: Mapping[str, float] | None, fusion: str, params: Mapping[str, Any]) -> tuple[Hits, tuple[str, ...]]:
    """The ``want`` best rows per query by ``fusion`` of the fields' rankings, and a plan name per query
    (``rrf(title=index, tokens=chamfer_exact)``). ``field_hits(field, prepared queries, n, params)``: one
    field's ``n`` best rows (``Collection._field_hits`` bound to the search's filter and settings)."""
    if fusion not in FUSIONS:
        raise InvalidParameterError(f"unknown fusion {fusion!r}; expected one of {', '.join(FUSIONS)}")
    if not queries:
        raise InvalidParameterError("a dict of queries needs at least one field")
    targets = [fields_mod.resolve(snap.fields, name) for name in queries]
    weights = _weights(weights, list(queries))
    prepared = {f.name: f.store.prepare_queries(queries[f.name]) for f in targets}
    counts = {name: len(q) for name, q in prepared.items()}
    if len(set(counts.values())) > 1:
        raise InvalidParameterError(f"every field needs the same number of queries; got {counts}")
    nq = next(iter(counts.values()))
    fetch = FETCH * want
    lists = {f.name: field_hits(f, prepared[f.name], fetch, dict(params)) for f in targets}
    candidates = _union([hits.rows for hits, _ in lists.values()])
    scores = np.zeros(candidates.shape, dtype=np.float64)
    for f in targets:
        hits, _ = lists[f.name]
        if fusion == "rrf":
            scores += weights[f.name] * _rrf(hits.rows, candidates)
        else:
            s = f.reader.score(prepared[f.name], candidates).astype(np.float64)
            usable = np.isfinite(s) & (candidates >= 0)
            if f.valid is not None:
                usable &= f.valid[np.maximum(candidates, 0)]
            scores += weights[f.name] * np.where(usable, s, 0.0)
    scores = np.where(candidates >= 0, scores, -np.inf).astype(np.float32)
    plans = tuple(f"{fusion}(" + ", ".join(f"{name}={lists[name][1][i]}" for name in lists) + ")" for i in range(nq))
    return finish(scores, candidates, want), plans


def _weights(weights: Mapping[str, float] | None, names: list[str]) -> dict[str, float]:
    if weights is None:
        return {name: 1.0 for name in names}
    if not isinstance(weights, Mapping):
        raise InvalidParameterError(f"weights must be a dict {{field: weight}}; got {type(weights).__name__}")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise InvalidParameterError(f"weights for fields not searched: {unknown}; searched: {names}")
    out = {}
    for name in names:
        w = weights.get(name, 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float, np.floating)) or not np.isfinite(w) or w < 0:
            raise InvalidParameterError(f"weight of field {name!r} must be a non-negative number; got {w!r}")
        out[name] = float(w)
    return out


def _union(row_lists: list[np.ndarray]) -> np.ndarray:
    """Per query, the distinct rows of every list, padded with -1."""
    stacked = np.concatenate(row_lists, axis=1)
    out = np.full(stacked.shape, -1, dtype=np.int64)
    for i, rows in enumerate(stacked):
        distinct = np.unique(rows[rows >= 0])
        out[i, :distinct.size] = distinct
    return out


def _rrf(rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Each candidate's ``1 / (RRF_K + rank)`` in one field's list (0 when the list misses it)."""
    out = np.zeros(candidates.shape, dtype=np.float64)
    for i in range(rows.shape[0]):
        rank = {int(r): j + 1 for j, r in enumerate(rows[i]) if r >= 0}
        for j, c in enumerate(candidates[i]):
            if int(c) in rank:
                out[i, j] = 1.0 / (RRF_K + rank[int(c)])
    return out
