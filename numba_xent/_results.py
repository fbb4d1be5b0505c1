"""The one call sequence of the losses after their inputs are prepared: output buffers (``loss_outputs``), the kernel's
``launch``, and the results put back in the caller's shape, dtype and ``out=`` buffer (``finish_grad``,
``reduce_losses``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._kernels.rows import mean_scale as _mean_scale_jit
from ._prepare import Rows, check_out


def loss_outputs(
    rows: Rows, losses_shape: tuple | None, want_grad: bool, out: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None, bool]:
    """What a loss kernel writes: (losses, float64 of ``losses_shape`` or None when that is None; the ``(rows,
    classes)`` gradient buffer or None; whether that buffer must be copied into ``out`` after). Checks ``out``."""
    grad, copy_to_out = None, False
    if want_grad:
        check_out(out, rows)
        grad, copy_to_out = output_rows(out, rows)
    losses = None if losses_shape is None else np.empty(losses_shape)
    return losses, grad, copy_to_out


def finish_grad(
    grad: np.ndarray | None,
    copy_to_out: bool,
    out: np.ndarray | None,
    rows: Rows,
    grad_transform: Callable[[np.ndarray], None] | None = None,
) -> np.ndarray | None:
    """A loss kernel's gradient (from ``loss_outputs``) after ``grad_transform`` (if given, in place on the ``(rows,
    classes)`` buffer), in the caller's shape and buffer; None when there is no gradient."""
    if grad is None:
        return None
    if grad_transform is not None:
        grad_transform(grad)
    return finish(grad, copy_to_out, out, rows)


def output_rows(out: np.ndarray | None, rows: Rows) -> tuple[np.ndarray, bool]:
    """A ``(rows, classes)`` buffer for a kernel to write, and whether it must be copied into ``out`` after.

    The kernel writes ``out`` directly when ``out`` already has the kernel's layout and dtype and either does not
    overlap the input or is exactly the input's memory (an in-place update, which the kernels allow).
    """
    if out is not None and out.dtype == rows.data.dtype:
        moved = np.moveaxis(out, rows.axis, -1)
        if moved.flags.c_contiguous:
            direct = moved.reshape(rows.data.shape)
            same = direct.__array_interface__["data"][0] == rows.data.__array_interface__["data"][0]
            if same or not np.may_share_memory(direct, rows.data):
                return direct, False
    return np.empty(rows.data.shape, rows.data.dtype), out is not None


def finish(buffer: np.ndarray, copy_to_out: bool, out: np.ndarray | None, rows: Rows) -> np.ndarray:
    """Put a kernel's ``(rows, classes)`` result in the caller's shape, dtype and buffer."""
    if out is not None:
        if copy_to_out:
            np.copyto(out, rows.to_original(buffer), casting="unsafe")
        return out
    result = rows.to_original(buffer)
    return result.astype(rows.dtype) if result.dtype != rows.dtype else result


def reduce_losses(
    losses: np.ndarray | None, total: float, denominator: float, reduction: str, shape: tuple, dtype
) -> Any:
    """The loss the caller asked for: the losses in ``shape`` ("none") or a NumPy scalar of the compute dtype."""
    if reduction == "none":
        assert losses is not None, "reduction='none' needs the kernel's losses"
        if dtype == _FLOAT64:
            return losses.reshape(shape)
        with np.errstate(over="ignore"):  # a float32 loss beyond 3.4e38 is inf, as in PyTorch
            return losses.astype(np.float32).reshape(shape)
    value = total if reduction == "sum" else mean_scale(total, denominator)
    if dtype == _FLOAT64:
        return np.float64(value)
    if abs(value) > _FLOAT32_MAX and value == value:  # inf, as in PyTorch, without the cast's overflow warning
        value = float("inf") if value > 0 else float("-inf")
    return np.float32(value)


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT64 = np.dtype(np.float64)
mean_scale = _mean_scale_jit.py_func
