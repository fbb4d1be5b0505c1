"""The soft-capping primitives (numba_xent._softcap) against NumPy's tanh and finite differences; their bits do
not depend on the Numba thread count."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from helpers import assert_close

from numba_xent._softcap import apply_softcap, chain_softcap, check_softcap

SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 1e-8, -3e-4, 0.1, -0.7, 1.0, 5.0, -29.0, 80.0, -500.0, 1e30, np.inf, -np.inf]


def _logits(rng, dtype, scale=20.0):
    values = np.concatenate([scale * rng.standard_normal(300 * 37 - len(SPECIAL)), SPECIAL])
    return values.reshape(300, 37).astype(dtype)


@pytest.mark.parametrize("softcap", [0.5, 30.0, 1e4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_softcap_matches_numpy_tanh(rng, dtype, softcap):
    logits = _logits(rng, dtype)
    expected = softcap * np.tanh(logits.astype(np.float64) / softcap)
    capped = logits.copy()
    apply_softcap(capped, softcap)
    assert capped.dtype == dtype
    # Computed in float64 with an absolute error of a few 1e-14 * softcap, then rounded to the buffer's dtype.
    rtol = np.finfo(dtype).eps if dtype == np.float32 else 0.0
    assert_close(capped, expected, rtol=rtol, atol=1e-13 * softcap)
    assert np.all(np.abs(capped) <= softcap)
    assert np.array_equal(np.signbit(capped), np.signbit(logits))  # odd, -0.0 included


def test_apply_softcap_nan_stays_nan():
    logits = np.array([[np.nan, 1.0]], np.float32)
    apply_softcap(logits, 3.0)
    assert np.isnan(logits[0, 0]) and logits[0, 1] == np.float32(3.0 * np.tanh(1.0 / 3.0))


@pytest.mark.parametrize("softcap", [0.5, 30.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chain_softcap_matches_finite_differences(rng, dtype, softcap):
    logits = (3.0 * softcap * rng.standard_normal((40, 23))).astype(np.float64)
    upstream = rng.standard_normal((40, 23))
    step = 1e-6 * softcap
    numeric = upstream * (softcap * np.tanh((logits + step) / softcap) - softcap * np.tanh((logits - step) / softcap))
    numeric /= 2 * step
    capped = logits.astype(dtype)
    apply_softcap(capped, softcap)
    grad = upstream.astype(dtype)
    chain_softcap(grad, capped, softcap)
    # float32: 1 - t**2 from a float32 t has an absolute error of about 2 * eps32 (as PyTorch's tanh backward).
    atol = 4 * np.finfo(dtype).eps * np.abs(upstream).max() if dtype == np.float32 else 1e-8
    assert_close(grad, numeric, rtol=1e-6, atol=atol)


def test_chain_softcap_keeps_zero_gradients_zero():
    capped = np.array([[np.nan, 1.0, np.nan]], np.float32)
    grad = np.array([[0.0, 0.0, 2.0]], np.float32)
    chain_softcap(grad, capped, 3.0)
    assert grad[0, 0] == 0.0 and grad[0, 1] == 0.0 and np.isnan(grad[0, 2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bits_do_not_depend_on_thread_count(rng, dtype):
    logits = _logits(rng, dtype)
    upstream = rng.standard_normal(logits.shape).astype(dtype)
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            capped = logits.copy()
            apply_softcap(capped, 7.0)
            grad = upstream.copy()
            chain_softcap(grad, capped, 7.0)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        results.append((capped, grad))
    for first, second in zip(*results, strict=True):
        assert np.array_equal(first.view(np.uint8), second.view(np.uint8))


def test_bad_buffers():
    good = np.zeros((2, 3))
    with pytest.raises(TypeError, match="logits must be a float32 or float64 NumPy array"):
        apply_softcap(np.zeros((2, 3), np.int64), 1.0)
    with pytest.raises(ValueError, match="writeable C-contiguous 2-D"):
        apply_softcap(np.zeros((3, 2)).T, 1.0)
    with pytest.raises(ValueError, match="writeable C-contiguous 2-D"):
        apply_softcap(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="different buffers"):
        chain_softcap(good, good, 1.0)
    with pytest.raises(ValueError, match="must match grad"):
        chain_softcap(good, np.zeros((2, 3), np.float32), 1.0)


@pytest.mark.parametrize("value", [0, -1.0, np.inf, np.nan])
def test_check_softcap_rejects(value):
    with pytest.raises(ValueError, match="softcap must be None or a finite number > 0"):
        check_softcap(value)


def test_check_softcap_accepts():
    assert check_softcap(None) is None and check_softcap(30) == 30.0 and check_softcap(np.float32(2.5)) == 2.5
    with pytest.raises(TypeError):
        check_softcap(True)
