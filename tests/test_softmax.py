"""log_softmax, softmax and logsumexp against the float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import references as ref
from helpers import SENTINEL, assert_close, make_logits, rel_atol

import numba_xent as nx

FUNCS = {
    "log_softmax": (nx.log_softmax, ref.log_softmax),
    "softmax": (nx.softmax, ref.softmax),
    "logsumexp": (nx.logsumexp, ref.logsumexp),
}


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("shape", "axis"), [((7,), -1), ((5, 9), -1), ((5, 9), 0), ((3, 4, 6), 1), ((3, 4, 6), -1)])
def test_matches_reference(rng, name, dtype, shape, axis):
    func, reference = FUNCS[name]
    x = make_logits(rng, shape, dtype, scale=5.0)
    expected = reference(x, axis=axis)
    actual = func(x, axis=axis)
    assert np.asarray(actual).dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol / 10))


# float16 input is computed in float32; softmax and log_softmax return the input's dtype (rounded once to float16:
# relative error <= 2**-11), logsumexp returns float32 (as the losses do).
FLOAT16_RESULTS = {"log_softmax": (np.float16, 1e-3), "softmax": (np.float16, 1e-3), "logsumexp": (np.float32, 2e-5)}


@pytest.mark.parametrize("name", FUNCS)
def test_float16(rng, name):
    func, reference = FUNCS[name]
    x = make_logits(rng, (4, 6), np.float16)
    actual = func(x)
    dtype, tol = FLOAT16_RESULTS[name]
    assert np.asarray(actual).dtype == dtype
    expected = reference(x)
    assert_close(actual, expected, rtol=tol, atol=rel_atol(expected, tol))


@pytest.mark.parametrize("name", ["log_softmax", "softmax"])
def test_out_buffer(rng, name):
    func, reference = FUNCS[name]
    x = make_logits(rng, (4, 5, 3), np.float32)
    out = np.full(x.shape, SENTINEL, dtype=np.float32)
    assert func(x, axis=1, out=out) is out
    assert_close(out, reference(x, axis=1), rtol=2e-5, atol=1e-7)
    # Non-contiguous out view.
    big = np.full((4, 5, 6), SENTINEL, dtype=np.float32)
    view = big[:, :, ::2]
    assert func(x, axis=1, out=view) is view
    assert_close(view, reference(x, axis=1), rtol=2e-5, atol=1e-7)
    np.testing.assert_array_equal(big[:, :, 1::2], SENTINEL)


def test_softmax_in_place(rng):
    x = make_logits(rng, (6, 7))
    expected = ref.softmax(x)
    buffer = x.copy()
    assert nx.softmax(buffer, out=buffer) is buffer
    assert_close(buffer, expected, rtol=1e-12, atol=1e-300)
    buffer = x.copy()
    assert nx.log_softmax(buffer, out=buffer) is buffer
    assert_close(buffer, ref.log_softmax(x), rtol=1e-12)


@pytest.mark.parametrize("name", FUNCS)
def test_empty(name):
    func, _ = FUNCS[name]
    x = np.zeros((0, 5))
    expected_shape = (0,) if name == "logsumexp" else (0, 5)
    assert np.shape(func(x)) == expected_shape
    assert np.shape(func(np.zeros((2, 0, 5), np.float32))) == ((2, 0) if name == "logsumexp" else (2, 0, 5))


@pytest.mark.parametrize("name", FUNCS)
def test_nan_poisons_only_its_row(rng, name):
    func, reference = FUNCS[name]
    x = make_logits(rng, (5, 6))
    x[1, 2] = np.nan
    x[3, 4] = -np.inf  # fine: a zero probability
    clean = [0, 2, 3, 4]
    actual = func(x)
    with np.errstate(invalid="ignore"):
        expected = reference(x)
    assert np.all(np.isnan(actual[1]))
    assert_close(actual[clean], expected[clean], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_values(dtype):
    big = np.float32(3e38)
    x = np.array([[big, -big, 0.0], [big, big, 0.0], [-big, -big, -big]], dtype=dtype)
    lse = nx.logsumexp(x)
    assert np.all(np.isfinite(lse))
    assert_close(lse, [3e38, 3e38 + np.log(2.0), -3e38 + np.log(3.0)], rtol=1e-6)
    sm = nx.softmax(x)
    assert np.all(np.isfinite(sm))
    assert_close(sm, [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6, atol=1e-30)
    ls = nx.log_softmax(x)
    assert ls[0, 0] == 0.0
    assert_close(ls[0, 2], -3e38, rtol=1e-6)
    assert_close(ls[1], [-np.log(2.0), -np.log(2.0), -3e38], rtol=1e-6)
    assert_close(ls[2], np.full(3, -np.log(3.0)), rtol=1e-6)


def test_layouts_and_readonly(rng):
    base = make_logits(rng, (6, 8, 5))
    for x in (base[::2, ::-1], np.asfortranarray(base), base.transpose(2, 0, 1)):
        x = x.view()
        before = x.copy()
        x.flags.writeable = False
        for name, (func, reference) in FUNCS.items():
            assert_close(func(x, axis=1), reference(x, axis=1), rtol=1e-12, atol=1e-300, err_msg=name)
        np.testing.assert_array_equal(x, before)
