"""@njit kernels for logits split along the class axis (a vocabulary split): the per-row partials of one class
block, their exact merge into per-row losses, and a class block's gradient from the merged per-row statistics.

Blocks are C-contiguous 2-D ``(rows, block classes)``; labels are global class indices (``intp``), checked by the
caller. Every kernel writes per-row results only (no sum over rows), so its bits do not depend on the thread count.
"""

import math

import numpy as np
from numba import prange

from ._jit import row_kernel
from ._kernels.rows import softmax_scaled_row, weighted_gap_sum
from ._vecmath import row_max_sum_exp


@row_kernel
def block_partials(block, labels, class_start, class_weight, row_max, sum_exp, label_logit, gap):
    """Per-row partials of the class block ``block`` = ``logits[:, class_start:class_start + block.shape[1]]``.

    ``class_weight`` is the block's slice or None. Writes ``row_max`` (float64), ``sum_exp`` = sum exp(x - row_max)
    (0 for a row of -inf logits, which adds nothing to the merged sum), ``label_logit`` (NaN where the label is not
    in this block) and, unless ``gap`` is None, ``gap`` = sum_c w_c (row_max - x_c).
    """
    n_rows, n_block_classes = block.shape
    for row in prange(n_rows):
        x = block[row]
        top, total = row_max_sum_exp(x)
        top64 = np.float64(top)
        no_mass = top64 == -np.inf
        row_max[row] = top64
        sum_exp[row] = 0.0 if no_mass else total
        local = labels[row] - class_start
        label_logit[row] = np.float64(x[local]) if 0 <= local < n_block_classes else np.nan
        if gap is not None:
            # A row of -inf logits leaves its gap to the merge: W_b (M - (-inf)) = inf, as in one piece.
            gap[row] = 0.0 if no_mass else weighted_gap_sum(block, row, top64, class_weight)


@row_kernel
def merge_partials(
    row_max,
    sum_exp,
    label_logit,
    gap,
    block_starts,
    block_weight,
    labels,
    class_weight,
    sample_weight,
    ignore_index,
    n_classes,
    smoothing,
    z_loss,
    out_max,
    out_log_sum,
    out_nll,
    out_loss,
    out_weight,
):
    """Merge the partials of class blocks into per-row statistics and losses.

    Inputs are ``(n_blocks, n_rows)`` arrays in class order; ``block_starts`` has ``n_blocks + 1`` entries (the last
    is ``n_classes``); ``block_weight[b]`` is the class-weight total of block b; ``gap`` is None without smoothing.
    The merge is the one vocab-parallel training uses: M = max_b m_b, S = sum_b s_b exp(m_b - M),
    G = sum_b g_b + W_b (M - m_b). Each row's loss is the in-memory one:
    s [(1-eps) w_y ((M - x_y) + log S) + z w_y lse^2 + (eps/C) (W log S + G)], lse = M + log S.
    Ignored rows get zeros. Labels must be valid (checked by the caller).
    """
    n_blocks, n_rows = row_max.shape
    total_weight = 0.0
    for b in range(n_blocks):
        total_weight += block_weight[b]
    for row in prange(n_rows):
        label = labels[row]
        top = row_max[0, row]
        for b in range(1, n_blocks):
            top = row_max[b, row] if row_max[b, row] > top else top
        total = 0.0
        for b in range(n_blocks):
            total += sum_exp[b, row] * math.exp(row_max[b, row] - top)
        if top == -np.inf:
            total = np.nan  # every logit -inf: no distribution, as in one piece
        log_sum = math.log(total) if total > 0.0 else (-np.inf if total == 0.0 else np.nan)
        out_max[row] = top
        out_log_sum[row] = log_sum
        if label == ignore_index:
            out_nll[row] = 0.0
            out_loss[row] = 0.0
            out_weight[row] = 0.0
            continue
        owner = 0
        while block_starts[owner + 1] <= label:
            owner += 1
        nll = (top - label_logit[owner, row]) + log_sum
        lse = top + log_sum
        label_weight = 1.0 if class_weight is None else class_weight[label]
        loss = (1.0 - smoothing) * label_weight * nll + z_loss * label_weight * lse * lse
        if gap is not None and smoothing != 0.0:
            total_gap = 0.0
            for b in range(n_blocks):
                total_gap += gap[b, row] + block_weight[b] * (top - row_max[b, row])
            loss += smoothing / n_classes * (total_weight * log_sum + total_gap)
        row_scale = 1.0 if sample_weight is None else sample_weight[row]
        out_nll[row] = nll
        out_loss[row] = row_scale * loss
        out_weight[row] = row_scale * label_weight


@row_kernel
def block_grad(block, local_labels, kept, row_max, log_sum, softmax_coef, label_coef, smooth_coef, class_weight, grad):
    """Gradient of a class block: grad[r, c] = a_r softmax(x)_c - b_r [c == y_r] - e_r w_c, softmax with the merged
    statistics. ``a`` = ``softmax_coef``, ``b`` = ``label_coef``, ``e`` = ``smooth_coef`` (float64 per row);
    ``local_labels`` are the labels minus the block's first class (outside [0, block classes) touches nothing);
    rows not ``kept`` get zeros. ``class_weight`` is the block's slice or None. ``grad`` may be ``block``.
    """
    n_rows, n_block_classes = block.shape
    for row in prange(n_rows):
        out = grad[row]
        if not kept[row]:
            out[:] = 0
            continue
        # The same casts as the one-piece kernel: the statistics in the logits' dtype, then exp in that dtype.
        softmax_scaled_row(block, row, block.dtype.type(row_max[row]), log_sum[row], softmax_coef[row], grad)
        if smooth_coef[row] != 0.0:
            if class_weight is None:
                uniform = block.dtype.type(smooth_coef[row])
                for c in range(n_block_classes):
                    out[c] -= uniform
            else:
                for c in range(n_block_classes):
                    out[c] -= block.dtype.type(smooth_coef[row] * class_weight[c])
        local = local_labels[row]
        if 0 <= local < n_block_classes:
            out[local] -= block.dtype.type(label_coef[row])


@row_kernel
def count_greater(block, thresholds, counts):
    """counts[r] += the number of entries of ``block[r]`` strictly greater than ``thresholds[r]`` (float64)."""
    n_rows, n_block_classes = block.shape
    for row in prange(n_rows):
        x = block[row]
        threshold = thresholds[row]
        above = 0
        for c in range(n_block_classes):
            above += np.float64(x[c]) > threshold
        counts[row] += above
