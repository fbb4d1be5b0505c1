"""Cross-entropy over Dask arrays, chunked by rows, by classes or both: lazy results, computed block by block with
the in-memory kernels, on any Dask scheduler (threads, processes, a ``dask.distributed`` cluster).

Row chunks: each block runs :func:`numba_xent.sparse_cross_entropy` and returns two numbers (its loss sum and its
weight sum), added in a tree. Class chunks: each block returns per-row partials (:mod:`numba_xent.partials`),
merged exactly per row chunk across the class axis. Nothing of size rows x classes is ever gathered in one place.

Dask is imported here only, when a function is called; ``import numba_xent`` does not import it.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from . import _vocab_kernels, partials
from ._results import mean_scale
from .sparse import sparse_cross_entropy as _sparse_cross_entropy
from .sparse import sparse_cross_entropy_grad as _sparse_cross_entropy_grad

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["Evaluation", "evaluate", "sparse_cross_entropy", "sparse_cross_entropy_grad"]

Reduction = Literal["mean", "sum", "none"]
# Per-row fields of a merged row chunk (the class-chunked path), along a trailing axis.
LOSS, WEIGHT, ROW_MAX, LOG_SUM, LABEL_LOGIT = range(5)
N_FIELDS = 5


@dataclass(frozen=True)
class _Prepared:
    """Inputs as Dask arrays with the class axis last and labels chunked like the logits' rows."""

    logits: Any  # dask array (..., C), class axis last
    labels: Any  # dask array of the batch shape, chunked like logits.chunks[:-1]
    sample_weight: Any  # the same, float64, or None
    label_chunks: tuple  # the labels' chunks as given (for "none" results)
    axis: int  # the class axis of the caller's logits, non-negative
    options: partials._Options

    @property
    def class_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.logits.chunks[-1])])

    @property
    def rows_only(self) -> bool:
        return len(self.logits.chunks[-1]) == 1


def _as_dask_array(x, name: str, chunks=None):
    import dask.array as da

    if isinstance(x, da.Array):
        if any(np.isnan(size) for sizes in x.chunks for size in sizes):
            raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first")
        return x
    x = np.asarray(x)
    return da.from_array(x, chunks=chunks if chunks is not None else "auto")


def _row_array(x, name: str):
    """A Dask array as it is (its chunks checked), anything else as an ndarray: shapes are checked before wrapping."""
    import dask.array as da

    return _as_dask_array(x, name) if isinstance(x, da.Array) else np.asarray(x)


def _prepare(
    logits, labels, axis, class_weight, sample_weight, ignore_index, reduction, label_smoothing, z_loss
) -> _Prepared:
    """Validate everything that shapes, dtypes and chunks allow, before any graph runs."""
    import dask.array as da

    logits = _as_dask_array(logits, "logits")
    if logits.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(f"logits must be a float16, float32 or float64 array, got dtype {logits.dtype}")
    if logits.ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis), got a scalar")
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    if not -logits.ndim <= axis < logits.ndim:
        raise ValueError(f"axis {axis} is out of bounds for logits with shape {logits.shape}")
    axis = int(axis) % logits.ndim
    if logits.shape[axis] == 0:
        raise ValueError(f"logits has shape {logits.shape}: the class axis {axis} is empty")
    original_shape = logits.shape
    logits = da.moveaxis(logits, axis, -1)
    batch_shape, batch_chunks = logits.shape[:-1], logits.chunks[:-1]
    if isinstance(class_weight, da.Array):
        class_weight = class_weight.compute()  # (C,): small, needed to build the graph
    options = partials.check_options(
        logits.shape[-1],
        logits.dtype,
        class_weight=class_weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
    )
    labels = _row_array(labels, "labels")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be an array of integers, got dtype {labels.dtype}")
    if labels.shape != batch_shape:
        raise ValueError(
            f"labels have shape {labels.shape} but logits of shape {original_shape} with class axis {axis} need "
            f"labels of shape {batch_shape}"
        )
    label_chunks = labels.chunks if isinstance(labels, da.Array) else batch_chunks
    # Labels are 1/C of the logits: rechunking them to the logits' row chunks is cheap and always possible.
    labels = _as_dask_array(labels, "labels", batch_chunks).rechunk(batch_chunks)
    if sample_weight is not None:
        sample_weight = _row_array(sample_weight, "sample_weight")
        if sample_weight.dtype.kind not in "biuf":
            raise TypeError(f"sample_weight must be a real array, got dtype {sample_weight.dtype}")
        if sample_weight.shape != batch_shape:
            raise ValueError(
                f"sample_weight has shape {sample_weight.shape} but labels of that shape need shape {batch_shape}"
            )
        sample_weight = _as_dask_array(sample_weight, "sample_weight", batch_chunks)
        sample_weight = sample_weight.astype(np.float64).rechunk(batch_chunks)
    return _Prepared(logits, labels, sample_weight, label_chunks, axis, options)


def _row_inputs(prepared: _Prepared) -> list:
    """Labels and sample weight with a trailing axis of 1, to broadcast against the logits' blocks."""
    inputs = [prepared.labels[..., None]]
    if prepared.sample_weight is not None:
        inputs.append(prepared.sample_weight[..., None])
    return inputs


def _block_rows(labels, sample_weight, block_info, options: partials._Options):
    """A block's labels and sample weight (given with a trailing axis of 1), checked; errors name global positions.

    ``block_info[0]`` describes the block's first input, whose leading axes are the rows'.
    """
    labels = labels[..., 0]
    offset = tuple(start for start, _ in block_info[0]["array-location"][: labels.ndim])
    partials.check_labels(labels, options.n_classes, options.ignore_index, offset)
    weight = None
    if sample_weight is not None:
        weight = partials.as_sample_weight(sample_weight[..., 0], labels.shape, offset)
    return labels, weight


def _kept_weight(labels: np.ndarray, weight, options: partials._Options) -> np.ndarray:
    """class_weight[y] * sample_weight per row, 0 for ignored rows (labels checked)."""
    kept = labels != options.ignore_index
    row_weight = kept.astype(np.float64)
    if options.class_weight is not None:
        row_weight *= options.class_weight[np.where(kept, labels, 0)]
    if weight is not None:
        row_weight *= weight
    return row_weight


def _in_memory_options(options: partials._Options) -> dict:
    return dict(
        class_weight=options.class_weight,
        ignore_index=options.ignore_index,
        label_smoothing=options.label_smoothing,
        z_loss=options.z_loss,
    )


# --- block functions (module level: they are pickled to the workers) -------------------------------------------


def _rows_totals_block(logits, labels, *weight, options, block_info=None):
    """Row chunk, all classes: (loss sum, weight sum) from the in-memory kernel, shaped (1, ..., 1, 2)."""
    labels, weight = _block_rows(labels, weight[0] if weight else None, block_info, options)
    loss = _sparse_cross_entropy(logits, labels, sample_weight=weight, reduction="sum", **_in_memory_options(options))
    totals = np.array([float(loss), float(np.sum(_kept_weight(labels, weight, options)))])
    return totals.reshape((1,) * labels.ndim + (2,))


def _rows_loss_block(logits, labels, *weight, options, block_info=None):
    labels, weight = _block_rows(labels, weight[0] if weight else None, block_info, options)
    return _sparse_cross_entropy(logits, labels, sample_weight=weight, reduction="none", **_in_memory_options(options))


def _rows_grad_block(logits, labels, *rest, options, has_weight, reduction, block_info=None):
    """Row chunk, all classes: the in-memory gradient; ``rest`` = (sample weight?, scale), scale per row for "none"
    (shaped (..., 1)) else 0-d (the upstream gradient, over the denominator for the mean)."""
    weight = rest[0] if has_weight else None
    labels, weight = _block_rows(labels, weight, block_info, options)
    scale = np.asarray(rest[-1])
    scale = scale[..., 0] if scale.ndim else float(scale)
    return _sparse_cross_entropy_grad(
        logits, labels, sample_weight=weight, reduction=reduction, grad_output=scale, **_in_memory_options(options)
    )


def _weight_sum_block(labels, *weight, options, block_info=None):
    """Labels (and sample weight) of a row chunk -> the chunk's sum of kept rows' weights, shaped (1, ..., 1)."""
    labels, weight = _block_rows(labels[..., None], weight[0][..., None] if weight else None, block_info, options)
    return np.array(float(np.sum(_kept_weight(labels, weight, options)))).reshape((1,) * labels.ndim)


def _partials_block(logits, labels, *, options, with_gap, block_info=None):
    """(rows, classes) block -> (rows, 4) float64 partials: row max, sum exp, label logit, gap (0 if unused)."""
    class_start = block_info[0]["array-location"][-1][0]
    if class_start == 0:  # each row chunk checks its labels once, in its first class block
        _block_rows(labels, None, block_info, options)
    labels = labels[..., 0]
    n_block_classes = logits.shape[-1]
    fields = partials.block_partials_rows(logits.reshape(-1, n_block_classes), labels, class_start, options, with_gap)
    out = np.zeros(labels.shape + (4,))
    for i, field in enumerate(fields):
        if field is not None:
            out[..., i] = field.reshape(labels.shape)
    return out


def _merge_block(stacked, labels, *weight, options, class_starts, block_info=None):
    """All class blocks' partials of a row chunk, concatenated (rows, 4 * n_blocks) -> (rows, N_FIELDS)."""
    labels, weight = _block_rows(labels, weight[0] if weight else None, block_info, options)
    n_blocks = len(class_starts) - 1
    fields = stacked.reshape(-1, n_blocks, 4)
    columns = [np.ascontiguousarray(fields[:, :, i].T) for i in range(4)]
    if options.label_smoothing == 0.0:
        columns[3] = None
    row_max, log_sum, _, row_loss, row_weight = partials.merge_rows(columns, class_starts, labels, weight, options)
    flat_labels = labels.reshape(-1)
    owner = np.clip(np.searchsorted(class_starts, flat_labels, side="right") - 1, 0, n_blocks - 1)
    label_logit = fields[np.arange(flat_labels.size), owner, 2]
    out = np.stack([row_loss, row_weight, row_max, log_sum, label_logit], axis=-1)
    return out.reshape(labels.shape + (N_FIELDS,))


def _column_block(merged, *, field, out_dtype):
    with np.errstate(over="ignore"):  # a float32 loss beyond 3.4e38 is inf, as in memory
        return merged[..., field].astype(out_dtype)


def _class_grad_block(logits, labels, row_max, log_sum, *rest, options, has_weight, block_info=None):
    """A class block's gradient from its row chunk's merged statistics; ``rest`` as in ``_rows_grad_block``."""
    class_start = block_info[0]["array-location"][-1][0]
    weight = rest[0][..., 0] if has_weight else None
    labels = labels[..., 0]
    if weight is not None:
        weight = np.ascontiguousarray(weight, dtype=np.float64)
    scale = np.asarray(rest[-1], dtype=np.float64)
    scale = scale[..., 0].reshape(-1) if scale.ndim else float(scale)
    grad = partials.grad_rows(
        logits.reshape(-1, logits.shape[-1]),
        labels,
        class_start,
        np.ascontiguousarray(row_max[..., 0], dtype=np.float64).reshape(-1),
        np.ascontiguousarray(log_sum[..., 0], dtype=np.float64).reshape(-1),
        None if weight is None else weight.reshape(-1),
        scale,
        options,
    )
    return grad.reshape(logits.shape).astype(logits.dtype, copy=False)


def _finish_block(totals, *, reduction, out_dtype):
    """(loss sum, weight sum) -> the 0-d loss as the in-memory function returns it."""
    loss_sum, weight_sum = float(totals[0]), float(totals[1])
    with np.errstate(over="ignore"):
        if reduction == "sum":
            return np.asarray(out_dtype.type(loss_sum))
        return np.asarray(out_dtype.type(loss_sum / weight_sum if weight_sum != 0.0 else 0.0))


# --- graph builders ------------------------------------------------------------------------------------------


def _merged_rows(prepared: _Prepared):
    """Class-chunked logits -> (..., N_FIELDS) float64 per-row merged statistics, chunked like the rows."""
    import dask.array as da

    logits, options = prepared.logits, prepared.options
    with_gap = options.label_smoothing != 0.0
    n_class_chunks = len(logits.chunks[-1])
    stacked = da.map_blocks(
        _partials_block,
        logits,
        prepared.labels[..., None],
        chunks=logits.chunks[:-1] + ((4,) * n_class_chunks,),
        dtype=np.float64,
        meta=np.empty((0,) * logits.ndim),
        options=options,
        with_gap=with_gap,
    )
    # One task per row chunk gathers that chunk's partials (rows x 4 x class chunks float64, never the logits).
    return da.map_blocks(
        _merge_block,
        stacked.rechunk({logits.ndim - 1: -1}),
        *_row_inputs(prepared),
        chunks=logits.chunks[:-1] + ((N_FIELDS,),),
        dtype=np.float64,
        meta=np.empty((0,) * logits.ndim),
        options=options,
        class_starts=prepared.class_starts,
    )


def _loss_totals(prepared: _Prepared):
    """The (loss sum, weight sum) pair as a (2,) dask array, reduced in a tree."""
    import dask.array as da

    logits = prepared.logits
    batch_axes = tuple(range(logits.ndim - 1))
    if prepared.rows_only:
        per_block = da.map_blocks(
            _rows_totals_block,
            logits,
            *_row_inputs(prepared),
            chunks=tuple((1,) * len(c) for c in logits.chunks[:-1]) + ((2,),),
            dtype=np.float64,
            meta=np.empty((0,) * logits.ndim),
            options=prepared.options,
        )
        return per_block.sum(axis=batch_axes)
    merged = _merged_rows(prepared)
    return merged[..., LOSS : WEIGHT + 1].sum(axis=batch_axes)


def _denominator(prepared: _Prepared):
    """sum of class_weight[y] * sample_weight over kept rows, from the labels alone (0-d dask array)."""
    import dask.array as da

    labels = prepared.labels
    inputs = [labels] + ([prepared.sample_weight] if prepared.sample_weight is not None else [])
    per_block = da.map_blocks(
        _weight_sum_block,
        *inputs,
        chunks=tuple((1,) * len(c) for c in labels.chunks),
        dtype=np.float64,
        meta=np.empty((0,) * labels.ndim),
        options=prepared.options,
    )
    return per_block.sum()


def _restore_label_chunks(result, prepared: _Prepared):
    return result.rechunk(prepared.label_chunks) if result.chunks != prepared.label_chunks else result


def sparse_cross_entropy(
    logits: ArrayLike | da.Array,
    labels: ArrayLike | da.Array,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    sample_weight: ArrayLike | da.Array | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
) -> da.Array:
    """:func:`numba_xent.sparse_cross_entropy` of Dask arrays, as a lazy Dask array.

    Parameters
    ----------
    logits : dask array (or ndarray, wrapped) of float16, float32 or float64
        Any shape, any chunks along any axis; classes along ``axis``.
    labels : dask array (or ndarray) of integers, the shape of ``logits`` without ``axis``
        Rechunked to the logits' row chunks if their chunks differ (cheap: labels are 1/C of the logits).
    axis, class_weight, sample_weight, ignore_index, reduction, label_smoothing, z_loss
        As for :func:`numba_xent.sparse_cross_entropy`. ``class_weight`` is a small (C,) array (a Dask one is
        computed when the graph is built); ``sample_weight`` may be a Dask array of the labels' shape.

    Returns
    -------
    loss : dask array
        0-d for "mean" and "sum"; for "none", the labels' shape chunked like the labels. Call ``.compute()``.

    Raises
    ------
    ValueError, TypeError
        Shapes, dtypes, unknown chunk sizes and options: when the graph is built. A label outside ``[0, C)`` that
        is not ``ignore_index``, or a negative sample weight: at compute time, with the in-memory message and the
        index in the whole array.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import numba_xent
    >>> import numba_xent.dask
    >>> rng = np.random.default_rng(0)
    >>> logits, labels = rng.standard_normal((8, 10)), rng.integers(0, 10, 8)
    >>> chunked = da.from_array(logits, chunks=(3, 4))        # row chunks and class chunks
    >>> loss = numba_xent.dask.sparse_cross_entropy(chunked, labels, label_smoothing=0.1)
    >>> loss
    dask.array<_finish_block, shape=(), dtype=float64, chunksize=(), chunktype=numpy.ndarray>
    >>> expected = numba_xent.sparse_cross_entropy(logits, labels, label_smoothing=0.1)
    >>> bool(np.isclose(loss.compute(scheduler="threads"), expected, rtol=1e-14))
    True
    """
    import dask.array as da

    prepared = _prepare(
        logits, labels, axis, class_weight, sample_weight, ignore_index, reduction, label_smoothing, z_loss
    )
    chunked = prepared.logits
    out_dtype = partials.compute_dtype(chunked.dtype)
    if reduction == "none":
        if prepared.rows_only:
            per_row = da.map_blocks(
                _rows_loss_block,
                chunked,
                *_row_inputs(prepared),
                drop_axis=chunked.ndim - 1,
                dtype=out_dtype,
                meta=np.empty((0,) * (chunked.ndim - 1), out_dtype),
                options=prepared.options,
            )
        else:
            per_row = da.map_blocks(
                _column_block,
                _merged_rows(prepared),
                drop_axis=chunked.ndim - 1,
                dtype=out_dtype,
                meta=np.empty((0,) * (chunked.ndim - 1), out_dtype),
                field=LOSS,
                out_dtype=out_dtype,
            )
        return _restore_label_chunks(per_row, prepared)
    return da.map_blocks(
        _finish_block,
        _loss_totals(prepared),
        drop_axis=0,
        dtype=out_dtype,
        meta=np.empty((), out_dtype),
        reduction=reduction,
        out_dtype=out_dtype,
    )


def _grad_scale(prepared: _Prepared, reduction: str, grad_output):
    """The upstream gradient of each row's loss: a float, a 0-d dask array (the mean's 1/denominator), or a dask
    array of the rows' shape with a trailing 1 (reduction "none")."""
    import dask.array as da

    is_dask = isinstance(grad_output, da.Array)
    scale = grad_output if is_dask else np.asarray(grad_output)
    if scale.dtype.kind not in "biuf":
        raise TypeError(f"grad_output must be real, got dtype {scale.dtype}")
    batch_shape = prepared.labels.shape
    if scale.ndim != 0:
        if reduction != "none":
            raise ValueError(
                f"grad_output must be a scalar for reduction={reduction!r}, got an array of shape {scale.shape}"
            )
        if scale.shape != batch_shape:
            raise ValueError(f"grad_output has shape {scale.shape} but the losses have shape {batch_shape}")
        scale = _as_dask_array(scale, "grad_output", prepared.labels.chunks).astype(np.float64)
        return scale.rechunk(prepared.labels.chunks)[..., None]
    if reduction == "mean":
        return da.map_blocks(_mean_scale_block, _denominator(prepared), scale, dtype=np.float64, meta=np.empty(()))
    return scale if is_dask else float(scale)


def _mean_scale_block(denominator, grad_output):
    # All rows ignored: the mean is 0 and so is its gradient.
    denominator = float(denominator)
    return np.asarray(mean_scale(float(grad_output), denominator))


def sparse_cross_entropy_grad(
    logits: ArrayLike | da.Array,
    labels: ArrayLike | da.Array,
    *,
    axis: int = -1,
    class_weight: ArrayLike | None = None,
    sample_weight: ArrayLike | da.Array | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    grad_output: ArrayLike | da.Array = 1.0,
) -> da.Array:
    """:func:`numba_xent.sparse_cross_entropy_grad` of Dask arrays: a lazy gradient chunked like the logits.

    Row chunks run the in-memory gradient; with class chunks, the per-row statistics are merged first (one read of
    the logits) and each block's gradient is computed from them (a second read). For "mean", the denominator is
    reduced from the labels alone first, and each block is scaled by ``grad_output / denominator``.

    Parameters
    ----------
    logits, labels, axis, class_weight, sample_weight, ignore_index, reduction, label_smoothing, z_loss
        As for :func:`sparse_cross_entropy`.
    grad_output : float, or array of the labels' shape for ``reduction="none"`` (Dask or NumPy), default 1.0
        The upstream gradient of the loss.

    Returns
    -------
    grad : dask array of the logits' shape, dtype and chunks

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import numba_xent
    >>> import numba_xent.dask
    >>> logits, labels = np.random.default_rng(0).standard_normal((6, 8)), np.array([0, 7, 3, -100, 5, 1])
    >>> grad = numba_xent.dask.sparse_cross_entropy_grad(da.from_array(logits, chunks=(4, 5)), labels, z_loss=1e-3)
    >>> grad.chunks
    ((4, 2), (5, 3))
    >>> expected = numba_xent.sparse_cross_entropy_grad(logits, labels, z_loss=1e-3)
    >>> bool(np.allclose(grad.compute(scheduler="threads"), expected, rtol=1e-13, atol=0))
    True
    """
    import dask.array as da

    prepared = _prepare(
        logits, labels, axis, class_weight, sample_weight, ignore_index, reduction, label_smoothing, z_loss
    )
    chunked = prepared.logits
    scale = _grad_scale(prepared, reduction, grad_output)
    has_weight = prepared.sample_weight is not None
    meta = np.empty((0,) * chunked.ndim, chunked.dtype)
    if prepared.rows_only:
        grad = da.map_blocks(
            _rows_grad_block,
            chunked,
            *_row_inputs(prepared),
            scale,
            dtype=chunked.dtype,
            meta=meta,
            options=prepared.options,
            has_weight=has_weight,
            reduction="none" if reduction == "none" else "sum",
        )
    else:
        merged = _merged_rows(prepared)
        grad = da.map_blocks(
            _class_grad_block,
            chunked,
            prepared.labels[..., None],
            merged[..., ROW_MAX : ROW_MAX + 1],
            merged[..., LOG_SUM : LOG_SUM + 1],
            *_row_inputs(prepared)[1:],
            scale,
            dtype=chunked.dtype,
            meta=meta,
            options=prepared.options,
            has_weight=has_weight,
        )
    return da.moveaxis(grad, -1, prepared.axis)


# --- evaluation ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """Summary of a model's logits against labels, from :func:`evaluate`.

    Attributes
    ----------
    loss : float
        The mean cross-entropy, weighted as :func:`numba_xent.sparse_cross_entropy` weights it (0.0 if no row is
        kept).
    n_kept : int
        The number of rows whose label is not ``ignore_index``.
    top_k_accuracy : dict of int to float
        For each k, the fraction of kept rows where fewer than k classes have a logit strictly greater than the
        label's (ties count in the label's favour); 0.0 if no row is kept.
    perplexity : float
        ``exp(loss)``.
    """

    loss: float
    n_kept: int
    top_k_accuracy: dict[int, float]
    perplexity: float


def _check_top_k(top_k) -> tuple[int, ...]:
    values = (top_k,) if isinstance(top_k, numbers.Integral) else tuple(top_k)
    if not values or any(not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1 for k in values):
        raise ValueError(f"top_k must be a positive integer or a non-empty sequence of them, got {top_k!r}")
    return tuple(int(k) for k in values)


def _eval_counts(kept: np.ndarray, above: np.ndarray, top_k: tuple[int, ...]) -> list[float]:
    return [float(np.count_nonzero(kept)), *(float(np.count_nonzero(kept & (above < k))) for k in top_k)]


def _rows_eval_block(logits, labels, *, options, top_k, block_info=None):
    """Row chunk, all classes: (loss sum, weight sum, n kept, correct at each k), shaped (1, ..., 1, 3 + K)."""
    labels, _ = _block_rows(labels, None, block_info, options)
    flat_labels = labels.reshape(-1)
    rows = np.ascontiguousarray(logits.reshape(-1, logits.shape[-1]), dtype=partials.compute_dtype(logits.dtype))
    kept = flat_labels != options.ignore_index
    label_logit = rows[np.arange(rows.shape[0]), np.where(kept, flat_labels, 0)].astype(np.float64)
    above = np.zeros(rows.shape[0], np.int64)
    _vocab_kernels.count_greater.launch(rows.size, block=rows, thresholds=label_logit, counts=above)
    loss = _sparse_cross_entropy(logits, labels, reduction="sum", **_in_memory_options(options))
    totals = [float(loss), float(np.sum(_kept_weight(labels, None, options))), *_eval_counts(kept, above, top_k)]
    return np.array(totals).reshape((1,) * labels.ndim + (len(totals),))


def _count_block(logits, label_logit):
    """Per row: how many of the block's logits exceed the label's, shaped (rows, 1)."""
    rows = np.ascontiguousarray(logits.reshape(-1, logits.shape[-1]), dtype=partials.compute_dtype(logits.dtype))
    above = np.zeros(rows.shape[0], np.int64)
    thresholds = np.ascontiguousarray(label_logit, dtype=np.float64).reshape(-1)
    _vocab_kernels.count_greater.launch(rows.size, block=rows, thresholds=thresholds, counts=above)
    return above.reshape(logits.shape[:-1] + (1,))


def _merged_eval_block(merged, above, labels, *, options, top_k):
    labels = labels[..., 0]
    kept = (labels != options.ignore_index).reshape(-1)
    totals = [
        float(np.sum(merged[..., LOSS])),
        float(np.sum(merged[..., WEIGHT])),
        *_eval_counts(kept, above.reshape(-1), top_k),
    ]
    return np.array(totals).reshape((1,) * labels.ndim + (len(totals),))


def evaluate(
    logits: ArrayLike | da.Array,
    labels: ArrayLike | da.Array,
    *,
    axis: int = -1,
    ignore_index: int = -100,
    class_weight: ArrayLike | None = None,
    top_k: int | Sequence[int] = (1,),
) -> Evaluation:
    """Mean loss, rows kept, top-k accuracies and perplexity of Dask logits, computed now (one graph).

    Row chunks read the logits once. With class chunks, the label's logit must be known before a block can count
    the logits above it, so the logits are read twice (the loss's partials, then the counts).

    Parameters
    ----------
    logits, labels, axis, ignore_index, class_weight
        As for :func:`sparse_cross_entropy`.
    top_k : int or sequence of int, default (1,)
        The k of each top-k accuracy.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import numba_xent.dask
    >>> logits = da.from_array(np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0], [1.0, 1.0, 0.0]]), chunks=(2, 2))
    >>> result = numba_xent.dask.evaluate(logits, np.array([0, 2, 1]), top_k=(1, 2))
    >>> result.n_kept, result.top_k_accuracy
    (3, {1: 0.6666666666666666, 2: 1.0})
    """
    import dask
    import dask.array as da

    top_k = _check_top_k(top_k)
    prepared = _prepare(logits, labels, axis, class_weight, None, ignore_index, "mean", 0.0, 0.0)
    chunked = prepared.logits
    n_fields = 3 + len(top_k)
    block_chunks = tuple((1,) * len(c) for c in chunked.chunks[:-1]) + ((n_fields,),)
    if prepared.rows_only:
        per_block = da.map_blocks(
            _rows_eval_block,
            chunked,
            prepared.labels[..., None],
            chunks=block_chunks,
            dtype=np.float64,
            meta=np.empty((0,) * chunked.ndim),
            options=prepared.options,
            top_k=top_k,
        )
    else:
        merged = _merged_rows(prepared)
        counts = da.map_blocks(
            _count_block,
            chunked,
            merged[..., LABEL_LOGIT : LABEL_LOGIT + 1],
            chunks=chunked.chunks[:-1] + ((1,) * len(chunked.chunks[-1]),),
            dtype=np.int64,
            meta=np.empty((0,) * chunked.ndim, np.int64),
        ).sum(axis=-1, keepdims=True)
        per_block = da.map_blocks(
            _merged_eval_block,
            merged,
            counts,
            prepared.labels[..., None],
            chunks=block_chunks,
            dtype=np.float64,
            meta=np.empty((0,) * chunked.ndim),
            options=prepared.options,
            top_k=top_k,
        )
    (totals,) = dask.compute(per_block.sum(axis=tuple(range(chunked.ndim - 1))))
    loss_sum, weight_sum, n_kept = float(totals[0]), float(totals[1]), int(totals[2])
    loss = loss_sum / weight_sum if weight_sum != 0.0 else 0.0
    with np.errstate(over="ignore"):
        perplexity = float(np.exp(loss))
    accuracy = {k: float(totals[3 + i]) / n_kept if n_kept else 0.0 for i, k in enumerate(top_k)}
    return Evaluation(loss=loss, n_kept=n_kept, top_k_accuracy=accuracy, perplexity=perplexity)
