"""Every code-path boundary of the kernels, against the float64 references.

The kernels switch paths at: the flat-block rule of the integer-label losses (rows of at most 2048 bytes go in
flat blocks: 512/513 float32 classes, 256/257 float64), the short-row rule of the softmax family (512 bytes:
128/129 float32, 64/65 float64), the online-softmax block (2048 elements), the blocks of rows of the fixed-order
sums (64 rows; flat blocks of 1024 rows, fewer above 64 classes), the serial/parallel threshold
(``_launch.PARALLEL_MIN_ELEMENTS`` logits), and C = 1, 2.
Each is tested on both sides, for the loss, the gradient, the fused call and the fused call in place.
"""

from __future__ import annotations

import numpy as np
import pytest
import references as ref
from helpers import assert_close, make_logits, rel_atol

import numba_xent as nx
from numba_xent import _launch
from numba_xent._kernels import rows as kernel_rows
from numba_xent._vecmath import ONLINE_BLOCK

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}
SHORT_LIMIT = {np.float32: 128, np.float64: 64}
FLAT_LIMIT = {np.float32: 512, np.float64: 256}

CLASS_BOUNDARIES = [
    (dtype, n_classes)
    for dtype in (np.float32, np.float64)
    for n_classes in (
        1,
        2,
        SHORT_LIMIT[dtype],
        SHORT_LIMIT[dtype] + 1,
        FLAT_LIMIT[dtype],
        FLAT_LIMIT[dtype] + 1,
        ONLINE_BLOCK - 1,
        ONLINE_BLOCK,
        ONLINE_BLOCK + 1,
        2 * ONLINE_BLOCK + 1,
    )
]
# (classes, rows): flat blocks of 1024 rows (3 classes) and of 327 rows (200 classes), blocks of 64 long rows
ROW_BOUNDARIES = [
    (n_classes, n_rows)
    for n_classes, block in ((3, 1024), (200, 327), (600, 64))
    for n_rows in (block - 1, block, block + 1)
]
OPTIONS = [
    {},
    {"class_weight": True, "sample_weight": True, "label_smoothing": 0.2, "z_loss": 0.01, "ignore": True},
]


def test_the_rules_match_the_tests():
    """The constants above are the kernels' own: if a rule moves, these tests must move with it."""
    assert kernel_rows.is_short.py_func(128, 4) and not kernel_rows.is_short.py_func(129, 4)
    assert kernel_rows.is_short.py_func(64, 8) and not kernel_rows.is_short.py_func(65, 8)
    assert kernel_rows.rows_per_block.py_func(False) == 64
    assert kernel_rows.rows_per_block.py_func(True) == 1024
    assert kernel_rows.is_flat.py_func(512, 4) and not kernel_rows.is_flat.py_func(513, 4)
    assert kernel_rows.is_flat.py_func(256, 8) and not kernel_rows.is_flat.py_func(257, 8)
    assert [kernel_rows.flat_rows_per_block.py_func(c) for c in (3, 64, 65, 200, 512)] == [1024, 1024, 1008, 327, 128]


def _inputs(rng, n_rows, n_classes, dtype, options):
    options = dict(options)
    logits = make_logits(rng, (n_rows, n_classes), dtype)
    labels = rng.integers(0, n_classes, n_rows)
    if options.pop("ignore", False):
        labels[rng.random(n_rows) < 0.2] = -100
    if options.get("class_weight") is True:
        options["class_weight"] = rng.uniform(0.2, 2.0, n_classes)
    if options.get("sample_weight") is True:
        options["sample_weight"] = rng.uniform(0.0, 2.0, n_rows)
    return logits, labels, options


def _check_all_entry_points(logits, labels, options, dtype, reference_logits=None):
    """Loss (mean, none), gradient, fused and fused in place against the references on ``reference_logits``
    (default: the same logits; rows shifted by a constant have the same answers)."""
    reference_logits = logits if reference_logits is None else reference_logits
    rtol = TOLERANCE[dtype]
    for reduction in ("mean", "none"):
        expected = ref.sparse_cross_entropy(reference_logits, labels, reduction=reduction, **options)
        actual = nx.sparse_cross_entropy(logits, labels, reduction=reduction, **options)
        assert np.asarray(actual).dtype == dtype
        assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol), err_msg=reduction)
    expected_grad = ref.loss_numeric_grad(ref.sparse_cross_entropy, reference_logits, "mean", labels=labels, **options)
    grad = nx.sparse_cross_entropy_grad(logits, labels, **options)
    assert grad.dtype == dtype
    # finite differences carry ~1e-9 absolute error in float64; float32 is held to its own tolerance
    atol = 1e-8 if dtype == np.float64 else 2e-5 * max(1.0, float(np.abs(expected_grad).max()))
    assert_close(grad, expected_grad, rtol=1e-5, atol=atol)
    loss, fused_grad = nx.sparse_cross_entropy_with_grad(logits, labels, **options)
    assert loss == nx.sparse_cross_entropy(logits, labels, **options)
    np.testing.assert_array_equal(fused_grad, grad)
    in_place = logits.copy()
    loss_in_place, result = nx.sparse_cross_entropy_with_grad(in_place, labels, out=in_place, **options)
    assert result is in_place and loss_in_place == loss
    np.testing.assert_array_equal(in_place, grad)


@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "all-options"])
@pytest.mark.parametrize(("dtype", "n_classes"), CLASS_BOUNDARIES)
def test_class_boundaries(rng, dtype, n_classes, options):
    n_rows = 3 if n_classes > 1000 else 5  # finite differences cost 2 * N * C forward calls
    logits, labels, options = _inputs(rng, n_rows, n_classes, dtype, options)
    _check_all_entry_points(logits, labels, options, dtype)


@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "all-options"])
@pytest.mark.parametrize(("n_classes", "n_rows"), ROW_BOUNDARIES)
def test_row_block_boundaries(rng, n_rows, n_classes, options):
    logits, labels, options = _inputs(rng, n_rows, n_classes, np.float64, options)
    rtol = TOLERANCE[np.float64]
    for reduction in ("mean", "sum", "none"):
        expected = ref.sparse_cross_entropy(logits, labels, reduction=reduction, **options)
        actual = nx.sparse_cross_entropy(logits, labels, reduction=reduction, **options)
        assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol), err_msg=reduction)
    # The gradient of the weighted mean, w_i (softmax - onehot) / sum(w), written out (finite differences would
    # take N*C calls here).
    weights = {name: options[name] for name in ("class_weight", "sample_weight") if name in options}
    grad = nx.sparse_cross_entropy_grad(logits, labels, **weights)
    kept = labels != -100
    safe_labels = np.where(kept, labels, 0)
    row_weight = kept * weights.get("class_weight", np.ones(n_classes))[safe_labels]
    row_weight = row_weight * weights.get("sample_weight", np.ones(n_rows))
    expected_grad = row_weight[:, None] * (ref.softmax(logits) - np.eye(n_classes)[safe_labels]) / row_weight.sum()
    assert_close(grad, expected_grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_parallel_threshold(rng, dtype):
    """Just below and just above the size where calls go parallel: the same bits either way."""
    n_classes = 64
    limit_rows = _launch.PARALLEL_MIN_ELEMENTS // n_classes
    for n_rows in (limit_rows - 1, limit_rows, limit_rows + 1):
        logits, labels, options = _inputs(rng, n_rows, n_classes, dtype, OPTIONS[1])
        expected = ref.sparse_cross_entropy(logits, labels, **options)
        loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, **options)
        assert_close(loss, expected, rtol=TOLERANCE[dtype])
        threshold = _launch.PARALLEL_MIN_ELEMENTS
        try:
            _launch.PARALLEL_MIN_ELEMENTS = 1 << 62  # force the serial twins
            serial_loss, serial_grad = nx.sparse_cross_entropy_with_grad(logits, labels, **options)
        finally:
            _launch.PARALLEL_MIN_ELEMENTS = threshold
        assert serial_loss == loss
        np.testing.assert_array_equal(serial_grad, grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [1, 2, 129, ONLINE_BLOCK - 1, ONLINE_BLOCK + 1, 3 * ONLINE_BLOCK + 5])
def test_softmax_family_on_long_rows(rng, dtype, n_classes):
    x = make_logits(rng, (3, n_classes), dtype, scale=5.0)
    rtol = TOLERANCE[dtype]
    pairs = ((nx.log_softmax, ref.log_softmax), (nx.softmax, ref.softmax), (nx.logsumexp, ref.logsumexp))
    for func, reference in pairs:
        actual = func(x)
        expected = reference(x)
        assert np.asarray(actual).dtype == dtype
        atol = rel_atol(expected, rtol) if func is not nx.softmax else 1e-7 if dtype == np.float32 else 1e-15
        assert_close(actual, expected, rtol=rtol, atol=atol, err_msg=func.__name__)
    buffer = x.copy()
    nx.softmax(buffer, out=buffer)
    assert_close(buffer, ref.softmax(x), rtol=rtol, atol=1e-7 if dtype == np.float32 else 1e-15)


def test_dense_and_binary_row_blocks(rng):
    for n_rows in (63, 64, 65):
        logits = make_logits(rng, (n_rows, 7))
        targets = rng.dirichlet(np.ones(7), n_rows)
        assert_close(nx.cross_entropy(logits, targets), ref.cross_entropy(logits, targets), rtol=1e-12)
        binary = rng.uniform(0, 1, (n_rows, 7))
        assert_close(
            nx.binary_cross_entropy_with_logits(logits, binary),
            ref.binary_cross_entropy_with_logits(logits, binary),
            rtol=1e-12,
        )


@pytest.mark.parametrize("n_classes", [10, 200])  # flat blocks scaled as one loop, and row by row
@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "all-options"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_short_rows_far_below_their_blocks_max(rng, dtype, options, n_classes):
    """Short rows take their exponentials against the block's max: rows whose own max lies far below it (past the
    point where they are done on their own: 60 below in float32, 600 in float64), a label far below its row's max
    and a confident row below the block's max, all in one block.

    The loss and gradient do not change when a row is shifted by a constant (z-loss aside): the rows are shifted
    exactly (logits on a grid of 1/256) and compared with the references on the unshifted rows, where finite
    differences are accurate.
    """
    reach = 60.0 if dtype == np.float32 else 600.0
    offsets = np.repeat([0.0, 1.0, -5.0, -30.0, -(reach - 1.0), -(reach + 1.0), -2 * reach, -1e4], 2)
    logits, labels, options = _inputs(rng, offsets.size, n_classes, np.float64, options)
    options.pop("z_loss", None)
    labels[[1, 3]] = [4, 6]
    logits[1, 4] = logits[1].max() - 0.8 * reach  # the label's term underflows against the block's max
    logits[3, 6] = logits[3].max() + 25.0  # a confident row below the block's max
    logits = (np.round(logits * 256) / 256).astype(dtype)
    shifted = logits + offsets.astype(dtype)[:, None]
    np.testing.assert_array_equal(shifted - offsets.astype(dtype)[:, None], logits)  # the shift is exact
    _check_all_entry_points(shifted, labels, options, dtype, reference_logits=logits)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_short_rows_beside_nan_and_inf(rng, dtype):
    """A NaN or an inf in a block of short rows (its max is then not finite) spoils only its own row."""
    logits = make_logits(rng, (40, 10), dtype)
    labels = rng.integers(0, 10, 40)
    logits[3, 2] = np.nan
    logits[7, 5] = np.inf
    logits[11, :] = -np.inf
    actual = nx.sparse_cross_entropy(logits, labels, reduction="none")
    spoilt = [3, 7, 11]
    assert np.isnan(actual[3])
    kept = np.setdiff1d(np.arange(40), spoilt)
    expected = ref.sparse_cross_entropy(logits[kept], labels[kept], reduction="none")
    assert_close(actual[kept], expected, rtol=TOLERANCE[dtype])
    grad = nx.sparse_cross_entropy_grad(logits, labels, reduction="sum")
    expected_grad = ref.softmax(logits[kept].astype(np.float64))
    expected_grad[np.arange(kept.size), labels[kept]] -= 1.0
    assert_close(grad[kept], expected_grad, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-14)
    single = [
        nx.sparse_cross_entropy(logits[row : row + 1], labels[row : row + 1], reduction="none")[0] for row in spoilt
    ]
    np.testing.assert_array_equal(actual[spoilt], single)  # the same as each row alone (the long-row rules)
