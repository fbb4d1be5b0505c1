"""What every row loop shares: fixed-order block sums, weights, the short-row rule and per-row softmax statistics.

Every loss kernel reduces over rows in fixed blocks of rows (``prange`` over blocks, a serial sum inside each
block, then the block sums added in order), so the bits of a mean or sum do not depend on the thread count.
"""

import math

import numpy as np

from .._jit import jit
from .._vecmath import (
    exp_nonpositive,
    log1p_nonnegative,
    prefer_wide_vectors,
    row_softmax_stats,
    rows_softmax_stats,
)

# Rows per block of the fixed-order reductions. Short rows go through the across-rows helpers, which want a few
# hundred rows per call to pay for their setup.
ROWS_PER_BLOCK = 64
SHORT_ROWS_PER_BLOCK = 256
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


@jit(inline=True)
def class_weight_of(label, class_weight):
    """class_weight[label], or 1.0 when class_weight is None."""
    if class_weight is None:
        return 1.0
    return class_weight[label]


@jit(inline=True)
def sample_weight_of(row, sample_weight):
    """sample_weight[row], or 1.0 when sample_weight is None."""
    if sample_weight is None:
        return 1.0
    return sample_weight[row]


@jit(inline=True)
def grad_scale_of(row, grad_scale, grad_scale_rows):
    """grad_scale_rows[row], or the scalar grad_scale when grad_scale_rows is None."""
    if grad_scale_rows is None:
        return grad_scale
    return grad_scale_rows[row]


@jit
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
def mean_scale(scale, denominator):
    """``scale / denominator``, and 0 when nothing was kept (PyTorch gives nan)."""
    return scale / denominator if denominator != 0.0 else 0.0


@jit
def row_stats(row):
    """(max, log(sum(exp(row - max)))) of a logits row, from one pass over its memory. The log is accurate relative
    to itself when it is tiny (a confident row, whose loss it is)."""
    row_max, sum_minus_one = row_softmax_stats(row)
    return row_max, math.log1p(sum_minus_one)


@jit
def short_rows_stats(block, row_max, log_sum):
    """Per-row max and log(sum(exp(x - max))) of a block of short rows, with SIMD across rows."""
    prefer_wide_vectors()
    sums_minus_one = np.empty(block.shape[0])
    rows_softmax_stats(block, row_max, sums_minus_one)
    for r in range(block.shape[0]):
        log_sum[r] = log1p_nonnegative(sums_minus_one[r])


@jit
def block_stats(block, row_max, log_sum):
    """Per-row max and log(sum(exp(x - max))) of a block of rows, across rows when they are short."""
    if is_short(block.shape[1], block.itemsize):
        short_rows_stats(block, row_max, log_sum)
    else:
        for r in range(block.shape[0]):
            row_max[r], log_sum[r] = row_stats(block[r])


@jit(reassoc=True)
def weighted_gap_sum(row, row_max, class_weight):
    """sum_c w_c (max - row[c]) in float64 (w = 1 when ``class_weight`` is None).

    Summing the gaps to the max, each >= 0, rather than ``W max - sum w x`` keeps the answer exact when the logits
    share a large offset (1e6 in float64, 3e38 in float32), where the difference would cancel away.
    """
    top = np.float64(row_max)
    total = 0.0
    if class_weight is None:
        for c in range(row.shape[0]):
            total += top - np.float64(row[c])
    else:
        for c in range(row.shape[0]):
            total += class_weight[c] * (top - np.float64(row[c]))
    return total


def _softmax_scaled_row(x, row_max, log_sum, coef, out):
    """out[c] = coef * exp((x[c] - max) - log_sum) in the row's dtype; ``out`` may be ``x`` (in place)."""
    prefer_wide_vectors()
    scale = x.dtype.type(coef)
    shift = x.dtype.type(log_sum)
    if out.ctypes.data == x.ctypes.data:
        # In place through one array: with two, LLVM's overlap check fails and it runs the scalar loop.
        for c in range(out.shape[0]):
            out[c] = scale * exp_nonpositive((out[c] - row_max) - shift)
    else:
        for c in range(x.shape[0]):
            out[c] = scale * exp_nonpositive((x[c] - row_max) - shift)


# One source, compiled twice: a call for long rows (the loop dominates), inlined for short rows (the call's
# reference counting costs more than a short row).
softmax_scaled_row = jit(_softmax_scaled_row)
softmax_scaled_short_row = jit(inline=True)(_softmax_scaled_row)


@jit
def log_softmax_row(x, row_max, log_sum, out):
    """out[c] = (x[c] - max) - log_sum in the row's dtype; ``out`` may be ``x`` (see ``softmax_scaled_row``)."""
    prefer_wide_vectors()
    shift = x.dtype.type(log_sum)
    if out.ctypes.data == x.ctypes.data:
        for c in range(out.shape[0]):
            out[c] = (out[c] - row_max) - shift
    else:
        for c in range(x.shape[0]):
            out[c] = (x[c] - row_max) - shift
