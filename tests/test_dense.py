"""Soft-target cross-entropy and binary cross-entropy with logits against the float64 references and finite
differences, plus their edge cases."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import references as ref
from helpers import SENTINEL, assert_close, make_logits, make_probs, rel_atol

import numba_xent as nx

REDUCTIONS = ["mean", "sum", "none"]


def _rtol(dtype):
    return 1e-12 if dtype == np.float64 else 2e-5


def check_loss(actual, expected, dtype, reduction):
    assert np.ndim(actual) == (0 if reduction != "none" else np.ndim(expected))
    assert np.asarray(actual).dtype == (np.float64 if dtype == np.float64 else np.float32)
    rtol = _rtol(dtype)
    assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol / 10))


def check_grad_fd(actual, expected, dtype):
    assert actual.dtype == dtype
    rtol = 1e-6 if dtype == np.float64 else 2e-5
    assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol))


# ---------------------------------------------------------------------------------------------- dense CE

DENSE_CASES = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"class_weight": True},
    {"sample_weight": True},
    {"sample_weight": True, "reduction": "none"},
    {"label_smoothing": 0.2},
    {"class_weight": True, "sample_weight": True, "label_smoothing": 0.1, "reduction": "sum"},
    {"class_weight": True, "label_smoothing": 0.1, "axis": 1},
]


def dense_case(rng, case, shape, dtype):
    case = dict(case)
    axis = case.get("axis", -1)
    logits = make_logits(rng, shape, dtype)
    targets = make_probs(rng, shape, axis=axis, dtype=dtype)
    rows_shape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    if case.get("class_weight") is True:
        case["class_weight"] = rng.uniform(0.2, 2.0, shape[axis])
    if case.get("sample_weight") is True:
        case["sample_weight"] = rng.uniform(0.0, 2.0, rows_shape)
    return logits, targets, case


def dense_fd(logits, targets, kwargs, grad_output=1.0):
    reduction = kwargs.get("reduction", "mean")
    options = {k: v for k, v in kwargs.items() if k != "reduction"}
    loss_fn = functools.partial(ref.cross_entropy, targets=targets, **options)
    return ref.loss_numeric_grad(loss_fn, logits, reduction, grad_output)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", DENSE_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_dense_loss_and_grad(rng, case, dtype):
    logits, targets, kwargs = dense_case(rng, case, (4, 3, 6), dtype)
    reduction = kwargs.get("reduction", "mean")
    expected = ref.cross_entropy(logits, targets, **kwargs)
    check_loss(nx.cross_entropy(logits, targets, **kwargs), expected, dtype, reduction)
    rows_shape = np.shape(expected) if reduction == "none" else ()
    grad_output = rng.uniform(-2, 2, rows_shape) if reduction == "none" else -1.7
    grad = nx.cross_entropy_grad(logits, targets, grad_output=grad_output, **kwargs)
    assert grad.shape == logits.shape
    check_grad_fd(grad, dense_fd(logits, targets, kwargs, grad_output), dtype)


def test_dense_one_hot_equals_sparse(rng):
    # Independent cross-check: one-hot targets give the integer-label reference.
    logits = make_logits(rng, (10, 5))
    labels = rng.integers(0, 5, 10)
    one_hot = np.eye(5)[labels]
    weights = rng.uniform(0.5, 2, 5)
    expected = ref.sparse_cross_entropy(logits, labels, class_weight=weights, reduction="none")
    actual = nx.cross_entropy(logits, one_hot, class_weight=weights, reduction="none")
    assert_close(actual, expected, rtol=1e-12)


def test_dense_float16(rng):
    logits = make_logits(rng, (6, 5), np.float16)
    targets = make_probs(rng, (6, 5), dtype=np.float16)
    loss = nx.cross_entropy(logits, targets)
    assert loss.dtype == np.float32
    assert_close(loss, ref.cross_entropy(logits, targets), rtol=2e-5)
    grad = nx.cross_entropy_grad(logits, targets)
    assert grad.dtype == np.float16
    expected = dense_fd(logits, targets, {})
    assert_close(grad, expected, rtol=2e-3, atol=rel_atol(expected, 2e-3))


def test_dense_empty():
    logits = np.zeros((0, 4))
    assert nx.cross_entropy(logits, logits) == 0.0
    assert nx.cross_entropy(logits, logits, reduction="sum") == 0.0
    assert nx.cross_entropy(logits, logits, reduction="none").shape == (0,)
    assert nx.cross_entropy_grad(logits, logits).shape == (0, 4)
    assert nx.cross_entropy_grad(logits, logits, reduction="none", grad_output=np.zeros(0)).shape == (0, 4)


def test_dense_nan_poisons_only_its_row(rng):
    logits = make_logits(rng, (5, 4))
    targets = make_probs(rng, (5, 4))
    logits[2, 1] = np.nan
    clean = [0, 1, 3, 4]
    loss = nx.cross_entropy(logits, targets, reduction="none")
    assert np.isnan(loss[2])
    assert_close(loss[clean], ref.cross_entropy(logits[clean], targets[clean], reduction="none"), rtol=1e-12)
    grad = nx.cross_entropy_grad(logits, targets, reduction="none", grad_output=np.ones(5))
    check_grad_fd(grad[clean], dense_fd(logits[clean], targets[clean], {"reduction": "none"}, np.ones(4)), np.float64)


def test_dense_extreme_logits():
    big = 3e38
    logits = np.array([[big, 0.0, -1.0], [big, big, 0.0]], dtype=np.float32)
    targets = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype=np.float32)
    loss = nx.cross_entropy(logits, targets, reduction="none")
    assert_close(loss, [0.0, np.log(2.0)], rtol=1e-6)
    grad = nx.cross_entropy_grad(logits, targets, reduction="none", grad_output=np.ones(2))
    assert np.all(np.isfinite(grad))
    assert_close(grad, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], rtol=0, atol=1e-6)


def test_dense_layouts_readonly_and_out(rng):
    base = make_logits(rng, (6, 10, 5))
    logits = np.asfortranarray(base[:, ::3])
    targets = make_probs(rng, (6, 4, 5))[:, ::-1]
    weights = rng.uniform(0.5, 2, 5)
    before = (logits.copy(), targets.copy())
    for arr in (logits, targets):
        arr.flags.writeable = False
    expected = ref.cross_entropy(logits, targets, class_weight=weights)
    assert_close(nx.cross_entropy(logits, targets, class_weight=weights), expected, rtol=1e-12)
    out = np.full(logits.shape, SENTINEL)
    grad = nx.cross_entropy_grad(logits, targets, class_weight=weights, out=out)
    assert grad is out
    check_grad_fd(out, dense_fd(logits, targets, {"class_weight": weights}), np.float64)
    np.testing.assert_array_equal(logits, before[0])
    np.testing.assert_array_equal(targets, before[1])


# ------------------------------------------------------------------------------------------------ binary

BCE_CASES = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"pos_weight": True},
    {"weight": "full"},
    {"weight": "class", "reduction": "none"},
    {"pos_weight": True, "weight": "full", "reduction": "sum"},
    {"pos_weight": True, "weight": "full", "reduction": "none"},
]


def bce_case(rng, case, shape, dtype):
    case = dict(case)
    logits = make_logits(rng, shape, dtype)
    targets = rng.random(shape).astype(dtype)
    targets[..., 0] = np.round(targets[..., 0])  # some hard 0/1 targets too
    if case.get("pos_weight") is True:
        case["pos_weight"] = rng.uniform(0.2, 3.0, shape[-1])
    if case.get("weight") == "full":
        case["weight"] = rng.uniform(0.0, 2.0, shape)
    elif case.get("weight") == "class":
        case["weight"] = rng.uniform(0.0, 2.0, shape[-1])
    return logits, targets, case


def bce_fd(logits, targets, kwargs, grad_output=1.0):
    reduction = kwargs.get("reduction", "mean")
    options = {k: v for k, v in kwargs.items() if k != "reduction"}
    loss_fn = functools.partial(ref.binary_cross_entropy_with_logits, targets=targets, **options)
    return ref.loss_numeric_grad(loss_fn, logits, reduction, grad_output)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", BCE_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_bce_loss_and_grad(rng, case, dtype):
    logits, targets, kwargs = bce_case(rng, case, (3, 4, 5), dtype)
    reduction = kwargs.get("reduction", "mean")
    expected = ref.binary_cross_entropy_with_logits(logits, targets, **kwargs)
    check_loss(nx.binary_cross_entropy_with_logits(logits, targets, **kwargs), expected, dtype, reduction)
    grad_output = rng.uniform(-2, 2, logits.shape) if reduction == "none" else 2.5
    grad = nx.binary_cross_entropy_with_logits_grad(logits, targets, grad_output=grad_output, **kwargs)
    assert grad.shape == logits.shape
    check_grad_fd(grad, bce_fd(logits, targets, kwargs, grad_output), dtype)


def test_bce_float16_and_empty(rng):
    logits = make_logits(rng, (4, 3), np.float16)
    targets = rng.random((4, 3)).astype(np.float16)
    loss = nx.binary_cross_entropy_with_logits(logits, targets)
    assert loss.dtype == np.float32
    assert_close(loss, ref.binary_cross_entropy_with_logits(logits, targets), rtol=2e-5)
    grad = nx.binary_cross_entropy_with_logits_grad(logits, targets)
    assert grad.dtype == np.float16
    expected = bce_fd(logits, targets, {})
    assert_close(grad, expected, rtol=2e-3, atol=rel_atol(expected, 2e-3))

    empty = np.zeros((0, 3))
    assert nx.binary_cross_entropy_with_logits(empty, empty) == 0.0
    assert nx.binary_cross_entropy_with_logits(empty, empty, reduction="sum") == 0.0
    assert nx.binary_cross_entropy_with_logits(empty, empty, reduction="none").shape == (0, 3)
    assert nx.binary_cross_entropy_with_logits_grad(empty, empty, pos_weight=np.ones(3)).shape == (0, 3)


def test_bce_extreme_logits_and_nan():
    big = 3e38
    logits = np.array([[big, -big, big, -big, np.nan, 0.0]], dtype=np.float32)
    targets = np.array([[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    loss = nx.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    assert_close(loss[0, [0, 1, 2, 3, 5]], [0.0, 0.0, big, big, np.log(2.0)], rtol=1e-6)
    assert np.isnan(loss[0, 4])
    grad = nx.binary_cross_entropy_with_logits_grad(logits, targets, reduction="none", grad_output=np.ones((1, 6)))
    assert_close(grad[0, [0, 1, 2, 3, 5]], [0.0, 0.0, 1.0, -1.0, -0.5], rtol=1e-6, atol=1e-30)
    assert np.isnan(grad[0, 4])


def test_bce_layouts_readonly_and_out(rng):
    logits = make_logits(rng, (5, 8))[:, ::2].T  # (4, 5) non-contiguous
    targets = np.asfortranarray(rng.random((4, 5)))
    pos_weight = rng.uniform(0.5, 2, 5)
    before = (logits.copy(), targets.copy(), pos_weight.copy())
    for arr in (logits, targets, pos_weight):
        arr.flags.writeable = False
    kwargs = {"pos_weight": pos_weight}
    expected = ref.binary_cross_entropy_with_logits(logits, targets, **kwargs)
    assert_close(nx.binary_cross_entropy_with_logits(logits, targets, **kwargs), expected, rtol=1e-12)
    out = np.full((4, 5), SENTINEL)
    assert nx.binary_cross_entropy_with_logits_grad(logits, targets, out=out, **kwargs) is out
    check_grad_fd(out, bce_fd(logits, targets, kwargs), np.float64)
    for arr, orig in zip((logits, targets, pos_weight), before, strict=True):
        np.testing.assert_array_equal(arr, orig)


def test_dense_float64_accuracy_with_a_large_common_offset(rng):
    # Softmax is shift invariant; the float64 answer must stay within 1e-12 of the reference.
    logits = make_logits(rng, (16, 10)) + 1e6
    targets = make_probs(rng, (16, 10))
    expected = ref.cross_entropy(logits, targets, reduction="none")
    assert_close(nx.cross_entropy(logits, targets, reduction="none"), expected, rtol=1e-12)
