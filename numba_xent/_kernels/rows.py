"""What every row loop shares: fixed-order block sums, weights, the short-row rule and per-row softmax statistics.

Every loss kernel reduces over rows in fixed blocks of rows (``prange`` over blocks, a serial sum inside each
block, then the block sums added in order), so the bits of a mean or sum do not depend on the thread count.
"""

import math

import numpy as np
from numba import types
from numba.extending import overload

from .._jit import OVERLOAD_OPTIONS, jit
from .._vecmath import (
    ONLINE_BLOCK,
    block_max,
    block_sum_exp_apart,
    exp_nonpositive,
    exp_shifted,
    log1p_nonnegative,
    log_positive,
    prefer_wide_vectors,
    row_softmax_stats,
    row_softmax_stats_into,
    rows_softmax_stats,
    segment_sums,
)

# Rows per block of the fixed-order reductions. Short rows go through the across-rows helpers, which want a few
# hundred rows per call to pay for their setup.
ROWS_PER_BLOCK = 64
SHORT_ROWS_PER_BLOCK = 1024
# Rows of at most this many bytes (128 float32 or 64 float64 classes) are processed with SIMD across rows
# (``rows_softmax_stats``): the measured crossover; beyond it the transposed tile outgrows L1.
SHORT_ROW_MAX_BYTES = 512


@jit
def is_short(n_classes, itemsize):
    """The short-row rule, for Python and kernels alike: rows this short are processed across rows."""
    return n_classes * itemsize <= SHORT_ROW_MAX_BYTES


@jit
def rows_per_block(short):
    """Rows per block of the fixed-order reductions (and of the statistics tile for short rows)."""
    return SHORT_ROWS_PER_BLOCK if short else ROWS_PER_BLOCK


# Integer-label losses take rows of up to this many bytes (512 float32 or 256 float64 classes) as flat blocks of
# rows (``short_rows_softmax``), each block about FLAT_BLOCK_ELEMENTS logits (its exps fit in L2); longer rows stream
# through the online softmax row by row. Measured serially against the row-by-row path (float32, ns/logit, forward
# and fused): 200 classes 0.21/0.32 vs 0.48/0.71, 500 0.19/0.29 vs 0.29/0.46; at 1000 a draw (0.19/0.39 vs
# 0.21/0.37), and float64 at 1000 0.59/0.88 vs 0.55/1.03.
FLAT_ROW_MAX_BYTES = 2048
FLAT_BLOCK_ELEMENTS = 65536


@jit
def is_flat(n_classes, itemsize):
    """The flat-block rule of the integer-label losses, for Python and kernels alike."""
    return n_classes * itemsize <= FLAT_ROW_MAX_BYTES


@jit
def flat_rows_per_block(n_classes):
    """Rows per flat block (and per block of the fixed-order reductions): 1024 rows, fewer for rows over 64
    classes."""
    return max(1, min(SHORT_ROWS_PER_BLOCK, FLAT_BLOCK_ELEMENTS // n_classes))


@jit
def n_blocks(n_rows, block_rows):
    return (n_rows + block_rows - 1) // block_rows


# Block partial sums are allocated with np.empty and written once per block: in a parallel kernel np.zeros
# becomes a parallel loop of its own, one more thread launch per call.


@jit
def sum_in_order(block_sums):
    """Add per-block partial sums in index order (the deterministic last step of every reduction)."""
    total = 0.0
    for block in range(block_sums.shape[0]):
        total += block_sums[block]
    return total


@jit
def first_valid(block_rows):
    """The first entry that is not -1, or -1."""
    for block in range(block_rows.shape[0]):
        if block_rows[block] >= 0:
            return block_rows[block]
    return -1


@jit
def class_weight_of(label, class_weight):
    """class_weight[label], or 1.0 when class_weight is None."""
    if class_weight is None:
        return 1.0
    return class_weight[label]


@jit
def sample_weight_of(row, sample_weight):
    """sample_weight[row], or 1.0 when sample_weight is None."""
    if sample_weight is None:
        return 1.0
    return sample_weight[row]


@jit
def grad_scale_of(row, grad_scale, grad_scale_rows):
    """grad_scale_rows[row], or the scalar grad_scale when grad_scale_rows is None."""
    if grad_scale_rows is None:
        return grad_scale
    return grad_scale_rows[row]


@jit(from_python=True)
def first_bad_label(labels, n_classes, ignore_index):
    """Flat index of the first label outside [0, n_classes) that is not ignore_index, or -1."""
    for i in range(labels.shape[0]):
        label = labels[i]
        if label != ignore_index and (label < 0 or label >= n_classes):
            return i
    return -1


@jit
def kept_weight(labels, first, last, n_classes, class_weight, sample_weight, ignore_index):
    """sum of w_y * s_i over rows first..last-1 whose label is in [0, n_classes) and not ignore_index: one block's
    share of the denominator of a weighted mean, added in row order as the loss kernels add it (same bits)."""
    total = 0.0
    for row in range(first, last):
        label = labels[row]
        if label != ignore_index and 0 <= label < n_classes:
            total += class_weight_of(label, class_weight) * sample_weight_of(row, sample_weight)
    return total


@jit
def label_nll(label_logit, row_max, log_sum):
    """lse - x_y as (max - x_y) + log_sum: with a large common offset, max + log_sum would round log_sum away."""
    return (np.float64(row_max) - np.float64(label_logit)) + log_sum


@jit
def mean_scale(scale, denominator):
    """``scale / denominator``, and 0 when nothing was kept (PyTorch gives nan)."""
    return scale / denominator if denominator != 0.0 else 0.0


@jit
def row_stats(row):
    """(max, log(sum(exp(row - max)))) of a logits row, from one pass over its memory. The log is accurate relative
    to itself when it is tiny (a confident row, whose loss it is)."""
    row_max, sum_minus_one = row_softmax_stats(row)
    return row_max, math.log1p(sum_minus_one)


def row_stats_into(logits, row, exps, block_shifts):
    """``row_stats`` of logits[row], also writing its exponentials to exps[row] (``row_softmax_stats_into``) unless
    ``exps`` is None; ``exps`` may be ``logits`` (in place).

    Which of the two runs is chosen from the type of ``exps`` when the caller compiles (an ``@overload``): Numba
    prunes an ``if grad is None`` branch only where ``grad`` *is* None, so a kernel's branch for the forward would be
    compiled into its gradient specialisation too (a second streaming loop: 0.45 s of the first fused call, measured).
    """
    raise NotImplementedError("row_stats_into is called from compiled code only")


@overload(row_stats_into, inline="always", jit_options=OVERLOAD_OPTIONS)  # type: ignore[arg-type]
def _row_stats_into(logits, row, exps, block_shifts):
    if isinstance(exps, types.NoneType):
        return lambda logits, row, exps, block_shifts: row_stats(logits[row])

    def keep_exps(logits, row, exps, block_shifts):
        row_max, sum_minus_one = row_softmax_stats_into(logits[row], exps[row], block_shifts)
        return row_max, math.log1p(sum_minus_one)

    return keep_exps


@jit
def rescale_exps_row(out, row, block_shifts, row_max, log_sum, coef):
    """out[row, c] = coef * softmax(row)_c, from the exps ``row_stats_into`` left there: each block's exps times
    exp(its shift - max - log_sum)."""
    prefer_wide_vectors()
    n_classes = out.shape[1]
    for start in range(0, n_classes, ONLINE_BLOCK):
        shift = (np.float64(block_shifts[start // ONLINE_BLOCK]) - np.float64(row_max)) - log_sum
        factor = out.dtype.type(coef * math.exp(shift))
        block = out[row, start : min(n_classes, start + ONLINE_BLOCK)]
        for j in range(block.shape[0]):
            block[j] *= factor


@jit
def short_rows_stats(block, row_max, log_sum):
    """Per-row max and log(sum(exp(x - max))) of a block of short rows, with SIMD across rows."""
    prefer_wide_vectors()
    sums_minus_one = np.empty(block.shape[0])
    rows_softmax_stats(block, row_max, sums_minus_one)
    for r in range(block.shape[0]):
        log_sum[r] = log1p_nonnegative(sums_minus_one[r])


# A short row whose sum of exponentials against its block's max is below this (its own max lies ~60 below the
# block's: float32's exp underflows at -87 and would drop its smaller terms; or it holds a NaN) takes its statistics
# on its own. exp(-60) and exp(-600): normal in float32 and float64 alike, far above their underflow.
BLOCK_SHIFT_FLOOR_32 = math.exp(-60.0)
BLOCK_SHIFT_FLOOR_64 = math.exp(-600.0)


@jit
def block_shift_floor(itemsize):
    return BLOCK_SHIFT_FLOOR_32 if itemsize == 4 else BLOCK_SHIFT_FLOOR_64


@jit
def short_row_stats(logits, row):
    """(max, log(sum(exp(x - max)))) of one short row in two plain passes, its max's 1s summed apart from the other
    terms (see ``block_sum_exp_apart``): for the rows ``short_rows_softmax`` cannot take against its block's max.
    (Not ``row_stats``: its streaming loop would double the short kernel's compile time, ~1.5 s measured.)"""
    values = logits[row]
    top = block_max(values, np.intp(0), values.shape[0])
    others, ones = block_sum_exp_apart(values, np.intp(0), values.shape[0], top, None)
    return top, math.log1p(others + (ones - 1.0))


@jit
def short_rows_softmax(
    logits, first, last, labels, exps, label_exps, row_max, log_sum, sums, nll, on_own, want_log_sum
):
    """Softmax statistics of the short rows first..last-1 against the block's max, with SIMD along the flat block.

    One flat loop takes every element's exp against the block's max M into ``exps`` (row i at i*C); each row's sum
    is then a contiguous sum, which vectorises. The sparse kernel on it against the transposed tile
    (``short_rows_stats``), serial float32 forward: 10 classes 0.78 vs 0.97 ns/logit, 32 0.34 vs 0.55, 128 0.22
    vs 0.46; fused 1.39 vs 1.74, 0.57 vs 0.92, 0.42 vs 0.90 (the gradient reuses the exps).
    Per row i: row_max[i] = M, sums[i] = sum_c exp(x_c - M), log_sum[i] = log(sums[i]) if ``want_log_sum``, and
    nll[i] = -log p_label as log1p(sum of the other terms / the label's term): the other terms are summed without the
    label's, so a confident row keeps its tiny loss (lse - x_label would cancel it away). On return the label's term
    is in label_exps[i] and its place in ``exps`` holds 0.
    A row whose sum is below ``block_shift_floor`` (its max far below M, or a NaN) is done on its own by
    ``short_row_stats``: on_own[i] is True, row_max[i] is its own max and log_sum[i], nll[i] are relative to it; its
    ``exps`` and ``sums`` are not used. Rows whose label is outside [0, C) get nll[i] = 0.
    """
    prefer_wide_vectors()
    n_rows = last - first
    n_classes = logits.shape[1]
    values = logits[first:last].reshape(-1)
    block_exps = exps[: values.shape[0]]
    top = block_max(values, np.intp(0), values.shape[0])
    exp_shifted(values, top, block_exps)
    for i in range(n_rows):
        label = labels[first + i]
        if 0 <= label < n_classes:
            # Out of the row's sum: the other terms are summed apart from it.
            label_exps[i] = block_exps[i * n_classes + label]
            block_exps[i * n_classes + label] = 0.0
        else:
            label_exps[i] = 0.0
    others = np.empty(n_rows, logits.dtype)
    segment_sums(block_exps, n_classes, others)
    floor = block_shift_floor(logits.itemsize)
    for i in range(n_rows):  # across rows: vectorises
        label_exp = np.float64(label_exps[i])
        total = np.float64(others[i]) + label_exp
        sums[i] = total
        row_max[i] = top
        nll[i] = log1p_nonnegative(np.float64(others[i]) / max(label_exp, floor))
        # A NaN sum fails the test too.
        on_own[i] = not (total >= floor and label_exp >= floor)
    for i in range(n_rows):
        log_sum[i] = log_positive(max(sums[i], floor)) if want_log_sum else 0.0
    for i in range(n_rows):
        if not on_own[i]:
            continue
        row = first + i
        label = labels[row]
        row_max[i], log_sum[i] = short_row_stats(logits, row)
        # The label's term underflowed against M (or against its own max): its loss is large, and lse - x_label
        # loses nothing.
        if 0 <= label < n_classes:
            nll[i] = label_nll(logits[row, label], row_max[i], log_sum[i])
        else:
            nll[i] = 0.0


@jit
def own_row_exps(logits, row, i, label, row_max, log_sum, exps, label_exps, sums):
    """Row ``row`` (block row i), done on its own by ``short_rows_softmax``, put in the exps' form that
    ``scaled_exps_block`` takes: exp(x - its own max) in ``exps`` (label's term apart), sums[i] = their sum.
    Through ``exp_shifted``, which the block's exps compiled already (a loop of its own cost 0.2 s of the fused
    kernel's first call, measured)."""
    n_classes = logits.shape[1]
    exp_shifted(logits[row], row_max, exps[i * n_classes : (i + 1) * n_classes])
    if 0 <= label < n_classes:
        label_exps[i] = exps[i * n_classes + label]
        exps[i * n_classes + label] = 0.0
    sums[i] = math.exp(log_sum)


# Rows of at least this many classes are scaled row by row (their loop fills a vector), shorter ones as one flat
# loop over the block. Measured serially, fused float32: 32 classes 0.63 vs 0.69 ns/logit, 48 0.50 vs 0.55.
WIDE_ROW_CLASSES = 16


@jit
def scaled_exps_block(exps, first, last, scale, out):
    """out[row, c] = scale[i] * exps[i * C + c] for the rows first..last-1 (i = row - first): the softmax part of each
    row's gradient from the exps the statistics took (the label's place holds 0: the caller writes it). Rows of
    fewer than WIDE_ROW_CLASSES classes as one flat loop over the block (a loop over a 10-class row is too short to
    vectorise), each row's scale first spread over its elements. ``out`` may be the logits: nothing is read from it.
    """
    prefer_wide_vectors()
    n_rows = last - first
    n_classes = out.shape[1]
    if n_classes >= WIDE_ROW_CLASSES:
        for i in range(n_rows):
            factor = out.dtype.type(scale[i])
            terms = exps[i * n_classes : (i + 1) * n_classes]
            for c in range(n_classes):
                out[first + i, c] = factor * terms[c]
    else:
        scales = np.empty(n_rows * n_classes, out.dtype)
        for i in range(n_rows):
            factor = out.dtype.type(scale[i])
            for c in range(n_classes):
                scales[i * n_classes + c] = factor
        result = out[first:last].reshape(-1)
        terms = exps[: result.shape[0]]
        for j in range(result.shape[0]):
            result[j] = scales[j] * terms[j]


@jit
def block_stats(block, row_max, log_sum):
    """Per-row max and log(sum(exp(x - max))) of a block of rows, across rows when they are short."""
    if is_short(block.shape[1], block.itemsize):
        short_rows_stats(block, row_max, log_sum)
    else:
        for r in range(block.shape[0]):
            row_max[r], log_sum[r] = row_stats(block[r])


@jit(reassoc=True)
def weighted_gap_sum(logits, row_index, row_max, class_weight):
    """sum_c w_c (max - logits[row_index, c]) in float64 (w = 1 when ``class_weight`` is None).

    Summing the gaps to the max, each >= 0, rather than ``W max - sum w x`` keeps the answer exact when the logits
    share a large offset (1e6 in float64, 3e38 in float32), where the difference would cancel away. Takes the 2-D
    array and a row number, not a row view: a view made in the caller's row loop would cost it a reference count
    per row even where this call is not reached.
    """
    row = logits[row_index]
    top = np.float64(row_max)
    total = 0.0
    if class_weight is None:
        for c in range(row.shape[0]):
            total += top - np.float64(row[c])
    else:
        for c in range(row.shape[0]):
            total += class_weight[c] * (top - np.float64(row[c]))
    return total


def _softmax_scaled_row(logits, row, row_max, log_sum, coef, out):
    """out[row, c] = coef * exp((logits[row, c] - max) - log_sum) in the logits' dtype; ``out`` may be ``logits``.

    Row helpers take the 2-D arrays and a row number, never a row view: a view made in a row loop and passed to a
    call costs an atomic reference-count increment and decrement per row (measured at a third of a 10-class
    forward).
    """
    prefer_wide_vectors()
    scale = logits.dtype.type(coef)
    shift = logits.dtype.type(log_sum)
    if out.ctypes.data == logits.ctypes.data:
        # In place through one array: with two, LLVM's overlap check fails and it runs the scalar loop.
        for c in range(out.shape[1]):
            out[row, c] = scale * exp_nonpositive((out[row, c] - row_max) - shift)
    else:
        for c in range(logits.shape[1]):
            out[row, c] = scale * exp_nonpositive((logits[row, c] - row_max) - shift)


softmax_scaled_row = jit(_softmax_scaled_row)


@jit
def log_softmax_row(logits, row, row_max, log_sum, out):
    """out[row, c] = (logits[row, c] - max) - log_sum in the logits' dtype; ``out`` may be ``logits``."""
    prefer_wide_vectors()
    shift = logits.dtype.type(log_sum)
    if out.ctypes.data == logits.ctypes.data:
        for c in range(out.shape[1]):
            out[row, c] = (out[row, c] - row_max) - shift
    else:
        for c in range(logits.shape[1]):
            out[row, c] = (logits[row, c] - row_max) - shift
