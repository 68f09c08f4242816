"""A deterministic synthetic filtered dataset of any size, to study how cost grows with N.

Vectors: ``dim`` = 128, unit length, drawn around ``~sqrt(N)`` random cluster centres (inner product).
Attributes: ``label`` (one of 1,000 strings, Zipf-like frequencies p ~ 1/rank), ``tags`` (1 to 4 of
300 strings, Zipf-like), ``value`` (int32, uniform in [0, 1,000,000), for ranges). Queries: 600, a
sixth in each selectivity band (none, ~50 %, ~10 %, ~1 %, ~0.1 %, ~30 rows), each with a filter of one
of four shapes (range, label equality or IN-list, tag membership, label AND range) aimed at the band's
selectivity; match counts are then measured with vecdb's evaluator and ground truth computed exactly.

Everything derives from ``numpy.random.default_rng([SEED, N])``; the files are cached under
``<cache_dir>/synthetic-<N>-v<GEN_VERSION>/`` and reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .datasets import Dataset
from .truth import exact_topk

log = logging.getLogger(__name__)

GEN_VERSION = 1
SEED = 20250318
DIM = 128
N_QUERIES = 600
N_SAMPLE = 1000  # held-out sample queries (``sample_queries``) and their filters (``sample_filters``)
GT_K = 100
N_LABELS, N_TAGS, VALUE_RANGE = 1000, 300, 1_000_000
TARGETS = (None, 0.5, 0.1, 0.01, 0.001, "rows30")
KINDS = ("range", "label", "tag", "label_and_range")


def _zipf_p(m: int, s: float = 1.0) -> np.ndarray:
    p = 1.0 / np.arange(1, m + 1) ** s
    return p / p.sum()


def _centres(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """The ``~sqrt(n)`` cluster centres rows and queries are drawn around (the generator's first draw)."""
    return rng.standard_normal((max(8, int(np.sqrt(n))), dim), dtype=np.float32)


def _vectors(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float) -> np.ndarray:
    out = np.empty((n, centres.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        c = rng.integers(0, centres.shape[0], stop - start)
        x = centres[c] + spread * rng.standard_normal((stop - start, centres.shape[1]), dtype=np.float32)
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _attributes(rng: np.random.Generator, n: int) -> pa.Table:
    labels = np.array([f"L{i:04d}" for i in range(N_LABELS)])
    tags = np.array([f"t{i:03d}" for i in range(N_TAGS)])
    label_idx = rng.choice(N_LABELS, size=n, p=_zipf_p(N_LABELS))
    counts = rng.integers(1, 5, n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    tag_idx = rng.choice(N_TAGS, size=int(offsets[-1]), p=_zipf_p(N_TAGS, 0.8))
    return pa.table({
        "label": pa.array(labels[label_idx]),
        "tags": pa.ListArray.from_arrays(pa.array(offsets), pa.array(tags[tag_idx])),
        "value": pa.array(rng.integers(0, VALUE_RANGE, n).astype(np.int32)),
    })


def _closest(counts: dict[str, int], want: float) -> tuple[str, int]:
    name = min(counts, key=lambda k: abs(np.log(max(counts[k], 1) / max(want, 1e-9))))
    return name, counts[name]


def _range(rng: np.random.Generator, frac: float) -> str:
    width = max(1, int(round(frac * VALUE_RANGE)))
    lo = int(rng.integers(0, VALUE_RANGE - width + 1))
    return f"value BETWEEN {lo} AND {lo + width - 1}"


def _filter(rng: np.random.Generator, kind: str, want: float, n: int, label_counts: dict[str, int],
            tag_counts: dict[str, int]) -> str:
    """A filter of shape ``kind`` expected to pass about ``want`` rows."""
    if kind == "label":
        ordered = sorted(label_counts, key=lambda k: -label_counts[k])
        if want > label_counts[ordered[0]] * 1.5:  # more than the top label: an IN-list of the top labels
            chosen, total = [], 0
            for name in ordered:
                if total >= want:
                    break
                chosen.append(name)
                total += label_counts[name]
            return "label IN (" + ", ".join(f"'{c}'" for c in chosen) + ")"
        return f"label = '{_closest(label_counts, want)[0]}'"
    if kind == "tag":
        name, count = _closest(tag_counts, want)
        if count > 2 * want and want < n / 2:  # the rarest tag is still too frequent: narrow by a range
            return f"'{name}' IN tags AND {_range(rng, want / count)}"
        return f"'{name}' IN tags"
    if kind == "label_and_range":
        bigger = {k: v for k, v in label_counts.items() if v >= 2 * want}
        if bigger:
            name = sorted(bigger, key=lambda k: bigger[k])[int(rng.integers(0, min(5, len(bigger))))]
            return f"label = '{name}' AND {_range(rng, want / bigger[name])}"
    return _range(rng, want / n)


def generate(n: int, *, dim: int = DIM, nq: int = N_QUERIES) -> tuple[np.ndarray, np.ndarray, pa.Table, list, list]:
    """``(base, queries, attributes, filters, kinds)`` for size ``n``, the same for the same arguments."""
    rng = np.random.default_rng([SEED, n, dim])
    centres = _centres(rng, n, dim)
    base = _vectors(rng, n, centres, spread=0.9)
    queries = _vectors(rng, nq, centres, spread=0.9)
    attrs = _attributes(rng, n)
    label_counts, tag_counts = _counts(attrs)
    filters: list[str | None] = []
    kinds: list[str] = []
    for j in range(nq):
        target = TARGETS[j % len(TARGETS)]
        if target is None:
            filters.append(None)
            kinds.append("none")
            continue
        want = 30.0 if target == "rows30" else float(target) * n
        kind = KINDS[int(rng.integers(0, len(KINDS)))]
        filters.append(_filter(rng, kind, want, n, label_counts, tag_counts))
        kinds.append(kind)
    return base, queries, attrs, filters, kinds


def sample_queries(n: int, *, dim: int = DIM, count: int = N_SAMPLE) -> np.ndarray:
    """``count`` more queries drawn as ``generate``'s are (around the same centres) from a stream of their
    own: held out from the benchmark's queries, for ``Collection.calibrate``."""
    centres = _centres(np.random.default_rng([SEED, n, dim]), n, dim)  # generate's first draw, again
    return _vectors(np.random.default_rng([SEED, n, dim, 1]), count, centres, spread=0.9)


def sample_filters(n: int, attrs: pa.Table, *, count: int = N_SAMPLE) -> list[str | None]:
    """A filter for each sample query, drawn as ``generate`` draws the benchmark's (the bands in turn, a
    shape at random for each) from a stream of its own: what the sample's users filtered by."""
    rng = np.random.default_rng([SEED, n, 2])
    label_counts, tag_counts = _counts(attrs)
    out: list[str | None] = []
    for j in range(count):
        target = TARGETS[j % len(TARGETS)]
        if target is None:
            out.append(None)
            continue
        want = 30.0 if target == "rows30" else float(target) * n
        out.append(_filter(rng, KINDS[int(rng.integers(0, len(KINDS)))], want, n, label_counts, tag_counts))
    return out


def _counts(attrs: pa.Table) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per label and per tag, in key order (``_closest`` breaks ties by it). Arrow's hash count:
    ``np.unique`` over the strings took ~8 s at 1M rows, on every load of the dataset."""
    def counted(values: pa.ChunkedArray) -> dict[str, int]:
        pairs = pc.value_counts(values).to_pylist()
        return {str(p["values"]): int(p["counts"]) for p in sorted(pairs, key=lambda p: p["values"])}

    return counted(attrs.column("label")), counted(pc.list_flatten(attrs.column("tags")))


def _masks(attrs: pa.Table, filters: list[str | None]) -> tuple[list[np.ndarray | None], np.ndarray]:
    from vecdb.filters import bind, parse

    packed, counts = [], np.empty(len(filters), np.int64)
    for j, where in enumerate(filters):
        expr = parse(where)
        if expr is None:
            packed.append(None)
            counts[j] = attrs.num_rows
            continue
        mask = bind(expr, attrs.schema).evaluate(attrs)
        counts[j] = int(mask.sum())
        packed.append(np.packbits(mask))
    return packed, counts


def make(n: int, *, dim: int = DIM, nq: int = N_QUERIES, name: str | None = None) -> Dataset:
    """The dataset for size ``n`` in memory: generated, filters measured, exact ground truth computed."""
    t0 = time.perf_counter()
    base, queries, attrs, filters, kinds = generate(n, dim=dim, nq=nq)
    packed, counts = _masks(attrs, filters)
    t1 = time.perf_counter()

    def mask_of(j: int) -> np.ndarray | None:
        return None if packed[j] is None else np.unpackbits(packed[j], count=n).astype(bool)

    gt_ids, _ = exact_topk(base, queries, GT_K, "ip", mask_of)
    t2 = time.perf_counter()
    log.info("synthetic N=%d: generated in %.1f s, ground truth in %.1f s", n, t1 - t0, t2 - t1)
    return Dataset(name=name or f"synthetic-{n}", base=base, queries=queries, metric="ip", attributes=attrs,
                   filters=filters, gt_ids=gt_ids, match_counts=counts,
                   info={"generator_version": GEN_VERSION, "seed": SEED, "kinds": kinds,
                         "generate_s": round(t1 - t0, 2), "ground_truth_s": round(t2 - t1, 2)},
                   sample_queries=sample_queries(n, dim=dim), sample_filters=sample_filters(n, attrs))


def load_or_generate(n: int, *, cache_dir: Path, name: str | None = None) -> Dataset:
    """The cached dataset for size ``n``, generating (and caching) it on first use."""
    name = name or f"synthetic-{n}"
    root = Path(cache_dir).expanduser() / f"synthetic-{n}-v{GEN_VERSION}"
    if not (root / "meta.json").is_file():
        log.info("generating synthetic dataset N=%d into %s (first use; cached afterwards)", n, root)
        _write(make(n, name=name), root)
    qt = pq.read_table(root / "queries.parquet")
    attrs = pq.read_table(root / "attributes.parquet")
    return Dataset(name=name, base=np.load(root / "base.npy"), queries=np.load(root / "queries.npy"),
                   metric="ip", attributes=attrs,
                   filters=[s or None for s in qt.column("filter_sql").to_pylist()],
                   gt_ids=np.load(root / "gt_ids.npy"), match_counts=qt.column("match_count").to_numpy(),
                   info={"source": str(root), "generator_version": GEN_VERSION, "seed": SEED},
                   sample_queries=sample_queries(n), sample_filters=sample_filters(n, attrs))


def _write(ds: Dataset, root: Path) -> None:
    """Save atomically: write a sibling folder, then rename it into place."""
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "base.npy", ds.base)
    np.save(tmp / "queries.npy", ds.queries)
    np.save(tmp / "gt_ids.npy", ds.gt_ids)
    pq.write_table(ds.attributes, tmp / "attributes.parquet")
    pq.write_table(pa.table({"qid": np.arange(ds.nq), "filter_sql": [f or "" for f in ds.filters],
                             "filter_kind": ds.info["kinds"], "match_count": ds.match_counts}),
                   tmp / "queries.parquet")
    meta = {"n": ds.n, "dim": ds.dim, "nq": ds.nq, "metric": "ip", "gt_k": GT_K,
            **{k: v for k, v in ds.info.items() if k != "kinds"}}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
