"""Integer-label cross-entropy: losses against the float64 reference, gradients against finite differences,
and the edge cases of the contract (empty batches, NaN/inf, extreme logits, layouts, out= buffers)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import references as ref
from helpers import (
    SENTINEL,
    SPARSE_CASES,
    assert_close,
    case_id,
    make_labels,
    make_logits,
    rel_atol,
    sparse_case,
)

import numba_xent as nx

LABEL_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def check_loss(actual, expected, dtype, reduction):
    if reduction == "none":
        assert isinstance(actual, np.ndarray)
    else:
        assert np.ndim(actual) == 0
    expected_dtype = np.float64 if dtype == np.float64 else np.float32
    assert np.asarray(actual).dtype == expected_dtype
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol / 10) + 1e-300)


def fd_grad(logits, labels, kwargs, grad_output=1.0):
    reduction = kwargs.get("reduction", "mean")
    options = {k: v for k, v in kwargs.items() if k != "reduction"}
    loss_fn = functools.partial(ref.sparse_cross_entropy, labels=labels, **options)
    return ref.loss_numeric_grad(loss_fn, logits, reduction, grad_output)


def check_grad_fd(actual, expected, dtype):
    assert actual.dtype == dtype
    rtol = 1e-6 if dtype == np.float64 else 2e-5
    assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol))


# ------------------------------------------------------------------------------------------------ losses


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", SPARSE_CASES, ids=case_id)
def test_loss_matches_reference(rng, case, dtype):
    logits, labels, kwargs = sparse_case(rng, case, (6, 4, 7), dtype=dtype)
    expected = ref.sparse_cross_entropy(logits, labels, **kwargs)
    actual = nx.sparse_cross_entropy(logits, labels, **kwargs)
    check_loss(actual, expected, dtype, kwargs.get("reduction", "mean"))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_class_axis_1_like_torch_layout(rng, reduction):
    # (N, C, d): torch's layout for N-D inputs.
    logits = make_logits(rng, (5, 6, 3))
    labels = make_labels(rng, (5, 3), 6, ignore_frac=0.2)
    weights = rng.uniform(0.5, 1.5, 6)
    kwargs = dict(axis=1, class_weight=weights, label_smoothing=0.1, reduction=reduction)
    expected = ref.sparse_cross_entropy(logits, labels, **kwargs)
    check_loss(nx.sparse_cross_entropy(logits, labels, **kwargs), expected, np.float64, reduction)
    # Same thing with the axis moved last by hand.
    moved = np.moveaxis(logits, 1, -1)
    kwargs["axis"] = -1
    check_loss(nx.sparse_cross_entropy(moved, labels, **kwargs), expected, np.float64, reduction)


def test_one_dimensional_logits(rng):
    logits = make_logits(rng, (9,))
    labels = np.array(4)
    for reduction in ["mean", "sum", "none"]:
        expected = ref.sparse_cross_entropy(logits, labels, reduction=reduction)
        actual = nx.sparse_cross_entropy(logits, labels, reduction=reduction)
        assert_close(actual, expected, rtol=1e-12)


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_every_integer_label_dtype(rng, label_dtype):
    logits = make_logits(rng, (10, 5))
    labels = make_labels(rng, (10,), 5, dtype=label_dtype)
    expected = ref.sparse_cross_entropy(logits, labels, reduction="none")
    assert_close(nx.sparse_cross_entropy(logits, labels, reduction="none"), expected, rtol=1e-12)
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, reduction="sum")
    assert_close(loss, expected.sum(), rtol=1e-12)
    check_grad_fd(grad, fd_grad(logits, labels, {"reduction": "sum"}), np.float64)


def test_strided_intp_labels_of_the_fast_path(rng):
    """A training loop's layout (2-D contiguous logits, 1-D intp labels) is taken without copies; labels that are a
    strided view are copied, not read with the wrong stride, and neither input is written."""
    logits = make_logits(rng, (12, 7))
    every_other = make_labels(rng, (24,), 7, dtype=np.intp)
    every_other[1::2] = -1  # out of range: read through a wrong stride, these would raise
    labels = every_other[::2]
    before = (logits.copy(), every_other.copy())
    expected = ref.sparse_cross_entropy(logits, labels.copy(), reduction="none")
    assert_close(nx.sparse_cross_entropy(logits, labels, reduction="none"), expected, rtol=1e-12)
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels)
    assert_close(loss, expected.mean(), rtol=1e-12)
    check_grad_fd(grad, fd_grad(logits, labels.copy(), {}), np.float64)
    np.testing.assert_array_equal(logits, before[0])
    np.testing.assert_array_equal(every_other, before[1])


def test_kernel_launch_names_every_argument():
    """Kernels are launched by keyword through a generated binder: a missing or unknown name is a TypeError."""
    from numba_xent._kernels.sparse import sparse_rows

    kernel = sparse_rows(True, True)
    with pytest.raises(TypeError, match="labels"):
        kernel.launch(10, logits=np.zeros((1, 10)))
    with pytest.raises(TypeError, match="label_weight"):
        kernel.launch(10, label_weight=1.0)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8])
def test_custom_ignore_index_small_dtypes(rng, label_dtype):
    logits = make_logits(rng, (8, 4))
    labels = np.array([0, 3, 9, 1, 9, 2, 9, 0], dtype=label_dtype)
    expected = ref.sparse_cross_entropy(logits, labels, ignore_index=9)
    assert_close(nx.sparse_cross_entropy(logits, labels, ignore_index=9), expected, rtol=1e-12)


def test_float16_is_computed_in_float32(rng):
    logits = make_logits(rng, (12, 6), np.float16)
    labels = make_labels(rng, (12,), 6, ignore_frac=0.2)
    for reduction in ["mean", "sum", "none"]:
        actual = nx.sparse_cross_entropy(logits, labels, reduction=reduction, label_smoothing=0.1)
        assert np.asarray(actual).dtype == np.float32
        expected = ref.sparse_cross_entropy(logits, labels, reduction=reduction, label_smoothing=0.1)
        assert_close(actual, expected, rtol=2e-5, atol=rel_atol(expected, 2e-6))
    grad = nx.sparse_cross_entropy_grad(logits, labels, label_smoothing=0.1)
    assert grad.dtype == np.float16
    expected_grad = fd_grad(logits, labels, {"label_smoothing": 0.1})
    assert_close(grad, expected_grad, rtol=2e-3, atol=rel_atol(expected_grad, 2e-3))
    loss, grad2 = nx.sparse_cross_entropy_with_grad(logits, labels, label_smoothing=0.1)
    assert loss.dtype == np.float32 and grad2.dtype == np.float16
    np.testing.assert_array_equal(grad2, grad)


def test_all_rows_ignored(rng):
    logits = make_logits(rng, (4, 3, 5))
    labels = np.full((4, 3), -100)
    assert nx.sparse_cross_entropy(logits, labels) == 0.0
    assert nx.sparse_cross_entropy(logits, labels, reduction="sum") == 0.0
    np.testing.assert_array_equal(nx.sparse_cross_entropy(logits, labels, reduction="none"), np.zeros((4, 3)))
    for kwargs in [{}, {"label_smoothing": 0.2, "z_loss": 0.1, "class_weight": np.ones(5)}]:
        grad = nx.sparse_cross_entropy_grad(logits, labels, **kwargs)
        np.testing.assert_array_equal(grad, np.zeros_like(logits))
        assert np.all(np.isfinite(grad))
        loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, **kwargs)
        assert loss == 0.0
        np.testing.assert_array_equal(grad, np.zeros_like(logits))


def test_float32_mean_over_a_million_rows(rng):
    logits = make_logits(rng, (1_000_000, 8), np.float32)
    labels = make_labels(rng, (1_000_000,), 8)
    expected = ref.sparse_cross_entropy(logits, labels)
    actual = nx.sparse_cross_entropy(logits, labels)
    assert actual.dtype == np.float32
    assert abs(float(actual) - expected) <= 1e-6 * abs(expected)
    total = nx.sparse_cross_entropy(logits, labels, reduction="sum")
    assert abs(float(total) - expected * 1_000_000) <= 1e-6 * abs(expected * 1_000_000)


# --------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", SPARSE_CASES, ids=case_id)
def test_grad_matches_finite_differences(rng, case, dtype):
    logits, labels, kwargs = sparse_case(rng, case, (5, 6), dtype=dtype)
    reduction = kwargs.get("reduction", "mean")
    grad_output = rng.uniform(-2, 2, labels.shape) if reduction == "none" else 0.7
    expected = fd_grad(logits, labels, kwargs, grad_output)
    actual = nx.sparse_cross_entropy_grad(logits, labels, grad_output=grad_output, **kwargs)
    assert actual.shape == logits.shape
    check_grad_fd(actual, expected, dtype)


@pytest.mark.parametrize("case", SPARSE_CASES, ids=case_id)
def test_with_grad_matches_references(rng, case):
    logits, labels, kwargs = sparse_case(rng, case, (3, 4, 5))
    expected_loss = ref.sparse_cross_entropy(logits, labels, **kwargs)
    reduction = kwargs.get("reduction", "mean")
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, **kwargs)
    check_loss(loss, expected_loss, np.float64, reduction)
    # with_grad has no grad_output: the gradient is that of sum(loss) for "none".
    check_grad_fd(grad, fd_grad(logits, labels, kwargs, 1.0), np.float64)


def test_grad_output_array_for_none_nd(rng):
    logits = make_logits(rng, (2, 3, 4))
    labels = make_labels(rng, (2, 3), 4, ignore_frac=0.3)
    grad_output = rng.standard_normal((2, 3))
    kwargs = {"reduction": "none", "z_loss": 0.1, "label_smoothing": 0.05}
    expected = fd_grad(logits, labels, kwargs, grad_output)
    check_grad_fd(nx.sparse_cross_entropy_grad(logits, labels, grad_output=grad_output, **kwargs), expected, np.float64)


def test_grad_axis_1(rng):
    logits = make_logits(rng, (3, 5, 2))
    labels = make_labels(rng, (3, 2), 5, ignore_frac=0.2)
    kwargs = {"axis": 1, "class_weight": rng.uniform(0.5, 2, 5), "label_smoothing": 0.1}
    expected = fd_grad(logits, labels, kwargs, 1.3)
    actual = nx.sparse_cross_entropy_grad(logits, labels, grad_output=1.3, **kwargs)
    check_grad_fd(actual, expected, np.float64)
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, **kwargs)
    check_grad_fd(grad, expected / 1.3, np.float64)
    assert_close(loss, ref.sparse_cross_entropy(logits, labels, **kwargs), rtol=1e-12)


# -------------------------------------------------------------------------------------------- edge cases


def test_empty_batch():
    logits = np.zeros((0, 5))
    labels = np.zeros((0,), dtype=np.int64)
    assert nx.sparse_cross_entropy(logits, labels) == 0.0
    assert nx.sparse_cross_entropy(logits, labels, reduction="sum") == 0.0
    none = nx.sparse_cross_entropy(logits, labels, reduction="none")
    assert none.shape == (0,)
    assert nx.sparse_cross_entropy_grad(logits, labels).shape == (0, 5)
    assert nx.sparse_cross_entropy_grad(logits, labels, reduction="none", grad_output=np.zeros(0)).shape == (0, 5)
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels)
    assert loss == 0.0 and grad.shape == (0, 5)
    # N-D empty and empty with every option.
    logits = np.zeros((2, 0, 5), dtype=np.float32)
    labels = np.zeros((2, 0), dtype=np.int32)
    kwargs = {"label_smoothing": 0.1, "z_loss": 0.1, "class_weight": np.ones(5), "sample_weight": np.ones((2, 0))}
    assert nx.sparse_cross_entropy(logits, labels, **kwargs) == 0.0
    assert nx.sparse_cross_entropy(logits, labels, reduction="none", **kwargs).shape == (2, 0)
    assert nx.sparse_cross_entropy_grad(logits, labels, **kwargs).shape == (2, 0, 5)


def _poisoned_logits(rng):
    logits = make_logits(rng, (7, 5))
    labels = np.array([0, 1, 2, 3, 4, 0, 1])
    logits[1, 3] = np.nan
    logits[3, 0] = np.inf
    logits[5, 2] = -np.inf  # -inf away from the label: a finite, exact answer
    return logits, labels


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_and_inf_poison_only_their_row(rng, dtype):
    logits, labels = _poisoned_logits(rng)
    logits = logits.astype(dtype)
    clean = [0, 2, 4, 5, 6]
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    with np.errstate(invalid="ignore"):
        expected = ref.sparse_cross_entropy(logits, labels, reduction="none")
    actual = nx.sparse_cross_entropy(logits, labels, reduction="none")
    assert_close(actual[clean], expected[clean], rtol=rtol)
    assert np.isnan(actual[1])
    assert not np.isfinite(actual[3])
    assert np.isnan(nx.sparse_cross_entropy(logits, labels))

    grad = nx.sparse_cross_entropy_grad(logits, labels, reduction="none", grad_output=np.ones(7))
    expected_grad = fd_grad(logits[clean], labels[clean], {"reduction": "none"}, np.ones(len(clean)))
    check_grad_fd(grad[clean], expected_grad, dtype)
    assert grad[5, 2] == 0.0
    assert np.all(np.isnan(grad[1]))
    loss, grad2 = nx.sparse_cross_entropy_with_grad(logits, labels, reduction="none")
    assert_close(loss[clean], expected[clean], rtol=rtol)
    check_grad_fd(grad2[clean], expected_grad, dtype)


def test_nan_in_ignored_row_does_not_leak(rng):
    logits = make_logits(rng, (4, 3))
    logits[2] = np.nan
    labels = np.array([0, 1, -100, 2])
    expected = ref.sparse_cross_entropy(logits[[0, 1, 3]], labels[[0, 1, 3]])
    assert_close(nx.sparse_cross_entropy(logits, labels), expected, rtol=1e-12)
    grad = nx.sparse_cross_entropy_grad(logits, labels)
    expected_grad = fd_grad(logits[[0, 1, 3]], labels[[0, 1, 3]], {})
    check_grad_fd(grad[[0, 1, 3]], expected_grad, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_are_finite(dtype):
    big = np.float32(3e38)
    logits = np.array([[big, -big, 0.0], [-big, big, 0.0], [0.0, -big, big], [big, big, 0.0]], dtype=dtype)
    labels = np.array([0, 0, 1, 1])
    # Exact answers; rows 1 and 2 overflow float32 (see test_float32_loss_overflow_is_inf_without_warning).
    expected = np.array([0.0, 6e38, 6e38, np.log(2.0)])
    representable = [0, 1, 2, 3] if dtype == np.float64 else [0, 3]
    loss = nx.sparse_cross_entropy(logits[representable], labels[representable], reduction="none")
    assert np.all(np.isfinite(loss))
    assert loss[0] == 0.0
    assert_close(loss, expected[representable], rtol=1e-6)
    grad = nx.sparse_cross_entropy_grad(logits, labels, reduction="none", grad_output=np.ones(4))
    assert np.all(np.isfinite(grad))
    assert_close(grad[0], [0.0, 0.0, 0.0], rtol=0, atol=1e-30)
    assert_close(grad[1], [-1.0, 1.0, 0.0], rtol=0, atol=1e-30)
    assert_close(grad[3], [0.5, -0.5, 0.0], rtol=1e-6)
    # The mean over the representable row alone, and its gradient.
    assert nx.sparse_cross_entropy(logits[:1], labels[:1]) == 0.0
    loss0, grad0 = nx.sparse_cross_entropy_with_grad(logits[:1], labels[:1])
    assert loss0 == 0.0 and np.all(np.isfinite(grad0))
    # Extreme logits with smoothing away from the label still give a finite gradient.
    grad_s = nx.sparse_cross_entropy_grad(logits[:1], labels[:1], label_smoothing=0.1)
    assert np.all(np.isfinite(grad_s))
    assert_close(grad_s[0], [0.1 - 0.1 / 3, -0.1 / 3, -0.1 / 3], rtol=1e-6)


def test_float32_loss_overflow_is_inf_without_warning():
    # The true loss 6e38 is not representable in float32: +inf is the right answer, and it is not an error
    # for the caller, so no RuntimeWarning (pytest runs with filterwarnings=error).
    big = np.float32(3e38)
    logits = np.array([[-big, big, 0.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    labels = np.array([0, 2])
    loss = nx.sparse_cross_entropy(logits, labels, reduction="none")
    assert loss.dtype == np.float32
    assert loss[0] == np.inf
    assert_close(loss[1], ref.sparse_cross_entropy(logits[1:], labels[1:]), rtol=2e-5)
    assert nx.sparse_cross_entropy(logits, labels, reduction="sum") == np.inf


def test_layouts_and_readonly_inputs_are_not_modified(rng):
    base = make_logits(rng, (8, 12, 9))
    labels_base = make_labels(rng, (12, 8), 9, ignore_frac=0.2)
    variants = {
        "strided": (base[::2, ::3, :], labels_base[::3, ::2].T),
        "fortran": (np.asfortranarray(base[:, :4]), np.asfortranarray(labels_base[:4].T)),
        "negative_strides": (base[::-1, :, ::-1][:, :3], labels_base[:3, ::-1].T),
    }
    weights = rng.uniform(0.5, 2.0, 9)
    for name, (logits, labels) in variants.items():
        readonly_logits = logits.view()
        readonly_logits.flags.writeable = False
        readonly_labels = labels.view()
        readonly_labels.flags.writeable = False
        readonly_weights = weights.copy()
        readonly_weights.flags.writeable = False
        before = (logits.copy(), labels.copy(), weights.copy())
        kwargs = {"class_weight": readonly_weights, "label_smoothing": 0.1, "z_loss": 0.01}
        for reduction in ["mean", "none"]:
            expected = ref.sparse_cross_entropy(logits, labels, reduction=reduction, **kwargs)
            actual = nx.sparse_cross_entropy(readonly_logits, readonly_labels, reduction=reduction, **kwargs)
            assert_close(actual, expected, rtol=1e-12, err_msg=name)
        grad = nx.sparse_cross_entropy_grad(readonly_logits, readonly_labels, **kwargs)
        expected_grad = fd_grad(np.ascontiguousarray(logits), np.ascontiguousarray(labels), kwargs)
        check_grad_fd(grad, expected_grad, np.float64)
        loss, grad2 = nx.sparse_cross_entropy_with_grad(readonly_logits, readonly_labels, **kwargs)
        assert_close(loss, ref.sparse_cross_entropy(logits, labels, **kwargs), rtol=1e-12)
        np.testing.assert_allclose(grad2, grad, rtol=1e-14, atol=1e-300)
        for arr, orig in zip((logits, labels, weights), before, strict=True):
            np.testing.assert_array_equal(arr, orig)
        assert grad.flags.writeable and grad.shape == logits.shape


def test_out_buffers_are_filled_and_returned(rng):
    logits = make_logits(rng, (6, 5), np.float32)
    labels = make_labels(rng, (6,), 5, ignore_frac=0.2)
    expected = nx.sparse_cross_entropy_grad(logits, labels, label_smoothing=0.1)
    out = np.full_like(logits, SENTINEL)
    result = nx.sparse_cross_entropy_grad(logits, labels, label_smoothing=0.1, out=out)
    assert result is out
    np.testing.assert_array_equal(out, expected)
    check_grad_fd(out, fd_grad(logits, labels, {"label_smoothing": 0.1}), np.float32)

    out2 = np.full_like(logits, SENTINEL)
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, label_smoothing=0.1, out=out2)
    assert grad is out2
    np.testing.assert_array_equal(out2, expected)
    assert_close(loss, ref.sparse_cross_entropy(logits, labels, label_smoothing=0.1), rtol=2e-5)

    # A non-contiguous out= view is filled too.
    big = np.full((6, 10), SENTINEL, dtype=np.float32)
    view = big[:, ::2]
    assert nx.sparse_cross_entropy_grad(logits, labels, label_smoothing=0.1, out=view) is view
    np.testing.assert_array_equal(view, expected)
    np.testing.assert_array_equal(big[:, 1::2], SENTINEL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_with_grad_in_place(rng, dtype, reduction):
    logits = make_logits(rng, (4, 6, 7), dtype)
    labels = make_labels(rng, (4, 6), 7, ignore_frac=0.2)
    kwargs = {"label_smoothing": 0.1, "z_loss": 0.01, "reduction": reduction}
    expected_loss, expected_grad = nx.sparse_cross_entropy_with_grad(logits, labels, **kwargs)
    buffer = logits.copy()
    loss, grad = nx.sparse_cross_entropy_with_grad(buffer, labels, out=buffer, **kwargs)
    assert grad is buffer
    np.testing.assert_array_equal(loss, expected_loss)
    np.testing.assert_array_equal(buffer, expected_grad)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    assert_close(
        loss, ref.sparse_cross_entropy(logits, labels, **kwargs), rtol=rtol, atol=rel_atol(expected_loss, rtol)
    )
    check_grad_fd(buffer, fd_grad(logits, labels, kwargs), dtype)


def test_in_place_axis_1(rng):
    logits = make_logits(rng, (3, 5, 4))
    labels = make_labels(rng, (3, 4), 5)
    expected_loss = ref.sparse_cross_entropy(logits, labels, axis=1)
    expected_grad = fd_grad(logits, labels, {"axis": 1})
    buffer = logits.copy()
    loss, grad = nx.sparse_cross_entropy_with_grad(buffer, labels, axis=1, out=buffer)
    assert grad is buffer
    assert_close(loss, expected_loss, rtol=1e-12)
    check_grad_fd(buffer, expected_grad, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_number_of_classes(rng, dtype):
    logits = make_logits(rng, (6, 40_000), dtype, scale=4.0)
    labels = make_labels(rng, (6,), 40_000, ignore_frac=0.2)
    kwargs = {"class_weight": rng.uniform(0.5, 2.0, 40_000), "label_smoothing": 0.1, "z_loss": 1e-3}
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for reduction in ["mean", "none"]:
        expected = ref.sparse_cross_entropy(logits, labels, reduction=reduction, **kwargs)
        actual = nx.sparse_cross_entropy(logits, labels, reduction=reduction, **kwargs)
        assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol / 10))
    # Gradient: finite differences on a few coordinates of row 0 and 1 (the full check is too slow here).
    grad = nx.sparse_cross_entropy_grad(logits, labels, reduction="sum", **kwargs)
    logits64 = logits.astype(np.float64)
    for row, col in [(0, int(labels[0]) if labels[0] >= 0 else 0), (1, 7), (1, 39_999)]:
        step = 1e-4

        def at(delta, row=row, col=col):
            shifted = logits64.copy()
            shifted[row, col] += delta
            return ref.sparse_cross_entropy(shifted, labels, reduction="sum", **kwargs)

        numeric = (at(step) - at(-step)) / (2 * step)
        scale = max(abs(numeric), 1e-3)
        assert abs(grad[row, col] - numeric) <= (1e-5 if dtype == np.float64 else 1e-4) * scale, (row, col)


@pytest.mark.parametrize("axis", [0, -2])
def test_other_class_axes(rng, axis):
    logits = make_logits(rng, (4, 6, 3))
    moved = np.moveaxis(logits, axis, -1)
    labels = make_labels(rng, moved.shape[:-1], moved.shape[-1], ignore_frac=0.2)
    kwargs = {"label_smoothing": 0.1, "class_weight": rng.uniform(0.5, 2, moved.shape[-1])}
    for reduction in ["mean", "none"]:
        expected = ref.sparse_cross_entropy(moved, labels, reduction=reduction, **kwargs)
        actual = nx.sparse_cross_entropy(logits, labels, axis=axis, reduction=reduction, **kwargs)
        assert_close(actual, expected, rtol=1e-12)
    grad = nx.sparse_cross_entropy_grad(logits, labels, axis=axis, grad_output=0.5, **kwargs)
    expected_grad = fd_grad(logits, labels, dict(axis=axis, **kwargs), 0.5)
    check_grad_fd(grad, expected_grad, np.float64)


def test_one_dimensional_logits_grads(rng):
    logits = make_logits(rng, (6,))
    labels = np.array(2)
    grad = nx.sparse_cross_entropy_grad(logits, labels, label_smoothing=0.2, grad_output=2.0)
    assert grad.shape == (6,)
    check_grad_fd(grad, fd_grad(logits, labels, {"label_smoothing": 0.2}, 2.0), np.float64)
    grad_none = nx.sparse_cross_entropy_grad(logits, labels, reduction="none", grad_output=np.array(2.0))
    check_grad_fd(grad_none, fd_grad(logits, labels, {"reduction": "none"}, 2.0), np.float64)
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, reduction="none")
    assert np.shape(loss) == ()
    assert_close(loss, ref.sparse_cross_entropy(logits, labels, reduction="none"), rtol=1e-12)


@pytest.mark.parametrize("grad_output", [np.float32(0.5), np.array(0.5), np.float64(0.5), 0.5, 1])
def test_scalar_grad_output_types(rng, grad_output):
    logits = make_logits(rng, (5, 4), np.float32)
    labels = make_labels(rng, (5,), 4)
    grad = nx.sparse_cross_entropy_grad(logits, labels, grad_output=grad_output)
    assert grad.dtype == np.float32
    check_grad_fd(grad, fd_grad(logits, labels, {}, float(grad_output)), np.float32)


def test_results_are_fresh_arrays(rng):
    # A later call must not overwrite an earlier result (no reused internal buffers).
    logits = make_logits(rng, (8, 5))
    labels = make_labels(rng, (8,), 5)
    first_loss = nx.sparse_cross_entropy(logits, labels, reduction="none")
    first_grad = nx.sparse_cross_entropy_grad(logits, labels)
    first_pair = nx.sparse_cross_entropy_with_grad(logits, labels, reduction="none")
    saved = [first_loss.copy(), first_grad.copy(), first_pair[0].copy(), first_pair[1].copy()]
    other = make_logits(rng, (8, 5))
    nx.sparse_cross_entropy(other, labels, reduction="none")
    nx.sparse_cross_entropy_grad(other, labels)
    nx.sparse_cross_entropy_with_grad(other, labels, reduction="none")
    for a, b in zip([first_loss, first_grad, *first_pair], saved, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(first_grad, logits)


def test_float16_out_and_in_place(rng):
    logits = make_logits(rng, (5, 7), np.float16)
    labels = make_labels(rng, (5,), 7)
    expected = nx.sparse_cross_entropy_grad(logits, labels)
    out = np.full(logits.shape, SENTINEL, dtype=np.float16)
    assert nx.sparse_cross_entropy_grad(logits, labels, out=out) is out
    np.testing.assert_array_equal(out, expected)
    buffer = logits.copy()
    loss, grad = nx.sparse_cross_entropy_with_grad(buffer, labels, out=buffer)
    assert grad is buffer
    np.testing.assert_array_equal(buffer, expected)
    assert_close(loss, ref.sparse_cross_entropy(logits, labels), rtol=2e-5)


@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_in_place_on_non_contiguous_logits(rng, layout):
    base = make_logits(rng, (6, 10))
    logits = np.asfortranarray(base) if layout == "fortran" else base[:, ::2]
    labels = make_labels(rng, (6,), logits.shape[1], ignore_frac=0.2)
    kwargs = {"label_smoothing": 0.1}
    original = logits.copy()
    expected_loss = ref.sparse_cross_entropy(original, labels, **kwargs)
    expected_grad = fd_grad(original, labels, kwargs)
    untouched = base[:, 1::2].copy()
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, out=logits, **kwargs)
    assert grad is logits
    assert_close(loss, expected_loss, rtol=1e-12)
    check_grad_fd(logits, expected_grad, np.float64)
    if layout == "strided":
        np.testing.assert_array_equal(base[:, 1::2], untouched)


@pytest.mark.parametrize("offset", [1e6, -1e6])
def test_float64_accuracy_with_a_large_common_offset(rng, offset):
    # Softmax is shift invariant and x_y - max is exact here, so the float64 answer stays accurate to 1e-12
    # (the reference computes x - max - log(sum(exp(x - max))), as torch does).
    logits = make_logits(rng, (16, 10)) + offset
    labels = make_labels(rng, (16,), 10)
    for kwargs in [{}, {"label_smoothing": 0.1}]:
        expected = ref.sparse_cross_entropy(logits, labels, reduction="none", **kwargs)
        actual = nx.sparse_cross_entropy(logits, labels, reduction="none", **kwargs)
        assert_close(actual, expected, rtol=1e-12, err_msg=str(kwargs))


def test_probabilities_with_class_weight_and_smoothing(rng):
    # The contract's smoothing formula, (1-eps) w_y (-log p_y) + (eps/C) sum_c w_c (-log p_c), with the Keras
    # probabilities (renormalised, clipped) in place of the softmax.
    probs = make_probs_unnormalised(rng, (6, 4))
    labels = make_labels(rng, (6,), 4)
    kwargs = {"from_logits": False, "class_weight": rng.uniform(0.5, 2.0, 4), "label_smoothing": 0.2}
    for reduction in ["none", "mean"]:
        expected = ref.sparse_cross_entropy(probs, labels, reduction=reduction, **kwargs)
        assert_close(nx.sparse_cross_entropy(probs, labels, reduction=reduction, **kwargs), expected, rtol=1e-12)
    check_grad_fd(nx.sparse_cross_entropy_grad(probs, labels, **kwargs), fd_grad(probs, labels, kwargs), np.float64)


def make_probs_unnormalised(rng, shape):
    return rng.uniform(0.1, 1.0, shape)
