"""The prefetch hint (``kernels.prefetch``): compiles for 2-D arrays, changes nothing, never faults
(even past the end), and is refused at typing time for what it cannot address."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest
from numba.core.errors import TypingError

from vecdb.kernels.prefetch import prefetch


@nb.njit(cache=False)
def _sum_with_hints(a, rows, ahead):
    total = 0.0
    for i in range(rows.shape[0]):
        if i + ahead < rows.shape[0]:
            prefetch(a, rows[i + ahead], 0)
        prefetch(a, rows[i], a.shape[1] * 4)  # an address past the row (and, for the last, the array)
        for j in range(a.shape[1]):
            total += a[rows[i], j]
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_hints_leave_every_value_as_it_was(dtype):
    rng = np.random.default_rng(0)
    a = (rng.random((5000, 48)) * 100).astype(dtype)
    before = a.copy()
    rows = rng.integers(0, len(a), 3000)
    assert _sum_with_hints(a, rows, 8) == pytest.approx(float(a[rows].astype(np.float64).sum()), rel=1e-9)
    np.testing.assert_array_equal(a, before)


def test_only_two_dimensional_arrays_and_integer_indexes_are_typed():
    @nb.njit(cache=False)
    def one_d(a):
        prefetch(a, 0, 0)

    @nb.njit(cache=False)
    def float_index(a):
        prefetch(a, 0.5, 0)

    with pytest.raises(TypingError):
        one_d(np.zeros(8, np.float32))
    with pytest.raises(TypingError):
        float_index(np.zeros((2, 8), np.float32))
