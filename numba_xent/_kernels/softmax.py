"""softmax, log_softmax and logsumexp of each row, from the same one-pass statistics as the losses."""

import numpy as np
from numba import prange

from .._jit import row_kernel
from .rows import (
    block_stats,
    is_short,
    log_softmax_row,
    n_blocks,
    row_stats,
    rows_per_block,
    short_rows_stats,
    softmax_scaled_row,
)


@row_kernel
def softmax_rows(logits, out, log):
    """softmax (or log_softmax if ``log``) of each row into ``out``, which may be ``logits`` itself."""
    n_rows, n_classes = logits.shape
    short = is_short(n_classes, logits.itemsize)
    block_rows = rows_per_block(short)
    for block in prange(n_blocks(n_rows, block_rows)):
        first = block * block_rows
        last = min(n_rows, first + block_rows)
        row_max = np.empty(last - first, logits.dtype)
        log_sum = np.empty(last - first)
        if short:
            short_rows_stats(logits[first:last], row_max, log_sum)
        for row in range(first, last):
            i = row - first
            if not short:
                # Long rows: each row is written right after its statistics, while it is still in cache.
                row_max[i], log_sum[i] = row_stats(logits[row])
            if log:
                log_softmax_row(logits, row, row_max[i], log_sum[i], out)
            else:
                softmax_scaled_row(logits, row, row_max[i], log_sum[i], 1.0, out)


@row_kernel
def logsumexp_rows(logits, out):
    """log(sum(exp(row))) of each row into ``out`` (float64)."""
    n_rows, n_classes = logits.shape
    block_rows = rows_per_block(is_short(n_classes, logits.itemsize))
    for block in prange(n_blocks(n_rows, block_rows)):
        first = block * block_rows
        last = min(n_rows, first + block_rows)
        row_max = np.empty(last - first, logits.dtype)
        log_sum = np.empty(last - first)
        block_stats(logits[first:last], row_max, log_sum)
        for i in range(last - first):
            out[first + i] = np.float64(row_max[i]) + log_sum[i]
