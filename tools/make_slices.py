#!/usr/bin/env python3
"""Cut small, real slices of the shared benchmark data into the project's ``data/`` folder.

The full data sets live in ``../shared/data`` (``arxiv/``: 72,000 x 384 MiniLM vectors of
arXiv papers with filter attributes; ``arxiv-tokens/``: token-level vectors of the first
5,000 of those papers).  Tests and the README demo must also run on a machine without
``../shared``, so this script writes two small slices that are committed to the repository:

``data/arxiv-slice/``
    base rows 0..4999 of ``arxiv/`` (= docs 0..4999 of ``arxiv-tokens/``), about 300 of the
    1,000 public queries (their own vectors and their own filters), chosen so that every
    selectivity band - measured on the 5,000-row slice - holds the same number of queries,
    and exact filtered / unfiltered top-100 ground truth on the slice.

``data/arxiv-tokens-slice/``
    the first 1,000 docs of ``arxiv-tokens/`` (token vectors, offsets, attributes), 100 of
    its 500 public queries with filters re-evaluated on the 1,000 docs, and exact Chamfer
    (MaxSim) top-100 ground truth.

Usage (from the repository root; deterministic, re-running gives byte-identical files
with the same numpy / pyarrow versions)::

    python tools/make_slices.py --shared ../shared/data --out data

Ground truth follows ``shared/data/README.md`` exactly:

* arxiv: base float16 cast to float32 and re-normalised to unit length, queries float32,
  score = inner product (float32, BLAS); among the rows that pass the query's filter, the
  top-100 by score descending, ties broken by the smaller id; fewer passing rows -> ids
  padded with -1 and scores with -inf.
* arxiv-tokens: Chamfer score sum_q max_d <q, d> in float32 from the float16 arrays
  (no re-normalisation), same ordering and padding.

Filters are evaluated by the small evaluator of the JSON filter grammar below
(``eval_filter``, numpy + pyarrow.compute only, independent of ``vecdb``).  The columns the
grammar uses hold no nulls (asserted), so SQL three-valued logic never comes into play.

After writing, the script re-checks the ground truth two independent ways (see ``verify_*``):
a float64 brute force with a different sort for a sample of queries, and consistency with
the ground truth shipped in ``shared/data`` (the source top-100 ids that fall inside the
slice must be exactly the first ids of the slice's top-100).  It exits non-zero on failure.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

K = 100
SEED = 20250318
ARXIV_N_BASE = 5000
ARXIV_PER_BAND = 60
TOKENS_N_DOCS = 1000
# (band, number of queries) for the tokens slice; 100 in all.
TOKENS_PER_BAND = {"unfiltered": 30, "~50%": 15, "~10%": 15, "~3%": 15, "~1%": 15, "low": 10}

FILTER_COLUMNS = ("primary_category", "categories", "authors", "year", "yyyymm", "date_int",
                  "n_authors")

# Band definitions on the slice.  Selectivity s = match_count / N; a filtered query whose
# selectivity falls between bands (or matches too few rows) is dropped.
ARXIV_BANDS_DOC = {
    "unfiltered": "no filter (filter_json 'null')",
    "~50%": "0.3 <= s <= 0.7",
    "~10%": "0.05 <= s <= 0.2",
    "~1%": "0.005 <= s <= 0.02 (25..100 rows of 5,000)",
    "very_low": "3 <= match_count < 0.005*N (3..24 rows of 5,000); "
                "merges the source's '~0.1%' and 'very_low' bands",
}
TOKENS_BANDS_DOC = {
    "unfiltered": "no filter (filter_json 'null')",
    "~50%": "0.3 <= s <= 0.7",
    "~10%": "0.05 <= s <= 0.2",
    "~3%": "0.02 <= s < 0.05",
    "~1%": "0.005 <= s < 0.02 (5..19 docs of 1,000)",
    "low": "1 <= match_count < 0.005*N (1..4 docs of 1,000)",
}


# --------------------------------------------------------------------------- filters
def eval_filter(node, table: pa.Table) -> np.ndarray:
    """Boolean mask (len = table.num_rows) of the rows passing a parsed JSON filter.

    Grammar (shared/data/README.md): ``null`` (everything passes) or one node of
    ``eq [col, v]``, ``contains [listcol, v]``, ``between [col, lo, hi]`` (inclusive),
    ``ge [col, v]``, ``and [f, ...]``, ``or [f, ...]``, ``not f``.
    """
    n = table.num_rows
    if node is None:
        return np.ones(n, dtype=bool)
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"bad filter node {node!r}")
    (op, arg), = node.items()
    if op == "eq":
        col, v = arg
        return np.asarray(pc.equal(table[col], pa.scalar(v)).to_numpy(zero_copy_only=False),
                          dtype=bool)
    if op == "contains":
        col, v = arg
        lst = table[col].combine_chunks()
        parents = pc.list_parent_indices(lst).to_numpy()
        hit = np.asarray(pc.equal(pc.list_flatten(lst), pa.scalar(v)).to_numpy(
            zero_copy_only=False), dtype=bool)
        out = np.zeros(n, dtype=bool)
        out[parents[hit]] = True
        return out
    if op == "between":
        col, lo, hi = arg
        x = table[col].to_numpy()
        return (x >= lo) & (x <= hi)
    if op == "ge":
        col, v = arg
        return table[col].to_numpy() >= v
    if op == "and":
        return np.logical_and.reduce([eval_filter(f, table) for f in arg])
    if op == "or":
        return np.logical_or.reduce([eval_filter(f, table) for f in arg])
    if op == "not":
        return ~eval_filter(arg, table)
    raise ValueError(f"unknown filter op {op!r}")


def parse_filter(s: str | None):
    return None if s in (None, "", "null") else json.loads(s)


def assert_no_nulls(table: pa.Table, columns=FILTER_COLUMNS) -> None:
    for c in columns:
        col = table[c]
        assert col.null_count == 0, f"{c} has nulls"
        if pa.types.is_list(col.type):
            assert pc.list_flatten(col).null_count == 0, f"{c} has null list elements"


def band_of(match_count: int, n: int, bands: str) -> str | None:
    s = match_count / n
    if 0.3 <= s <= 0.7:
        return "~50%"
    if 0.05 <= s <= 0.2:
        return "~10%"
    if bands == "arxiv":
        if 0.005 <= s <= 0.02:
            return "~1%"
        if 3 <= match_count < 0.005 * n:
            return "very_low"
        return None
    if 0.02 <= s < 0.05:
        return "~3%"
    if 0.005 <= s < 0.02:
        return "~1%"
    if 1 <= match_count < 0.005 * n:
        return "low"
    return None


# --------------------------------------------------------------------------- top-k
def topk_rows(scores: np.ndarray, masks: np.ndarray | None, k: int = K):
    """Exact top-k per row of ``scores`` (nq, n) among ``masks`` (nq, n) (None = all).

    Order: score descending, then smaller id.  Padding: id -1, score -inf.
    """
    nq, n = scores.shape
    ids = np.full((nq, k), -1, dtype=np.int64)
    out = np.full((nq, k), -np.inf, dtype=np.float32)
    for i in range(nq):
        cand = np.arange(n, dtype=np.int64) if masks is None else np.flatnonzero(masks[i])
        s = scores[i, cand]
        order = np.lexsort((cand, -s))[:k]          # primary: -score, secondary: id
        ids[i, : len(order)] = cand[order]
        out[i, : len(order)] = s[order]
    return ids, out


# --------------------------------------------------------------------------- helpers
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def write_json(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n")


def seeded_pick(cands: list[int], k: int, rng: np.random.Generator) -> list[int]:
    """k distinct items of ``cands`` chosen uniformly (seeded), returned sorted."""
    cands = sorted(cands)
    idx = rng.choice(len(cands), size=min(k, len(cands)), replace=False)
    return sorted(cands[i] for i in idx)


# --------------------------------------------------------------------------- arxiv slice
def make_arxiv_slice(src: Path, out: Path, n_base: int, per_band: int, seed: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    base16 = np.load(src / "base.f16.npy", mmap_mode="r")
    assert base16.dtype == np.float16 and base16.shape[0] >= n_base
    base16 = np.ascontiguousarray(base16[:n_base])
    attrs = pq.read_table(src / "attributes.parquet").slice(0, n_base)
    assert attrs["id"].to_numpy().tolist() == list(range(n_base))
    assert_no_nulls(attrs)
    xq_all = np.load(src / "queries.f32.npy")
    qsrc = pq.read_table(src / "queries.parquet")
    assert qsrc["qid"].to_numpy().tolist() == list(range(qsrc.num_rows))

    # --- evaluate every public filter on the slice, band by slice selectivity
    filt = qsrc["filter_json"].to_pylist()
    masks_src = [eval_filter(parse_filter(f), attrs) for f in filt]
    counts = np.array([int(m.sum()) for m in masks_src])
    bands = ["unfiltered" if parse_filter(f) is None else band_of(int(c), n_base, "arxiv")
             for f, c in zip(filt, counts)]
    order = ["unfiltered", "~50%", "~10%", "~1%", "very_low"]
    rng = np.random.default_rng(seed)
    picks: list[tuple[int, int]] = []        # (vector qid, filter qid)
    reused = {}
    for b in order:
        cands = [i for i, bb in enumerate(bands) if bb == b]
        chosen = seeded_pick(cands, per_band, rng)
        pairs = [(i, i) for i in chosen]
        if len(pairs) < per_band:
            # Not enough public filters land in this band on the slice: re-use this band's
            # filters with vectors of public queries not picked anywhere (seeded).
            used = {v for v, _ in picks} | {v for v, _ in pairs}
            free = [i for i in range(len(filt)) if i not in used]
            extra_vec = seeded_pick(free, per_band - len(pairs), rng)
            extra_filt = [chosen[j % len(chosen)] for j in range(len(extra_vec))]
            pairs += list(zip(extra_vec, extra_filt))
            reused[b] = len(extra_vec)
        picks += pairs
    picks.sort()
    vq = np.array([v for v, _ in picks], dtype=np.int64)
    fq = np.array([f for _, f in picks], dtype=np.int64)
    nq = len(picks)

    xq = np.ascontiguousarray(xq_all[vq], dtype=np.float32)
    masks = np.stack([masks_src[f] for f in fq])
    match = masks.sum(1).astype(np.int64)
    qtab = pa.table({
        "qid": pa.array(np.arange(nq, dtype=np.int64)),
        "query_text": qsrc["query_text"].take(pa.array(vq)),
        "filter_json": qsrc["filter_json"].take(pa.array(fq)),
        "filter_sql": qsrc["filter_sql"].take(pa.array(fq)),
        "match_count": pa.array(match),
        "selectivity": pa.array(match / n_base, type=pa.float64()),
        "filter_band": pa.array([bands[f] for f in fq], type=pa.string()),
        "filter_kind": qsrc["filter_kind"].take(pa.array(fq)),
        "source_qid": pa.array(vq),
        "filter_source_qid": pa.array(fq),
    })

    # --- exact ground truth
    xb = base16.astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    scores = xq @ xb.T                                   # (nq, n_base) float32
    gt_ids, gt_sc = topk_rows(scores, masks)
    gtu_ids, gtu_sc = topk_rows(scores, None)

    np.save(out / "base.f16.npy", base16)
    write_parquet(attrs, out / "attributes.parquet")
    np.save(out / "queries.f32.npy", xq)
    write_parquet(qtab, out / "queries.parquet")
    np.save(out / "gt_ids.npy", gt_ids)
    np.save(out / "gt_scores.npy", gt_sc)
    np.save(out / "gt_unfiltered_ids.npy", gtu_ids)
    np.save(out / "gt_unfiltered_scores.npy", gtu_sc)

    band_counts = {b: int(sum(bands[f] == b for f in fq)) for b in order}
    band_stats = {}
    for b in order:
        sel = [i for i in range(nq) if bands[fq[i]] == b]
        m = match[sel]
        band_stats[b] = {"queries": len(sel), "min_match": int(m.min()), "max_match": int(m.max()),
                         "median_match": float(np.median(m)),
                         "padded_gt_rows": int((m < K).sum())}
    kinds = {}
    for i in range(nq):
        key = f"{bands[fq[i]]} / {qtab['filter_kind'][i].as_py()}"
        kinds[key] = kinds.get(key, 0) + 1
    meta = {
        "n_base": n_base, "dim": int(base16.shape[1]), "n_queries": nq, "k": K,
        "metric": "ip (cosine, unit vectors)",
        "ground_truth": "base.f16 cast to float32 and re-normalised; queries float32; exact "
                        "inner-product top-100 among rows passing the filter; score desc, "
                        "ties by smaller id; padded -1 / -inf",
        "source": {
            "dataset": "shared/data/arxiv (see shared/data/README.md)",
            "base_rows": f"0..{n_base - 1} of arxiv/base.f16.npy and arxiv/attributes.parquet "
                         f"(= docs 0..{n_base - 1} of arxiv-tokens/)",
            "queries": "subset of the 1000 public arxiv queries: queries.parquet source_qid = "
                       "row of arxiv/queries.f32.npy, filter_source_qid = the public query whose "
                       "filter is used",
            "sha256_base_f16": sha256(src / "base.f16.npy"),
            "sha256_queries_f32": sha256(src / "queries.f32.npy"),
            "records": "arXiv metadata (CC0 1.0) via github.com/dw-dengwei/daily-arXiv-ai-enhanced",
            "model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
        },
        "made_by": "python tools/make_slices.py --shared ../shared/data --out data",
        "selection": f"filters evaluated on the {n_base}-row slice; match_count / selectivity / "
                     f"filter_band recomputed there; filters matching 0 rows or landing between "
                     f"bands dropped; {per_band} queries per band drawn uniformly without "
                     f"replacement (numpy default_rng({seed}), bands in the order {order}), "
                     f"sorted by source qid",
        "filter_reuse": reused or "none: every query uses its own public filter "
                                  "(filter_source_qid == source_qid)",
        "bands": ARXIV_BANDS_DOC,
        "band_counts": band_counts,
        "band_stats": band_stats,
        "band_kind_counts": dict(sorted(kinds.items())),
        "title_column_kept": True,
        "seed": seed,
    }
    write_json(meta, out / "meta.json")
    return meta


# --------------------------------------------------------------------------- tokens slice
def chamfer_scores(Q: np.ndarray, qo: np.ndarray, D: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(nq, n_docs) float32 Chamfer scores, computed as in shared/data/README.md."""
    nq = len(qo) - 1
    out = np.empty((nq, len(off) - 1), dtype=np.float32)
    for j in range(nq):
        q = Q[qo[j]:qo[j + 1]]
        out[j] = np.maximum.reduceat(q @ D.T, off[:-1], axis=1).sum(0)
    return out


def make_tokens_slice(src: Path, out: Path, n_docs: int, per_band: dict, seed: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    off_all = np.load(src / "doc_offsets.npy")
    doc_ids_all = np.load(src / "doc_ids.npy")
    n_tok = int(off_all[n_docs])
    tok16 = np.ascontiguousarray(np.load(src / "doc_tokens.f16.npy", mmap_mode="r")[:n_tok])
    off = np.ascontiguousarray(off_all[: n_docs + 1]).astype(np.int64)
    doc_ids = np.ascontiguousarray(doc_ids_all[:n_docs]).astype(np.int64)
    assert off[0] == 0 and doc_ids.tolist() == list(range(n_docs))
    attrs = pq.read_table(src / "attributes.parquet").slice(0, n_docs)
    assert attrs["id"].to_numpy().tolist() == list(range(n_docs))
    assert_no_nulls(attrs)

    qsrc = pq.read_table(src / "queries.parquet")
    qtok_all = np.load(src / "query_tokens.f16.npy")
    qo_all = np.load(src / "query_offsets.npy")
    filt = qsrc["filter_json"].to_pylist()
    masks_src = [eval_filter(parse_filter(f), attrs) for f in filt]
    counts = np.array([int(m.sum()) for m in masks_src])
    bands = ["unfiltered" if parse_filter(f) is None else band_of(int(c), n_docs, "tokens")
             for f, c in zip(filt, counts)]
    rng = np.random.default_rng(seed + 1)
    chosen = []
    for b, k in per_band.items():
        cands = [i for i, bb in enumerate(bands) if bb == b]
        assert len(cands) >= k, (b, len(cands), k)
        chosen += seeded_pick(cands, k, rng)
    chosen = np.array(sorted(chosen), dtype=np.int64)
    nq = len(chosen)

    qtok = np.concatenate([qtok_all[qo_all[j]:qo_all[j + 1]] for j in chosen])
    ntk = np.array([qo_all[j + 1] - qo_all[j] for j in chosen], dtype=np.int64)
    qo = np.concatenate([[0], np.cumsum(ntk)]).astype(np.int64)
    masks = np.stack([masks_src[j] for j in chosen])
    match = masks.sum(1).astype(np.int64)
    sel = qsrc.take(pa.array(chosen))
    qtab = pa.table({
        "query_id": pa.array(np.arange(nq, dtype=np.int64)),
        "arxiv_id": sel["arxiv_id"],
        "title": sel["title"],
        "filter_json": sel["filter_json"],
        "filter_sql": sel["filter_sql"],
        "selectivity": pa.array(match / n_docs, type=pa.float64()),
        "n_match": pa.array(match),
        "filter_band": pa.array([bands[j] for j in chosen], type=pa.string()),
        "filter_kind": sel["filter_kind"],
        "n_tokens": sel["n_tokens"],
        "sv_qid": sel["sv_qid"],
        "source_query_id": pa.array(chosen),
    })
    assert (qtab["n_tokens"].to_numpy() == ntk).all()

    D = tok16.astype(np.float32)
    Q = qtok.astype(np.float32)
    scores = chamfer_scores(Q, qo, D, off)
    gt_ids, gt_sc = topk_rows(scores, masks)
    gtu_ids, gtu_sc = topk_rows(scores, None)

    np.save(out / "doc_tokens.f16.npy", tok16)
    np.save(out / "doc_offsets.npy", off)
    np.save(out / "doc_ids.npy", doc_ids)
    write_parquet(attrs, out / "attributes.parquet")
    np.save(out / "query_tokens.f16.npy", qtok)
    np.save(out / "query_offsets.npy", qo)
    write_parquet(qtab, out / "queries.parquet")
    np.save(out / "gt_ids.npy", gt_ids)
    np.save(out / "gt_scores.npy", gt_sc)
    np.save(out / "gt_unfiltered_ids.npy", gtu_ids)
    np.save(out / "gt_unfiltered_scores.npy", gtu_sc)

    band_stats = {}
    for b in per_band:
        idx = [i for i in range(nq) if bands[chosen[i]] == b]
        m = match[idx]
        band_stats[b] = {"queries": len(idx), "min_match": int(m.min()), "max_match": int(m.max()),
                         "padded_gt_rows": int((m < K).sum())}
    meta = {
        "n_docs": n_docs, "dim": int(tok16.shape[1]), "n_doc_tokens": n_tok,
        "n_queries": nq, "n_query_tokens": int(qo[-1]), "k": K,
        "similarity": "Chamfer: sum over query tokens of max over doc tokens of <q, d>, "
                      "float32 from the float16 files (no re-normalisation)",
        "ground_truth": "exact Chamfer top-100 among docs passing the filter; score desc, "
                        "ties by smaller id; padded -1 / -inf",
        "source": {
            "dataset": "shared/data/arxiv-tokens (see shared/data/README.md)",
            "docs": f"docs 0..{n_docs - 1} (= arxiv/ base rows 0..{n_docs - 1}, = data/arxiv-slice "
                    f"rows 0..{n_docs - 1})",
            "queries": "subset of the 500 public arxiv-tokens queries: source_query_id = their "
                       "query_id there; sv_qid = qid in shared arxiv/queries.parquet",
            "pca": "shared/data/arxiv-tokens/pca.npz (384 -> 128), not copied",
            "sha256_doc_tokens_f16": sha256(src / "doc_tokens.f16.npy"),
            "records": "arXiv metadata (CC0 1.0) via github.com/dw-dengwei/daily-arXiv-ai-enhanced",
            "model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), last-layer token "
                     "embeddings",
        },
        "made_by": "python tools/make_slices.py --shared ../shared/data --out data",
        "selection": f"filters re-evaluated on the {n_docs} docs (n_match, selectivity, "
                     f"filter_band recomputed); 0-match and between-band filters dropped; per band "
                     f"{per_band} drawn uniformly without replacement (numpy default_rng({seed + 1}))"
                     f", sorted by source query_id",
        "bands": TOKENS_BANDS_DOC,
        "band_counts": {b: band_stats[b]["queries"] for b in per_band},
        "band_stats": band_stats,
        "seed": seed,
    }
    write_json(meta, out / "meta.json")
    return meta


# --------------------------------------------------------------------------- verification
def _same_ranking(ids_a, sc_a, ids_b, sc_b, tol=1e-5) -> bool:
    """Equal id lists, or differing only inside near-ties (|score gap| <= tol)."""
    if np.array_equal(ids_a, ids_b):
        return True
    if len(ids_a) != len(ids_b):
        return False
    bad = np.flatnonzero(ids_a != ids_b)
    return bool(np.all(np.abs(sc_a[bad] - sc_b[bad]) <= tol))


def verify_arxiv(src: Path, out: Path, n_sample: int, seed: int) -> list[str]:
    errs = []
    xb = np.load(out / "base.f16.npy").astype(np.float64)
    xb /= np.sqrt((xb * xb).sum(1))[:, None]
    xq = np.load(out / "queries.f32.npy").astype(np.float64)
    qt = pq.read_table(out / "queries.parquet")
    attrs = pq.read_table(out / "attributes.parquet")
    gt, gs = np.load(out / "gt_ids.npy"), np.load(out / "gt_scores.npy")
    gu, gus = np.load(out / "gt_unfiltered_ids.npy"), np.load(out / "gt_unfiltered_scores.npy")
    n = xb.shape[0]
    # (1) float64 brute force, full score matrix + argsort of (-score) with a stable sort
    #     over ids (sorting by id first, then a stable sort by score).
    rng = np.random.default_rng(seed + 7)
    sample = sorted(rng.choice(len(xq), size=min(n_sample, len(xq)), replace=False).tolist())
    S = xq[sample] @ xb.T
    for r, i in enumerate(sample):
        fj = parse_filter(qt["filter_json"][i].as_py())
        keep = np.ones(n, bool) if fj is None else eval_filter(fj, attrs)
        ids = np.flatnonzero(keep)
        ids = ids[np.argsort(-S[r, ids], kind="stable")][:K]
        ref = np.full(K, -1, np.int64)
        ref[: len(ids)] = ids
        refs = np.full(K, -np.inf)
        refs[: len(ids)] = S[r, ids]
        if not _same_ranking(gt[i], gs[i].astype(np.float64), ref, refs):
            errs.append(f"arxiv q{i}: filtered top-{K} differs from float64 brute force")
        if np.max(np.abs(gs[i][: len(ids)] - refs[: len(ids)])) > 1e-5:
            errs.append(f"arxiv q{i}: filtered scores differ > 1e-5")
        all_ids = np.argsort(-S[r], kind="stable")[:K]
        if not _same_ranking(gu[i], gus[i].astype(np.float64), all_ids, S[r, all_ids]):
            errs.append(f"arxiv q{i}: unfiltered top-{K} differs from float64 brute force")
    # (2) consistency with the shared (N = 72,000) ground truth, for every query whose filter
    #     is its own: the source top-100 ids that are < n must be the slice's first ids.
    src_gt = np.load(src / "gt_ids.npy")
    src_gu = np.load(src / "gt_unfiltered_ids.npy")
    vq, fq = qt["source_qid"].to_numpy(), qt["filter_source_qid"].to_numpy()
    n_checked, n_prefix = 0, 0
    for i in range(len(vq)):
        pairs = [(gu[i], gus[i], src_gu[vq[i]])]
        if vq[i] == fq[i]:                     # filtered GT comparable only for own filter
            pairs.append((gt[i], gs[i], src_gt[vq[i]]))
        for mine, mine_s, theirs in pairs:
            inside = theirs[(theirs >= 0) & (theirs < n)]
            m = len(inside)
            n_checked += 1
            n_prefix += m
            if not np.array_equal(mine[:m], inside):
                # allow near-tie swaps only
                sc = xq[i] @ xb[inside].T
                if not (set(mine[:m + 5]) >= set(inside) and
                        _same_ranking(mine[:m], mine_s[:m].astype(np.float64), inside, sc, 1e-5)):
                    errs.append(f"arxiv q{i}: not consistent with shared ground truth")
    print(f"  arxiv-slice verify: {len(sample)} queries vs float64 brute force; "
          f"{n_checked} rankings vs shared GT ({n_prefix} ids compared)")
    return errs


def verify_tokens(src: Path, out: Path, n_sample: int, seed: int) -> list[str]:
    errs = []
    D = np.load(out / "doc_tokens.f16.npy").astype(np.float64)
    off = np.load(out / "doc_offsets.npy")
    Q = np.load(out / "query_tokens.f16.npy").astype(np.float64)
    qo = np.load(out / "query_offsets.npy")
    qt = pq.read_table(out / "queries.parquet")
    attrs = pq.read_table(out / "attributes.parquet")
    gt, gs = np.load(out / "gt_ids.npy"), np.load(out / "gt_scores.npy")
    gu, gus = np.load(out / "gt_unfiltered_ids.npy"), np.load(out / "gt_unfiltered_scores.npy")
    n = len(off) - 1
    rng = np.random.default_rng(seed + 8)
    sample = sorted(rng.choice(len(qo) - 1, size=min(n_sample, len(qo) - 1), replace=False).tolist())
    for j in sample:
        # (1) float64, per-doc loop (no reduceat), then stable argsort
        q = Q[qo[j]:qo[j + 1]]
        sc = np.array([(q @ D[off[d]:off[d + 1]].T).max(1).sum() for d in range(n)])
        fj = parse_filter(qt["filter_json"][j].as_py())
        keep = np.ones(n, bool) if fj is None else eval_filter(fj, attrs)
        ids = np.flatnonzero(keep)
        ids = ids[np.argsort(-sc[ids], kind="stable")][:K]
        ref = np.full(K, -1, np.int64)
        ref[: len(ids)] = ids
        if not _same_ranking(gt[j], gs[j].astype(np.float64), ref,
                             np.concatenate([sc[ids], np.full(K - len(ids), -np.inf)])):
            errs.append(f"tokens q{j}: filtered top-{K} differs from float64 brute force")
        if np.max(np.abs(gs[j][: len(ids)] - sc[ids])) > 1e-4:
            errs.append(f"tokens q{j}: filtered scores differ > 1e-4")
        all_ids = np.argsort(-sc, kind="stable")[:K]
        if not _same_ranking(gu[j], gus[j].astype(np.float64), all_ids, sc[all_ids]):
            errs.append(f"tokens q{j}: unfiltered top-{K} differs from float64 brute force")
    # (2) consistency with the shared (5,000-doc) ground truth
    src_gt = np.load(src / "gt_ids.npy")
    src_gu = np.load(src / "gt_unfiltered_ids.npy")
    sq = qt["source_query_id"].to_numpy()
    n_prefix = 0
    for j in range(len(sq)):
        for mine, theirs in ((gt[j], src_gt[sq[j]]), (gu[j], src_gu[sq[j]])):
            inside = theirs[(theirs >= 0) & (theirs < n)]
            n_prefix += len(inside)
            if not np.array_equal(mine[: len(inside)], inside):
                errs.append(f"tokens q{j}: not consistent with shared ground truth")
    print(f"  arxiv-tokens-slice verify: {len(sample)} queries vs float64 per-doc loop; "
          f"{2 * len(sq)} rankings vs shared GT ({n_prefix} ids compared)")
    return errs


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"),
                    help="shared data folder holding arxiv/ and arxiv-tokens/")
    ap.add_argument("--out", type=Path, default=Path("data"), help="output folder")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--n-base", type=int, default=ARXIV_N_BASE)
    ap.add_argument("--per-band", type=int, default=ARXIV_PER_BAND,
                    help="queries per band in arxiv-slice (5 bands)")
    ap.add_argument("--n-docs", type=int, default=TOKENS_N_DOCS)
    ap.add_argument("--verify-sample", type=int, default=20,
                    help="queries per slice re-checked by float64 brute force")
    args = ap.parse_args(argv)

    a = make_arxiv_slice(args.shared / "arxiv", args.out / "arxiv-slice", args.n_base,
                         args.per_band, args.seed)
    print(f"arxiv-slice: {a['n_base']} base rows, {a['n_queries']} queries; bands:")
    for b, st in a["band_stats"].items():
        print(f"  {b:10s} {st}")
    t = make_tokens_slice(args.shared / "arxiv-tokens", args.out / "arxiv-tokens-slice",
                          args.n_docs, TOKENS_PER_BAND, args.seed)
    print(f"arxiv-tokens-slice: {t['n_docs']} docs ({t['n_doc_tokens']} tokens), "
          f"{t['n_queries']} queries; bands:")
    for b, st in t["band_stats"].items():
        print(f"  {b:10s} {st}")

    errs = verify_arxiv(args.shared / "arxiv", args.out / "arxiv-slice", args.verify_sample,
                        args.seed)
    errs += verify_tokens(args.shared / "arxiv-tokens", args.out / "arxiv-tokens-slice",
                          args.verify_sample, args.seed)
    for e in errs:
        print("VERIFY FAILED:", e, file=sys.stderr)
    print("verify:", "OK" if not errs else f"{len(errs)} failures")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
