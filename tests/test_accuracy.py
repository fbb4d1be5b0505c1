"""float32 losses are accurate relative to themselves on every row, confident rows included.

The reference is the float64 answer on the same float32 inputs, written as -log p_y = log1p(sum_{c != y}
exp(x_c - x_y)): the textbook log(sum_c exp(x_c - m)) - (x_y - m) loses the small loss of a confident row even in
float64 (1 + 1e-14 keeps two digits of the 1e-14). A confident row (the label's logit far above the others) has a
loss far below float32's resolution of 1: a one-pass float32 sum of exponentials rounds it to 0 (PyTorch and optax
return 0 there).
"""

from __future__ import annotations

import numpy as np
import pytest
import references as ref

import numba_xent as nx


@pytest.mark.parametrize("n_classes", [2, 3, 10, 128, 129, 512, 513, 1000, 2049, 32000, 100_000])
def test_confident_rows_float32(n_classes):
    rng = np.random.default_rng(n_classes)
    margins = np.array([0.0, 2.0, 5.0, 9.0, 12.0, 17.0, 24.0, 30.0, 40.0])
    n_rows = margins.size * 2
    logits = rng.standard_normal((n_rows, n_classes)).astype(np.float32)
    labels = rng.integers(0, n_classes, n_rows)
    for row, margin in enumerate(np.tile(margins, 2)):
        logits[row, labels[row]] = logits[row].max() + margin
    if n_classes > 2:
        logits[1, (labels[1] + 1) % n_classes] = logits[1, labels[1]]  # a tie with the label's logit
    wide = logits.astype(np.float64)
    label_logits = wide[np.arange(n_rows), labels][:, None]
    others = np.exp(wide - label_logits)
    others[np.arange(n_rows), labels] = 0.0
    expected = np.log1p(others.sum(axis=1))
    textbook = ref.sparse_cross_entropy(wide, labels, reduction="none")
    unconfident = expected > 1e-6  # where the textbook float64 formula still has ten digits
    np.testing.assert_allclose(expected[unconfident], textbook[unconfident], rtol=1e-9)
    assert expected.min() > 1e-30  # representable in float32, so a relative bound applies to every row
    in_place = logits.copy()
    for name, losses in (
        ("forward", nx.sparse_cross_entropy(logits, labels, reduction="none")),
        ("fused", nx.sparse_cross_entropy_with_grad(logits, labels, reduction="none")[0]),
        ("in place", nx.sparse_cross_entropy_with_grad(in_place, labels, reduction="none", out=in_place)[0]),
    ):
        relative = np.abs(losses.astype(np.float64) - expected) / expected
        worst = int(np.argmax(relative))
        assert relative[worst] <= 1e-5, f"{name}: row {worst}, loss {losses[worst]!r} vs {expected[worst]!r}"
    grad = nx.sparse_cross_entropy_grad(logits, labels, reduction="sum")
    expected_grad = ref.softmax(logits.astype(np.float64))
    expected_grad[np.arange(n_rows), labels] -= 1.0
    np.testing.assert_allclose(grad, expected_grad, rtol=0, atol=2e-7)


def test_the_issue_row():
    logits = np.array([[-7.3726907, 9.300127]], np.float32)
    loss = nx.sparse_cross_entropy(logits, np.array([1]), reduction="none")[0]
    expected = np.log1p(np.exp(np.float64(logits[0, 0]) - np.float64(logits[0, 1])))
    assert abs(loss - expected) <= 1e-6 * expected
