"""The committed data slices (data/arxiv-slice, data/arxiv-tokens-slice) are well-formed.

Made by ``tools/make_slices.py``; see ``data/README.md``.  Uses numpy and pyarrow only (no
``vecdb`` import), so a broken slice is reported independently of the library under test.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
ARXIV = DATA / "arxiv-slice"
TOKENS = DATA / "arxiv-tokens-slice"
K = 100

ATTR_SCHEMA = pa.schema([
    ("id", pa.int64()), ("arxiv_id", pa.string()), ("title", pa.string()),
    ("categories", pa.list_(pa.string())), ("primary_category", pa.string()),
    ("archive", pa.string()), ("other_classes", pa.list_(pa.string())),
    ("authors", pa.list_(pa.string())), ("n_authors", pa.int32()),
    ("listing_date", pa.date32()), ("date_int", pa.int32()), ("year", pa.int32()),
    ("month", pa.int32()), ("yyyymm", pa.int32()), ("abstract_len", pa.int32()),
    ("has_comment", pa.bool_()),
])


# ----------------------------------------------------------------------------- helpers
def _mask(node, t: pa.Table) -> np.ndarray:
    """Rows of ``t`` passing a JSON filter node (grammar of shared/data/README.md)."""
    if node is None:
        return np.ones(t.num_rows, bool)
    (op, a), = node.items()
    if op == "eq":
        return np.asarray(pc.equal(t[a[0]], pa.scalar(a[1])).to_numpy(zero_copy_only=False), bool)
    if op == "contains":
        return np.array([a[1] in v for v in t[a[0]].to_pylist()], dtype=bool)
    if op == "between":
        x = t[a[0]].to_numpy()
        return (x >= a[1]) & (x <= a[2])
    if op == "ge":
        return t[a[0]].to_numpy() >= a[1]
    if op == "and":
        return np.logical_and.reduce([_mask(f, t) for f in a])
    if op == "or":
        return np.logical_or.reduce([_mask(f, t) for f in a])
    if op == "not":
        return ~_mask(a, t)
    raise AssertionError(f"unknown filter op {op!r}")


def _parse(s):
    return None if s in (None, "", "null") else json.loads(s)


def _check_gt(ids, scores, n, n_valid):
    """Shape, dtype, range, padding and ordering of one ground-truth pair of arrays."""
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert ids.shape == scores.shape and ids.shape[1] == K
    assert ids.min() >= -1 and ids.max() < n
    for i in range(ids.shape[0]):
        v = int(n_valid[i])
        row, sc = ids[i], scores[i]
        assert (row[:v] >= 0).all() and (row[v:] == -1).all(), f"row {i}: padding"
        assert np.isfinite(sc[:v]).all() and np.isneginf(sc[v:]).all(), f"row {i}: score padding"
        assert len(set(row[:v].tolist())) == v, f"row {i}: duplicate ids"
        d = np.diff(sc[:v])
        assert (d <= 0).all(), f"row {i}: scores not descending"
        tie = np.flatnonzero(d == 0)
        assert (row[tie] < row[tie + 1]).all(), f"row {i}: ties not by smaller id"


def _topk(scores, keep):
    cand = np.flatnonzero(keep)
    o = np.lexsort((cand, -scores[cand]))[:K]
    return cand[o]


def _same_up_to_near_ties(got, ref, scores, tol=1e-5):
    if np.array_equal(got, ref):
        return True
    if len(got) != len(ref):
        return False
    bad = np.flatnonzero(got != ref)
    return bool(np.all(np.abs(scores[got[bad]] - scores[ref[bad]]) <= tol))


# ----------------------------------------------------------------------------- arxiv-slice
@pytest.fixture(scope="module")
def arxiv():
    d = {p.stem.replace(".f16", "").replace(".f32", ""): np.load(p) for p in ARXIV.glob("*.npy")}
    d["attrs"] = pq.read_table(ARXIV / "attributes.parquet")
    d["q"] = pq.read_table(ARXIV / "queries.parquet")
    d["meta"] = json.loads((ARXIV / "meta.json").read_text())
    return d


def test_arxiv_files_present():
    names = {"base.f16.npy", "attributes.parquet", "queries.f32.npy", "queries.parquet",
             "gt_ids.npy", "gt_scores.npy", "gt_unfiltered_ids.npy",
             "gt_unfiltered_scores.npy", "meta.json"}
    assert names <= {p.name for p in ARXIV.iterdir()}


def test_arxiv_vectors(arxiv):
    m = arxiv["meta"]
    n, dim, nq = m["n_base"], m["dim"], m["n_queries"]
    assert (n, dim) == (5000, 384)
    base, xq = arxiv["base"], arxiv["queries"]
    assert base.dtype == np.float16 and base.shape == (n, dim)
    assert xq.dtype == np.float32 and xq.shape == (nq, dim)
    assert np.allclose(np.linalg.norm(base.astype(np.float32), axis=1), 1, atol=1e-3)
    assert np.allclose(np.linalg.norm(xq, axis=1), 1, atol=1e-5)
    assert m["metric"] == "ip (cosine, unit vectors)" and m["k"] == K


def test_arxiv_attributes(arxiv):
    t = arxiv["attrs"]
    assert t.schema.remove_metadata().equals(ATTR_SCHEMA)
    assert t.num_rows == arxiv["meta"]["n_base"]
    assert t["id"].to_numpy().tolist() == list(range(t.num_rows))
    for c in t.column_names:
        assert t[c].null_count == 0, c
    assert (t["n_authors"].to_numpy() == pc.list_value_length(t["authors"]).to_numpy()).all()


def test_arxiv_queries_table(arxiv):
    q, m = arxiv["q"], arxiv["meta"]
    n, nq = m["n_base"], m["n_queries"]
    for c in ["qid", "query_text", "filter_json", "filter_sql", "match_count", "selectivity",
              "filter_band", "filter_kind"]:
        assert c in q.column_names, c
    assert q.num_rows == nq
    assert q["qid"].to_numpy().tolist() == list(range(nq))
    mc = q["match_count"].to_numpy()
    sel = q["selectivity"].to_numpy()
    assert np.allclose(sel, mc / n)
    bands = q["filter_band"].to_pylist()
    counts = {b: bands.count(b) for b in set(bands)}
    assert set(counts) == {"unfiltered", "~50%", "~10%", "~1%", "very_low"}
    assert min(counts.values()) >= 40, counts
    assert counts == m["band_counts"]
    for b, c, s, fj, fs in zip(bands, mc, sel, q["filter_json"].to_pylist(),
                               q["filter_sql"].to_pylist()):
        if b == "unfiltered":
            assert _parse(fj) is None and fs == "" and c == n
        else:
            assert _parse(fj) is not None and fs != ""
            ok = {"~50%": 0.3 <= s <= 0.7, "~10%": 0.05 <= s <= 0.2,
                  "~1%": 0.005 <= s <= 0.02, "very_low": 3 <= c < 0.005 * n}[b]
            assert ok, (b, c)


def test_arxiv_match_count_recomputed(arxiv):
    q, t = arxiv["q"], arxiv["attrs"]
    for i, fj in enumerate(q["filter_json"].to_pylist()):
        assert _mask(_parse(fj), t).sum() == q["match_count"][i].as_py(), i


def test_arxiv_ground_truth_shape(arxiv):
    n = arxiv["meta"]["n_base"]
    mc = arxiv["q"]["match_count"].to_numpy()
    _check_gt(arxiv["gt_ids"], arxiv["gt_scores"], n, np.minimum(mc, K))
    _check_gt(arxiv["gt_unfiltered_ids"], arxiv["gt_unfiltered_scores"], n,
              np.full(len(mc), min(n, K)))
    unf = mc == n
    assert np.array_equal(arxiv["gt_ids"][unf], arxiv["gt_unfiltered_ids"][unf])


def test_arxiv_ground_truth_passes_filter(arxiv):
    q, t, gt = arxiv["q"], arxiv["attrs"], arxiv["gt_ids"]
    for i, fj in enumerate(q["filter_json"].to_pylist()):
        keep = _mask(_parse(fj), t)
        row = gt[i][gt[i] >= 0]
        assert keep[row].all(), i


def test_arxiv_ground_truth_exact_sample(arxiv):
    xb = arxiv["base"].astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq, q, t = arxiv["queries"], arxiv["q"], arxiv["attrs"]
    for i in range(0, len(xq), 37):
        s = xb @ xq[i]
        keep = _mask(_parse(q["filter_json"][i].as_py()), t)
        ref = _topk(s, keep)
        got = arxiv["gt_ids"][i][: len(ref)]
        assert _same_up_to_near_ties(got, ref, s), i
        assert np.allclose(arxiv["gt_scores"][i][: len(ref)], s[got], atol=1e-5)
        refu = _topk(s, np.ones(len(s), bool))
        assert _same_up_to_near_ties(arxiv["gt_unfiltered_ids"][i], refu, s), i


# ----------------------------------------------------------------------------- tokens slice
@pytest.fixture(scope="module")
def tokens():
    d = {p.stem.replace(".f16", ""): np.load(p) for p in TOKENS.glob("*.npy")}
    d["attrs"] = pq.read_table(TOKENS / "attributes.parquet")
    d["q"] = pq.read_table(TOKENS / "queries.parquet")
    d["meta"] = json.loads((TOKENS / "meta.json").read_text())
    return d


def test_tokens_files_present():
    names = {"doc_tokens.f16.npy", "doc_offsets.npy", "doc_ids.npy", "attributes.parquet",
             "query_tokens.f16.npy", "query_offsets.npy", "queries.parquet", "gt_ids.npy",
             "gt_scores.npy", "gt_unfiltered_ids.npy", "gt_unfiltered_scores.npy", "meta.json"}
    assert names <= {p.name for p in TOKENS.iterdir()}


def test_tokens_arrays(tokens):
    m = tokens["meta"]
    n, dim, nq = m["n_docs"], m["dim"], m["n_queries"]
    D, off, ids = tokens["doc_tokens"], tokens["doc_offsets"], tokens["doc_ids"]
    Q, qo = tokens["query_tokens"], tokens["query_offsets"]
    assert D.dtype == np.float16 and D.ndim == 2 and D.shape[1] == dim == 128
    assert off.dtype == np.int64 and off.shape == (n + 1,)
    assert off[0] == 0 and off[-1] == D.shape[0] == m["n_doc_tokens"]
    assert (np.diff(off) > 0).all()
    assert ids.dtype == np.int64 and ids.tolist() == list(range(n))
    assert Q.dtype == np.float16 and Q.shape[1] == dim
    assert qo.dtype == np.int64 and qo.shape == (nq + 1,)
    assert qo[0] == 0 and qo[-1] == Q.shape[0] and (np.diff(qo) > 0).all()
    assert (np.diff(qo) == tokens["q"]["n_tokens"].to_numpy()).all()
    assert np.allclose(np.linalg.norm(D[::97].astype(np.float32), axis=1), 1, atol=2e-3)
    assert np.allclose(np.linalg.norm(Q.astype(np.float32), axis=1), 1, atol=2e-3)


def test_tokens_attributes_match_arxiv_slice(tokens):
    t = tokens["attrs"]
    assert t.schema.remove_metadata().equals(ATTR_SCHEMA)
    assert t.num_rows == tokens["meta"]["n_docs"]
    assert t["id"].to_numpy().tolist() == list(range(t.num_rows))
    a = pq.read_table(ARXIV / "attributes.parquet").slice(0, t.num_rows)
    assert t.equals(a)


def test_tokens_queries(tokens):
    q, m = tokens["q"], tokens["meta"]
    n = m["n_docs"]
    assert q["query_id"].to_numpy().tolist() == list(range(m["n_queries"]))
    nm = q["n_match"].to_numpy()
    assert (nm >= 1).all() and (nm <= n).all()
    assert np.allclose(q["selectivity"].to_numpy(), nm / n)
    for i, fj in enumerate(q["filter_json"].to_pylist()):
        assert _mask(_parse(fj), tokens["attrs"]).sum() == nm[i], i
    bands = q["filter_band"].to_pylist()
    assert {b: bands.count(b) for b in set(bands)} == m["band_counts"]


def test_tokens_ground_truth(tokens):
    n = tokens["meta"]["n_docs"]
    nm = tokens["q"]["n_match"].to_numpy()
    _check_gt(tokens["gt_ids"], tokens["gt_scores"], n, np.minimum(nm, K))
    _check_gt(tokens["gt_unfiltered_ids"], tokens["gt_unfiltered_scores"], n,
              np.full(len(nm), min(n, K)))
    for i, fj in enumerate(tokens["q"]["filter_json"].to_pylist()):
        keep = _mask(_parse(fj), tokens["attrs"])
        row = tokens["gt_ids"][i]
        assert keep[row[row >= 0]].all(), i


def test_tokens_ground_truth_exact_sample(tokens):
    D = tokens["doc_tokens"].astype(np.float32)
    off, qo = tokens["doc_offsets"], tokens["query_offsets"]
    Q = tokens["query_tokens"].astype(np.float32)
    q = tokens["q"]
    for j in range(0, len(qo) - 1, 23):
        s = np.maximum.reduceat(Q[qo[j]:qo[j + 1]] @ D.T, off[:-1], axis=1).sum(0)
        keep = _mask(_parse(q["filter_json"][j].as_py()), tokens["attrs"])
        ref = _topk(s, keep)
        got = tokens["gt_ids"][j][: len(ref)]
        assert _same_up_to_near_ties(got, ref, s), j
        assert np.allclose(tokens["gt_scores"][j][: len(ref)], s[got], atol=1e-4)
        refu = _topk(s, np.ones(len(s), bool))
        assert _same_up_to_near_ties(tokens["gt_unfiltered_ids"][j], refu, s), j
