"""Binary cross-entropy with logits: elementwise, ``pos_weight`` per class along the last axis."""

import math

import numpy as np
from numba import prange

from .._jit import row_kernel
from .rows import ROWS_PER_BLOCK, n_blocks, sum_in_order


@row_kernel
def bce_rows(logits, targets, pos_weight, weight, grad_scale, grad_scale_elements, losses, grad):
    """loss = w [(1 - t) x + (1 + (pw - 1) t) softplus(-x)], as PyTorch;
    d/dx = w [(1 - t) - (1 + (pw - 1) t) sigmoid(-x)].

    ``weight`` and ``grad_scale_elements`` are None or of the logits' 2-D shape; ``losses`` (reduction
    "none") and ``grad`` are written unless None. Returns the sum of the losses, added in fixed blocks of rows.
    """
    n_rows, n_classes = logits.shape
    block_sums = np.empty(n_blocks(n_rows, ROWS_PER_BLOCK))
    for block in prange(block_sums.shape[0]):
        block_total = 0.0
        for row in range(block * ROWS_PER_BLOCK, min(n_rows, (block + 1) * ROWS_PER_BLOCK)):
            for c in range(n_classes):
                x = np.float64(logits[row, c])
                target = np.float64(targets[row, c])
                log_weight = 1.0
                if pos_weight is not None:
                    log_weight += (pos_weight[c] - 1.0) * target
                element_weight = 1.0
                if weight is not None:
                    element_weight = weight[row, c]
                # softplus(-x) without overflow: max(-x, 0) + log1p(exp(-|x|))
                softplus_neg = max(-x, 0.0) + math.log1p(math.exp(-abs(x)))
                loss = element_weight * ((1.0 - target) * x + log_weight * softplus_neg)
                block_total += loss
                if losses is not None:
                    losses[row, c] = loss
                if grad is not None:
                    # sigmoid(-x) = exp(-softplus(x)), computed on the side that does not overflow
                    sigmoid_neg = 1.0 / (1.0 + math.exp(x)) if x <= 0.0 else math.exp(-x) / (1.0 + math.exp(-x))
                    scale = grad_scale
                    if grad_scale_elements is not None:
                        scale = grad_scale_elements[row, c]
                    grad[row, c] = grad.dtype.type(scale * element_weight * ((1.0 - target) - log_weight * sigmoid_neg))
        block_sums[block] = block_total
    return sum_in_order(block_sums)
