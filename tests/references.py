"""Float64 NumPy references, written the obvious way and independently of the kernels.

Every function upcasts its inputs to float64, moves the class axis last, and computes the loss from its
textbook definition: ``log_softmax = x - max - log(sum(exp(x - max)))`` and ``np.take_along_axis`` for the
label.  Nothing here shares code or formulas with ``numba_xent``; the tests compare against these (and against
PyTorch and finite differences) only.
"""

from __future__ import annotations

import numpy as np

F64 = np.float64
KERAS_EPSILON = 1e-7


def _as64(x):
    return np.asarray(x, dtype=F64)


# --------------------------------------------------------------------------------------------------- softmax


def logsumexp(x, axis=-1):
    x = _as64(x)
    x_max = np.max(x, axis=axis, keepdims=True)
    out = x_max + np.log(np.sum(np.exp(x - x_max), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis)


def log_softmax(x, axis=-1):
    x = _as64(x)
    x_max = np.max(x, axis=axis, keepdims=True)
    shifted = x - x_max
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(x, axis=-1):
    x = _as64(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


# ---------------------------------------------------------------------------------------------- reductions


def _reduce(per_row, reduction, denominator):
    if reduction == "none":
        return per_row
    if reduction == "sum":
        return F64(np.sum(per_row))
    if reduction == "mean":
        if denominator == 0:
            return F64(0.0)
        return F64(np.sum(per_row) / denominator)
    raise ValueError(reduction)


# ------------------------------------------------------------------------------------------- sparse labels


def _ignored_mask(labels, ignore_index):
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.unsignedinteger) and ignore_index < 0:
        return np.zeros(labels.shape, dtype=bool)
    return labels.astype(np.int64) == ignore_index


def sparse_cross_entropy(
    logits,
    labels,
    *,
    axis=-1,
    class_weight=None,
    sample_weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    z_loss=0.0,
    from_logits=True,
):
    """PyTorch ``F.cross_entropy`` (+ sample weights, z-loss and the Keras probability input)."""
    x = np.moveaxis(_as64(logits), axis, -1)
    n_classes = x.shape[-1]
    labels = np.asarray(labels)
    assert labels.shape == x.shape[:-1], (labels.shape, x.shape)
    ignored = _ignored_mask(labels, ignore_index)
    safe_labels = np.where(ignored, 0, labels.astype(np.int64))

    class_w = np.ones(n_classes) if class_weight is None else _as64(class_weight)
    sample_w = np.ones(labels.shape) if sample_weight is None else np.broadcast_to(_as64(sample_weight), labels.shape)

    if from_logits:
        log_p = log_softmax(x, axis=-1)
        # -log p_y = (max - x_y) + log1p(sum over the classes other than the argmax of exp(x_c - max)): the log of a
        # sum kept apart from the max's 1, so that a confident row's tiny loss keeps its digits (log(1 + 1e-14)
        # keeps two of them). Rows with a NaN or an infinite max keep log_softmax's answer.
        top = np.argmax(x, axis=-1)[..., None]
        x_max = np.take_along_axis(x, top, axis=-1)
        with np.errstate(invalid="ignore"):
            others = np.exp(x - x_max)
        np.put_along_axis(others, top, 0.0, axis=-1)
        gap = (x_max - np.take_along_axis(x, safe_labels[..., None], axis=-1))[..., 0]
        with np.errstate(invalid="ignore"):
            nll_apart = gap + np.log1p(others.sum(-1))
        textbook = np.take_along_axis(log_p, safe_labels[..., None], axis=-1)[..., 0]
        label_log_p = np.where(np.isfinite(x_max[..., 0]), -nll_apart, textbook)
    else:
        # Keras: renormalise each row, clip, take the log.
        p = x / np.sum(x, axis=-1, keepdims=True)
        log_p = np.log(np.clip(p, KERAS_EPSILON, 1.0 - KERAS_EPSILON))
        label_log_p = None
    nll = -log_p
    nll_label = np.take_along_axis(nll, safe_labels[..., None], axis=-1)[..., 0]
    if label_log_p is not None:
        nll_label = -label_log_p
    w_label = class_w[safe_labels]

    eps = label_smoothing
    per_row = (1.0 - eps) * w_label * nll_label if eps != 1.0 else np.zeros(labels.shape)
    if eps:
        per_row = per_row + (eps / n_classes) * np.sum(class_w * nll, axis=-1)
    if z_loss:
        per_row = per_row + z_loss * w_label * logsumexp(x, axis=-1) ** 2

    per_row = np.where(ignored, 0.0, per_row * sample_w)
    denominator = np.sum(np.where(ignored, 0.0, w_label * sample_w))
    return _reduce(per_row, reduction, denominator)


# ---------------------------------------------------------------------------------------- dense (soft) targets


def cross_entropy(
    logits, targets, *, axis=-1, class_weight=None, sample_weight=None, reduction="mean", label_smoothing=0.0
):
    """PyTorch ``F.cross_entropy`` with class-probability targets (mean divides by the number of rows)."""
    x = np.moveaxis(_as64(logits), axis, -1)
    t = np.moveaxis(_as64(targets), axis, -1)
    n_classes = x.shape[-1]
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / n_classes
    class_w = np.ones(n_classes) if class_weight is None else _as64(class_weight)
    per_row = -np.sum(class_w * t * log_softmax(x, axis=-1), axis=-1)
    if sample_weight is not None:
        per_row = per_row * np.broadcast_to(_as64(sample_weight), per_row.shape)
    return _reduce(per_row, reduction, per_row.size)


# ------------------------------------------------------------------------------------------------- binary


def binary_cross_entropy_with_logits(logits, targets, *, pos_weight=None, weight=None, reduction="mean"):
    """PyTorch ``F.binary_cross_entropy_with_logits``: -w * [pw * t * log s(x) + (1 - t) * log(1 - s(x))]."""
    x = _as64(logits)
    t = _as64(targets)
    log_sigmoid = -np.logaddexp(0.0, -x)
    log_one_minus_sigmoid = -np.logaddexp(0.0, x)
    pw = 1.0 if pos_weight is None else _as64(pos_weight)  # broadcasts along the last axis
    per_elem = -(pw * t * log_sigmoid + (1.0 - t) * log_one_minus_sigmoid)
    if weight is not None:
        per_elem = per_elem * _as64(weight)
    per_elem = np.broadcast_to(per_elem, x.shape)
    return _reduce(per_elem, reduction, per_elem.size)


# ------------------------------------------------------------------------------------- finite differences


def numeric_grad(scalar_fn, x, rel_step=1e-5):
    """Central finite differences of ``scalar_fn`` at ``x`` (float64, one coordinate at a time)."""
    x = np.array(x, dtype=F64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        orig = x[idx]
        step = rel_step * max(1.0, abs(orig)) if np.isfinite(orig) else rel_step
        x[idx] = orig + step
        f_plus = scalar_fn(x)
        x[idx] = orig - step
        f_minus = scalar_fn(x)
        x[idx] = orig
        diff = f_plus - f_minus
        grad[idx] = 0.0 if diff == 0 else diff / (2.0 * step)
    return grad


def loss_numeric_grad(loss_fn, x, reduction, grad_output=1.0, **kwargs):
    """Finite-difference gradient of ``grad_output * loss`` (``sum(grad_output * loss)`` for reduction="none")."""
    g = _as64(grad_output)

    def scalar(z):
        return float(np.sum(g * loss_fn(z, reduction=reduction, **kwargs)))

    return numeric_grad(scalar, x)
