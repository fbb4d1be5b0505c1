"""Loss objects: values and gradients against the float64 NumPy references and finite differences; options
validated at construction with the functions' errors; pickling, equality, hashing, repr."""

from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest
import references as ref
from helpers import SENTINEL, assert_close, make_labels, make_logits

import numba_xent as nx

OPTION_CASES = [
    {},
    {"class_weight": [0.5, 2.0, 1.0, 0.0, 3.0]},
    {"label_smoothing": 0.2, "reduction": "sum"},
    {"ignore_index": 1, "reduction": "none"},
    {"z_loss": 0.01, "class_weight": [1.0, 1.0, 2.0, 1.0, 0.5]},
]


def _finite_difference_grad(loss, logits, step=1e-6):
    grad = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        plus, minus = logits.copy(), logits.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = (loss(plus) - loss(minus)) / (2 * step)
    return grad


@pytest.mark.parametrize("options", OPTION_CASES, ids=lambda o: ",".join(o) or "default")
def test_cross_entropy_loss_matches_reference(rng, options):
    logits = make_logits(rng, (6, 5))
    labels = make_labels(rng, (6,), 5, ignore_frac=0.2, ignore_index=options.get("ignore_index", -100))
    sample_weight = rng.random(6)
    loss_fn = nx.CrossEntropyLoss(**options)
    expected = ref.sparse_cross_entropy(logits, labels, sample_weight=sample_weight, **options)
    assert_close(loss_fn(logits, labels, sample_weight), expected, rtol=1e-12, atol=1e-14)

    reduction = options.get("reduction", "mean")
    grad_output = rng.standard_normal(6) if reduction == "none" else 1.7

    def weighted_total(z):
        return float(np.sum(ref.sparse_cross_entropy(z, labels, sample_weight=sample_weight, **options) * grad_output))

    expected_grad = _finite_difference_grad(weighted_total, logits)
    grad = loss_fn.grad(logits, labels, sample_weight, grad_output=grad_output)
    assert_close(grad, expected_grad, rtol=1e-6, atol=1e-8)

    loss, fused_grad = loss_fn.loss_and_grad(logits, labels, sample_weight)
    assert_close(loss, expected, rtol=1e-12, atol=1e-14)
    unit_grad = loss_fn.grad(logits, labels, sample_weight)
    assert_close(fused_grad, unit_grad, rtol=1e-12, atol=1e-15)


def test_cross_entropy_loss_axis_and_in_place(rng):
    logits = make_logits(rng, (3, 7, 4), dtype=np.float32)  # classes along axis 1
    labels = make_labels(rng, (3, 4), 7)
    loss_fn = nx.CrossEntropyLoss(axis=1, label_smoothing=0.1)
    expected = ref.sparse_cross_entropy(logits, labels, axis=1, label_smoothing=0.1)
    expected_grad = loss_fn.grad(logits, labels)
    buffer = logits.copy()
    loss, grad = loss_fn.loss_and_grad(buffer, labels, out=buffer)
    assert grad is buffer
    assert loss.dtype == np.float32
    assert_close(loss, expected, rtol=1e-6)
    assert_close(grad, expected_grad, rtol=1e-6, atol=1e-8)


def test_probability_inputs(rng):
    probs = rng.random((5, 4)) + 0.1
    labels = make_labels(rng, (5,), 4)
    loss_fn = nx.CrossEntropyLoss(from_logits=False)
    assert_close(loss_fn(probs, labels), ref.sparse_cross_entropy(probs, labels, from_logits=False), rtol=1e-12)


@pytest.mark.parametrize("options", [{}, {"pos_weight": [2.0, 0.5, 1.0]}, {"reduction": "none"}])
def test_binary_cross_entropy_loss(rng, options):
    logits = make_logits(rng, (4, 3))
    targets = rng.random((4, 3))
    sample_weight = rng.random((4, 1))  # broadcast along the classes, as PyTorch's weight
    loss_fn = nx.BinaryCrossEntropyLoss(**options)
    expected = ref.binary_cross_entropy_with_logits(logits, targets, weight=sample_weight, **options)
    assert_close(loss_fn(logits, targets, sample_weight), expected, rtol=1e-12)

    grad_output = rng.standard_normal((4, 3)) if options.get("reduction") == "none" else 0.5

    def weighted_total(z):
        return float(
            np.sum(ref.binary_cross_entropy_with_logits(z, targets, weight=sample_weight, **options) * grad_output)
        )

    expected_grad = _finite_difference_grad(weighted_total, logits)
    assert_close(
        loss_fn.grad(logits, targets, sample_weight, grad_output=grad_output), expected_grad, rtol=1e-6, atol=1e-8
    )
    loss, grad = loss_fn.loss_and_grad(logits, targets, sample_weight)
    assert_close(loss, expected, rtol=1e-12)
    assert_close(grad, loss_fn.grad(logits, targets, sample_weight), rtol=1e-12)


# ------------------------------------------------------------------------------------- options at construction


def _function_error(call):
    with pytest.raises(Exception) as info:
        call()
    return info.type, str(info.value)


BAD_OPTIONS = [
    {"reduction": "average"},
    {"label_smoothing": 1.5},
    {"label_smoothing": -0.1},
    {"z_loss": -1.0},
    {"ignore_index": 2.5},
    {"ignore_index": True},
    {"class_weight": [1.0, -2.0, 1.0]},
    {"class_weight": [1.0, np.nan, 1.0]},
    {"class_weight": ["a", "b", "c"]},
    {"axis": 1.0},
    {"z_loss": 0.1, "from_logits": False},
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=repr)
def test_bad_options_raise_at_construction_like_the_function(rng, options):
    logits = make_logits(rng, (2, 3))
    labels = np.array([0, 2])
    expected_type, expected_message = _function_error(lambda: nx.sparse_cross_entropy(logits, labels, **options))
    with pytest.raises(expected_type) as info:
        nx.CrossEntropyLoss(**options)
    if "class_weight" not in options or options["class_weight"][0] == "a":
        assert str(info.value) == expected_message
    else:  # the message names the bad weight and its index, whatever the logits
        assert re.search(r"class_weight must be non-negative, got (-2\.0|nan) at index \(1,\)", str(info.value))


def test_bad_binary_options_raise_at_construction():
    for options, exception, pattern in [
        ({"reduction": "avg"}, ValueError, "reduction must be one of"),
        ({"pos_weight": [1.0, -1.0]}, ValueError, r"pos_weight must be non-negative, got -1.0 at index \(1,\)"),
        ({"pos_weight": [[1.0]]}, ValueError, "pos_weight must be 1-D"),
    ]:
        with pytest.raises(exception, match=pattern):
            nx.BinaryCrossEntropyLoss(**options)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        nx.CrossEntropyLoss(None)  # type: ignore[misc]


def test_bad_input_at_call_writes_nothing(rng):
    loss_fn = nx.CrossEntropyLoss()
    logits = make_logits(rng, (3, 4))
    before = logits.copy()
    out = np.full_like(logits, SENTINEL)
    with pytest.raises(ValueError, match=r"label 9 at index \(1,\) is outside \[0, 4\)"):
        loss_fn.loss_and_grad(logits, np.array([0, 9, 1]), out=out)
    np.testing.assert_array_equal(out, SENTINEL)
    with pytest.raises(ValueError, match=r"label 9"):
        loss_fn.loss_and_grad(logits, np.array([0, 9, 1]), out=logits)
    np.testing.assert_array_equal(logits, before)
    with pytest.raises(TypeError, match="labels must be an array of integers"):
        loss_fn(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"labels have shape \(2,\)"):
        loss_fn(logits, np.array([0, 1]))
    with pytest.raises(TypeError, match="logits must be a float16, float32 or float64 array"):
        loss_fn(logits.astype(np.int32), np.array([0, 1, 2]))
    binary = nx.BinaryCrossEntropyLoss()
    out = np.full_like(logits, SENTINEL)
    with pytest.raises(ValueError, match="targets has shape"):
        binary.loss_and_grad(logits, np.zeros((3, 5)), out=out)
    np.testing.assert_array_equal(out, SENTINEL)


# --------------------------------------------------------------------------------- pickle, equality, repr


def test_class_weight_is_copied_and_frozen():
    weight = np.array([1.0, 2.0, 3.0])
    loss_fn = nx.CrossEntropyLoss(class_weight=weight)
    weight[0] = 100.0
    logits, labels = np.zeros((1, 3)), np.array([0])
    assert loss_fn.get_options()["class_weight"][0] == 1.0
    with pytest.raises(ValueError):
        loss_fn.get_options()["class_weight"][0] = 5.0
    # With a single row the weighted mean equals the unweighted loss whatever the weight: use "sum".
    assert nx.CrossEntropyLoss(class_weight=[1.0, 2.0, 3.0], reduction="sum")(logits, labels) == pytest.approx(
        np.log(3.0)
    )


@pytest.mark.parametrize(
    "loss_fn",
    [
        nx.CrossEntropyLoss(),
        nx.CrossEntropyLoss(class_weight=[1, 2, 3], label_smoothing=0.1, axis=1, reduction="sum"),
        nx.CrossEntropyLoss(from_logits=False, ignore_index=0),
        nx.BinaryCrossEntropyLoss(pos_weight=[2.0, 1.0], reduction="none"),
    ],
    ids=repr,
)
def test_pickle_copy_equality_hash(loss_fn):
    restored = pickle.loads(pickle.dumps(loss_fn))
    assert restored == loss_fn and hash(restored) == hash(loss_fn)
    assert copy.deepcopy(loss_fn) == loss_fn
    assert repr(restored) == repr(loss_fn)
    assert {loss_fn: 1}[restored] == 1


def test_equality_by_options():
    assert nx.CrossEntropyLoss() == nx.CrossEntropyLoss(reduction="mean")
    assert nx.CrossEntropyLoss(class_weight=[1, 2]) == nx.CrossEntropyLoss(class_weight=np.array([1.0, 2.0]))
    assert nx.CrossEntropyLoss(class_weight=[1, 2]) != nx.CrossEntropyLoss(class_weight=[1, 3])
    assert nx.CrossEntropyLoss(class_weight=[1, 2]) != nx.CrossEntropyLoss()
    assert nx.CrossEntropyLoss(label_smoothing=0.1) != nx.CrossEntropyLoss()
    assert nx.CrossEntropyLoss() != nx.BinaryCrossEntropyLoss()
    assert nx.BinaryCrossEntropyLoss(pos_weight=[1.0]) != nx.BinaryCrossEntropyLoss()


def test_repr_is_readable_and_evaluates_back():
    loss_fn = nx.CrossEntropyLoss(class_weight=[1.0, 0.5], label_smoothing=0.1, reduction="sum")
    text = repr(loss_fn)
    assert text == "CrossEntropyLoss(class_weight=[1. , 0.5], reduction='sum', label_smoothing=0.1)"
    assert eval(text, {"CrossEntropyLoss": nx.CrossEntropyLoss}) == loss_fn  # noqa: S307
    assert repr(nx.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(nx.BinaryCrossEntropyLoss(reduction="none")) == "BinaryCrossEntropyLoss(reduction='none')"
