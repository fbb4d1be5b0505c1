"""evaluate(): loss against the float64 reference and sparse_cross_entropy, top-k accuracies against NumPy
argsort/argmax references (ties included), bits independent of the thread count, bad input."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest
import references as ref
from helpers import make_labels, make_logits

import numba_xent as nx


def _reference_top_k(logits, labels, ks, ignore_index=-100, axis=-1):
    """Fraction of kept rows whose label is correct at each k, ties in the label's favour, by sorting: the label is
    correct at k when its position among the classes sorted by decreasing logit, with the label placed first among
    equal logits, is below k."""
    x = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, -1).reshape(-1, np.shape(logits)[axis])
    y = np.asarray(labels).reshape(-1)
    kept = y != ignore_index
    x, y = x[kept], y[kept]
    positions = []
    for row, label in zip(x, y, strict=True):
        # Sort by (-logit, not-the-label): the label comes first among classes with its logit.
        order = np.lexsort((np.arange(row.size) != label, -row))
        positions.append(int(np.nonzero(order == label)[0][0]))
    positions = np.array(positions)
    return {k: (float(np.mean(positions < k)) if len(positions) else 0.0) for k in ks}


@pytest.mark.parametrize(
    "shape, dtype",
    [((50, 7), np.float64), ((300, 10), np.float32), ((40, 3000), np.float32), ((9, 5000), np.float64)],
)
def test_against_references(rng, shape, dtype):
    logits = make_logits(rng, shape, dtype=dtype)
    labels = make_labels(rng, shape[:-1], shape[-1], ignore_frac=0.2)
    class_weight = rng.random(shape[-1]) + 0.1
    ks = (1, 2, 5, shape[-1])
    result = nx.evaluate(logits, labels, class_weight=class_weight, top_k=ks)
    expected_loss = ref.sparse_cross_entropy(logits, labels, class_weight=class_weight)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert result.loss == pytest.approx(expected_loss, rel=rtol)
    assert result.loss == pytest.approx(nx.sparse_cross_entropy(logits, labels, class_weight=class_weight), rel=rtol)
    assert result.perplexity == pytest.approx(np.exp(expected_loss), rel=rtol * 10)
    assert result.n_kept == int(np.sum(labels != -100))
    assert result.top_k_accuracy == _reference_top_k(logits, labels, ks)
    assert result.top_k_accuracy[shape[-1]] == 1.0
    # top-1 without ties is argmax
    kept = labels != -100
    assert result.accuracy == pytest.approx(np.mean(np.argmax(logits[kept], axis=-1) == labels[kept]))


@pytest.mark.parametrize("n_classes", [4, 3000])
def test_ties_count_for_the_label(rng, n_classes):
    # Few distinct values: many ties, also with the label's logit.
    logits = rng.integers(0, 3, (200, n_classes)).astype(np.float32)
    labels = rng.integers(0, n_classes, 200)
    ks = (1, 2, 3)
    result = nx.evaluate(logits, labels, top_k=ks)
    assert result.top_k_accuracy == _reference_top_k(logits, labels, ks)
    # Rows where the label ties for the max are correct at 1, though argmax may point elsewhere.
    label_logit = logits[np.arange(200), labels]
    assert result.accuracy == pytest.approx(np.mean(label_logit == logits.max(axis=1)))


def test_axis_and_batch_dims(rng):
    logits = make_logits(rng, (3, 6, 4, 5))  # classes along axis 1
    labels = make_labels(rng, (3, 4, 5), 6, ignore_frac=0.1)
    result = nx.evaluate(logits, labels, axis=1, top_k=3)
    assert result.loss == pytest.approx(ref.sparse_cross_entropy(logits, labels, axis=1), rel=1e-12)
    assert result.top_k_accuracy == _reference_top_k(logits, labels, (3,), axis=1)
    assert set(result.top_k_accuracy) == {3}


def test_ignore_index_and_empty(rng):
    logits = make_logits(rng, (6, 4))
    labels = np.array([0, 5, 5, 1, 5, 3])
    result = nx.evaluate(logits, labels, ignore_index=5)
    assert result.n_kept == 3
    assert result.loss == pytest.approx(ref.sparse_cross_entropy(logits, labels, ignore_index=5), rel=1e-12)
    nothing = nx.evaluate(logits, np.full(6, -100))
    assert (nothing.loss, nothing.n_kept, nothing.top_k_accuracy, nothing.perplexity) == (0.0, 0, {1: 0.0}, 1.0)
    empty = nx.evaluate(np.zeros((0, 4)), np.zeros(0, dtype=np.int64))
    assert empty.n_kept == 0 and empty.loss == 0.0


def test_large_offset_and_nan():
    # lse - x_y from (max - x_y) + log(sum): exact with a common offset that max + log(sum) would round away.
    logits = np.array([[1e6, 1e6 + 1.0, 1e6 - 1.0]])
    expected = ref.sparse_cross_entropy(logits - 1e6, np.array([0]))
    assert nx.evaluate(logits, np.array([0])).loss == pytest.approx(expected, rel=1e-12)
    with_nan = np.array([[np.nan, 0.0, 1.0], [0.0, 1.0, 2.0]])
    result = nx.evaluate(with_nan, np.array([0, 2]))
    assert np.isnan(result.loss) and np.isnan(result.perplexity)
    assert result.accuracy == 0.5  # a NaN label logit is never correct; the other row is


def test_bits_do_not_depend_on_thread_count(rng):
    logits = make_logits(rng, (2000, 37), dtype=np.float32)
    labels = make_labels(rng, (2000,), 37, ignore_frac=0.1)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            results.append(nx.evaluate(logits, labels, top_k=(1, 5)))
    finally:
        numba.set_num_threads(before)
    assert all(result == results[0] for result in results)


def test_result_is_frozen():
    result = nx.evaluate(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.loss = 1.0  # type: ignore[misc]
    assert result.perplexity == pytest.approx(3.0)


def test_float16_input(rng):
    logits = make_logits(rng, (20, 8), dtype=np.float16)
    labels = make_labels(rng, (20,), 8)
    result = nx.evaluate(logits, labels, top_k=(1, 2))
    assert result.loss == pytest.approx(ref.sparse_cross_entropy(logits, labels), rel=1e-6)
    assert result.top_k_accuracy == _reference_top_k(logits, labels, (1, 2))


@pytest.mark.parametrize(
    "logits, labels, options, exception, pattern",
    [
        (np.zeros((3, 4)), np.array([0, 4, 1]), {}, ValueError, r"label 4 at index \(1,\) is outside \[0, 4\)"),
        (np.zeros((3, 4)), np.array([0, 1, -1]), {}, ValueError, r"label -1 at index \(2,\)"),
        (np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), {}, TypeError, "labels must be an array of integers"),
        (np.zeros((3, 4)), np.array([0, 1]), {}, ValueError, r"labels have shape \(2,\)"),
        (np.zeros((3, 4), dtype=np.int32), np.array([0, 1, 2]), {}, TypeError, "logits must be a float16"),
        (np.zeros((3, 4)), np.array([0, 1, 2]), {"axis": 2}, ValueError, "axis 2 is out of bounds"),
        (np.zeros((3, 4)), np.array([0, 1, 2]), {"class_weight": [1.0, 2.0]}, ValueError, r"class_weight has shape"),
        (np.zeros((3, 4)), np.array([0, 1, 2]), {"class_weight": [1, -1, 1, 1]}, ValueError, "non-negative"),
        (np.zeros((3, 4)), np.array([0, 1, 2]), {"ignore_index": 0.5}, TypeError, "ignore_index must be an integer"),
        (np.zeros((3, 4)), np.array([0, 1, 2]), {"top_k": 0}, ValueError, r"top_k must hold integers >= 1, got 0"),
        (np.zeros((3, 4)), np.array([0, 1, 2]), {"top_k": ()}, ValueError, "top_k must name at least one k"),
        (np.zeros((3, 4)), np.array([0, 1, 2]), {"top_k": (1, 2.5)}, ValueError, "got 2.5"),
    ],
)
def test_bad_input(logits, labels, options, exception, pattern):
    with pytest.raises(exception, match=pattern):
        nx.evaluate(logits, labels, **options)


def test_bad_label_message_matches_the_loss_function(rng):
    logits = make_logits(rng, (2, 3, 5))
    labels = make_labels(rng, (2, 3), 5)
    labels[1, 2] = 9
    with pytest.raises(ValueError) as ours:
        nx.evaluate(logits, labels)
    with pytest.raises(ValueError) as theirs:
        nx.sparse_cross_entropy(logits, labels)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rank_counted_across_blocks_of_a_long_row(dtype):
    # The logits above the label's sit in different 2048-element blocks of the row, after the label's own block.
    row = np.zeros(5000, dtype=dtype)
    row[10], row[100], row[3000], row[4500] = 5.0, 6.0, 7.0, 8.0
    logits = np.stack([row, row, -row])
    labels = np.array([10, 4500, 10])
    ks = (1, 2, 3, 4)
    result = nx.evaluate(logits, labels, top_k=ks)
    assert result.top_k_accuracy == _reference_top_k(logits, labels, ks)
    assert result.top_k_accuracy == {1: 1 / 3, 2: 1 / 3, 3: 1 / 3, 4: 2 / 3}


def test_rank_counted_across_chunks():
    # Rank 300 with the greater logits spread over the row: counted past the first chunks of the count loop.
    rng = np.random.default_rng(3)
    row = rng.permutation(np.arange(1000, dtype=np.float32))
    label = int(np.nonzero(row == 699)[0][0])  # 300 logits (700..999) are greater
    ks = (1, 299, 300, 301, 1000)
    result = nx.evaluate(row[None, :], np.array([label]), top_k=ks)
    assert result.top_k_accuracy == {1: 0.0, 299: 0.0, 300: 0.0, 301: 1.0, 1000: 1.0}
    assert result.top_k_accuracy == _reference_top_k(row[None, :], np.array([label]), ks)
