"""Cross-entropy over logits split along the class axis (a vocabulary split): per-block partials, their exact
merge, and each block's gradient from the merged per-row statistics.

A block ``logits[..., c0:c1]`` is reduced to a few numbers per row (its max, its sum of exponentials below that max,
the label's logit if the label falls in the block, the smoothing term), so blocks held by different processes,
devices or machines (MPI, Ray, Dask) need to exchange only those. The merge gives the loss of
:func:`numba_xent.sparse_cross_entropy`, with the same options and rules, up to rounding.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _vocab_kernels
from ._results import mean_scale
from .sparse import sparse_cross_entropy

__all__ = [
    "ClassBlockPartials",
    "MergedRows",
    "class_block_grad",
    "class_block_partials",
    "merge_class_block_partials",
]

Reduction = Literal["mean", "sum", "none"]
Float64Array = NDArray[np.float64]


@dataclass(frozen=True)
class ClassBlockPartials:
    """Per-row partials of one class block, from :func:`class_block_partials`.

    The arrays have the labels' shape and are float64.

    Attributes
    ----------
    class_start, class_stop : int
        The block is classes ``[class_start, class_stop)`` of ``n_classes``.
    n_classes : int
        The number of classes of the whole (unsplit) logits.
    row_max : ndarray
        Each row's max over the block.
    sum_exp : ndarray
        ``sum(exp(x - row_max))`` over the block (0 for a row whose block logits are all -inf).
    label_logit : ndarray
        The label's logit where the label falls in the block, NaN elsewhere.
    weighted_gap : ndarray or None
        ``sum_c w_c (row_max - x_c)`` over the block (``w = class_weight``, or 1), the label-smoothing term in a form
        that stays exact under a large common offset; None when computed with ``label_smoothing=0``.
    class_weight_total : float
        ``sum_c w_c`` over the block.
    dtype : numpy.dtype
        The dtype the loss is computed in (float32 for float16 and float32 logits, else float64).
    """

    class_start: int
    class_stop: int
    n_classes: int
    row_max: Float64Array
    sum_exp: Float64Array
    label_logit: Float64Array
    weighted_gap: Float64Array | None
    class_weight_total: float
    dtype: np.dtype


@dataclass(frozen=True)
class MergedRows:
    """Per-row statistics and losses merged from the partials of every class block.

    Attributes
    ----------
    row_max, log_sum, lse : ndarray of float64, the labels' shape
        Each row's max over all classes, ``log(sum(exp(x - row_max)))`` and their sum, the log-sum-exp.
    nll : ndarray of float64
        ``lse - x_label`` (0 for ignored rows).
    row_loss : ndarray of float64
        Each row's loss with every option applied, times its sample weight (0 for ignored rows).
    row_weight : ndarray of float64
        ``class_weight[label] * sample_weight`` for kept rows, 0 for ignored rows.
    denominator : float
        ``row_weight.sum()``: the denominator of the weighted mean.
    loss : NumPy scalar or ndarray
        The loss exactly as :func:`numba_xent.sparse_cross_entropy` returns it for the chosen ``reduction``.
    reduction : str
        The reduction of ``loss`` (the gradient of "mean" divides by ``denominator``).
    options
        The validated options of the merge, which :func:`class_block_grad` uses.
    """

    row_max: Float64Array
    log_sum: Float64Array
    lse: Float64Array
    nll: Float64Array
    row_loss: Float64Array
    row_weight: Float64Array
    denominator: float
    loss: np.floating | NDArray[np.floating]
    reduction: str
    options: _Options


@dataclass(frozen=True)
class _Options:
    """Validated options of a split loss: what the merge and the gradient both need."""

    n_classes: int
    class_weight: Float64Array | None  # (n_classes,), float64
    ignore_index: int
    label_smoothing: float
    z_loss: float
    dtype: np.dtype  # the logits' dtype (float16 is computed in float32)


def compute_dtype(dtype) -> np.dtype:
    """The dtype losses are computed and returned in: float32 for float16/float32 logits, float64 for float64."""
    return np.dtype(np.float32) if np.dtype(dtype) in (np.float16, np.float32) else np.dtype(np.float64)


def check_options(
    n_classes: int,
    dtype,
    *,
    class_weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    z_loss=0.0,
) -> _Options:
    """Validate the options of a loss over ``n_classes`` classes of logits of ``dtype``.

    The in-memory function validates them on a one-row input, so the rules and messages are its own.
    """
    if not isinstance(n_classes, numbers.Integral) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(f"logits must be a float16, float32 or float64 array, got dtype {dtype}")
    sparse_cross_entropy(
        np.zeros((1, int(n_classes)), compute_dtype(dtype)),
        np.zeros(1, np.intp),
        class_weight=class_weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
    )
    weights = None if class_weight is None else np.ascontiguousarray(class_weight, dtype=np.float64)
    return _Options(int(n_classes), weights, int(ignore_index), float(label_smoothing), float(z_loss), dtype)


def check_labels(labels, n_classes: int, ignore_index: int, offset: tuple = (), shape: tuple | None = None) -> None:
    """Raise the in-memory function's ValueError for the first label outside [0, n_classes) that is not
    ``ignore_index``. ``offset`` (one entry per axis) turns a block's indices into global ones."""
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= n_classes))
    if not bad.any():
        return
    first = np.unravel_index(int(np.argmax(bad.reshape(-1))), labels.shape)
    position = tuple(int(i) + int(o) for i, o in zip(first, offset or (0,) * labels.ndim, strict=True))
    raise ValueError(
        f"label {labels[first]} at index {position} is outside [0, {n_classes}) and is not ignore_index "
        f"({ignore_index})"
    )


def as_labels(labels: ArrayLike, batch_shape: tuple) -> np.ndarray:
    """``labels`` as an integer ndarray of ``batch_shape`` (not yet range-checked)."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be an array of integers, got dtype {labels.dtype}")
    if labels.shape != batch_shape:
        raise ValueError(f"labels have shape {labels.shape} but the logits need labels of shape {batch_shape}")
    return labels


def as_sample_weight(sample_weight: ArrayLike | None, batch_shape: tuple, offset: tuple = ()) -> np.ndarray | None:
    """A float64 sample weight of ``batch_shape``, or None; negative or NaN weights raise, naming the (global)
    index."""
    if sample_weight is None:
        return None
    weight = np.asarray(sample_weight)
    if weight.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be a real array, got dtype {weight.dtype}")
    if weight.shape != batch_shape:
        raise ValueError(f"sample_weight has shape {weight.shape} but labels of that shape need shape {batch_shape}")
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    invalid = ~(weight >= 0)
    if invalid.any():
        first = np.unravel_index(int(np.argmax(invalid.reshape(-1))), weight.shape)
        position = tuple(int(i) + int(o) for i, o in zip(first, offset or (0,) * weight.ndim, strict=True))
        raise ValueError(f"sample_weight must be non-negative, got {weight[first]} at index {position}")
    return weight


def block_partials_rows(
    block: np.ndarray, labels: np.ndarray, class_start: int, options: _Options, with_gap: bool
) -> tuple[Float64Array, Float64Array, Float64Array, Float64Array | None]:
    """Kernel call on 2-D ``(rows, block classes)``: (row_max, sum_exp, label_logit, gap or None), float64."""
    block = np.ascontiguousarray(block, dtype=compute_dtype(options.dtype))
    n_rows, n_block_classes = block.shape
    weight = None
    if options.class_weight is not None:
        weight = np.ascontiguousarray(options.class_weight[class_start : class_start + n_block_classes])
    row_max, sum_exp, label_logit = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows)
    gap = np.empty(n_rows) if with_gap else None
    flat_labels = np.ascontiguousarray(labels, dtype=np.intp).reshape(-1)
    _vocab_kernels.block_partials.launch(
        block.size,
        block=block,
        labels=flat_labels,
        class_start=class_start,
        class_weight=weight,
        row_max=row_max,
        sum_exp=sum_exp,
        label_logit=label_logit,
        gap=gap,
    )
    return row_max, sum_exp, label_logit, gap


def block_weight_total(options: _Options, class_start: int, class_stop: int) -> float:
    if options.class_weight is None:
        return float(class_stop - class_start)
    return float(options.class_weight[class_start:class_stop].sum())


def merge_rows(
    stacked: Sequence[Float64Array | None],
    block_starts: np.ndarray,
    labels: np.ndarray,
    sample_weight: Float64Array | None,
    options: _Options,
) -> tuple[Float64Array, ...]:
    """Kernel call: ``stacked`` = (row_max, sum_exp, label_logit, gap or None), each ``(n_blocks, n_rows)``;
    labels checked. Returns per-row (row_max, log_sum, nll, row_loss, row_weight), float64."""
    n_rows = labels.size
    block_weight = np.array(
        [block_weight_total(options, int(a), int(b)) for a, b in zip(block_starts[:-1], block_starts[1:], strict=True)]
    )
    outputs = tuple(np.empty(n_rows) for _ in range(5))
    row_max, sum_exp, label_logit, gap = stacked
    out_max, out_log_sum, out_nll, out_loss, out_weight = outputs
    _vocab_kernels.merge_partials.launch(
        n_rows * len(block_starts),
        row_max=row_max,
        sum_exp=sum_exp,
        label_logit=label_logit,
        gap=gap,
        block_starts=np.ascontiguousarray(block_starts, dtype=np.intp),
        block_weight=block_weight,
        labels=np.ascontiguousarray(labels, dtype=np.intp).reshape(-1),
        class_weight=options.class_weight,
        sample_weight=None if sample_weight is None else sample_weight.reshape(-1),
        ignore_index=options.ignore_index,
        n_classes=options.n_classes,
        smoothing=options.label_smoothing,
        z_loss=options.z_loss,
        out_max=out_max,
        out_log_sum=out_log_sum,
        out_nll=out_nll,
        out_loss=out_loss,
        out_weight=out_weight,
    )
    return outputs


def grad_rows(
    block: np.ndarray,
    labels: np.ndarray,
    class_start: int,
    row_max: Float64Array,
    log_sum: Float64Array,
    sample_weight: Float64Array | None,
    grad_scale: float | Float64Array,
    options: _Options,
) -> np.ndarray:
    """Kernel call: the gradient of a 2-D class block given merged per-row statistics (all rows flat).

    ``grad_scale`` is the upstream gradient of each row's loss (a scalar, or one per row), before the sample weight.
    """
    block = np.ascontiguousarray(block, dtype=compute_dtype(options.dtype))
    flat_labels = np.ascontiguousarray(labels, dtype=np.intp).reshape(-1)
    kept = flat_labels != options.ignore_index
    safe_labels = np.where(kept, flat_labels, 0)
    label_weight = 1.0 if options.class_weight is None else options.class_weight[safe_labels]
    row_coef = np.broadcast_to(np.asarray(grad_scale, dtype=np.float64).reshape(-1), flat_labels.shape)
    if sample_weight is not None:
        row_coef = row_coef * sample_weight.reshape(-1)
    eps, n_classes = options.label_smoothing, options.n_classes
    total_weight = n_classes if options.class_weight is None else float(options.class_weight.sum())
    lse = row_max + log_sum
    # d loss / d x_c = p_c [(1-eps) w_y + (eps/C) W + 2 z w_y lse] - (1-eps) w_y [c == y] - (eps/C) w_c
    with np.errstate(invalid="ignore", over="ignore"):  # ignored rows may have inf/nan statistics; they are zeroed
        softmax_coef = row_coef * ((1.0 - eps) * label_weight + eps / n_classes * total_weight)
        softmax_coef = softmax_coef + row_coef * 2.0 * options.z_loss * label_weight * lse
    label_coef = row_coef * (1.0 - eps) * label_weight
    smooth_coef = row_coef * (eps / n_classes)
    weight = None
    if options.class_weight is not None:
        weight = np.ascontiguousarray(options.class_weight[class_start : class_start + block.shape[1]])
    grad = np.empty_like(block)
    _vocab_kernels.block_grad.launch(
        block.size,
        block=block,
        local_labels=flat_labels - class_start,
        kept=kept,
        row_max=row_max,
        log_sum=log_sum,
        softmax_coef=np.ascontiguousarray(softmax_coef, dtype=np.float64),
        label_coef=np.ascontiguousarray(np.broadcast_to(label_coef, flat_labels.shape), dtype=np.float64),
        smooth_coef=np.ascontiguousarray(smooth_coef, dtype=np.float64),
        class_weight=weight,
        grad=grad,
    )
    return grad


def reduce_rows(row_loss: Float64Array, denominator: float, reduction: str, batch_shape: tuple, dtype: np.dtype):
    """The loss as the in-memory function returns it: per row in the labels' shape, or a NumPy scalar."""
    out_type = compute_dtype(dtype).type
    with np.errstate(over="ignore"):  # a float32 loss beyond 3.4e38 is inf, as in memory
        if reduction == "none":
            return row_loss.astype(out_type).reshape(batch_shape)
        total = float(np.sum(row_loss))
        if reduction == "sum":
            return out_type(total)
        return out_type(mean_scale(total, denominator))


def _split_shape(logits: np.ndarray) -> tuple[tuple, int]:
    if logits.ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis, last), got a scalar")
    if logits.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(f"logits must be a float16, float32 or float64 array, got dtype {logits.dtype}")
    return logits.shape[:-1], logits.shape[-1]


def class_block_partials(
    logits_block: ArrayLike,
    labels: ArrayLike,
    *,
    class_start: int,
    n_classes: int,
    class_weight: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> ClassBlockPartials:
    """Per-row partials of one block of classes, ``logits[..., class_start:class_start + logits_block.shape[-1]]``.

    Parameters
    ----------
    logits_block : ndarray of float16, float32 or float64, shape (..., block classes)
        The block, classes along the last axis. float16 is computed in float32.
    labels : ndarray of integers, shape (...)
        Global class indices in ``[0, n_classes)`` or ``ignore_index``, the same for every block.
    class_start : int
        The global index of the block's first class.
    n_classes : int
        The number of classes of the whole logits.
    class_weight : array_like of shape (n_classes,), optional
        The whole class-weight vector (each block uses its own slice).
    ignore_index : int, default -100
        As for :func:`numba_xent.sparse_cross_entropy`.
    label_smoothing : float, default 0.0
        Only whether it is 0 matters here: the smoothing term is computed when it is not.

    Returns
    -------
    ClassBlockPartials

    Raises
    ------
    ValueError
        A label outside ``[0, n_classes)`` that is not ``ignore_index`` (naming the value and its index), a block
        that does not fit in ``[0, n_classes)``, shapes that do not match, and the in-memory function's option
        errors.
    TypeError
        Non-integer labels, logits that are not float16/32/64.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import sparse_cross_entropy
    >>> from numba_xent.partials import class_block_partials, merge_class_block_partials
    >>> rng = np.random.default_rng(0)
    >>> logits, labels = rng.standard_normal((4, 10)), np.array([0, 7, 3, 9])
    >>> splits = [(0, 6), (6, 10)]
    >>> blocks = [class_block_partials(logits[:, a:b], labels, class_start=a, n_classes=10) for a, b in splits]
    >>> merged = merge_class_block_partials(blocks, labels)
    >>> bool(np.isclose(merged.loss, sparse_cross_entropy(logits, labels), rtol=1e-14))
    True
    """
    logits_block = np.asarray(logits_block)
    batch_shape, n_block_classes = _split_shape(logits_block)
    labels = as_labels(labels, batch_shape)
    if not isinstance(class_start, numbers.Integral) or not 0 <= class_start <= n_classes - n_block_classes:
        raise ValueError(
            f"a block of {n_block_classes} classes starting at class_start={class_start!r} does not fit in "
            f"[0, {n_classes})"
        )
    options = check_options(
        n_classes,
        logits_block.dtype,
        class_weight=class_weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    check_labels(labels, n_classes, options.ignore_index)
    class_start = int(class_start)
    row_max, sum_exp, label_logit, gap = block_partials_rows(
        logits_block.reshape(-1, n_block_classes), labels, class_start, options, options.label_smoothing != 0.0
    )
    return ClassBlockPartials(
        class_start=class_start,
        class_stop=class_start + n_block_classes,
        n_classes=int(n_classes),
        row_max=row_max.reshape(batch_shape),
        sum_exp=sum_exp.reshape(batch_shape),
        label_logit=label_logit.reshape(batch_shape),
        weighted_gap=None if gap is None else gap.reshape(batch_shape),
        class_weight_total=block_weight_total(options, class_start, class_start + n_block_classes),
        dtype=compute_dtype(logits_block.dtype),
    )


def merge_class_block_partials(
    partials: Sequence[ClassBlockPartials],
    labels: ArrayLike,
    *,
    class_weight: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
) -> MergedRows:
    """Merge the partials of class blocks that together cover every class into per-row losses and the loss.

    The merge is exact arithmetic on the partials: ``M = max_b m_b``, ``S = sum_b s_b exp(m_b - M)``,
    ``lse = M + log S``; the smoothing term ``sum_b g_b + W_b (M - m_b)`` adds only non-negative numbers. The
    result equals :func:`numba_xent.sparse_cross_entropy` of the whole logits with the same options up to rounding
    (measured over random splits: float64 within 6e-16 relative, float32 within 1.2e-7).

    Parameters
    ----------
    partials : sequence of ClassBlockPartials
        One per block, in any order; their class ranges must tile ``[0, n_classes)``.
    labels : ndarray of integers
        The labels given to :func:`class_block_partials`.
    class_weight, sample_weight, ignore_index, reduction, label_smoothing, z_loss
        As for :func:`numba_xent.sparse_cross_entropy`. ``class_weight`` and ``ignore_index`` must be the ones the
        partials were computed with, and a non-zero ``label_smoothing`` needs partials computed with one.

    Returns
    -------
    MergedRows
        Per-row statistics and losses, and ``loss``: what ``sparse_cross_entropy(..., reduction=reduction)``
        returns. When rows are split too (each process merging its own rows), the global mean is
        ``sum(row_loss) / sum(row_weight)`` over all processes (0.0 if that denominator is 0).

    Raises
    ------
    ValueError
        Blocks that do not tile the classes, or disagree on ``n_classes``, dtype or row shape; labels as in
        :func:`class_block_partials`; the in-memory function's option errors.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import sparse_cross_entropy
    >>> from numba_xent.partials import class_block_partials, merge_class_block_partials
    >>> logits = np.array([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, 1.0]])
    >>> labels = np.array([0, 3])
    >>> options = dict(ignore_index=-100, label_smoothing=0.1)
    >>> left = class_block_partials(logits[:, :2], labels, class_start=0, n_classes=4, **options)
    >>> right = class_block_partials(logits[:, 2:], labels, class_start=2, n_classes=4, **options)
    >>> merged = merge_class_block_partials([right, left], labels, reduction="none", **options)
    >>> merged.loss.round(6)
    array([0.50485 , 2.216578])
    >>> sparse_cross_entropy(logits, labels, reduction="none", **options).round(6)
    array([0.50485 , 2.216578])
    """
    if not partials:
        raise ValueError("merge_class_block_partials needs the partials of at least one class block")
    ordered = sorted(partials, key=lambda part: part.class_start)
    first = ordered[0]
    for part in ordered:
        if part.n_classes != first.n_classes or part.dtype != first.dtype or part.row_max.shape != first.row_max.shape:
            raise ValueError(
                "the partials disagree: n_classes "
                f"{sorted({p.n_classes for p in ordered})}, dtypes {sorted({str(p.dtype) for p in ordered})}, "
                f"row shapes {sorted({p.row_max.shape for p in ordered})}"
            )
    stops = [0] + [part.class_stop for part in ordered]
    starts = [part.class_start for part in ordered] + [first.n_classes]
    if stops != [0] + starts[1:] or starts[0] != 0:
        ranges = ", ".join(f"[{p.class_start}, {p.class_stop})" for p in ordered)
        raise ValueError(f"the blocks' classes {ranges} do not tile [0, {first.n_classes}) exactly once")
    batch_shape = first.row_max.shape
    options = check_options(
        first.n_classes,
        first.dtype,
        class_weight=class_weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
    )
    if options.label_smoothing != 0.0 and any(part.weighted_gap is None for part in ordered):
        raise ValueError("label_smoothing is not 0, but some partials were computed without it (label_smoothing=0)")
    labels = as_labels(labels, batch_shape)
    check_labels(labels, options.n_classes, options.ignore_index)
    weight = as_sample_weight(sample_weight, batch_shape)
    stacked = [np.stack([getattr(part, name).reshape(-1) for part in ordered]) for name in ("row_max", "sum_exp")]
    stacked.append(np.stack([part.label_logit.reshape(-1) for part in ordered]))
    gaps = None
    if options.label_smoothing != 0.0:
        gaps = np.stack([part.weighted_gap.reshape(-1) for part in ordered])  # type: ignore[union-attr]
    row_max, log_sum, nll, row_loss, row_weight = merge_rows(
        [*stacked, gaps], np.array(starts), labels, weight, options
    )
    denominator = float(np.sum(row_weight))
    return MergedRows(
        row_max=row_max.reshape(batch_shape),
        log_sum=log_sum.reshape(batch_shape),
        lse=(row_max + log_sum).reshape(batch_shape),
        nll=nll.reshape(batch_shape),
        row_loss=row_loss.reshape(batch_shape),
        row_weight=row_weight.reshape(batch_shape),
        denominator=denominator,
        loss=reduce_rows(row_loss, denominator, str(reduction), batch_shape, options.dtype),
        reduction=str(reduction),
        options=options,
    )


def class_block_grad(
    logits_block: ArrayLike,
    labels: ArrayLike,
    merged: MergedRows,
    *,
    class_start: int,
    sample_weight: ArrayLike | None = None,
    grad_output: ArrayLike = 1.0,
) -> np.ndarray:
    """Gradient of the merged loss with respect to one class block, from the merged per-row statistics only.

    ``grad[r, c] = g_r (softmax(x_r)_c a_r - (1-eps) w_y [c == y] - (eps/C) w_c)`` with the softmax taken with the
    merged log-sum-exp, ``a_r = (1-eps) w_y + (eps/C) W + 2 z w_y lse_r`` and ``g_r`` the row's upstream gradient
    times its sample weight (divided by the merged denominator for ``reduction="mean"``). The options are the
    ones given to the merge.

    Parameters
    ----------
    logits_block : ndarray, shape (..., block classes)
        The block whose partials went into ``merged``.
    labels : ndarray of integers
        The labels given to the merge.
    merged : MergedRows
        From :func:`merge_class_block_partials`.
    class_start : int
        The global index of the block's first class.
    sample_weight : array_like, optional
        The sample weight given to the merge.
    grad_output : float, or ndarray of the labels' shape for ``reduction="none"``, default 1.0
        The upstream gradient of the loss. When rows are split across processes too, merge with
        ``reduction="sum"`` and pass ``grad_output / global_denominator`` for the gradient of the global mean.

    Returns
    -------
    grad : ndarray of the block's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import sparse_cross_entropy_grad
    >>> from numba_xent.partials import class_block_grad, class_block_partials, merge_class_block_partials
    >>> logits, labels = np.array([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, 1.0]]), np.array([0, 3])
    >>> parts = [class_block_partials(logits[:, a:a + 2], labels, class_start=a, n_classes=4) for a in (0, 2)]
    >>> merged = merge_class_block_partials(parts, labels)
    >>> grad = np.hstack([class_block_grad(logits[:, a:a + 2], labels, merged, class_start=a) for a in (0, 2)])
    >>> bool(np.allclose(grad, sparse_cross_entropy_grad(logits, labels), rtol=1e-13, atol=0))
    True
    """
    logits_block = np.asarray(logits_block)
    batch_shape, n_block_classes = _split_shape(logits_block)
    options = merged.options
    if compute_dtype(logits_block.dtype) != compute_dtype(options.dtype):
        raise TypeError(f"logits_block has dtype {logits_block.dtype} but the partials were of {options.dtype}")
    if merged.row_max.shape != batch_shape:
        raise ValueError(f"logits_block has rows of shape {batch_shape} but the merge had {merged.row_max.shape}")
    if not isinstance(class_start, numbers.Integral) or not 0 <= class_start <= options.n_classes - n_block_classes:
        raise ValueError(
            f"a block of {n_block_classes} classes starting at class_start={class_start!r} does not fit in "
            f"[0, {options.n_classes})"
        )
    labels = as_labels(labels, batch_shape)
    check_labels(labels, options.n_classes, options.ignore_index)
    weight = as_sample_weight(sample_weight, batch_shape)
    scale = np.asarray(grad_output)
    if scale.dtype.kind not in "biuf":
        raise TypeError(f"grad_output must be real, got dtype {scale.dtype}")
    if scale.ndim != 0 and (merged.reduction != "none" or scale.shape != batch_shape):
        raise ValueError(
            f"grad_output must be a scalar, or of the labels' shape {batch_shape} for reduction='none'; got shape "
            f"{scale.shape} for reduction={merged.reduction!r}"
        )
    grad_scale: float | Float64Array = float(scale) if scale.ndim == 0 else scale.astype(np.float64).reshape(-1)
    if merged.reduction == "mean":
        # All rows ignored: the mean is 0 and so is its gradient.
        grad_scale = mean_scale(float(scale), merged.denominator)
    grad = grad_rows(
        logits_block.reshape(-1, n_block_classes),
        labels,
        int(class_start),
        merged.row_max.reshape(-1),
        merged.log_sum.reshape(-1),
        weight,
        grad_scale,
        options,
    )
    return grad.reshape(logits_block.shape).astype(logits_block.dtype, copy=False)
