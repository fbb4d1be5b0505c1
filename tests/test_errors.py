"""Bad input: the exception type, what the message says, and that nothing was written to out= (or to the
inputs) before raising."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import SENTINEL

import numba_xent as nx

C = 5


def _logits(shape=(4, C), dtype=np.float64):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def _sparse_calls(logits, labels, kwargs):
    """Every sparse entry point, each with a sentinel-filled out= where it takes one.

    Yields (name, call, buffer-or-None)."""
    yield "loss", lambda: nx.sparse_cross_entropy(logits, labels, **kwargs), None
    out = np.full(logits.shape, SENTINEL, dtype=logits.dtype)
    yield "grad", lambda: nx.sparse_cross_entropy_grad(logits, labels, out=out, **kwargs), out
    out2 = np.full(logits.shape, SENTINEL, dtype=logits.dtype)
    yield "with_grad", lambda: nx.sparse_cross_entropy_with_grad(logits, labels, out=out2, **kwargs), out2


def assert_sparse_raises(logits, labels, exc, patterns, **kwargs):
    logits_before = logits.copy()
    labels_before = np.array(labels, copy=True)
    for name, call, buffer in _sparse_calls(logits, labels, kwargs):
        with pytest.raises(exc) as info:
            call()
        message = str(info.value)
        for pattern in patterns:
            assert re.search(pattern, message), f"{name}: {pattern!r} not in {message!r}"
        if buffer is not None:
            np.testing.assert_array_equal(buffer, SENTINEL, err_msg=f"{name} wrote to out= before raising")
        np.testing.assert_array_equal(logits, logits_before)
        np.testing.assert_array_equal(labels, labels_before)
    # In-place: the logits themselves are the out= buffer and must survive the error.
    buffer = logits.copy()
    with pytest.raises(exc):
        nx.sparse_cross_entropy_with_grad(buffer, labels, out=buffer, **kwargs)
    np.testing.assert_array_equal(buffer, logits_before, err_msg="in-place call modified logits before raising")


# ------------------------------------------------------------------------------------------------ labels


def test_label_too_large_2d():
    logits = _logits((3, 4, C))
    labels = np.zeros((3, 4), dtype=np.int64)
    labels[1, 2] = 7
    labels[2, 3] = 9  # the first bad position is reported
    assert_sparse_raises(logits, labels, ValueError, [r"\b7\b", r"\(1, 2\)"])


def test_label_negative_not_ignore_index():
    logits = _logits((6, C))
    labels = np.array([0, 1, -100, -3, 2, 2])
    assert_sparse_raises(logits, labels, ValueError, [r"-3\b", r"\(3,\)"])


def test_label_equal_to_n_classes():
    logits = _logits((2, 3, C), np.float32)
    labels = np.zeros((2, 3), dtype=np.int8)
    labels[1, 0] = C
    assert_sparse_raises(logits, labels, ValueError, [r"\b5\b", r"\(1, 0\)"])


def test_label_out_of_range_with_custom_ignore_index():
    logits = _logits((4, C))
    labels = np.array([0, -1, -100, 1])  # -100 is not ignored here
    assert_sparse_raises(logits, labels, ValueError, [r"-100", r"\(2,\)"], ignore_index=-1)


def test_label_out_of_range_axis_1():
    logits = _logits((2, C, 3))
    labels = np.zeros((2, 3), dtype=np.uint16)
    labels[0, 2] = 40
    assert_sparse_raises(logits, labels, ValueError, [r"\b40\b", r"\(0, 2\)"], axis=1)


def test_label_out_of_range_in_strided_view():
    logits = _logits((8, C))[::2]
    labels = np.array([0, 0, 1, 1, 2, 2, 99, 99])[::2]  # view: [0, 1, 2, 99]
    assert_sparse_raises(logits, labels, ValueError, [r"\b99\b", r"\(3,\)"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.bool_])
def test_non_integer_labels(dtype):
    logits = _logits()
    labels = np.zeros(4, dtype=dtype)
    assert_sparse_raises(logits, labels, TypeError, ["labels", np.dtype(dtype).name])


def test_labels_wrong_shape():
    logits = _logits((4, C))
    assert_sparse_raises(logits, np.zeros(3, dtype=np.int64), ValueError, ["labels", r"\(3,\)", r"\(4(, 5)?,?\)"])
    logits = _logits((2, 3, C))
    assert_sparse_raises(logits, np.zeros((3, 2), dtype=np.int64), ValueError, ["labels", r"\(3, 2\)", r"\(2, 3"])


# ------------------------------------------------------------------------------------------------ options


def test_class_weight_wrong_length():
    assert_sparse_raises(
        _logits(), np.zeros(4, np.int64), ValueError, ["class_weight", r"\(4,\)", r"\b5\b"], class_weight=np.ones(4)
    )


def test_sample_weight_wrong_shape():
    assert_sparse_raises(
        _logits(), np.zeros(4, np.int64), ValueError, ["sample_weight", r"\(3,\)", r"\(4,\)"], sample_weight=np.ones(3)
    )


@pytest.mark.parametrize("reduction", ["avg", "Mean", ""])
def test_unknown_reduction(reduction):
    assert_sparse_raises(
        _logits(), np.zeros(4, np.int64), ValueError, [re.escape(repr(reduction))], reduction=reduction
    )


@pytest.mark.parametrize("eps", [-0.1, 1.5])
def test_label_smoothing_out_of_range(eps):
    assert_sparse_raises(
        _logits(), np.zeros(4, np.int64), ValueError, ["label_smoothing", re.escape(str(eps))], label_smoothing=eps
    )


def test_negative_class_weight():
    weights = np.array([1.0, 0.5, -2.5, 1.0, -4.0])
    assert_sparse_raises(_logits(), np.zeros(4, np.int64), ValueError, ["class_weight", r"-2\.5"], class_weight=weights)


def test_negative_sample_weight():
    weights = np.array([1.0, -0.25, 1.0, -3.0])
    assert_sparse_raises(
        _logits(), np.zeros(4, np.int64), ValueError, ["sample_weight", r"-0\.25"], sample_weight=weights
    )


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_logits(dtype):
    logits = np.zeros((4, C), dtype=dtype)
    labels = np.zeros(4, np.int64)
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        nx.sparse_cross_entropy(logits, labels)
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        nx.sparse_cross_entropy_grad(logits, labels)
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        nx.cross_entropy(logits, np.zeros((4, C)))
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        nx.binary_cross_entropy_with_logits(logits, np.zeros((4, C)))
    for func in (nx.log_softmax, nx.softmax, nx.logsumexp):
        with pytest.raises(TypeError, match=np.dtype(dtype).name):
            func(logits)


# ------------------------------------------------------------------------------------------------- out=


@pytest.mark.parametrize("shape", [(4, C + 1), (C, 4), (4 * C,)])
def test_out_wrong_shape(shape):
    logits = _logits()
    labels = np.zeros(4, np.int64)
    out = np.full(shape, SENTINEL)
    with pytest.raises(ValueError, match=rf"out.*{re.escape(str(shape))}|{re.escape(str(shape))}.*out") as info:
        nx.sparse_cross_entropy_grad(logits, labels, out=out)
    assert "(4, 5)" in str(info.value)
    np.testing.assert_array_equal(out, SENTINEL)
    with pytest.raises(ValueError, match="out"):
        nx.sparse_cross_entropy_with_grad(logits, labels, out=out)
    np.testing.assert_array_equal(out, SENTINEL)
    with pytest.raises(ValueError, match="out"):
        nx.cross_entropy_grad(logits, np.full((4, C), 0.2), out=out)
    with pytest.raises(ValueError, match="out"):
        nx.binary_cross_entropy_with_logits_grad(logits, np.zeros((4, C)), out=out)
    with pytest.raises(ValueError, match="out"):
        nx.softmax(logits, out=out)
    with pytest.raises(ValueError, match="out"):
        nx.log_softmax(logits, out=out)
    np.testing.assert_array_equal(out, SENTINEL)


@pytest.mark.parametrize("out_dtype", [np.float32, np.int64])
def test_out_wrong_dtype(out_dtype):
    logits = _logits()
    labels = np.zeros(4, np.int64)
    out = np.full((4, C), 7, dtype=out_dtype)
    calls = [
        lambda: nx.sparse_cross_entropy_grad(logits, labels, out=out),
        lambda: nx.sparse_cross_entropy_with_grad(logits, labels, out=out),
        lambda: nx.cross_entropy_grad(logits, np.full((4, C), 0.2), out=out),
        lambda: nx.binary_cross_entropy_with_logits_grad(logits, np.zeros((4, C)), out=out),
        lambda: nx.softmax(logits, out=out),
        lambda: nx.log_softmax(logits, out=out),
    ]
    for call in calls:
        with pytest.raises((TypeError, ValueError), match="out"):
            call()
        np.testing.assert_array_equal(out, 7)


def test_out_read_only():
    logits = _logits()
    out = np.full((4, C), SENTINEL)
    out.flags.writeable = False
    with pytest.raises((TypeError, ValueError), match="out"):
        nx.sparse_cross_entropy_grad(logits, np.zeros(4, np.int64), out=out)


# ------------------------------------------------------------------------------------------ grad_output


def test_grad_output_wrong_shape():
    logits = _logits((2, 3, C))
    labels = np.zeros((2, 3), np.int64)
    out = np.full(logits.shape, SENTINEL)
    with pytest.raises(ValueError, match="grad_output") as info:
        nx.sparse_cross_entropy_grad(logits, labels, reduction="none", grad_output=np.ones((3, 2)), out=out)
    assert "(3, 2)" in str(info.value) and "(2, 3)" in str(info.value)
    np.testing.assert_array_equal(out, SENTINEL)
    with pytest.raises(ValueError, match="grad_output") as info:
        nx.cross_entropy_grad(logits, np.full(logits.shape, 0.2), reduction="none", grad_output=np.ones(3), out=out)
    assert "(3,)" in str(info.value) and "(2, 3)" in str(info.value)
    np.testing.assert_array_equal(out, SENTINEL)
    with pytest.raises(ValueError, match="grad_output") as info:
        nx.binary_cross_entropy_with_logits_grad(
            logits, np.zeros(logits.shape), reduction="none", grad_output=np.ones((2, 3)), out=out
        )
    assert "(2, 3)" in str(info.value) and "(2, 3, 5)" in str(info.value)
    np.testing.assert_array_equal(out, SENTINEL)
    # A non-scalar grad_output for a scalar loss is an error too.
    with pytest.raises(ValueError, match="grad_output"):
        nx.sparse_cross_entropy_grad(logits, labels, reduction="mean", grad_output=np.ones((2, 3)), out=out)
    np.testing.assert_array_equal(out, SENTINEL)


# ----------------------------------------------------------------------------------------- dense / binary


def test_dense_errors():
    logits = _logits()
    targets = np.full((4, C), 0.2)
    out = np.full((4, C), SENTINEL)
    cases = [
        (dict(targets=np.full((4, C + 1), 0.2)), ["targets", r"\(4, 6\)", r"\(4, 5\)"]),
        (dict(class_weight=np.ones(3)), ["class_weight", r"\(3,\)", r"\b5\b"]),
        (dict(sample_weight=np.ones(5)), ["sample_weight", r"\(5,\)", r"\(4,\)"]),
        (dict(reduction="max"), [re.escape("'max'")]),
        (dict(label_smoothing=1.5), ["label_smoothing", r"1\.5"]),
        (dict(class_weight=np.array([1, 1, -0.5, 1, 1.0])), ["class_weight", r"-0\.5"]),
        (dict(sample_weight=np.array([1, 1, 1, -7.0])), ["sample_weight", r"-7"]),
    ]
    for kwargs, patterns in cases:
        kwargs = dict(kwargs)
        t = kwargs.pop("targets", targets)
        for call in (
            lambda t=t, kwargs=kwargs: nx.cross_entropy(logits, t, **kwargs),
            lambda t=t, kwargs=kwargs: nx.cross_entropy_grad(logits, t, out=out, **kwargs),
        ):
            with pytest.raises(ValueError) as info:
                call()
            for pattern in patterns:
                assert re.search(pattern, str(info.value)), (pattern, str(info.value))
            np.testing.assert_array_equal(out, SENTINEL)


def test_binary_errors():
    logits = _logits()
    targets = np.zeros((4, C))
    out = np.full((4, C), SENTINEL)
    cases = [
        (dict(targets=np.zeros((4, 4))), ["targets", r"\(4, 4\)", r"\(4, 5\)"]),
        (dict(pos_weight=np.array([1, 2, -1.5, 1, 1.0])), ["pos_weight", r"-1\.5"]),
        (dict(weight=np.full((4, C), -2.0)), ["weight", r"-2"]),
        (dict(reduction="total"), [re.escape("'total'")]),
    ]
    for kwargs, patterns in cases:
        kwargs = dict(kwargs)
        t = kwargs.pop("targets", targets)
        for call in (
            lambda t=t, kwargs=kwargs: nx.binary_cross_entropy_with_logits(logits, t, **kwargs),
            lambda t=t, kwargs=kwargs: nx.binary_cross_entropy_with_logits_grad(logits, t, out=out, **kwargs),
        ):
            with pytest.raises(ValueError) as info:
                call()
            for pattern in patterns:
                assert re.search(pattern, str(info.value)), (pattern, str(info.value))
            np.testing.assert_array_equal(out, SENTINEL)


def test_options_are_keyword_only():
    logits = _logits()
    labels = np.zeros(4, np.int64)
    with pytest.raises(TypeError):
        nx.sparse_cross_entropy(logits, labels, -1)
    with pytest.raises(TypeError):
        nx.cross_entropy(logits, np.full((4, C), 0.2), -1)


def test_negative_z_loss():
    assert_sparse_raises(_logits(), np.zeros(4, np.int64), ValueError, ["z_loss", r"-0\.5"], z_loss=-0.5)


def test_z_loss_with_probabilities():
    probs = np.full((4, C), 0.2)
    assert_sparse_raises(
        probs, np.zeros(4, np.int64), ValueError, ["z_loss", "from_logits"], z_loss=0.1, from_logits=False
    )
