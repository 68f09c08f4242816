"""The ``binary`` index and its encoder: measured against the exact oracle, filtered and not, saved and reopened."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb.binary import BinaryEncoder
from vecdb.binary.encoders import itq_rotation
from vecdb.errors import InvalidParameterError
from vecdb.indexes import index_kinds
from vecdb.indexes.binary_index import BinaryIndex, size_ratio
from vecdb.indexes.flat import exact_search


def recall(got: np.ndarray, want: np.ndarray) -> float:
    hits = [len(set(g[g >= 0].tolist()) & set(w[w >= 0].tolist())) / max(1, (w >= 0).sum()) for g, w in zip(got, want)]
    return float(np.mean(hits))


# ----------------------------------------------------------------------------- encoder
def test_reconstruction_error_falls_with_bits(rng):
    x = rng.standard_normal((800, 96)).astype(np.float32) + 0.5
    errors = []
    for bits in (1, 2, 3, 4):
        enc = BinaryEncoder.fit(x, bits=bits, rotation=bits == 1, iterations=3, seed=1)
        codes = enc.encode(x)
        assert codes.dtype == np.uint64 and codes.shape == (800, bits * 2)
        errors.append(float(np.mean((enc.decode(codes) - x) ** 2)))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.15 * errors[0]


def test_encoder_file_round_trip_without_pickle(rng, tmp_path):
    x = rng.standard_normal((300, 70)).astype(np.float32)
    for rotation in (True, False):
        enc = BinaryEncoder.fit(x, bits=3, rotation=rotation, iterations=3, seed=2)
        path = tmp_path / f"enc-{rotation}.npz"
        path.write_bytes(enc.to_bytes())
        with np.load(path, allow_pickle=False) as z:  # plain arrays only
            assert all(z[name].dtype != object for name in z.files)
        back = BinaryEncoder.load(path)
        np.testing.assert_array_equal(back.encode(x), enc.encode(x))
        assert (back.rotation is None) == (not rotation)


def test_fit_is_seeded_and_rotation_is_orthogonal(rng):
    x = rng.standard_normal((400, 40)).astype(np.float32)
    a = BinaryEncoder.fit(x, bits=2, rotation=True, iterations=4, seed=5)
    b = BinaryEncoder.fit(x, bits=2, rotation=True, iterations=4, seed=5)
    np.testing.assert_array_equal(a.rotation, b.rotation)
    np.testing.assert_allclose(a.rotation @ a.rotation.T, np.eye(40), atol=1e-5)
    v = x - x.mean(axis=0)

    def loss(r: np.ndarray) -> float:
        return float(np.sum((np.sign(v @ r) - v @ r) ** 2))

    start = itq_rotation(v, iterations=0, rng=np.random.default_rng(5))  # ITQ's random starting point
    assert loss(itq_rotation(v, iterations=4, rng=np.random.default_rng(5))) < loss(start)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_scan_score_is_the_reconstructions_similarity(rng, monkeypatch, metric):
    """Kernel score + row term = <decode(q), decode(x)> (or -|decode(q) - decode(x)|^2) up to a per-query constant."""
    monkeypatch.setattr("vecdb.indexes.binary_index.ITQ_ITERATIONS", 3)
    x = rng.standard_normal((500, 50)).astype(np.float32) + 1.0
    index = BinaryIndex(50, metric, bits=3, rotation=True)
    index.build(x)
    q = x[:4] + 0.1
    scores, rows = index.scan(q, 500)
    enc = index.encoder
    dq, dx = enc.decode(enc.encode(q)).astype(np.float64), enc.decode(index.codes).astype(np.float64)
    for i in range(4):
        want = dq[i] @ dx.T if metric == "ip" else -((dx - dq[i]) ** 2).sum(axis=1)
        got = scores[i][np.argsort(rows[i])]
        np.testing.assert_allclose(got - got[0], want - want[0], atol=1e-3)


# ----------------------------------------------------------------------------- index on the arXiv slice
@pytest.fixture(scope="module")
def binary_collection(arxiv_slice, tmp_path_factory):
    """The slice with a 2-bit binary index (no rotation: ITQ's SVDs are slow on a busy CI box); do not mutate."""
    coll = vecdb.create(tmp_path_factory.mktemp("bin") / "arxiv.vdb", dim=384, metric="cosine")
    attrs = arxiv_slice.attributes
    coll.add(arxiv_slice.base, attrs.drop(["id"]), ids=attrs.column("id").to_numpy())
    coll.build_index("binary", rotation=False)
    return coll


def test_registered_and_configured(binary_collection):
    assert "binary" in index_kinds()
    info = binary_collection.index_info
    assert info["kind"] == "binary" and info["config"] == {"bits": 2, "rotation": False, "candidates": 200,
                                                            "seed": 1234}
    index = binary_collection.snapshot.index
    assert index.memory_bytes()["codes"] * 16 == index._vectors.nbytes  # 2 bits a dim: 16x smaller
    assert size_ratio(384, 2) == 16.0 and size_ratio(384, 4) == 8.0


def test_default_search_reaches_the_recall_target(binary_collection, arxiv_slice):
    q = arxiv_slice.queries
    got = binary_collection.search(q, 10, plan="index")
    want = binary_collection.search(q, 10, plan="exact")
    assert recall(got.ids, want.ids) >= 0.95


def test_filtered_search_passes_filter_and_matches_exact_when_candidates_cover(binary_collection, arxiv_slice):
    q = arxiv_slice.queries[:40]
    where = "year >= 2026 AND n_authors <= 4"
    mask = binary_collection.snapshot.select(where).mask
    matches = int(mask.sum())
    assert 10 < matches < 5000
    got = binary_collection.search(q, 10, where=where, plan="index")
    passing = set(np.asarray(binary_collection.snapshot.ids)[mask].tolist())
    assert all(i in passing for i in got.ids[got.ids >= 0].tolist())
    exact = binary_collection.search(q, 10, where=where, plan="exact")
    assert recall(got.ids, exact.ids) >= 0.95
    # candidates >= matching rows: the rerank sees them all, so the answer is the exact one
    index = binary_collection.snapshot.index
    _, rows = index.scan(q, matches + 7, allow=mask)
    assert set(rows[0][rows[0] >= 0].tolist()) == set(np.flatnonzero(mask).tolist())
    full = index.rerank(q, rows, 10)
    np.testing.assert_array_equal(full.rows, exact_search(index._vectors, q, 10, "cosine", allow=mask).rows)
    shortcut = binary_collection.search(q, 10, where=where, plan="index", candidates=matches)
    np.testing.assert_array_equal(shortcut.ids, exact.ids)


def test_pads_when_fewer_rows_pass_than_k(binary_collection, arxiv_slice):
    index = binary_collection.snapshot.index
    allow = np.zeros(index.ntotal, bool)
    allow[[5, 77, 4000]] = True
    hits = index.search(arxiv_slice.queries[:3], 10, allow=allow)
    assert (np.sort(hits.rows[:, :3], axis=1) == [5, 77, 4000]).all()
    assert (hits.rows[:, 3:] == -1).all() and np.isneginf(hits.scores[:, 3:]).all()
    exact = exact_search(index._vectors, arxiv_slice.queries[:3], 10, "cosine", allow=allow)
    np.testing.assert_array_equal(hits.rows, exact.rows)


def test_reopen_maps_codes_read_only_and_answers_the_same(binary_collection, arxiv_slice):
    q = arxiv_slice.queries[:50]
    before = binary_collection.search(q, 10, plan="index", where="year >= 2025")
    again = vecdb.open(binary_collection.root)
    codes = again.snapshot.index.codes
    assert isinstance(codes, np.memmap) and not codes.flags.writeable
    after = again.search(q, 10, plan="index", where="year >= 2025")
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.scores, after.scores)


def test_more_candidates_never_hurt(binary_collection, arxiv_slice):
    q = arxiv_slice.queries[:100]
    exact = binary_collection.search(q, 10, plan="exact")
    recalls = [recall(binary_collection.search(q, 10, plan="index", candidates=c).ids, exact.ids)
               for c in (10, 50, 400)]
    assert recalls == sorted(recalls) and recalls[-1] >= 0.99


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("bits", [1, 4])
def test_other_metrics_and_bits_with_appends(rng, tmp_path, metric, bits):
    centers = rng.standard_normal((20, 48)).astype(np.float32) * 3
    x = (centers[rng.integers(0, 20, 1500)] + rng.standard_normal((1500, 48))).astype(np.float32)
    coll = vecdb.create(tmp_path / "c.vdb", dim=48, metric=metric)
    coll.add(x[:1200])
    coll.build_index("binary", bits=bits, rotation=False, candidates=300)
    coll.add(x[1200:])
    coll.optimize()  # appends rows to the codes with the fitted encoder
    assert coll.snapshot.index.ntotal == 1500
    q = x[rng.integers(0, 1500, 30)] + 0.3 * rng.standard_normal((30, 48)).astype(np.float32)
    got = coll.search(q, 10, plan="index")
    want = coll.search(q, 10, plan="exact")
    assert recall(got.ids, want.ids) >= 0.95
    np.testing.assert_allclose(np.sort(got.scores, axis=1), np.sort(want.scores, axis=1), rtol=1e-3, atol=1e-3)
    again = vecdb.open(coll.root)
    np.testing.assert_array_equal(again.search(q, 10, plan="index").ids, got.ids)


def test_defaults_and_bad_options(tmp_path, rng):
    coll = vecdb.create(tmp_path / "c.vdb", dim=8)
    coll.add(rng.standard_normal((50, 8)))
    coll.build_index("binary")
    assert coll.index_info["config"] == {"bits": 2, "rotation": True, "candidates": 200, "seed": 1234}
    assert coll.snapshot.index.encoder.rotation is not None
    index = coll.snapshot.index
    assert (index.candidates_for(10), index.candidates_for(100), index.candidates_for(100, 50)) == (200, 2000, 100)
    for bad in ({"bits": 5}, {"bits": 0}, {"rotation": "yes"}, {"candidates": 0}, {"nprobe": 3}):
        with pytest.raises(InvalidParameterError):
            coll.build_index("binary", **bad)
    with pytest.raises(InvalidParameterError, match="ef"):
        coll.search(np.ones(8), 3, plan="index", ef=10)
