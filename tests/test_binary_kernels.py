"""The packed-bit kernels against plain numpy references (unpackbits + XOR + sum; reconstruction products).

Sizes are odd on purpose (dims that are not multiples of 64, row counts that are not multiples of
anything), and every kernel also runs on read-only memory-mapped codes.
"""

from __future__ import annotations

import numpy as np
import pytest

import vecdb.binary as vb
from vecdb.binary import BinaryEncoder, pack_planes, unpack_planes

DIMS = [1, 5, 63, 64, 65, 130, 389]


def random_codes(rng: np.random.Generator, n: int, dim: int, bits: int = 1) -> np.ndarray:
    """``n`` codes of ``bits`` planes, padding bits clear (as the encoder writes them)."""
    planes = [pack_planes(rng.random((n, dim)) < 0.5) for _ in range(bits)]
    return np.ascontiguousarray(np.concatenate(planes, axis=1))


def as_memmap(tmp_path, codes: np.ndarray) -> np.ndarray:
    path = tmp_path / "codes.npy"
    np.save(path, codes)
    mm = np.load(path, mmap_mode="r")
    assert not mm.flags.writeable
    return mm


def ref_signs(codes: np.ndarray, dim: int, bits: int) -> list[np.ndarray]:
    """The +-1 planes of every code, via unpackbits (float64)."""
    words = codes.shape[1] // bits
    return [np.where(unpack_planes(codes[:, b * words:(b + 1) * words], dim), 1.0, -1.0) for b in range(bits)]


def ref_scores(q: np.ndarray, codes: np.ndarray, dim: int, bits: int, weights: np.ndarray) -> np.ndarray:
    """``sum_ab w_ab (dim - 2 * popcount(q_a ^ x_b))``, in the kernels' order of operations."""
    words = codes.shape[1] // bits
    qb = np.unpackbits(q.view(np.uint8).reshape(1, -1), axis=1)
    xb = np.unpackbits(np.ascontiguousarray(codes).view(np.uint8), axis=1)
    s = np.zeros(codes.shape[0])
    for a in range(bits):
        for b in range(bits):
            qa = qb[:, a * words * 64:(a + 1) * words * 64]
            xbb = xb[:, b * words * 64:(b + 1) * words * 64]
            h = (qa ^ xbb).sum(axis=1).astype(np.float64)
            s = s + weights[a, b] * (dim - 2.0 * h)
    return s


def ref_topc(scores: np.ndarray, rows: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((rows, -scores))[:c]
    out_s = np.full(c, -np.inf)
    out_r = np.full(c, -1, dtype=np.int64)
    out_s[: order.size], out_r[: order.size] = scores[order], rows[order]
    return out_s, out_r


@pytest.mark.parametrize("dim", DIMS)
def test_pack_unpack_round_trip(rng, dim):
    signs = rng.random((7, dim)) < 0.5
    packed = pack_planes(signs)
    assert packed.dtype == np.uint64 and packed.shape == (7, (dim + 63) // 64)
    np.testing.assert_array_equal(unpack_planes(packed, dim), signs)
    assert np.all(unpack_planes(packed, packed.shape[1] * 64)[:, dim:] == 0)  # padding bits are clear


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("mmap", [False, True])
def test_hamming_equals_unpackbits_xor_sum(rng, tmp_path, dim, mmap):
    codes = random_codes(rng, 101, dim)
    q = random_codes(rng, 1, dim)[0]
    want = np.unpackbits((codes ^ q).view(np.uint8), axis=1).sum(axis=1)
    got = vb.hamming(q, as_memmap(tmp_path, codes) if mmap else codes)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)
    if mmap:  # a query that is itself a row of the read-only map
        mm = np.load(tmp_path / "codes.npy", mmap_mode="r")
        want = np.unpackbits((codes ^ codes[3]).view(np.uint8), axis=1).sum(axis=1)
        np.testing.assert_array_equal(vb.hamming(mm[3], mm), want)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("dim", [5, 65, 389])
@pytest.mark.parametrize("mmap", [False, True])
def test_symmetric_ip_equals_reconstruction_inner_product(rng, tmp_path, bits, dim, mmap):
    # Dyadic scales make every product and sum exact in float64, so equality is exact.
    scales = rng.integers(1, 64, bits) / 16.0
    enc = BinaryEncoder(dim, bits, np.zeros(dim, np.float32), None, scales)
    codes = random_codes(rng, 37, dim, bits)
    q = random_codes(rng, 1, dim, bits)[0]
    recon_x = sum(s * p for s, p in zip(scales, ref_signs(codes, dim, bits)))
    recon_q = sum(s * p for s, p in zip(scales, ref_signs(q[None], dim, bits)))
    got = vb.symmetric_ip(q, as_memmap(tmp_path, codes) if mmap else codes, enc)
    np.testing.assert_array_equal(got, recon_x @ recon_q[0])
    np.testing.assert_array_equal(got, enc.decode_rotated(codes) @ enc.decode_rotated(q[None])[0])


def test_symmetric_ip_with_fitted_scales(rng):
    x = rng.standard_normal((300, 77)).astype(np.float32)
    enc = BinaryEncoder.fit(x, bits=3, rotation=True, iterations=5, seed=3)
    codes = enc.encode(x)
    got = vb.symmetric_ip(codes[0], codes, enc)
    want = enc.decode_rotated(codes) @ enc.decode_rotated(codes[:1])[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("dim", [5, 130])
@pytest.mark.parametrize("filtered", [False, True])
@pytest.mark.parametrize("with_term", [False, True])
def test_scan_equals_numpy_topc(rng, tmp_path, monkeypatch, bits, dim, filtered, with_term):
    n, nq, c = 1003, 5, 17
    codes = random_codes(rng, n, dim, bits)
    queries = random_codes(rng, nq, dim, bits)
    weights = rng.integers(1, 9, (bits, bits)) / 8.0
    term = (rng.integers(-64, 64, n) / 4.0).astype(np.float32) if with_term else None
    allow = rng.random(n) < 0.03 if filtered else None
    rows = np.flatnonzero(allow) if filtered else np.arange(n)
    want = []
    for qi in range(nq):
        s = ref_scores(queries[qi], codes[rows], dim, bits, weights)
        if with_term:
            s = s + term[rows]
        want.append(ref_topc(s, rows, c))
    want_s, want_r = np.stack([w[0] for w in want]), np.stack([w[1] for w in want])
    for mmap in (False, True):
        source = as_memmap(tmp_path, codes) if mmap else codes
        for threads, visits in ((1, 1 << 20), (3, 0)):  # serial; forced split over queries and row blocks
            monkeypatch.setattr(vb, "SERIAL_MAX_VISITS", visits)
            for qs in (queries, queries[:2]):
                got_s, got_r = vb.scan(qs, source, bits=bits, dim=dim, weights=weights, c=c, row_term=term,
                                       allow=allow, threads=threads)
                np.testing.assert_array_equal(got_r, want_r[: len(qs)])
                np.testing.assert_array_equal(got_s, want_s[: len(qs)])


def test_scan_ties_go_to_the_smaller_row(rng):
    codes = random_codes(rng, 500, 3)  # 3 dims: only 8 distinct codes, so ties everywhere
    q = codes[:1].copy()
    s, r = vb.scan(q, codes, bits=1, dim=3, weights=np.ones((1, 1)), c=40, threads=1)
    h = np.unpackbits((codes ^ q[0]).view(np.uint8), axis=1).sum(axis=1)
    want = np.lexsort((np.arange(500), h))[:40]
    np.testing.assert_array_equal(r[0], want)
    np.testing.assert_array_equal(s[0], 3.0 - 2.0 * h[want])


def test_scan_pads_when_few_rows_pass(rng):
    codes = random_codes(rng, 70, 65, 2)
    allow = np.zeros(70, bool)
    allow[[3, 64, 69]] = True
    s, r = vb.scan(codes[:2], codes, bits=2, dim=65, weights=np.ones((2, 2)), c=5, allow=allow)
    assert set(r[0, :3]) == {3, 64, 69} and (r[:, 3:] == -1).all() and np.isneginf(s[:, 3:]).all()
    s, r = vb.scan(codes[:2], codes, bits=2, dim=65, weights=np.ones((2, 2)), c=5, allow=np.zeros(70, bool))
    assert (r == -1).all()


def test_wrong_dtype_is_refused(rng):
    codes = random_codes(rng, 10, 64)
    with pytest.raises(TypeError):
        vb.hamming(codes[0], codes.view(np.int64))
    with pytest.raises(TypeError):
        vb.hamming(codes[0].view(np.uint8), codes)
    with pytest.raises(ValueError):
        vb.scan(codes[:1], codes, bits=2, dim=64, weights=np.ones((2, 2)), c=3)
