"""One place that turns any input into what the kernels take: contiguous 2-D ``(rows, classes)`` arrays in
float32 or float64, flat ``intp`` labels that were checked, float64 weights, and validated options.

Everything here runs before any output buffer is written, so a bad input leaves ``out=`` untouched.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._kernels.rows import first_bad_label
from ._typing import Reduction

REDUCTIONS = ("mean", "sum", "none")
INT64_MIN, INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


_COMPUTE_DTYPES = {np.dtype(np.float16): np.dtype(np.float32), np.dtype(np.float32): None, np.dtype(np.float64): None}
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INTP = np.dtype(np.intp)


@dataclass(slots=True)
class Rows:
    """An array seen as contiguous ``(rows, classes)`` with what is needed to put results back in its shape."""

    data: np.ndarray  # (n_rows, n_classes), C-contiguous, float32 or float64
    axis: int  # the class axis of the original array, normalised to be non-negative
    shape: tuple  # the original shape
    dtype: np.dtype  # the original dtype (float16 is computed in float32)
    batch_shape: tuple  # the original shape without the class axis
    n_classes: int

    def to_original(self, rows_array: np.ndarray) -> np.ndarray:
        """A ``(rows, classes)`` result viewed in the original shape (the class axis moved back)."""
        if self.axis == len(self.shape) - 1:
            return rows_array.reshape(self.shape)
        moved_shape = self.batch_shape + (self.n_classes,)
        return np.moveaxis(rows_array.reshape(moved_shape), -1, self.axis)


def as_rows(x, axis: int = -1, name: str = "logits") -> Rows:
    """View or copy ``x`` as contiguous ``(rows, classes)`` along ``axis``; float16 becomes float32.

    An array that already has that layout (classes last, C-contiguous, float32 or float64) is viewed, not copied.
    """
    if type(x) is np.ndarray and type(axis) is int and axis == -1 and x.ndim == 2 and x.shape[1] != 0:
        # The layout of a training loop's logits, checked first: a small batch's call is mostly this layer.
        if x.dtype in _KERNEL_DTYPES and x.flags.c_contiguous:
            return Rows(x, 1, x.shape, x.dtype, (x.shape[0],), x.shape[1])
    x = np.asarray(x)
    if x.dtype not in _COMPUTE_DTYPES:
        raise TypeError(f"{name} must be a float16, float32 or float64 array, got dtype {x.dtype}")
    ndim = x.ndim
    if ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class axis), got a scalar")
    if type(axis) is not int and (not isinstance(axis, numbers.Integral) or isinstance(axis, bool)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for {name} with shape {x.shape}")
    axis = int(axis) % ndim
    shape = x.shape
    n_classes = shape[axis]
    if n_classes == 0:
        raise ValueError(f"{name} has shape {shape}: the class axis {axis} is empty")
    compute_dtype = _COMPUTE_DTYPES[x.dtype]
    batch_shape = shape[:axis] + shape[axis + 1 :]
    if axis == ndim - 1 and compute_dtype is None and x.flags.c_contiguous:
        data = x.reshape(-1, n_classes)
    else:
        moved = np.moveaxis(x, axis, -1)
        data = np.ascontiguousarray(moved, dtype=compute_dtype or x.dtype).reshape(-1, n_classes)
    return Rows(data, axis, shape, x.dtype, batch_shape, n_classes)


def labels_as_rows(labels, rows: Rows, ignore_index, check_range: bool = True) -> np.ndarray:
    """Flat ``intp`` labels, one per row, each in [0, n_classes) or equal to ignore_index.

    ``check_range=False`` leaves the range check to a kernel that reports the first bad row (``raise_bad_label``).
    """
    if type(labels) is np.ndarray and labels.dtype == _INTP and labels.shape == rows.batch_shape and labels.ndim == 1:
        flat = labels if labels.flags.c_contiguous else np.ascontiguousarray(labels)
    else:
        flat = _labels_as_intp(labels, rows, ignore_index)
    if check_range:
        bad = first_bad_label(flat, rows.n_classes, ignore_index)
        if bad >= 0:
            _raise_bad_label(np.asarray(labels), bad, rows, ignore_index)
    return flat


def _labels_as_intp(labels, rows: Rows, ignore_index) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be an array of integers, got dtype {labels.dtype}")
    if labels.shape != rows.batch_shape:
        raise ValueError(
            f"labels have shape {labels.shape} but logits of shape {rows.shape} with class axis {rows.axis} "
            f"need labels of shape {rows.batch_shape}"
        )
    if labels.dtype == np.uint64 and labels.size and labels.max() > INT64_MAX:
        # Casting would wrap these to negative numbers; they are out of range for any class count anyway.
        _raise_bad_label(labels, int(np.argmax(labels.ravel() > INT64_MAX)), rows, ignore_index)
    return np.ascontiguousarray(labels, dtype=np.intp).reshape(-1)


def raise_bad_label(labels, flat_index, rows, ignore_index):
    """Raise the ValueError for the label at ``flat_index`` of ``labels`` (after a kernel found it)."""
    _raise_bad_label(np.asarray(labels), flat_index, rows, ignore_index)


def _raise_bad_label(labels, flat_index, rows, ignore_index):
    position = tuple(int(i) for i in np.unravel_index(flat_index, labels.shape))
    value = labels.reshape(-1)[flat_index]
    raise ValueError(
        f"label {value} at index {position} is outside [0, {rows.n_classes}) and is not ignore_index ({ignore_index})"
    )


def check_ignore_index(ignore_index) -> int:
    if type(ignore_index) is not int and (
        not isinstance(ignore_index, numbers.Integral) or isinstance(ignore_index, bool)
    ):
        raise TypeError(f"ignore_index must be an integer, got {ignore_index!r}")
    ignore_index = int(ignore_index)
    if not INT64_MIN <= ignore_index <= INT64_MAX:
        raise ValueError(f"ignore_index {ignore_index} does not fit in int64")
    return ignore_index


def check_reduction(reduction) -> Reduction:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")
    return reduction


def check_fraction(value, name: str) -> float:
    if type(value) is float and 0.0 <= value <= 1.0:
        return value
    if not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_non_negative(value, name: str) -> float:
    if type(value) is float and 0.0 <= value < np.inf:
        return value
    if not isinstance(value, numbers.Real) or not 0.0 <= float(value) < np.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def weights(weight, shape: tuple, name: str, what: str) -> np.ndarray | None:
    """A float64 copy-if-needed of a weight array of exactly ``shape`` (flattened), or None when absent."""
    if weight is None:
        return None
    weight = np.asarray(weight)
    if weight.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real array, got dtype {weight.dtype}")
    if weight.shape != shape:
        raise ValueError(f"{name} has shape {weight.shape} but {what} need shape {shape}")
    flat = np.ascontiguousarray(weight, dtype=np.float64).reshape(-1)
    invalid = ~(flat >= 0)  # negative or NaN
    if invalid.any():
        first = int(np.argmax(invalid))
        position = tuple(int(i) for i in np.unravel_index(first, shape))
        raise ValueError(f"{name} must be non-negative, got {flat[first]} at index {position}")
    return flat


def grad_output_scale(grad_output, reduction: str, batch_shape: tuple):
    """(scalar scale, per-row scales or None) for a gradient kernel."""
    if type(grad_output) is float:
        return grad_output, None
    grad_output = np.asarray(grad_output)
    if grad_output.dtype.kind not in "biuf":
        raise TypeError(f"grad_output must be real, got dtype {grad_output.dtype}")
    if grad_output.ndim == 0:
        return float(grad_output), None
    if reduction != "none":
        raise ValueError(
            f"grad_output must be a scalar for reduction={reduction!r}, got an array of shape {grad_output.shape}"
        )
    if grad_output.shape != batch_shape:
        raise ValueError(f"grad_output has shape {grad_output.shape} but the losses have shape {batch_shape}")
    return 1.0, np.ascontiguousarray(grad_output, dtype=np.float64).reshape(-1)


def check_out(out, rows: Rows, name: str = "out") -> None:
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(out).__name__}")
    if out.shape != rows.shape:
        raise ValueError(f"{name} has shape {out.shape} but the result has shape {rows.shape}")
    if out.dtype != rows.dtype:
        raise TypeError(f"{name} has dtype {out.dtype} but the result has dtype {rows.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
