"""The sparse losses called from users' own @numba.njit code, against the plain Python calls and the references."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import references as ref
from helpers import assert_close

import numba_xent as nx


@numba.njit
def _train(features, labels, weights, class_weight, steps, learning_rate):
    """A whole training loop of a linear classifier in one jitted function: logits, fused loss+grad, SGD step."""
    losses = np.empty(steps)
    for step in range(steps):
        logits = features @ weights
        loss, grad = nx.sparse_cross_entropy_with_grad(
            logits, labels, class_weight=class_weight, label_smoothing=0.1, ignore_index=-100
        )
        weights -= learning_rate * (features.T @ grad)
        losses[step] = loss
    return losses, weights


def _train_in_python(features, labels, weights, class_weight, steps, learning_rate):
    losses = np.empty(steps)
    for step in range(steps):
        logits = features @ weights
        loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, class_weight=class_weight, label_smoothing=0.1)
        weights -= learning_rate * (features.T @ grad)
        losses[step] = loss
    return losses, weights


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_jitted_training_loop_matches_the_python_one(rng, dtype):
    pytest.importorskip("scipy")  # Numba's @ inside jitted code calls SciPy's BLAS
    features = rng.standard_normal((64, 12)).astype(dtype)
    labels = rng.integers(0, 5, 64)
    labels[:6] = -100
    class_weight = rng.uniform(0.5, 2.0, 5)
    start = (0.1 * rng.standard_normal((12, 5))).astype(dtype)
    jitted_losses, jitted_weights = _train(features, labels, start.copy(), class_weight, 20, 0.5)
    python_losses, python_weights = _train_in_python(features, labels, start.copy(), class_weight, 20, 0.5)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_close(jitted_losses, python_losses, rtol=rtol)
    assert_close(jitted_weights, python_weights, rtol=rtol, atol=rtol)
    assert jitted_losses[-1] < jitted_losses[0]  # it trained


@numba.njit
def _every_call(logits, labels, class_weight, labels_ignoring_2):
    return (
        nx.sparse_cross_entropy(logits, labels),
        nx.sparse_cross_entropy(logits, labels, reduction="sum", class_weight=class_weight),
        nx.sparse_cross_entropy(logits, labels, reduction="none", label_smoothing=0.2),
        nx.sparse_cross_entropy_grad(logits, labels, class_weight=class_weight, label_smoothing=0.3),
        nx.sparse_cross_entropy_grad(logits, labels, reduction="none"),
        nx.sparse_cross_entropy_with_grad(logits, labels_ignoring_2, reduction="sum", ignore_index=2),
    )


@pytest.mark.parametrize(("n_rows", "n_classes"), [(7, 3), (300, 200), (600, 150)])  # short and long rows, serial
def test_every_call_against_the_reference(rng, n_rows, n_classes):
    logits = rng.standard_normal((n_rows, n_classes))
    labels = rng.integers(0, n_classes, n_rows)
    labels[0] = -100
    class_weight = rng.uniform(0.5, 2.0, n_classes)
    labels_ignoring_2 = np.where(labels == -100, 2, labels)
    mean, total, per_row, grad, grad_none, (loss2, grad2) = _every_call(logits, labels, class_weight, labels_ignoring_2)
    assert_close(mean, ref.sparse_cross_entropy(logits, labels), rtol=1e-12)
    assert_close(total, ref.sparse_cross_entropy(logits, labels, reduction="sum", class_weight=class_weight), 1e-12)
    expected = ref.sparse_cross_entropy(logits, labels, reduction="none", label_smoothing=0.2)
    assert_close(per_row, expected, rtol=1e-12)
    np.testing.assert_array_equal(
        grad, nx.sparse_cross_entropy_grad(logits, labels, class_weight=class_weight, label_smoothing=0.3)
    )
    np.testing.assert_array_equal(grad_none, nx.sparse_cross_entropy_grad(logits, labels, reduction="none"))
    python_loss, python_grad = nx.sparse_cross_entropy_with_grad(
        logits, labels_ignoring_2, reduction="sum", ignore_index=2
    )
    assert loss2 == python_loss
    np.testing.assert_array_equal(grad2, python_grad)


def test_large_inputs_use_the_parallel_kernel(rng):
    logits = rng.standard_normal((2000, 100)).astype(np.float32)
    labels = rng.integers(0, 100, 2000)
    mean, *_ = _every_call(logits, labels, np.ones(100), labels)
    assert_close(mean, ref.sparse_cross_entropy(logits, labels), rtol=2e-5)


@pytest.mark.parametrize("bad", [99, -1, 5])
def test_a_bad_label_raises_in_jitted_code(rng, bad):
    logits = rng.standard_normal((10, 5))
    labels = rng.integers(0, 5, 10)
    labels[6] = bad
    with pytest.raises(ValueError, match=rf"label {bad} at row 6 is outside \[0, 5\) and is not ignore_index"):
        _every_call(logits, labels, np.ones(5), labels)


def test_bad_options_in_jitted_code(rng):
    logits = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match="one entry per row"):
        _every_call(logits, np.zeros(5, np.int64), np.ones(3), np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="class_weight must have one entry per class"):
        _every_call(logits, np.zeros(4, np.int64), np.ones(4), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="non-negative"):
        _every_call(logits, np.zeros(4, np.int64), -np.ones(3), np.zeros(4, np.int64))


def test_unsupported_inputs_are_typing_errors(rng):
    @numba.njit
    def on_3d(logits, labels):
        return nx.sparse_cross_entropy(logits, labels)

    with pytest.raises(numba.core.errors.TypingError, match="2-D float32 or float64"):
        on_3d(np.zeros((2, 3, 4)), np.zeros((2, 3), np.int64))

    @numba.njit
    def with_unknown_reduction(logits, labels):
        return nx.sparse_cross_entropy(logits, labels, reduction="average")

    with pytest.raises(numba.core.errors.TypingError, match="reduction must be one of"):
        with_unknown_reduction(np.zeros((2, 3)), np.zeros(2, np.int64))


def test_helpers_called_from_python_raise_instead_of_crashing():
    """Helpers are compiled without a Python wrapper (compile time): a call from Python must be a TypeError, never a
    jump into the missing wrapper. Those that Python calls keep theirs."""
    from numba_xent._kernels import rows

    with pytest.raises(TypeError, match="sum_in_order is called from compiled code only"):
        rows.sum_in_order(np.ones(3))
    assert rows.sum_in_order.py_func(np.ones(3)) == 3.0
    assert rows.first_bad_label(np.array([0, 5, 1]), 3, -100) == 1
