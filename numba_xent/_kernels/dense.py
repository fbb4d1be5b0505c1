"""Cross-entropy against probability targets (soft labels)."""

import numpy as np
from numba import prange

from .._jit import jit, row_kernel
from .rows import (
    ROWS_PER_BLOCK,
    class_weight_of,
    grad_scale_of,
    n_blocks,
    row_stats,
    sample_weight_of,
    softmax_scaled_row,
    sum_in_order,
)


@jit
def dense_row(logits, targets, grad, row, class_weight, smoothing, grad_coef):
    """loss = sum_c w_c t_c (lse - x_c) with t = (1-eps) targets + eps/C; d/dx_c = p_c sum_k w_k t_k - w_c t_c.

    lse - x_c is taken as (max - x_c) + log_sum, exact under a large common offset (see ``weighted_gap_sum``).
    """
    n_classes = logits.shape[1]
    uniform = smoothing / n_classes
    row_max, log_sum = row_stats(logits[row])
    top = np.float64(row_max)
    target_mass = 0.0  # sum_c w_c t_c
    target_gap = 0.0  # sum_c w_c t_c (max - x_c)
    for c in range(n_classes):
        target = ((1.0 - smoothing) * np.float64(targets[row, c]) + uniform) * class_weight_of(c, class_weight)
        target_mass += target
        if target != 0.0:  # a zero target times an infinite gap (a -inf logit) adds nothing, not nan
            target_gap += target * (top - np.float64(logits[row, c]))
    if grad is not None:
        softmax_scaled_row(logits, row, row_max, log_sum, grad_coef * target_mass, grad)
        for c in range(n_classes):
            target = ((1.0 - smoothing) * np.float64(targets[row, c]) + uniform) * class_weight_of(c, class_weight)
            grad[row, c] -= logits.dtype.type(grad_coef * target)
    return target_mass * log_sum + target_gap


@row_kernel
def dense_rows(
    logits, targets, class_weight, sample_weight, label_smoothing, grad_scale, grad_scale_rows, losses, grad
):
    """Per-row losses of probability targets into ``losses``; the gradient into ``grad`` unless it is None.
    Returns the sum of the row losses, added in fixed blocks."""
    n_rows = logits.shape[0]
    block_sums = np.empty(n_blocks(n_rows, ROWS_PER_BLOCK))
    for block in prange(block_sums.shape[0]):
        block_total = 0.0
        for row in range(block * ROWS_PER_BLOCK, min(n_rows, (block + 1) * ROWS_PER_BLOCK)):
            sample_scale = sample_weight_of(row, sample_weight)
            grad_coef = sample_scale * grad_scale_of(row, grad_scale, grad_scale_rows)
            loss = sample_scale * dense_row(logits, targets, grad, row, class_weight, label_smoothing, grad_coef)
            losses[row] = loss
            block_total += loss
        block_sums[block] = block_total
    return sum_in_order(block_sums)
