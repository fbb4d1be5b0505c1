"""PyTorch (CPU, float64 autograd) as an oracle for losses and gradients; skipped when torch is missing."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SPARSE_CASES, assert_close, case_id, make_logits, make_probs, rel_atol, sparse_case

import numba_xent as nx

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (logits shape, class axis): (batch, seq, classes) with -100 labels, multi-head (batch, heads, classes),
# and torch's own (N, C, d) layout.
SHAPES = {"batch-seq": ((4, 5, 11), -1), "multi-head": ((6, 3, 8), -1), "NCd-axis1": ((5, 7, 3), 1)}


def _t(x):
    return torch.tensor(np.asarray(x, dtype=np.float64))


def _backward(loss, x, reduction, grad_output):
    if reduction == "none":
        loss.backward(_t(grad_output))
    else:
        (loss * float(grad_output)).backward()
    return loss.detach().numpy(), x.grad.numpy()


def torch_sparse(
    logits,
    labels,
    *,
    grad_output=1.0,
    axis=-1,
    class_weight=None,
    sample_weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    z_loss=0.0,
    from_logits=True,
):
    x = _t(logits).requires_grad_(True)
    xc = torch.movedim(x, axis, 1)  # torch wants classes on dim 1
    n_classes = xc.shape[1]
    target = torch.tensor(np.asarray(labels).astype(np.int64))
    weight = None if class_weight is None else _t(class_weight)
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    w_y = (torch.ones(target.shape, dtype=torch.float64) if weight is None else weight[safe]) * valid

    if from_logits and sample_weight is None and not z_loss:
        loss = F.cross_entropy(
            xc, target, weight=weight, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
        )
        return _backward(loss, x, reduction, grad_output)

    if from_logits:
        per_row = F.cross_entropy(
            xc, target, weight=weight, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing
        )
        if z_loss:
            per_row = per_row + z_loss * w_y * torch.logsumexp(xc, dim=1) ** 2
    else:  # Keras probabilities: renormalise, clip, log
        p = torch.clamp(xc / xc.sum(dim=1, keepdim=True), 1e-7, 1 - 1e-7)
        log_p = torch.log(p)
        per_row = (1 - label_smoothing) * F.nll_loss(
            log_p, target, weight=weight, ignore_index=ignore_index, reduction="none"
        )
        if label_smoothing:
            w = torch.ones(n_classes, dtype=torch.float64) if weight is None else weight
            shape = [1, n_classes] + [1] * (xc.ndim - 2)
            smooth = -(log_p * w.reshape(shape)).sum(dim=1)
            per_row = per_row + label_smoothing / n_classes * smooth * valid
    s = torch.ones(target.shape, dtype=torch.float64) if sample_weight is None else _t(sample_weight)
    per_row = per_row * s
    if reduction == "none":
        loss = per_row
    elif reduction == "sum":
        loss = per_row.sum()
    else:
        loss = per_row.sum() / (w_y * s).sum()
    return _backward(loss, x, reduction, grad_output)


def compare(actual, expected, dtype, what):
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    atol = rel_atol(expected, 1e-13 if dtype == np.float64 else 1e-6)
    assert_close(actual, expected, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape_name", SHAPES)
@pytest.mark.parametrize("case", SPARSE_CASES, ids=case_id)
def test_sparse_against_torch(rng, case, shape_name, dtype):
    shape, axis = SHAPES[shape_name]
    logits, labels, kwargs = sparse_case(rng, case, shape, axis=axis, dtype=dtype)
    kwargs["axis"] = axis
    reduction = kwargs.get("reduction", "mean")
    grad_output = rng.uniform(-2, 2, labels.shape) if reduction == "none" else 1.5
    expected_loss, expected_grad = torch_sparse(logits, labels, grad_output=grad_output, **kwargs)

    compare(nx.sparse_cross_entropy(logits, labels, **kwargs), expected_loss, dtype, "loss")
    grad = nx.sparse_cross_entropy_grad(logits, labels, grad_output=grad_output, **kwargs)
    assert grad.dtype == dtype
    compare(grad, expected_grad, dtype, "grad")
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, **kwargs)
    compare(loss, expected_loss, dtype, "with_grad loss")
    _, expected_grad_1 = torch_sparse(
        logits, labels, grad_output=np.ones(labels.shape) if reduction == "none" else 1.0, **kwargs
    )
    compare(grad, expected_grad_1, dtype, "with_grad grad")


@pytest.mark.parametrize(
    "label_dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
)
def test_label_dtypes_against_torch(rng, label_dtype):
    logits = make_logits(rng, (3, 9, 6), np.float32)
    labels = rng.integers(0, 6, (3, 6)).astype(label_dtype)
    kwargs = {"axis": 1, "label_smoothing": 0.1}
    expected_loss, expected_grad = torch_sparse(logits, labels, **kwargs)
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, **kwargs)
    compare(loss, expected_loss, np.float32, "loss")
    compare(grad, expected_grad, np.float32, "grad")


def test_all_ignored_is_zero_where_torch_is_nan(rng):
    logits = make_logits(rng, (3, 4))
    labels = np.full(3, -100)
    torch_loss = F.cross_entropy(_t(logits), torch.tensor(labels))
    assert torch.isnan(torch_loss)  # the documented deviation
    assert nx.sparse_cross_entropy(logits, labels) == 0.0


# ------------------------------------------------------------------------------------------ dense + binary


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", ["plain", "weighted", "smoothed-axis1"])
def test_dense_against_torch(rng, dtype, reduction, options):
    shape, axis = ((4, 6, 5), 1) if options == "smoothed-axis1" else ((4, 5, 6), -1)
    logits = make_logits(rng, shape, dtype)
    targets = make_probs(rng, shape, axis=axis, dtype=dtype)
    n_classes = shape[axis]
    kwargs = {}
    if options == "weighted":
        kwargs["class_weight"] = rng.uniform(0.2, 2, n_classes)
    if options == "smoothed-axis1":
        kwargs.update(axis=1, label_smoothing=0.2, class_weight=rng.uniform(0.2, 2, n_classes))
    x = _t(logits).requires_grad_(True)
    loss = F.cross_entropy(
        torch.movedim(x, axis, 1),
        torch.movedim(_t(targets), axis, 1),
        reduction=reduction,
        weight=None if "class_weight" not in kwargs else _t(kwargs["class_weight"]),
        label_smoothing=kwargs.get("label_smoothing", 0.0),
    )
    grad_output = rng.uniform(-2, 2, loss.shape) if reduction == "none" else 0.5
    expected_loss, expected_grad = _backward(loss, x, reduction, grad_output)
    compare(nx.cross_entropy(logits, targets, reduction=reduction, **kwargs), expected_loss, dtype, "loss")
    grad = nx.cross_entropy_grad(logits, targets, reduction=reduction, grad_output=grad_output, **kwargs)
    assert grad.dtype == dtype
    compare(grad, expected_grad, dtype, "grad")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", ["plain", "pos_weight", "weight", "both"])
def test_binary_against_torch(rng, dtype, reduction, options):
    logits = make_logits(rng, (3, 4, 5), dtype)
    targets = rng.random((3, 4, 5)).astype(dtype)
    kwargs = {}
    if options in ("pos_weight", "both"):
        kwargs["pos_weight"] = rng.uniform(0.2, 3, 5)
    if options in ("weight", "both"):
        kwargs["weight"] = rng.uniform(0, 2, (3, 4, 5))
    x = _t(logits).requires_grad_(True)
    loss = F.binary_cross_entropy_with_logits(
        x, _t(targets), reduction=reduction, **{k: _t(v) for k, v in kwargs.items()}
    )
    grad_output = rng.uniform(-2, 2, loss.shape) if reduction == "none" else 3.0
    expected_loss, expected_grad = _backward(loss, x, reduction, grad_output)
    compare(
        nx.binary_cross_entropy_with_logits(logits, targets, reduction=reduction, **kwargs),
        expected_loss,
        dtype,
        "loss",
    )
    grad = nx.binary_cross_entropy_with_logits_grad(
        logits, targets, reduction=reduction, grad_output=grad_output, **kwargs
    )
    assert grad.dtype == dtype
    compare(grad, expected_grad, dtype, "grad")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axis", [-1, 1])
def test_softmax_family_against_torch(rng, dtype, axis):
    x = make_logits(rng, (3, 6, 7), dtype, scale=6.0)
    xt = _t(x)
    compare(nx.log_softmax(x, axis=axis), torch.log_softmax(xt, dim=axis).numpy(), dtype, "log_softmax")
    compare(nx.softmax(x, axis=axis), torch.softmax(xt, dim=axis).numpy(), dtype, "softmax")
    compare(nx.logsumexp(x, axis=axis), torch.logsumexp(xt, dim=axis).numpy(), dtype, "logsumexp")


def test_extreme_logits_like_torch():
    # float32 torch on the same extreme inputs: where torch gives a finite answer we must agree.
    big = 3e38
    logits = np.array([[big, -big, 0.0], [big, big, 0.0], [0.0, big, -big]], dtype=np.float32)
    labels = np.array([0, 1, 1])
    x = torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, torch.tensor(labels), reduction="none")
    loss.backward(torch.ones(3))
    torch_loss, torch_grad = loss.detach().numpy(), x.grad.numpy()
    assert np.all(np.isfinite(torch_loss)) and np.all(np.isfinite(torch_grad))
    assert_close(nx.sparse_cross_entropy(logits, labels, reduction="none"), torch_loss, rtol=1e-6)
    assert_close(
        nx.sparse_cross_entropy_grad(logits, labels, reduction="none", grad_output=np.ones(3)),
        torch_grad,
        rtol=1e-6,
        atol=1e-30,
    )
