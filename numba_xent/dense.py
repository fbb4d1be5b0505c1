"""Cross-entropy with probability targets, and binary cross-entropy with logits."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _prepare
from ._kernels.binary import bce_rows
from ._kernels.dense import dense_rows
from ._results import finish, loss_outputs, mean_scale, reduce_losses
from ._typing import FloatArray, Loss, Reduction

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_grad",
]


def _targets_like(targets, rows: _prepare.Rows, name: str = "targets") -> np.ndarray:
    """``targets`` as the same contiguous (rows, classes) layout as ``rows`` (float64 for float64 logits)."""
    targets = np.asarray(targets)
    if targets.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real array, got dtype {targets.dtype}")
    if targets.shape != rows.shape:
        raise ValueError(f"{name} has shape {targets.shape} but logits have shape {rows.shape}")
    moved = np.moveaxis(targets, rows.axis, -1)
    return np.ascontiguousarray(moved, dtype=rows.data.dtype).reshape(rows.data.shape)


def _dense(
    logits: ArrayLike,
    targets: ArrayLike,
    axis: int,
    class_weight: ArrayLike | None,
    sample_weight: ArrayLike | None,
    reduction: str,
    label_smoothing: float,
    grad_output: ArrayLike,
    want_grad: bool,
    out: np.ndarray | None,
) -> Any:
    rows = _prepare.as_rows(logits, axis)
    reduction = _prepare.check_reduction(reduction)
    label_smoothing = _prepare.check_fraction(label_smoothing, "label_smoothing")
    target_rows = _targets_like(targets, rows)
    class_weight = _prepare.weights(
        class_weight, (rows.n_classes,), "class_weight", f"logits with {rows.n_classes} classes"
    )
    sample_weight = _prepare.weights(sample_weight, rows.batch_shape, "sample_weight", "the batch")
    scale, scale_rows = _prepare.grad_output_scale(grad_output, reduction, rows.batch_shape)
    n_rows = rows.data.shape[0]
    if reduction == "mean":
        scale = mean_scale(scale, n_rows)
    losses, grad, copy_to_out = loss_outputs(rows, (n_rows,), want_grad, out)
    total = dense_rows.launch(
        rows.data.size,
        logits=rows.data,
        targets=target_rows,
        class_weight=class_weight,
        sample_weight=sample_weight,
        label_smoothing=label_smoothing,
        grad_scale=scale,
        grad_scale_rows=scale_rows,
        losses=losses,
        grad=grad,
    )
    if grad is not None:
        return finish(grad, copy_to_out, out, rows)
    return reduce_losses(losses, total, n_rows, reduction, rows.batch_shape, rows.dtype)


def cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Loss:
    """Softmax cross-entropy against probability targets (soft labels).

    Follows ``torch.nn.functional.cross_entropy`` with probability targets: the loss of a row is
    ``-sum_c w_c t_c log_softmax(x)_c`` with ``t = (1 - eps) targets + eps / C``; "mean" divides by the number of
    rows (also when ``sample_weight`` is given: Keras's "sum over batch size").

    Parameters
    ----------
    logits : ndarray of float16, float32 or float64
        Unnormalised scores, classes along ``axis``.
    targets : array_like, same shape as ``logits``
        Class probabilities per row.
    axis : int, default -1
        The class axis.
    class_weight : array_like of shape (C,), optional
        Per-class weights, non-negative.
    sample_weight : array_like of the batch shape, optional
        Per-row weights, non-negative.
    reduction : {"mean", "sum", "none"}, default "mean"
    label_smoothing : float in [0, 1], default 0.0

    Returns
    -------
    loss : NumPy scalar, or ndarray of the batch shape for ``reduction="none"``
        float32 for float16/float32 logits, float64 for float64.

    Raises
    ------
    ValueError
        Shapes that do not match, negative weights, an unknown reduction, smoothing outside [0, 1].
    TypeError
        Non-float logits.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import cross_entropy
    >>> logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> float(cross_entropy(logits, np.array([[1.0, 0.0], [0.5, 0.5]])).round(6))
    0.626928
    """
    return _dense(logits, targets, axis, class_weight, sample_weight, reduction, label_smoothing, 1.0, False, None)


def cross_entropy_grad(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    grad_output: ArrayLike = 1.0,
    out: FloatArray | None = None,
) -> FloatArray:
    """Gradient of :func:`cross_entropy` with respect to ``logits``, times ``grad_output``.

    Parameters
    ----------
    logits, targets, axis, class_weight, sample_weight, reduction, label_smoothing
        As for :func:`cross_entropy`.
    grad_output : float, or ndarray of the batch shape for ``reduction="none"``, default 1.0
        The upstream gradient of the loss.
    out : ndarray of the logits' shape and dtype, optional
        Where to write the gradient (may be ``logits`` itself).

    Returns
    -------
    grad : ndarray of the logits' shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import cross_entropy_grad
    >>> cross_entropy_grad(np.zeros((1, 2)), np.array([[1.0, 0.0]]))
    array([[-0.5,  0.5]])
    """
    return _dense(
        logits, targets, axis, class_weight, sample_weight, reduction, label_smoothing, grad_output, True, out
    )


def _bce(
    logits: ArrayLike,
    targets: ArrayLike,
    pos_weight: ArrayLike | None,
    weight: ArrayLike | None,
    reduction: str,
    grad_output: ArrayLike,
    want_grad: bool,
    out: np.ndarray | None,
) -> Any:
    logits_array = np.asarray(logits)
    scalar_input = logits_array.ndim == 0
    rows = _prepare.as_rows(logits_array.reshape(1) if scalar_input else logits_array, -1)
    reduction = _prepare.check_reduction(reduction)
    targets = np.asarray(targets)
    target_rows = _targets_like(targets.reshape(1) if scalar_input and targets.ndim == 0 else targets, rows)
    pos_weight = _prepare.weights(
        pos_weight, (rows.n_classes,), "pos_weight", f"logits with {rows.n_classes} classes along the last axis"
    )
    if weight is not None:
        weight = np.asarray(weight)
        try:
            weight = np.broadcast_to(weight, rows.shape)
        except ValueError:
            raise ValueError(
                f"weight has shape {weight.shape}, which does not broadcast to the logits' shape {rows.shape}"
            ) from None
        # A weight of fewer dimensions is expanded to the logits' shape (a copy the size of the logits).
        weight_flat = _prepare.weights(weight, rows.shape, "weight", "logits")
        assert weight_flat is not None
        weight = weight_flat.reshape(rows.data.shape)
    scale, scale_elements = _prepare.grad_output_scale(grad_output, reduction, rows.shape)
    if scale_elements is not None:
        scale_elements = scale_elements.reshape(rows.data.shape)
    n_elements = rows.data.size
    if reduction == "mean":
        scale = mean_scale(scale, n_elements)
    losses, grad, copy_to_out = loss_outputs(
        rows, rows.data.shape if reduction == "none" and not want_grad else None, want_grad, out
    )
    total = bce_rows.launch(
        rows.data.size,
        logits=rows.data,
        targets=target_rows,
        pos_weight=pos_weight,
        weight=weight,
        grad_scale=scale,
        grad_scale_elements=scale_elements,
        losses=losses,
        grad=grad,
    )
    if grad is not None:
        grad = finish(grad, copy_to_out, out, rows)
        return grad.reshape(()) if scalar_input and out is None else grad
    return reduce_losses(losses, total, n_elements, reduction, logits_array.shape, rows.dtype)


def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    pos_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Loss:
    """Binary cross-entropy of logits against targets in [0, 1].

    Follows ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Parameters
    ----------
    logits : ndarray of float16, float32 or float64
        One logit per element.
    targets : array_like, same shape as ``logits``
        Target probabilities.
    pos_weight : array_like of shape (C,), optional
        Weight of the positive term per class, the last axis of ``logits``.
    weight : array_like broadcastable to the logits' shape, optional
        Weight of each element.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" divides by the number of elements.

    Returns
    -------
    loss : NumPy scalar, or ndarray of the logits' shape for ``reduction="none"``

    Raises
    ------
    ValueError
        Shapes that do not match, negative weights, an unknown reduction.
    TypeError
        Non-float logits.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import binary_cross_entropy_with_logits
    >>> float(binary_cross_entropy_with_logits(np.array([0.0, 0.0]), np.array([1.0, 0.0])).round(6))
    0.693147
    """
    return _bce(logits, targets, pos_weight, weight, reduction, 1.0, False, None)


def binary_cross_entropy_with_logits_grad(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    pos_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    grad_output: ArrayLike = 1.0,
    out: FloatArray | None = None,
) -> FloatArray:
    """Gradient of :func:`binary_cross_entropy_with_logits` with respect to ``logits``, times ``grad_output``.

    Parameters
    ----------
    logits, targets, pos_weight, weight, reduction
        As for :func:`binary_cross_entropy_with_logits`.
    grad_output : float, or ndarray of the logits' shape for ``reduction="none"``, default 1.0
    out : ndarray of the logits' shape and dtype, optional

    Returns
    -------
    grad : ndarray of the logits' shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import binary_cross_entropy_with_logits_grad
    >>> binary_cross_entropy_with_logits_grad(np.array([0.0, 0.0]), np.array([1.0, 0.0]))
    array([-0.25,  0.25])
    """
    return _bce(logits, targets, pos_weight, weight, reduction, grad_output, True, out)
