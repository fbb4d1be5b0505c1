"""More than 2**31 logits in one call (slow: about 9 GB of float32; run with ``python -m pytest -m slow``).

Indices, block counts and offsets must not wrap around at 2**31 elements. The loss and the in-place gradient are
checked against the float64 reference, computed chunk by chunk.
"""

from __future__ import annotations

import numpy as np
import pytest
import references as ref

import numba_xent as nx

N_CLASSES = 32768
N_ROWS = (2**31) // N_CLASSES + 67  # just past 2**31 logits, and not a multiple of any block size


@pytest.mark.slow
def test_more_than_two_to_the_31_logits():
    rng = np.random.default_rng(7)
    logits = np.empty((N_ROWS, N_CLASSES), np.float32)
    for start in range(0, N_ROWS, 4096):
        chunk = logits[start : start + 4096]
        chunk[...] = rng.standard_normal(chunk.shape, dtype=np.float32)
    assert logits.size > 2**31
    labels = rng.integers(0, N_CLASSES, N_ROWS)
    labels[-3:] = -100
    labels[-5] = N_CLASSES - 1  # a label in the last row's last class: the highest flat index of the gather

    per_row = nx.sparse_cross_entropy(logits, labels, reduction="none")
    expected = np.concatenate(
        [
            ref.sparse_cross_entropy(logits[start : start + 4096], labels[start : start + 4096], reduction="none")
            for start in range(0, N_ROWS, 4096)
        ]
    )
    np.testing.assert_allclose(per_row, expected, rtol=2e-5)
    mean = nx.sparse_cross_entropy(logits, labels)
    kept = labels != -100
    np.testing.assert_allclose(mean, expected[kept].sum() / kept.sum(), rtol=1e-6)

    tail = logits[-8:].astype(np.float64)  # the rows past 2**31 elements, before the in-place gradient overwrites
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, reduction="sum", out=logits)
    assert grad is logits
    np.testing.assert_allclose(loss, expected.sum(), rtol=1e-6)
    tail_labels = labels[-8:]
    expected_tail = ref.softmax(tail)
    for row, label in enumerate(tail_labels):
        if label == -100:
            expected_tail[row] = 0.0
        else:
            expected_tail[row, label] -= 1.0
    np.testing.assert_allclose(grad[-8:], expected_tail, rtol=1e-4, atol=1e-7)
