"""What every row loop shares: fixed-order block sums, weights, the short-row rule and per-row softmax statistics.

Every loss kernel reduces over rows in fixed blocks of rows (``prange`` over blocks, a serial sum inside each
block, then the block sums added in order), so the bits of a mean or sum do not depend on the thread count.
"""

import math

import numpy as np
from numba import prange

from .._jit import jit, row_kernel
from .._vecmath import (
    exp_nonpositive,
    log_positive,
    prefer_wide_vectors,
    row_max_sum_exp,
    rows_max_sum_exp,
)

# Rows per block of the fixed-order reductions. Short rows go through the across-rows helpers, which want a few
# hundred rows per call to pay for their setup.
ROWS_PER_BLOCK = 64
SHORT_ROWS_PER_BLOCK = 256
# Rows of at most this many bytes (128 float32 or 64 float64 classes) are processed with SIMD across rows
# (``rows_max_sum_exp``): the measured crossover; beyond it the transposed tile outgrows L1.
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


@jit
def first_bad_label(labels, n_classes, ignore_index):
    """Flat index of the first label outside [0, n_classes) that is not ignore_index, or -1."""
    for i in range(labels.shape[0]):
        label = labels[i]
        if label != ignore_index and (label < 0 or label >= n_classes):
            return i
    return -1


@row_kernel
def total_row_weight(labels, n_classes, class_weight, sample_weight, ignore_index, block_rows):
    """sum of w_y * s_i over rows whose label is in [0, n_classes) and not ignore_index: the denominator of a
    weighted mean. Added in the same blocks of ``block_rows`` rows as the loss kernels add it, to the same bits.
    """
    n_rows = labels.shape[0]
    block_sums = np.empty(n_blocks(n_rows, block_rows))
    for block in prange(block_sums.shape[0]):
        total = 0.0
        for row in range(block * block_rows, min(n_rows, (block + 1) * block_rows)):
            label = labels[row]
            if label != ignore_index and 0 <= label < n_classes:
                total += class_weight_of(label, class_weight) * sample_weight_of(row, sample_weight)
        block_sums[block] = total
    return sum_in_order(block_sums)


@jit
def row_stats(row):
    """(max, log(sum(exp(row - max)))) of a logits row, from one pass over its memory."""
    row_max, sum_exp = row_max_sum_exp(row)
    return row_max, math.log(sum_exp)


@jit
def short_rows_stats(block, row_max, log_sum):
    """Per-row max and log(sum(exp(x - max))) of a block of short rows, with SIMD across rows."""
    prefer_wide_vectors()
    sums = np.empty(block.shape[0])
    rows_max_sum_exp(block, row_max, sums)
    for r in range(block.shape[0]):
        total = sums[r]
        log_sum[r] = log_positive(total) if total == total else total  # a NaN row stays NaN


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


@jit
def softmax_scaled_row(x, row_max, log_sum, coef, out):
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
