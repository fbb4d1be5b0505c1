"""Hypothesis properties: invariants that hold whatever the data (shift invariance, zero-sum gradient rows,
weights of one == no weights)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numba_xent as nx

# Deterministic (derandomize) and without an on-disk example database, so runs are reproducible and clean.
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])
FINITE = st.floats(-30.0, 30.0, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def problems(draw, ignore=True):
    n_rows = draw(st.integers(1, 8))
    n_classes = draw(st.integers(1, 9))
    logits = draw(hnp.arrays(np.float64, (n_rows, n_classes), elements=FINITE))
    low = -1 if ignore else 0
    labels = np.array(draw(st.lists(st.integers(low, n_classes - 1), min_size=n_rows, max_size=n_rows)))
    labels[labels == -1] = -100
    return logits, labels


def _close(a, b, rtol=1e-9, atol=1e-9):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol)


@SETTINGS
@given(problems(), st.floats(-50, 50), REDUCTIONS, st.sampled_from([0.0, 0.1, 0.5]), st.booleans())
def test_shift_invariance(problem, shift_scale, reduction, smoothing, per_row):
    logits, labels = problem
    shift = shift_scale * (np.arange(logits.shape[0])[:, None] - 2.0) if per_row else shift_scale
    kwargs = {"reduction": reduction, "label_smoothing": smoothing}
    base = nx.sparse_cross_entropy(logits, labels, **kwargs)
    shifted = nx.sparse_cross_entropy(logits + shift, labels, **kwargs)
    _close(shifted, base, rtol=1e-9, atol=1e-10)
    _close(
        nx.sparse_cross_entropy_grad(logits + shift, labels, **kwargs),
        nx.sparse_cross_entropy_grad(logits, labels, **kwargs),
        rtol=1e-7,
        atol=1e-10,
    )
    _close(nx.log_softmax(logits + shift), nx.log_softmax(logits), rtol=1e-9, atol=1e-9)
    _close(nx.softmax(logits + shift), nx.softmax(logits), rtol=1e-9, atol=1e-12)
    targets = nx.softmax(logits[::-1])
    _close(
        nx.cross_entropy(logits + shift, targets, reduction=reduction),
        nx.cross_entropy(logits, targets, reduction=reduction),
        rtol=1e-9,
        atol=1e-10,
    )


@SETTINGS
@given(problems(), REDUCTIONS)
def test_gradient_rows_sum_to_zero(problem, reduction):
    logits, labels = problem
    grad_output = np.linspace(-1.0, 2.0, labels.size) if reduction == "none" else 1.0
    grad = nx.sparse_cross_entropy_grad(logits, labels, reduction=reduction, grad_output=grad_output)
    scale = max(1.0, float(np.max(np.abs(grad))))
    np.testing.assert_allclose(grad.sum(axis=-1), 0.0, atol=1e-12 * scale * logits.shape[1])
    # Ignored rows have a zero gradient.
    np.testing.assert_array_equal(grad[labels == -100], 0.0)
    # Dense targets that sum to one: zero-sum rows too.
    targets = nx.softmax(logits[::-1])
    dense_grad = nx.cross_entropy_grad(logits, targets, reduction=reduction, grad_output=grad_output)
    np.testing.assert_allclose(dense_grad.sum(axis=-1), 0.0, atol=1e-12 * logits.shape[1])


@SETTINGS
@given(problems(), REDUCTIONS, st.floats(0.0, 1.0), st.sampled_from([0.0, 0.01]))
def test_unit_weights_equal_no_weights(problem, reduction, smoothing, z_loss):
    logits, labels = problem
    kwargs = {"reduction": reduction, "label_smoothing": smoothing, "z_loss": z_loss}
    ones_c = np.ones(logits.shape[1])
    ones_s = np.ones(labels.shape)
    expected = nx.sparse_cross_entropy(logits, labels, **kwargs)
    expected_grad = nx.sparse_cross_entropy_grad(logits, labels, **kwargs)
    for weights in (
        {"class_weight": ones_c},
        {"sample_weight": ones_s},
        {"class_weight": ones_c, "sample_weight": ones_s},
    ):
        _close(nx.sparse_cross_entropy(logits, labels, **weights, **kwargs), expected, rtol=1e-13, atol=1e-14)
        _close(nx.sparse_cross_entropy_grad(logits, labels, **weights, **kwargs), expected_grad, rtol=1e-13, atol=1e-15)
    targets = nx.softmax(logits[::-1])
    _close(
        nx.cross_entropy(logits, targets, class_weight=ones_c, sample_weight=ones_s, reduction=reduction),
        nx.cross_entropy(logits, targets, reduction=reduction),
        rtol=1e-13,
        atol=1e-14,
    )
    bce_targets = nx.softmax(logits)
    _close(
        nx.binary_cross_entropy_with_logits(
            logits, bce_targets, pos_weight=ones_c, weight=np.ones(logits.shape), reduction=reduction
        ),
        nx.binary_cross_entropy_with_logits(logits, bce_targets, reduction=reduction),
        rtol=1e-13,
        atol=1e-14,
    )


@SETTINGS
@given(problems(ignore=False), st.floats(0.01, 100.0))
def test_scaling_all_sample_weights_keeps_the_mean(problem, factor):
    logits, labels = problem
    weights = np.linspace(0.5, 1.5, labels.size)
    a = nx.sparse_cross_entropy(logits, labels, sample_weight=weights)
    b = nx.sparse_cross_entropy(logits, labels, sample_weight=weights * factor)
    _close(a, b, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(problems(ignore=False))
def test_loss_is_nonnegative_and_softmax_normalised(problem):
    logits, labels = problem
    assert np.all(nx.sparse_cross_entropy(logits, labels, reduction="none") >= 0.0)
    probs = nx.softmax(logits)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-13)
    _close(nx.logsumexp(logits), np.log(np.sum(np.exp(logits), axis=-1)), rtol=1e-12, atol=1e-12)
