"""The SIMD building blocks against NumPy, over their whole stated input range.

``exp_nonpositive`` promises a relative error below 1.2e-7 (float32) and 1e-15 (float64) on [lowest, 0] (and up to
x = 80 for float32), 0 below ``lowest``, NaN for NaN; ``log_positive`` promises a few ulp for positive normal
float64. ``order_key`` must sort like the floats. The references are NumPy's float64 ``exp`` and ``log``
(``math``-library quality, computed in a wider type than the float32 results).
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from numba_xent._vecmath import (
    exp_difference,
    exp_nonpositive,
    from_order_key,
    log_positive,
    order_key,
    row_max_sum_exp,
)


@njit
def _exp_all(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = exp_nonpositive(x[i])
    return out


@njit
def _exp_difference_all(x, shift):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = exp_difference(x[i], shift[i])
    return out


@njit
def _log_all(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = log_positive(x[i])
    return out


@njit
def _keys(x):
    keys = np.empty(x.shape[0], np.int64)
    back = np.empty_like(x)
    for i in range(x.shape[0]):
        key = order_key(x[i])
        keys[i] = key
        back[i] = from_order_key(key)
    return keys, back


def _grid(lowest, highest, dtype, n=2_000_000, seed=0):
    """Dense uniform samples of [lowest, highest], the range's ends, and points near 0 on a log scale."""
    rng = np.random.default_rng(seed)
    uniform = rng.uniform(lowest, highest, n)
    near_zero = -np.logspace(-30, 0, 20_000)
    ends = np.array([lowest, highest, 0.0, -0.0, np.nextafter(dtype(0), dtype(-1))])
    grid = np.concatenate([uniform, near_zero[near_zero >= lowest], ends]).astype(dtype)
    return grid[(grid >= lowest) & (grid <= highest)]


@pytest.mark.parametrize(
    ("dtype", "lowest", "highest", "bound"),
    [(np.float32, -87.0, 0.0, 1.2e-7), (np.float32, 0.0, 80.0, 1.2e-7), (np.float64, -708.0, 0.0, 1e-15)],
)
def test_exp_error_bound(dtype, lowest, highest, bound):
    x = _grid(lowest, highest, dtype)
    ours = _exp_all(x)
    assert ours.dtype == dtype
    expected = np.exp(x.astype(np.float64))
    relative = np.abs(ours.astype(np.float64) - expected) / expected
    worst = int(np.argmax(relative))
    assert relative[worst] < bound, f"exp({x[worst]!r}) relative error {relative[worst]:.3g}"


@pytest.mark.parametrize(("dtype", "lowest", "bound"), [(np.float32, -87.0, 1.5e-7), (np.float64, -708.0, 1e-15)])
def test_exp_difference_keeps_the_rounding_of_the_difference(dtype, lowest, bound):
    """exp(x - shift) against float64 (or exactly rounded) exp of the exact difference, shifts far from x: where
    x - shift itself rounds by up to 2e-6 relative (float32, difference 40), exp_nonpositive(x - shift) would be
    that far off."""
    rng = np.random.default_rng(1)
    shift = rng.uniform(-30, 60, 500_000).astype(dtype)
    x = (shift - rng.uniform(0, -lowest, shift.size).astype(dtype)).astype(dtype)
    x = np.minimum(x, shift)
    exact_difference = x.astype(np.float64) - shift.astype(np.float64)
    keep = exact_difference > lowest
    if dtype == np.float32:
        expected = np.exp(exact_difference[keep])
    else:
        # float64's difference can round too: the exact one as a long double where that is wider
        expected = np.exp(x[keep].astype(np.longdouble) - shift[keep].astype(np.longdouble)).astype(np.float64)
    ours = _exp_difference_all(x, shift)[keep].astype(np.float64)
    relative = np.abs(ours - expected) / expected
    worst = int(np.argmax(relative))
    assert relative[worst] < bound, f"exp({x[keep][worst]!r} - {shift[keep][worst]!r}): {relative[worst]:.3g}"
    naive = _exp_all((x - shift).astype(dtype))[keep].astype(np.float64)
    if dtype == np.float32:
        assert np.max(np.abs(naive - expected) / expected) > 10 * bound  # what the difference's rounding costs


@pytest.mark.parametrize(("dtype", "lowest"), [(np.float32, -87.0), (np.float64, -708.0)])
def test_exp_below_range_and_special_values(dtype, lowest):
    below = np.array([np.nextafter(dtype(lowest), dtype(-np.inf)), lowest - 1, -1e4, -np.inf], dtype=dtype)
    np.testing.assert_array_equal(_exp_all(below), 0.0)
    assert np.isnan(_exp_all(np.array([np.nan], dtype=dtype))[0])
    assert _exp_all(np.array([0.0], dtype=dtype))[0] == 1.0


def test_log_error_bound():
    rng = np.random.default_rng(1)
    exponents = rng.uniform(np.log10(np.finfo(np.float64).tiny), 308, 1_000_000)
    x = np.concatenate([10.0**exponents, rng.uniform(0.5, 2.0, 1_000_000), [1.0, 2.0, np.sqrt(2.0), 0.5]])
    ours = _log_all(x)
    expected = np.log(x)
    ulp = np.spacing(np.abs(expected))
    error_ulp = np.abs(ours - expected) / ulp
    worst = int(np.argmax(error_ulp))
    assert error_ulp[worst] <= 4, f"log({x[worst]!r}) off by {error_ulp[worst]:.1f} ulp"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_order_key_sorts_like_floats(dtype):
    rng = np.random.default_rng(2)
    info = np.finfo(dtype)
    x = np.concatenate(
        [rng.standard_normal(10_000) * 10.0 ** rng.integers(-30, 30, 10_000), [0.0, -0.0, info.max, -info.max]]
    ).astype(dtype)
    x = np.concatenate([x, np.array([np.inf, -np.inf, info.tiny, -info.tiny], dtype=dtype)])
    keys, back = _keys(x)
    np.testing.assert_array_equal(back.view(f"i{x.itemsize}"), x.view(f"i{x.itemsize}"))  # its own inverse
    order = np.argsort(keys, kind="stable")
    assert np.all(np.diff(x[order].astype(np.float64)) >= 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 2047, 2048, 2049, 10_000])
def test_row_max_sum_exp(dtype, n):
    rng = np.random.default_rng(n)
    row = (rng.standard_normal(n) * 5).astype(dtype)
    row_max, total = njit(lambda r: row_max_sum_exp(r))(row)
    assert row_max == row.max()
    expected = np.exp(row.astype(np.float64) - row.max()).sum()
    assert abs(total - expected) <= (1e-6 if dtype == np.float32 else 1e-13) * expected
