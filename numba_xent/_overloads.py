"""The integer-label losses callable from users' own ``@numba.njit`` code.

Inside jitted code, ``numba_xent.sparse_cross_entropy``, ``sparse_cross_entropy_grad`` and
``sparse_cross_entropy_with_grad`` take 2-D C-contiguous float32 or float64 logits ``(rows, classes)``, integer
labels of one dimension, and the options ``class_weight``, ``ignore_index``, ``reduction`` (a literal string) and
``label_smoothing``; they run the same row kernels as the Python functions (the serial twin for small inputs, the
parallel kernel for large ones). A label outside ``[0, C)`` that is not ``ignore_index`` raises ``ValueError``
naming the label and its row; nothing is read out of bounds.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload

from ._jit import OVERLOAD_OPTIONS, jit
from ._kernels.rows import is_flat, mean_scale
from ._kernels.sparse import sparse_rows
from ._launch import PARALLEL_MIN_ELEMENTS
from .sparse import sparse_cross_entropy, sparse_cross_entropy_grad, sparse_cross_entropy_with_grad

REDUCTION_CODES = {"none": 0, "sum": 1, "mean": 2}
# The kernels' twins as module globals (jitted code can call dispatchers, not attributes of Python objects).
_short_serial, _short_parallel = sparse_rows(True, True).serial, sparse_rows(True, True).parallel
_long_serial, _long_parallel = sparse_rows(False, True).serial, sparse_rows(False, True).parallel


def _reduction_code(reduction) -> int:
    """The literal reduction's code, or a TypingError (Numba then retries with the literal value)."""
    if isinstance(reduction, types.Omitted):
        value = reduction.value
    elif isinstance(reduction, types.StringLiteral):
        value = reduction.literal_value
    elif isinstance(reduction, str):
        value = reduction
    else:
        raise TypingError("numba_xent in @njit code: reduction must be a literal string")
    if value not in REDUCTION_CODES:
        raise TypingError(f"reduction must be one of 'mean', 'sum', 'none', got {value!r}")
    return REDUCTION_CODES[value]


def _check_types(logits, labels, class_weight) -> None:
    if not (isinstance(logits, types.Array) and logits.ndim == 2 and logits.dtype in (types.float32, types.float64)):
        raise TypingError(f"numba_xent in @njit code: logits must be a 2-D float32 or float64 array, got {logits}")
    if logits.layout != "C":
        raise TypingError(f"numba_xent in @njit code: logits must be C-contiguous, got layout {logits.layout!r}")
    if not (isinstance(labels, types.Array) and labels.ndim == 1 and isinstance(labels.dtype, types.Integer)):
        raise TypingError(f"numba_xent in @njit code: labels must be a 1-D integer array, got {labels}")
    if not (class_weight is None or isinstance(class_weight, (types.NoneType, types.Omitted))):
        if not (isinstance(class_weight, types.Array) and class_weight.ndim == 1):
            raise TypingError(f"numba_xent in @njit code: class_weight must be a 1-D array, got {class_weight}")


@jit
def _run(logits, labels, class_weight, ignore_index, reduction_code, label_smoothing, grad):
    """Validate, run the row kernel, raise on a bad label; returns (per-row losses, sum, denominator)."""
    n_rows, n_classes = logits.shape
    if labels.shape[0] != n_rows:
        raise ValueError("numba_xent: labels must have one entry per row of logits")
    if class_weight is not None:
        if class_weight.shape[0] != n_classes:
            raise ValueError("numba_xent: class_weight must have one entry per class")
        for c in range(n_classes):
            if not class_weight[c] >= 0.0:
                raise ValueError("numba_xent: class_weight must be non-negative")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError("numba_xent: label_smoothing must be in [0, 1]")
    losses = np.empty(n_rows)
    arguments = (logits, labels, class_weight, None, ignore_index, label_smoothing, 0.0, 1.0, None)
    mean_gradient = reduction_code == 2
    short = is_flat(n_classes, logits.itemsize)
    if logits.size < PARALLEL_MIN_ELEMENTS:
        if short:
            total, denominator, bad_row = _short_serial(*arguments, mean_gradient, losses, grad)
        else:
            total, denominator, bad_row = _long_serial(*arguments, mean_gradient, losses, grad)
    elif short:
        total, denominator, bad_row = _short_parallel(*arguments, mean_gradient, losses, grad)
    else:
        total, denominator, bad_row = _long_parallel(*arguments, mean_gradient, losses, grad)
    if bad_row >= 0:
        raise ValueError(
            "numba_xent: label "
            + str(labels[bad_row])
            + " at row "
            + str(bad_row)
            + " is outside [0, "
            + str(n_classes)
            + ") and is not ignore_index ("
            + str(ignore_index)
            + ")"
        )
    return losses, total, denominator


@jit
def _reduce(losses, total, denominator, reduction_code, dtype_of):
    """The loss in the logits' precision: per row ("none"), the sum, or the weighted mean."""
    if reduction_code == 1:
        return dtype_of.dtype.type(total)
    return dtype_of.dtype.type(mean_scale(total, denominator))


def _overload(func, want_loss: bool, want_grad: bool):
    @overload(func, jit_options=OVERLOAD_OPTIONS)  # type: ignore[arg-type]
    def implementation(logits, labels, class_weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        _check_types(logits, labels, class_weight)
        code = _reduction_code(reduction)

        def run(logits, labels, class_weight, ignore_index, label_smoothing):
            grad = np.empty_like(logits) if want_grad else None
            losses, total, denominator = _run(logits, labels, class_weight, ignore_index, code, label_smoothing, grad)
            return losses, total, denominator, grad

        if code == 0:

            def loss_of(losses, total, denominator, logits):
                return losses.astype(logits.dtype)

        else:

            def loss_of(losses, total, denominator, logits):
                return _reduce(losses, total, denominator, code, logits)

        jit_run = jit(run)
        jit_loss_of = jit(loss_of)
        if want_loss and want_grad:

            def impl(logits, labels, class_weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
                losses, total, denominator, grad = jit_run(logits, labels, class_weight, ignore_index, label_smoothing)
                return jit_loss_of(losses, total, denominator, logits), grad

        elif want_grad:

            def impl(logits, labels, class_weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
                return jit_run(logits, labels, class_weight, ignore_index, label_smoothing)[3]

        else:

            def impl(logits, labels, class_weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
                losses, total, denominator, _ = jit_run(logits, labels, class_weight, ignore_index, label_smoothing)
                return jit_loss_of(losses, total, denominator, logits)

        return impl

    return implementation


_overload(sparse_cross_entropy, want_loss=True, want_grad=False)
_overload(sparse_cross_entropy_grad, want_loss=False, want_grad=True)
_overload(sparse_cross_entropy_with_grad, want_loss=True, want_grad=True)
