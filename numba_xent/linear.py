"""Fused linear + cross-entropy: ``cross_entropy(hidden @ weight.T + bias, labels)`` and its gradients, without ever
holding the whole ``(rows, classes)`` logits.

The rows are taken in chunks. Each chunk's logits are computed by BLAS into one reused buffer, our fused
loss+gradient kernel (``sparse_cross_entropy_with_grad``) turns them into the gradient in place, and three matrix
products finish the chunk: ``grad_hidden[chunk] = g @ weight``, ``grad_weight += g.T @ hidden[chunk]``,
``grad_bias += g.sum(0)``. Rows whose label is ``ignore_index`` are dropped before any product.

The row scale of the gradient (``grad_output``, and ``1 / denominator`` for the mean) is applied to the small
``(chunk, features)`` matrices instead of the ``(chunk, classes)`` gradient: ``g.T @ (s * h)`` and ``s * (g @ W)``
equal ``(s * g).T @ h`` and ``(s * g) @ W`` and cost ``features`` instead of ``classes`` multiplications per row.

``grad_weight`` is accumulated in place by a BLAS ``gemm`` with ``beta=1`` (SciPy's ``scipy.linalg.blas``). NumPy
has no accumulating product (``matmul(out=)`` overwrites), so without SciPy the chunk's ``(classes, features)``
product goes through a bounded scratch in tiles of classes and is added (one more pass over ``grad_weight`` per
chunk). SciPy's BLAS is used for all three products when present, so that one BLAS thread pool does the work.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._prepare import check_fraction, check_ignore_index, check_non_negative, check_reduction, grad_output_scale
from ._results import mean_scale
from ._softcap import apply_softcap, chain_softcap, check_softcap
from .sparse import sparse_cross_entropy, sparse_cross_entropy_with_grad

# SciPy's BLAS module, imported on the first product (importing scipy.linalg costs ~0.1 s, a third of importing
# numba_xent): an accumulating gemm (beta=1), grad_weight += g.T @ h without a (classes, features) temporary. None
# without SciPy (NumPy's matmul then).
_scipy_blas: Any = ...


def _blas() -> Any:
    global _scipy_blas
    if _scipy_blas is ...:
        try:
            from scipy.linalg import blas  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - exercised by forcing _scipy_blas = None in the tests
            blas = None
        _scipy_blas = blas
    return _scipy_blas


__all__ = ["linear_cross_entropy", "linear_cross_entropy_with_grad"]

# Bytes of logits per chunk (one buffer; two with softcap and gradients). Taller chunks make the products faster
# (each chunk streams weight and grad_weight once more), so as large as the 64 MB extra-memory goal allows.
LOGITS_BUDGET_BYTES = 32 * 2**20
# Bytes of the scratch that the NumPy-only fallback adds into grad_weight tile by tile.
_FALLBACK_SCRATCH_BYTES = 8 * 2**20

Reduction = Literal["mean", "sum", "none"]


@dataclass
class _Problem:
    """Validated inputs, as the chunk loop takes them."""

    hidden: np.ndarray  # (n_rows, n_features), C-contiguous
    weight: np.ndarray  # (n_classes, n_features)
    bias: np.ndarray | None  # (n_classes,)
    labels: np.ndarray  # (n_rows,) intp
    kept_rows: np.ndarray  # indices of the rows whose label is not ignore_index, ascending
    batch_shape: tuple
    hidden_shape: tuple
    class_weight: np.ndarray | None  # float64 (n_classes,)
    reduction: str
    softcap: float | None
    chunk_size: int | None
    loss_options: dict  # keywords of the sparse functions

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    def denominator(self) -> float:
        """The mean's denominator: kept rows, or the sum of their class weights (once for the whole batch)."""
        if self.class_weight is None:
            return float(self.kept_rows.size)
        return float(np.sum(self.class_weight[self.labels[self.kept_rows]]))

    def rows_per_chunk(self, buffers: int) -> int:
        if self.chunk_size is not None:
            rows = self.chunk_size
        else:
            # Softcap's second buffer gets half the budget again (48 MB in all): chunks stay 3/4 as tall, where
            # halving them cost 30% more time at 4096x1024x32000 (each chunk streams weight and grad_weight).
            budget = LOGITS_BUDGET_BYTES * (buffers + 1) // 2
            rows = max(1, budget // (self.n_classes * self.hidden.itemsize * buffers))
            rows = rows - rows % 8 if rows >= 16 else rows  # whole SIMD panels for the BLAS kernels
        return max(1, min(rows, self.kept_rows.size))


def _float_array(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {x.dtype}")
    return x


def _check_labels(labels, batch_shape: tuple, hidden_shape: tuple, n_classes: int, ignore_index: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be an array of integers, got dtype {labels.dtype}")
    if labels.shape != batch_shape:
        raise ValueError(
            f"labels have shape {labels.shape} but hidden of shape {hidden_shape} needs labels of shape {batch_shape}"
        )
    flat = labels.reshape(-1)
    if labels.dtype.kind == "u":
        # Compare unsigned labels as unsigned: a cast to intp would wrap the largest ones to negative numbers.
        bad = (flat >= n_classes) & ((flat != ignore_index) if ignore_index >= 0 else True)
    else:
        bad = ((flat < 0) | (flat >= n_classes)) & (flat != ignore_index)
    if np.any(bad):
        first = int(np.argmax(bad))
        position = tuple(int(i) for i in np.unravel_index(first, labels.shape))
        raise ValueError(
            f"label {flat[first]} at index {position} is outside [0, {n_classes}) "
            f"and is not ignore_index ({ignore_index})"
        )
    return flat.astype(np.intp)


def _check_options(ignore_index, reduction, label_smoothing, z_loss, chunk_size) -> None:
    """The same checks and messages as the sparse functions, and the chunk size."""
    check_ignore_index(ignore_index)
    check_reduction(reduction)
    check_fraction(label_smoothing, "label_smoothing")
    check_non_negative(z_loss, "z_loss")
    if chunk_size is not None and (
        not isinstance(chunk_size, numbers.Integral) or isinstance(chunk_size, bool) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be None or an integer >= 1, got {chunk_size!r}")


def _prepare(
    hidden, weight, labels, bias, class_weight, ignore_index, reduction, label_smoothing, z_loss, softcap, chunk_size
) -> _Problem:
    """Check everything and put the inputs in the chunk loop's layout; nothing is computed before this returns."""
    _check_options(ignore_index, reduction, label_smoothing, z_loss, chunk_size)
    softcap = check_softcap(softcap)
    hidden = _float_array(hidden, "hidden")
    weight = _float_array(weight, "weight")
    if hidden.ndim == 0:
        raise ValueError("hidden must have at least one dimension (the features), got a scalar")
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D (classes, features), got shape {weight.shape}")
    if weight.dtype != hidden.dtype:
        raise TypeError(f"weight has dtype {weight.dtype} but hidden has dtype {hidden.dtype}; they must match")
    n_classes, n_features = weight.shape
    if n_classes == 0 or n_features == 0:
        raise ValueError(f"weight has shape {weight.shape}: no classes or no features")
    if hidden.shape[-1] != n_features:
        raise ValueError(
            f"hidden has {hidden.shape[-1]} features (shape {hidden.shape}) but weight of shape {weight.shape} "
            f"has {n_features}"
        )
    if bias is not None:
        bias = _float_array(bias, "bias")
        if bias.dtype != hidden.dtype:
            raise TypeError(f"bias has dtype {bias.dtype} but hidden has dtype {hidden.dtype}; they must match")
        if bias.shape != (n_classes,):
            raise ValueError(f"bias has shape {bias.shape} but weight of shape {weight.shape} needs ({n_classes},)")
    batch_shape = hidden.shape[:-1]
    ignore_index = int(ignore_index)
    flat_labels = _check_labels(labels, batch_shape, hidden.shape, n_classes, ignore_index)
    if class_weight is not None:
        class_weight = np.asarray(class_weight)
        if class_weight.dtype.kind not in "biuf":
            raise TypeError(f"class_weight must be a real array, got dtype {class_weight.dtype}")
        if class_weight.shape != (n_classes,):
            raise ValueError(f"class_weight has shape {class_weight.shape} but there are {n_classes} classes")
        class_weight = np.ascontiguousarray(class_weight, dtype=np.float64)
        invalid = ~(class_weight >= 0)  # negative or NaN
        if invalid.any():
            first = int(np.argmax(invalid))
            raise ValueError(f"class_weight must be non-negative, got {class_weight[first]} at index ({first},)")
    if not (weight.flags.c_contiguous or weight.flags.f_contiguous):
        weight = np.ascontiguousarray(weight)
    return _Problem(
        hidden=np.ascontiguousarray(hidden).reshape(-1, n_features),
        weight=weight,
        bias=bias,
        labels=flat_labels,
        kept_rows=np.flatnonzero(flat_labels != ignore_index),
        batch_shape=batch_shape,
        hidden_shape=hidden.shape,
        class_weight=class_weight,
        reduction=reduction,
        softcap=softcap,
        chunk_size=None if chunk_size is None else int(chunk_size),
        loss_options=dict(
            class_weight=class_weight,
            ignore_index=ignore_index,
            label_smoothing=float(label_smoothing),
            z_loss=float(z_loss),
            reduction="none",
        ),
    )


class _Chunk:
    """One chunk of kept rows: their hidden rows (a view when the rows are consecutive, else gathered)."""

    def __init__(self, problem: _Problem, rows: np.ndarray, gather_buffer: np.ndarray):
        self.rows = rows
        self.n_rows = rows.size
        first, last = int(rows[0]), int(rows[-1])
        self.consecutive = last - first + 1 == rows.size
        self.span = slice(first, last + 1)
        if self.consecutive:
            self.hidden = problem.hidden[self.span]
        else:
            self.hidden = np.take(problem.hidden, rows, axis=0, out=gather_buffer[: rows.size])
        self.labels = problem.labels[rows]


def _chunks(problem: _Problem, rows_per_chunk: int):
    gather_buffer = np.empty((rows_per_chunk, problem.hidden.shape[1]), problem.hidden.dtype)
    kept = problem.kept_rows
    for start in range(0, kept.size, rows_per_chunk):
        yield _Chunk(problem, kept[start : start + rows_per_chunk], gather_buffer)


def _logits_into(buffer: np.ndarray, problem: _Problem, chunk: _Chunk) -> np.ndarray:
    """The chunk's (capped) logits, written into the first rows of ``buffer``."""
    logits = buffer[: chunk.n_rows]
    _product(chunk.hidden, problem.weight.T, logits, False, [])
    if problem.bias is not None:
        logits += problem.bias
    if problem.softcap is not None:
        apply_softcap(logits, problem.softcap)
    return logits


def _fortran_operand(matrix: np.ndarray) -> tuple[np.ndarray, int]:
    """(Fortran-ordered array, trans flag) whose op() is ``matrix``, without a copy when ``matrix`` is contiguous."""
    if matrix.flags.f_contiguous:
        return matrix, 0
    if matrix.flags.c_contiguous:
        return matrix.T, 1
    return np.asfortranarray(matrix), 0


def _product(left: np.ndarray, right: np.ndarray, out: np.ndarray, accumulate: bool, scratch: list) -> None:
    """``out = left @ right``, or ``out += left @ right`` with ``accumulate``; ``out`` C- or F-contiguous.

    With SciPy, one BLAS gemm writing ``out`` in place (``beta=1`` to accumulate). BLAS splits its work along the
    output's Fortran rows, and OpenBLAS was measured 3 to 6 times slower on ``g @ W`` with the 1024 features as
    those rows (NumPy's ``matmul`` into a C-ordered result) than with the chunk's rows: so ``grad_hidden`` goes
    through a small F-ordered scratch.
    """
    blas = _blas()
    if blas is not None:
        gemm = blas.dgemm if out.dtype == np.float64 else blas.sgemm
        if out.flags.f_contiguous:
            first, trans_first = _fortran_operand(left)
            second, trans_second = _fortran_operand(right)
            target = out
        else:  # Fortran sees a C-ordered out transposed: out.T = right.T @ left.T
            first, trans_first = _fortran_operand(right.T)
            second, trans_second = _fortran_operand(left.T)
            target = out.T
        beta = 1.0 if accumulate else 0.0
        result = gemm(1.0, first, second, beta, target, trans_first, trans_second, overwrite_c=1)
        if not np.may_share_memory(result, out):  # pragma: no cover - f2py copies only a misaligned target
            np.copyto(target, result)
        return
    if not accumulate:
        np.matmul(left, right, out=out)
        return
    # NumPy only (matmul cannot accumulate): tiles of out's rows through a bounded scratch.
    tile_rows = max(1, _FALLBACK_SCRATCH_BYTES // (out.shape[1] * out.itemsize))
    if not scratch:
        scratch.append(np.empty((min(tile_rows, out.shape[0]), out.shape[1]), out.dtype))
    for start in range(0, out.shape[0], tile_rows):
        stop = min(start + tile_rows, out.shape[0])
        out[start:stop] += np.matmul(left[start:stop], right, out=scratch[0][: stop - start])


def _reduce(row_loss: np.ndarray, problem: _Problem, denominator: float | None) -> Any:
    dtype = problem.hidden.dtype.type
    if problem.reduction == "none":
        return row_loss.astype(dtype).reshape(problem.batch_shape)
    total = float(np.sum(row_loss))
    if problem.reduction == "sum":
        return dtype(total)
    if denominator is None:
        denominator = problem.denominator()
    return dtype(mean_scale(total, denominator))


def linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    chunk_size: int | None = None,
) -> Any:
    """Cross-entropy of the logits ``hidden @ weight.T + bias`` without holding them whole: one chunk at a time.

    Equals ``sparse_cross_entropy(hidden @ weight.T + bias, labels, ...)`` (PyTorch's ``F.linear`` then
    ``F.cross_entropy``), with the same mean and weighting; the mean over a batch whose labels are all
    ``ignore_index`` is 0.0. Costs one matrix product per chunk and no gradient work.

    Parameters
    ----------
    hidden : ndarray of float32 or float64, shape (..., features)
        The inputs of the linear layer, e.g. (batch, seq, features).
    weight : ndarray of hidden's dtype, shape (classes, features)
        The layer's weight, as ``torch.nn.Linear`` stores it.
    labels : ndarray of integers, shape hidden.shape[:-1]
        Class indices; rows whose label is ``ignore_index`` are skipped before any product.
    bias : ndarray of hidden's dtype, shape (classes,), optional
    class_weight, ignore_index, reduction, label_smoothing, z_loss
        As for :func:`numba_xent.sparse_cross_entropy`.
    softcap : float > 0, optional
        Cap the logits to ``softcap * tanh(logits / softcap)`` before the loss (Gemma 2; Liger-Kernel's ``softcap``).
    chunk_size : int >= 1, optional
        Rows per chunk. By default as many as keep one chunk's logits within 32 MB.

    Returns
    -------
    loss : NumPy scalar of hidden's dtype, or ndarray of the labels' shape for ``reduction="none"``

    Raises
    ------
    ValueError
        Shapes that do not fit together; a label outside ``[0, classes)`` that is not ``ignore_index`` (the message
        names the value and its index); invalid options.
    TypeError
        hidden, weight or bias not float32/float64 or not of one dtype; labels that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import linear_cross_entropy
    >>> hidden = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> weight = np.array([[1.0, -1.0], [0.5, 0.5], [-1.0, 1.0]])  # 3 classes, 2 features
    >>> float(linear_cross_entropy(hidden, weight, np.array([0, 2, 1])).round(6))
    0.477655
    >>> linear_cross_entropy(hidden, weight, np.array([0, -100, 1]), reduction="none", chunk_size=1).round(6)
    array([0.554957, 0.      , 0.551445])
    """
    problem = _prepare(
        hidden,
        weight,
        labels,
        bias,
        class_weight,
        ignore_index,
        reduction,
        label_smoothing,
        z_loss,
        softcap,
        chunk_size,
    )
    row_loss = np.zeros(problem.labels.size)
    if problem.kept_rows.size:
        rows_per_chunk = problem.rows_per_chunk(buffers=1)
        logits_buffer = np.empty((rows_per_chunk, problem.n_classes), problem.hidden.dtype)
        for chunk in _chunks(problem, rows_per_chunk):
            logits = _logits_into(logits_buffer, problem, chunk)
            row_loss[chunk.rows] = sparse_cross_entropy(logits, chunk.labels, **problem.loss_options)
    return _reduce(row_loss, problem, None)


def linear_cross_entropy_with_grad(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    class_weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    chunk_size: int | None = None,
    grad_output: ArrayLike = 1.0,
) -> tuple[Any, NDArray[np.floating], NDArray[np.floating], NDArray[np.floating] | None]:
    """Loss of :func:`linear_cross_entropy` and its gradients with respect to ``hidden``, ``weight`` and ``bias``.

    The gradients are those of ``grad_output * loss`` (``sum(grad_output * loss)`` for ``reduction="none"``), as
    PyTorch autograd gives them. Per chunk: the logits, the fused loss+gradient kernel in place over them, then
    ``grad_hidden[chunk] = g @ weight`` and ``grad_weight += g.T @ hidden[chunk]`` accumulated in place.

    Parameters
    ----------
    hidden, weight, labels, bias, class_weight, ignore_index, reduction, label_smoothing, z_loss, softcap, chunk_size
        As for :func:`linear_cross_entropy`.
    grad_output : float, or ndarray of the labels' shape for ``reduction="none"``, default 1.0
        The upstream gradient of the loss.

    Returns
    -------
    loss : as :func:`linear_cross_entropy` returns it
    grad_hidden : ndarray of hidden's shape and dtype (zero on ignored rows)
    grad_weight : ndarray of weight's shape and dtype, in Fortran order
        (``grad_weight.T`` is C-contiguous): BLAS accumulates into that layout through its small panels, where a
        C-ordered target made OpenBLAS pack a whole chunk of the gradient (32 MB more peak memory, measured).
    grad_bias : ndarray of shape (classes,), or None without ``bias``

    Raises
    ------
    ValueError, TypeError
        As for :func:`linear_cross_entropy`, and for a ``grad_output`` of the wrong shape or type.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import linear_cross_entropy_with_grad
    >>> hidden = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> weight = np.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> loss, grad_hidden, grad_weight, grad_bias = linear_cross_entropy_with_grad(hidden, weight, np.array([0, 0]))
    >>> float(loss.round(6)), grad_bias is None
    (2.072539, True)
    >>> grad_hidden.round(6)
    array([[-0.119203,  0.119203],
           [-0.982014,  0.982014]])
    """
    problem = _prepare(
        hidden,
        weight,
        labels,
        bias,
        class_weight,
        ignore_index,
        reduction,
        label_smoothing,
        z_loss,
        softcap,
        chunk_size,
    )
    scale, scale_rows = grad_output_scale(grad_output, problem.reduction, problem.batch_shape)
    dtype = problem.hidden.dtype
    n_rows, n_features = problem.hidden.shape
    denominator = problem.denominator() if problem.reduction == "mean" else None
    if denominator is not None:
        scale = scale / denominator if denominator != 0.0 else 0.0

    row_loss = np.zeros(n_rows)
    all_kept = problem.kept_rows.size == n_rows
    grad_hidden = (np.empty if all_kept else np.zeros)((n_rows, n_features), dtype)
    grad_weight = np.zeros(problem.weight.shape[::-1], dtype).T  # Fortran order: see the docstring
    grad_bias = None if problem.bias is None else np.zeros(problem.n_classes, dtype)
    if problem.kept_rows.size:
        buffers = 2 if problem.softcap is not None else 1  # the gradient cannot overwrite the capped logits
        rows_per_chunk = problem.rows_per_chunk(buffers)
        logits_buffer = np.empty((rows_per_chunk, problem.n_classes), dtype)
        grad_buffer = np.empty_like(logits_buffer) if buffers == 2 else logits_buffer
        scaled_hidden_buffer = np.empty((rows_per_chunk, n_features), dtype)
        grad_hidden_buffer = np.empty(rows_per_chunk * n_features, dtype)  # F-ordered chunks: see _product
        scratch: list = []
        for chunk in _chunks(problem, rows_per_chunk):
            logits = _logits_into(logits_buffer, problem, chunk)
            grad_logits = grad_buffer[: chunk.n_rows]
            row_loss[chunk.rows], _ = sparse_cross_entropy_with_grad(
                logits, chunk.labels, out=grad_logits, **problem.loss_options
            )
            if problem.softcap is not None:
                chain_softcap(grad_logits, logits, problem.softcap)
            row_scale = np.full(chunk.n_rows, scale) if scale_rows is None else scale * scale_rows[chunk.rows]
            row_scale_column = row_scale.astype(dtype)[:, None]
            scaled_hidden = np.multiply(chunk.hidden, row_scale_column, out=scaled_hidden_buffer[: chunk.n_rows])
            _product(grad_logits.T, scaled_hidden, grad_weight, True, scratch)
            if grad_bias is not None:
                grad_bias += row_scale.astype(dtype) @ grad_logits
            chunk_grad_hidden = grad_hidden_buffer[: chunk.n_rows * n_features].reshape(chunk.n_rows, -1, order="F")
            _product(grad_logits, problem.weight, chunk_grad_hidden, False, scratch)
            if chunk.consecutive:
                np.multiply(chunk_grad_hidden, row_scale_column, out=grad_hidden[chunk.span])
            else:
                grad_hidden[chunk.rows] = chunk_grad_hidden * row_scale_column
    loss = _reduce(row_loss, problem, denominator)
    return loss, grad_hidden.reshape(problem.hidden_shape), grad_weight, grad_bias
