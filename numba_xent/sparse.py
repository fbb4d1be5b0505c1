"""Cross-entropy with integer class labels: the loss, its gradient, and both from one read of the logits."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import _prepare
from ._kernels.rows import is_flat
from ._kernels.sparse import sparse_rows
from ._results import finish_grad, loss_outputs, reduce_losses
from ._softcap import apply_softcap, chain_softcap, check_softcap
from ._typing import FloatArray, Loss, Reduction

__all__ = ["sparse_cross_entropy", "sparse_cross_entropy_grad", "sparse_cross_entropy_with_grad"]


is_flat_rows = is_flat.py_func  # the kernels' flat-block rule, evaluated in Python


class SparseOptions(NamedTuple):
    """The validated options of the integer-label losses, as the kernel takes them (by these names)."""

    class_weight: np.ndarray | None  # float64 (C,)
    sample_weight: np.ndarray | None  # float64, one per row
    ignore_index: int
    label_smoothing: float
    z_loss: float
    from_logits: bool
    softcap: float | None  # logits are capped to softcap * tanh(logits / softcap) before the loss


_DEFAULT_OPTIONS = SparseOptions(None, None, -100, 0.0, 0.0, True, None)


def _check_options(ignore_index, label_smoothing, z_loss, from_logits, softcap) -> SparseOptions:
    """The validated scalar options (weights are added by the caller)."""
    if (
        type(ignore_index) is int
        and ignore_index == -100
        and type(label_smoothing) is float
        and label_smoothing == 0.0
        and type(z_loss) is float
        and z_loss == 0.0
        and from_logits is True
        and softcap is None
    ):
        return _DEFAULT_OPTIONS  # the defaults, valid as they are: most calls, and all that is left of a small call
    ignore_index = _prepare.check_ignore_index(ignore_index)
    label_smoothing = _prepare.check_fraction(label_smoothing, "label_smoothing")
    z_loss = _prepare.check_non_negative(z_loss, "z_loss")
    if not from_logits and z_loss != 0.0:
        raise ValueError("z_loss penalises the log-sum-exp of logits; it cannot be used with from_logits=False")
    softcap = check_softcap(softcap)
    if not from_logits and softcap is not None:
        raise ValueError("softcap caps logits; it cannot be used with from_logits=False")
    return SparseOptions(
        None, None, ignore_index, label_smoothing, z_loss, from_logits is True or bool(from_logits), softcap
    )


def _prepare_sparse(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int,
    class_weight: ArrayLike | None,
    sample_weight: ArrayLike | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    z_loss: float,
    from_logits: bool,
    softcap: float | None,
    out: np.ndarray | None = None,
) -> tuple[_prepare.Rows, np.ndarray, Reduction, SparseOptions]:
    rows = _prepare.as_rows(logits, axis)
    reduction = _prepare.check_reduction(reduction)
    options = _check_options(ignore_index, label_smoothing, z_loss, from_logits, softcap)
    # Labels out of range are found by the kernel (a pass over the labels fewer), unless a user's out= buffer would
    # be written before the kernel could report them.
    flat_labels = _prepare.labels_as_rows(labels, rows, options.ignore_index, check_range=out is not None)
    if class_weight is not None:
        class_weight = _prepare.weights(
            class_weight, (rows.n_classes,), "class_weight", f"logits with {rows.n_classes} classes"
        )
    if sample_weight is not None:
        sample_weight = _prepare.weights(sample_weight, rows.batch_shape, "sample_weight", "labels of that shape")
    if class_weight is not None or sample_weight is not None:
        options = options._replace(class_weight=class_weight, sample_weight=sample_weight)
    return rows, flat_labels, reduction, options


def _run(
    rows: _prepare.Rows,
    flat_labels: np.ndarray,
    reduction: str,
    options: SparseOptions,
    grad_output: ArrayLike,
    want_grad: bool,
    out: np.ndarray | None,
) -> tuple[Loss, FloatArray | None]:
    """Validate the gradient's inputs, then run the shared row kernel once. Returns (loss, gradient or None)."""
    scale, scale_rows = _prepare.grad_output_scale(grad_output, reduction, rows.batch_shape)
    grad_transform = None
    if options.softcap is not None:
        # The loss sees the capped logits (a copy: the caller's logits are never modified unless passed as out=);
        # the gradient then goes back through the cap.
        softcap = options.softcap
        capped = np.array(rows.data, copy=True)
        apply_softcap(capped, softcap)
        rows = dataclasses.replace(rows, data=capped)

        def grad_transform(grad: np.ndarray) -> None:
            chain_softcap(grad, capped, softcap)

    short = options.from_logits and is_flat_rows(rows.n_classes, rows.data.itemsize)
    losses, grad, copy_to_out = loss_outputs(rows, (rows.data.shape[0],), want_grad, out)
    total, denominator, bad_row = sparse_rows(short, options.from_logits).launch(
        rows.data.size,
        logits=rows.data,
        labels=flat_labels,
        class_weight=options.class_weight,
        sample_weight=options.sample_weight,
        ignore_index=options.ignore_index,
        label_smoothing=options.label_smoothing,
        z_loss=options.z_loss,
        grad_scale=scale,
        grad_scale_rows=scale_rows,
        # The gradient of a mean needs its denominator first: the kernel adds it before the rows, in the same
        # blocks as the loss adds it (the forward alone gets it with the losses).
        mean_gradient=reduction == "mean",
        losses=losses,
        grad=grad,
    )
    if bad_row >= 0:
        _prepare.raise_bad_label(flat_labels.reshape(rows.batch_shape), bad_row, rows, options.ignore_index)
    grad = finish_grad(grad, copy_to_out, out, rows, grad_transform)
    return reduce_losses(losses, total, denominator, reduction, rows.batch_shape, rows.dtype), grad


def sparse_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    from_logits: bool = True,
    softcap: float | None = None,
) -> Loss:
    """Softmax cross-entropy of integer labels, without ever building a one-hot array.

    Follows ``torch.nn.functional.cross_entropy`` with class-index targets, except that a "mean" over rows that
    are all ``ignore_index`` is 0.0 (PyTorch gives nan).

    Parameters
    ----------
    logits : ndarray of float16, float32 or float64
        Unnormalised scores (or probabilities if ``from_logits=False``), any shape, classes along ``axis``.
        float16 is computed in float32. Never modified, unless passed as ``out=``.
    labels : ndarray of any integer dtype
        Class indices, the shape of ``logits`` without ``axis``. Rows whose label is ``ignore_index`` are skipped.
    axis : int, default -1
        The class axis of ``logits``.
    class_weight : array_like of shape (C,), optional
        Weight of each class, gathered by label (PyTorch's ``weight``). Non-negative.
    sample_weight : array_like of the labels' shape, optional
        Weight of each row. Non-negative. The mean divides by ``sum(class_weight[y] * sample_weight)``.
    ignore_index : int, default -100
        Label value whose rows add nothing to the loss, the denominator or the gradient.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none" returns the per-row losses in the labels' shape; "mean" and "sum" return a NumPy scalar.
    label_smoothing : float in [0, 1], default 0.0
        PyTorch's label smoothing: ``(1-eps) w_y (-log p_y) + (eps/C) sum_c w_c (-log p_c)``.
    z_loss : float >= 0, default 0.0
        Adds ``z_loss * lse**2`` to each row, weighted like the row (PaLM's auxiliary loss).
    from_logits : bool, default True
        If False, ``logits`` holds probabilities and Keras's semantics apply: each row is divided by its sum and
        clipped to ``[1e-7, 1 - 1e-7]``, and its log replaces ``log_softmax`` in the formula above (weights and
        smoothing as PyTorch). The gradient is taken with respect to the probabilities given.
    softcap : float > 0, optional
        Gemma 2's logit soft-capping, as Liger-Kernel's ``softcap``: the loss (and z-loss) is taken on
        ``softcap * tanh(logits / softcap)``, and the gradient goes back through the cap. Not with
        ``from_logits=False``.

    Returns
    -------
    loss : NumPy scalar, or ndarray of the labels' shape for ``reduction="none"``
        float32 for float16/float32 logits, float64 for float64 logits.

    Raises
    ------
    ValueError
        A label outside ``[0, C)`` that is not ``ignore_index`` (the message names the value and its index);
        shapes that do not match; negative weights; an unknown reduction; ``label_smoothing`` outside [0, 1].
    TypeError
        Labels that are not integers; logits that are not float16/32/64.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import sparse_cross_entropy
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> float(sparse_cross_entropy(logits, np.array([0, 2])).round(6))
    0.175456
    >>> sparse_cross_entropy(logits, np.array([0, -100]), reduction="none").round(6)
    array([0.241311, 0.      ])
    """
    rows, flat_labels, reduction, options = _prepare_sparse(
        logits,
        labels,
        axis,
        class_weight,
        sample_weight,
        ignore_index,
        reduction,
        label_smoothing,
        z_loss,
        from_logits,
        softcap,
    )
    return _run(rows, flat_labels, reduction, options, 1.0, False, None)[0]


def sparse_cross_entropy_grad(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    from_logits: bool = True,
    softcap: float | None = None,
    grad_output: ArrayLike = 1.0,
    out: FloatArray | None = None,
) -> FloatArray:
    """Gradient of :func:`sparse_cross_entropy` with respect to ``logits``, times ``grad_output``.

    Equals PyTorch autograd of the same loss. Rows whose label is ``ignore_index`` get a zero gradient.

    Parameters
    ----------
    logits, labels, axis, class_weight, sample_weight, ignore_index, reduction, label_smoothing, z_loss, from_logits,
    softcap
        As for :func:`sparse_cross_entropy`.
    grad_output : float, or ndarray of the labels' shape for ``reduction="none"``, default 1.0
        The upstream gradient of the loss.
    out : ndarray of the logits' shape and dtype, optional
        Where to write the gradient; may be ``logits`` itself (the gradient then replaces the logits).

    Returns
    -------
    grad : ndarray of the logits' shape and dtype (``out`` if given)

    Raises
    ------
    ValueError, TypeError
        As for :func:`sparse_cross_entropy`, and for an ``out`` or ``grad_output`` of the wrong shape or dtype.
        Nothing is written to ``out`` when an error is raised.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import sparse_cross_entropy_grad
    >>> sparse_cross_entropy_grad(np.zeros((2, 2)), np.array([0, 1]))
    array([[-0.25,  0.25],
           [ 0.25, -0.25]])
    """
    rows, flat_labels, reduction, options = _prepare_sparse(
        logits,
        labels,
        axis,
        class_weight,
        sample_weight,
        ignore_index,
        reduction,
        label_smoothing,
        z_loss,
        from_logits,
        softcap,
        out,
    )
    grad = _run(rows, flat_labels, reduction, options, grad_output, True, out)[1]
    assert grad is not None
    return grad


def sparse_cross_entropy_with_grad(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    from_logits: bool = True,
    softcap: float | None = None,
    out: FloatArray | None = None,
) -> tuple[Loss, FloatArray]:
    """Loss and gradient together, from one read of the logits per row (the fused kernel).

    Parameters
    ----------
    logits, labels, axis, class_weight, sample_weight, ignore_index, reduction, label_smoothing, z_loss, from_logits,
    softcap
        As for :func:`sparse_cross_entropy`.
    out : ndarray of the logits' shape and dtype, optional
        Where to write the gradient. ``out=logits`` computes the gradient in place, overwriting the logits.

    Returns
    -------
    loss : as :func:`sparse_cross_entropy` returns it
    grad : ndarray of the logits' shape and dtype, the gradient of ``loss`` (``out`` if given)

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import sparse_cross_entropy_with_grad
    >>> logits = np.zeros((2, 2))
    >>> loss, grad = sparse_cross_entropy_with_grad(logits, np.array([0, 1]), out=logits)
    >>> float(loss.round(6)), grad is logits
    (0.693147, True)
    """
    rows, flat_labels, reduction, options = _prepare_sparse(
        logits,
        labels,
        axis,
        class_weight,
        sample_weight,
        ignore_index,
        reduction,
        label_smoothing,
        z_loss,
        from_logits,
        softcap,
        out,
    )
    loss, grad = _run(rows, flat_labels, reduction, options, 1.0, True, out)
    assert grad is not None
    return loss, grad
