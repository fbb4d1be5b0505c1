"""Small helpers shared by the test modules (input builders and comparison utilities)."""

from __future__ import annotations

import numpy as np

SENTINEL = 12345.0


def make_logits(rng, shape, dtype=np.float64, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def make_labels(rng, shape, n_classes, dtype=np.int64, ignore_frac=0.0, ignore_index=-100):
    labels = rng.integers(0, n_classes, size=shape).astype(dtype)
    if ignore_frac:
        mask = rng.random(shape) < ignore_frac
        labels = np.where(mask, ignore_index, labels).astype(dtype)
    return labels


def make_probs(rng, shape, axis=-1, dtype=np.float64):
    raw = rng.random(shape) + 0.05
    return (raw / raw.sum(axis=axis, keepdims=True)).astype(dtype)


def sentinel_like(shape, dtype):
    return np.full(shape, SENTINEL, dtype=dtype)


def assert_close(actual, expected, rtol, atol=0.0, err_msg=""):
    """assert_allclose that also checks the shape (and treats NaN == NaN)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape} {err_msg}"
    np.testing.assert_allclose(
        actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol, err_msg=err_msg
    )


def rel_atol(expected, rtol):
    """An absolute tolerance scaled to the largest magnitude of `expected` (for values that are ~0)."""
    expected = np.asarray(expected, dtype=np.float64)
    finite = expected[np.isfinite(expected)]
    if finite.size == 0:
        return 0.0
    return rtol * float(np.max(np.abs(finite), initial=0.0))


# ------------------------------------------------------------------------------------------ option cases
# Each case is a dict of sparse_cross_entropy keywords; the markers True / "ignore" are materialised by
# `sparse_case` with random data of the right shape.
SPARSE_CASES = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"class_weight": True},
    {"sample_weight": True, "reduction": "sum"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 1.0, "reduction": "none"},
    {"z_loss": 0.01},
    {"ignore": True},
    {"ignore": True, "ignore_index": 2},
    {"ignore": True, "class_weight": True, "label_smoothing": 0.2},
    {"ignore": True, "class_weight": True, "sample_weight": True, "label_smoothing": 0.3, "z_loss": 0.05},
    {
        "ignore": True,
        "class_weight": True,
        "sample_weight": True,
        "label_smoothing": 0.3,
        "z_loss": 0.05,
        "reduction": "none",
    },
    {"ignore": True, "class_weight": True, "sample_weight": True, "z_loss": 0.02, "reduction": "sum"},
    {"from_logits": False},
    {"from_logits": False, "reduction": "none", "ignore": True},
    {"from_logits": False, "label_smoothing": 0.1, "reduction": "sum"},
    {"from_logits": False, "class_weight": True, "sample_weight": True, "ignore": True},
]


def case_id(case):
    return "-".join(f"{k}={v}" for k, v in case.items()) or "default"


def sparse_case(rng, case, logits_shape, axis=-1, dtype=np.float64, label_dtype=np.int64):
    """Random (logits, labels, kwargs) for one entry of SPARSE_CASES."""
    case = dict(case)
    n_classes = logits_shape[axis]
    labels_shape = tuple(s for i, s in enumerate(logits_shape) if i != axis % len(logits_shape))
    if case.get("from_logits", True):
        logits = make_logits(rng, logits_shape, dtype)
    else:
        logits = make_probs(rng, logits_shape, axis=axis, dtype=dtype) * 1.7  # unnormalised on purpose
    ignore = case.pop("ignore", False)
    ignore_index = case.get("ignore_index", -100)
    labels = rng.integers(0, n_classes, size=labels_shape)
    if ignore:
        mask = rng.random(labels_shape) < 0.3
        labels = np.where(mask, ignore_index, labels)
        if ignore_index == -100 and labels.size:
            labels.flat[0] = -100  # at least one ignored row
    labels = labels.astype(label_dtype)
    if case.get("class_weight") is True:
        case["class_weight"] = rng.uniform(0.2, 2.0, n_classes)
    if case.get("sample_weight") is True:
        case["sample_weight"] = rng.uniform(0.0, 2.0, labels_shape)
    return logits, labels, case
