"""Data and checks shared by the sharded-collection tests (local mode and Ray mode)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

import vecdb

CATS = ["a", "b", "c", "d", "e"]
TAGS = [f"t{i}" for i in range(12)]


def table(n: int = 3000, dim: int = 16, seed: int = 0, start_id: int = 0) -> pa.Table:
    """Rows with a vector column, ids, and attributes of every statistics kind (with nulls)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    year = rng.integers(2000, 2025, n)
    cat = rng.choice(CATS, n)
    score = np.round(rng.random(n), 3)
    tags = [list(rng.choice(TAGS, rng.integers(0, 4), replace=False)) for _ in range(n)]
    day = [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 366, n)]
    null = rng.random(n) < 0.05
    return pa.table({
        "id": pa.array(np.arange(start_id, start_id + n, dtype=np.int64)),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
        "year": pa.array(year, mask=null),
        "cat": pa.array(cat),
        "rating": pa.array(score),
        "tags": pa.array(tags, pa.list_(pa.string())),
        "day": pa.array(day, pa.date32()),
    })


def vectors_of(t: pa.Table) -> np.ndarray:
    col = t.column("vector").combine_chunks()
    return col.flatten().to_numpy().reshape(len(col), -1)


def single(path, t: pa.Table, metric: str, index: str | None = "hnsw", **options) -> vecdb.Collection:
    coll = vecdb.create(path, t.column("vector").type.list_size, metric)
    coll.add(vectors_of(t), t.drop(["id", "vector"]), ids=t.column("id").to_numpy())
    if index:
        coll.build_index(index, **options)
    return coll


def random_filter(rng: np.random.Generator, depth: int = 0) -> str:
    """A random WHERE string over the columns of ``table``: every leaf kind pruning reads, and some it does not."""
    pick = rng.integers(0, 12 if depth < 2 else 9)
    y = int(rng.integers(1998, 2027))
    if pick == 0:
        return f"year {rng.choice(['=', '!=', '<', '<=', '>', '>='])} {y}"
    if pick == 1:
        return f"year BETWEEN {y} AND {y + int(rng.integers(0, 6))}"
    if pick == 2:
        return f"cat = '{rng.choice(CATS + ['z'])}'"
    if pick == 3:
        values = ", ".join(f"'{c}'" for c in rng.choice(CATS + ["z"], rng.integers(1, 3), replace=False))
        return f"cat {'NOT ' if rng.random() < 0.3 else ''}IN ({values})"
    if pick == 4:
        return f"'{rng.choice(TAGS + ['zz'])}' IN tags"
    if pick == 5:
        return f"year IS {'NOT ' if rng.random() < 0.5 else ''}NULL"
    if pick == 6:
        return f"rating {rng.choice(['<', '>='])} {rng.random():.2f}"
    if pick == 7:
        d = dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(-30, 400)))
        return f"day >= DATE '{d.isoformat()}'"
    if pick == 8:
        return f"cat LIKE '{rng.choice(CATS)}%'"
    left, right = random_filter(rng, depth + 1), random_filter(rng, depth + 1)
    if pick == 9:
        return f"({left}) AND ({right})"
    if pick == 10:
        return f"({left}) OR ({right})"
    return f"NOT ({left})"


def assert_same_answer(expected, got, metric: str, atol: float = 1e-5) -> None:
    """Same ids and scores, except that rows whose scores tie may come in another order (or, at the k-th
    place, be another of the tied rows)."""
    assert expected.ids.shape == got.ids.shape
    np.testing.assert_array_equal(expected.counts, got.counts)
    found = expected.ids >= 0
    np.testing.assert_array_equal(found, got.ids >= 0)
    np.testing.assert_allclose(np.where(found, got.scores, 0), np.where(found, expected.scores, 0), atol=atol)
    for qi in range(len(expected.ids)):
        e, g = expected.ids[qi][found[qi]], got.ids[qi][found[qi]]
        if not np.array_equal(e, g):  # only ties may differ: the same score at every place
            s = expected.scores[qi][found[qi]]
            differ = e != g
            kth = s[-1]
            assert np.all(np.isclose(s[differ], kth, atol=atol) | np.isin(g[differ], e)), (qi, e, g, s)


def recall(truth_ids: np.ndarray, ids: np.ndarray) -> float:
    hits = total = 0
    for t, r in zip(truth_ids, ids):
        t = t[t >= 0]
        hits += np.isin(r[r >= 0], t).sum()
        total += len(t)
    return hits / max(total, 1)
