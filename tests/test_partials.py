"""Vocabulary-split partials and their merge (numba_xent.partials): the merged loss and the blocks' gradients against
the float64 reference, the in-memory function on the whole logits, and finite differences."""

from __future__ import annotations

import functools

import numba
import numpy as np
import pytest
import references as ref
from helpers import SPARSE_CASES, assert_close, case_id, rel_atol, sparse_case

import numba_xent as nx

# from_logits=False (probability inputs) has no vocabulary-split form: its normalisation needs the whole row.
CASES = [case for case in SPARSE_CASES if case.get("from_logits", True)]
SPLITS = {
    "one block": [0, 11],
    "two blocks": [0, 6, 11],
    "uneven": [0, 1, 2, 9, 11],
    "singletons": list(range(12)),
}
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


def split_loss(logits, labels, bounds, kwargs, order=None):
    """Partials of each block (in ``order``), merged."""
    kwargs = dict(kwargs)
    reduction = kwargs.pop("reduction", "mean")
    sample_weight = kwargs.pop("sample_weight", None)
    partial_options = {k: kwargs[k] for k in ("class_weight", "ignore_index", "label_smoothing") if k in kwargs}
    blocks = [
        nx.class_block_partials(logits[..., a:b], labels, class_start=a, n_classes=logits.shape[-1], **partial_options)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    if order is not None:
        blocks = [blocks[i] for i in order]
    return nx.merge_class_block_partials(blocks, labels, sample_weight=sample_weight, reduction=reduction, **kwargs)


def split_grad(logits, labels, bounds, merged, sample_weight=None, grad_output=1.0):
    pieces = [
        nx.class_block_grad(
            logits[..., a:b],
            labels,
            merged,
            class_start=a,
            sample_weight=sample_weight,
            grad_output=grad_output,
        )
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return np.concatenate(pieces, axis=-1)


def check(actual, expected, rtol):
    assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol / 10) + 1e-300)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("split", SPLITS, ids=str)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_merge_matches_whole_logits(rng, case, split, dtype):
    logits, labels, kwargs = sparse_case(rng, case, (5, 3, 11), dtype=dtype)
    bounds = SPLITS[split]
    merged = split_loss(logits, labels, bounds, kwargs, order=list(range(len(bounds) - 1))[::-1])
    in_memory = nx.sparse_cross_entropy(logits, labels, **kwargs)
    assert np.asarray(merged.loss).dtype == np.asarray(in_memory).dtype
    check(merged.loss, in_memory, RTOL[dtype])
    check(merged.loss, ref.sparse_cross_entropy(logits, labels, **kwargs), RTOL[dtype] * 10)
    np.testing.assert_allclose(merged.lse, ref.logsumexp(logits), rtol=1e-13 if dtype == np.float64 else 1e-6)

    sample_weight = kwargs.get("sample_weight")
    grad = split_grad(logits, labels, bounds, merged, sample_weight)
    assert grad.dtype == dtype
    check(grad, nx.sparse_cross_entropy_grad(logits, labels, **kwargs), RTOL[dtype])


def test_grad_matches_finite_differences(rng):
    logits, labels, kwargs = sparse_case(
        rng,
        {"ignore": True, "class_weight": True, "sample_weight": True, "label_smoothing": 0.2, "z_loss": 0.05},
        (7, 9),
    )
    bounds = [0, 4, 9]
    merged = split_loss(logits, labels, bounds, kwargs)
    grad = split_grad(logits, labels, bounds, merged, kwargs["sample_weight"])
    options = {k: v for k, v in kwargs.items() if k != "reduction"}
    expected = ref.loss_numeric_grad(
        functools.partial(ref.sparse_cross_entropy, labels=labels, **options), logits, "mean"
    )
    assert_close(grad, expected, rtol=1e-6, atol=rel_atol(expected, 1e-6))


def test_grad_output_per_row_for_none(rng):
    logits, labels, kwargs = sparse_case(rng, {"ignore": True, "label_smoothing": 0.1, "reduction": "none"}, (6, 10))
    upstream = rng.standard_normal(6)
    merged = split_loss(logits, labels, [0, 3, 10], kwargs)
    grad = split_grad(logits, labels, [0, 3, 10], merged, grad_output=upstream)
    expected = nx.sparse_cross_entropy_grad(logits, labels, grad_output=upstream, **kwargs)
    check(grad, expected, 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_common_offset(rng, dtype):
    # Shift invariance: the smoothing term in gap form keeps its digits when every logit carries a large offset.
    logits = rng.standard_normal((8, 12))
    labels = rng.integers(0, 12, 8)
    offset = 1e6 if dtype == np.float64 else 1e4
    shifted = (logits + offset).astype(dtype)
    kwargs = {"label_smoothing": 0.3, "class_weight": rng.random(12) + 0.1, "reduction": "none"}
    merged = split_loss(shifted, labels, [0, 5, 12], kwargs)
    expected = ref.sparse_cross_entropy(shifted.astype(np.float64) - offset, labels, **kwargs)
    check(merged.loss, expected, 1e-9 if dtype == np.float64 else 2e-5)


def test_block_of_minus_inf_logits(rng):
    # A masked vocabulary tail: one whole block is -inf. It adds nothing to the sum, and its gradient is 0.
    logits = rng.standard_normal((4, 8))
    logits[:, 5:] = -np.inf
    labels = np.array([0, 4, 2, -100])
    merged = split_loss(logits, labels, [0, 5, 8], {"reduction": "none"})
    check(merged.loss, nx.sparse_cross_entropy(logits, labels, reduction="none"), 1e-12)
    grad = split_grad(logits, labels, [0, 5, 8], merged)
    check(grad, nx.sparse_cross_entropy_grad(logits, labels, reduction="none"), 1e-12)


def test_all_rows_ignored_mean_is_zero(rng):
    logits = rng.standard_normal((3, 6))
    labels = np.full(3, -100)
    merged = split_loss(logits, labels, [0, 2, 6], {"class_weight": rng.random(6)})
    assert merged.loss == 0.0 and merged.denominator == 0.0
    assert not split_grad(logits, labels, [0, 2, 6], merged).any()


def test_bits_do_not_depend_on_thread_count(rng):
    logits = rng.standard_normal((300, 40)).astype(np.float32)
    labels = rng.integers(0, 40, 300)
    kwargs = {"label_smoothing": 0.1, "z_loss": 1e-3, "reduction": "sum"}
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            merged = split_loss(logits, labels, [0, 17, 40], kwargs)
            results.append((merged.row_loss.tobytes(), split_grad(logits, labels, [0, 17, 40], merged).tobytes()))
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]


# --------------------------------------------------------------------------------------------------- errors


def test_bad_label_names_value_and_index(rng):
    logits = rng.standard_normal((2, 3, 5))
    labels = np.array([[0, 1, 2], [3, 7, 4]])
    with pytest.raises(ValueError, match=r"label 7 at index \(1, 1\) is outside \[0, 5\)"):
        nx.class_block_partials(logits[..., :2], labels, class_start=0, n_classes=5)


def test_blocks_must_tile_the_classes(rng):
    logits, labels = rng.standard_normal((3, 6)), np.array([0, 1, 2])
    left = nx.class_block_partials(logits[:, :2], labels, class_start=0, n_classes=6)
    right = nx.class_block_partials(logits[:, 3:], labels, class_start=3, n_classes=6)
    with pytest.raises(ValueError, match=r"\[0, 2\), \[3, 6\) do not tile \[0, 6\)"):
        nx.merge_class_block_partials([left, right], labels)
    with pytest.raises(ValueError, match="do not tile"):
        nx.merge_class_block_partials([left, left], labels)


def test_smoothing_needs_partials_computed_with_it(rng):
    logits, labels = rng.standard_normal((3, 6)), np.array([0, 1, 2])
    blocks = [nx.class_block_partials(logits[:, a : a + 3], labels, class_start=a, n_classes=6) for a in (0, 3)]
    with pytest.raises(ValueError, match="computed without it"):
        nx.merge_class_block_partials(blocks, labels, label_smoothing=0.1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"class_start": 4}, ValueError, "does not fit"),
        ({"class_start": -1}, ValueError, "does not fit"),
        ({"class_weight": np.ones(5)}, ValueError, "class_weight has shape"),
        ({"class_weight": -np.ones(6)}, ValueError, "non-negative"),
        ({"label_smoothing": 2.0}, ValueError, "label_smoothing"),
    ],
)
def test_partials_reject_bad_options(rng, kwargs, error, match):
    options = {"class_start": 0, "n_classes": 6, **kwargs}
    with pytest.raises(error, match=match):
        nx.class_block_partials(rng.standard_normal((3, 3)), np.array([0, 1, 2]), **options)


def test_partials_reject_bad_types(rng):
    with pytest.raises(TypeError, match="integers"):
        nx.class_block_partials(rng.standard_normal((3, 3)), np.zeros(3), class_start=0, n_classes=3)
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        nx.class_block_partials(np.zeros((3, 3), np.int32), np.zeros(3, int), class_start=0, n_classes=3)
    with pytest.raises(ValueError, match="labels have shape"):
        nx.class_block_partials(rng.standard_normal((3, 3)), np.zeros(4, int), class_start=0, n_classes=3)
