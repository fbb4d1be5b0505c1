"""Integer-label cross-entropy: one row loop for the loss, the gradient and both (the fused kernel)."""

import functools
import math

import numpy as np
from numba import prange

from .._jit import RowKernel, jit
from .._vecmath import ONLINE_BLOCK, block_max
from .rows import (
    ROWS_PER_BLOCK,
    class_weight_of,
    first_valid,
    flat_rows_per_block,
    grad_scale_of,
    kept_weight,
    label_nll,
    mean_scale,
    n_blocks,
    own_row_exps,
    rescale_exps_row,
    row_stats_into,
    sample_weight_of,
    scaled_exps_block,
    short_rows_softmax,
    sum_in_order,
    weighted_gap_sum,
)

# Keras clips probabilities to [PROB_EPS, 1 - PROB_EPS] when from_logits=False.
PROB_EPS = 1e-7


@jit
def smoothing_gaps(logits, row, class_weight, top):
    """(sum_c w_c (top - x_c), W = sum_c w_c) of one row, for label smoothing, against ``top`` >= every logit of
    the row: then sum_c w_c (lse - x_c) = W (lse - top) + the first."""
    n_classes = logits.shape[1]
    total_class_weight = np.float64(n_classes)
    if class_weight is not None:
        total_class_weight = 0.0
        for c in range(n_classes):
            total_class_weight += class_weight[c]
    return weighted_gap_sum(logits, row, top, class_weight), total_class_weight


@jit
def row_loss_and_softmax_coef(
    nll, label_weight, smoothing, z_loss, row_max, log_sum, smooth_loss, total_class_weight, n_classes
):
    """Loss of one row from its softmax statistics and ``nll`` = lse - x_y, and the coefficient of softmax(x) in its
    gradient.

    loss = (1-eps) w_y (lse - x_y) + (eps/C) sum_c w_c (lse - x_c) + z w_y lse^2, so
    d/dx_c = p_c [(1-eps) w_y + (eps/C) W + 2 z w_y lse] - (1-eps) w_y [c == y] - (eps/C) w_c,  W = sum_c w_c.
    ``smooth_loss`` = sum_c w_c (lse - x_c) and ``total_class_weight`` = W (unused when ``smoothing`` is 0).
    """
    lse = np.float64(row_max) + log_sum
    loss = (1.0 - smoothing) * label_weight * nll + z_loss * label_weight * lse * lse
    softmax_coef = (1.0 - smoothing) * label_weight + 2.0 * z_loss * label_weight * lse
    if smoothing != 0.0:
        loss += smoothing / n_classes * smooth_loss
        softmax_coef += smoothing / n_classes * total_class_weight
    return loss, softmax_coef


@jit
def subtract_targets(grad, row, label, class_weight, label_weight, smoothing, grad_coef):
    """Subtract the non-softmax terms of a row's gradient: the label's, and label smoothing's (eps/C) w_c."""
    n_classes = grad.shape[1]
    if smoothing != 0.0:
        smooth_coef = grad_coef * smoothing / n_classes
        if class_weight is None:
            uniform = grad.dtype.type(smooth_coef)
            for c in range(n_classes):
                grad[row, c] -= uniform
        else:
            for c in range(n_classes):
                grad[row, c] -= grad.dtype.type(smooth_coef * class_weight[c])
    grad[row, label] -= grad.dtype.type(grad_coef * (1.0 - smoothing) * label_weight)


@jit
def prob_target(c, label, class_weight, label_weight, smoothing, n_classes):
    """Weight of -log p_c in a row's loss: (1-eps) w_y [c == y] + (eps/C) w_c, as PyTorch's smoothing formula."""
    target = 0.0
    if smoothing != 0.0:
        target = smoothing / n_classes * class_weight_of(c, class_weight)
    if c == label:
        target += (1.0 - smoothing) * label_weight
    return target


@jit
def probs_row(logits, grad, row, label, class_weight, label_weight, smoothing, grad_coef):
    """Probability inputs, Keras's way: p = q / sum(q), clipped to [1e-7, 1 - 1e-7]; then PyTorch's weighting and
    smoothing, loss = sum_c t_c (-log p_c) with t from ``prob_target``. The gradient is with respect to q; the clip
    passes no gradient outside its range; it goes to ``grad[row]`` unless ``grad`` is None. Returns the loss before
    the sample weight. (Takes the 2-D logits and a row number, as ``weighted_gap_sum`` does.)
    """
    q = logits[row]
    n_classes = q.shape[0]
    total = 0.0
    for c in range(n_classes):
        total += np.float64(q[c])
    loss = 0.0
    for c in range(n_classes):
        target = prob_target(c, label, class_weight, label_weight, smoothing, n_classes)
        if target != 0.0:
            loss -= target * math.log(min(max(np.float64(q[c]) / total, PROB_EPS), 1.0 - PROB_EPS))
    if grad is not None:
        # dL/dq_j = (g_j - sum_c g_c p_c) / S with g_c = dL/dp_c = -t_c / p_c inside the clip range, else 0.
        weighted = 0.0
        for c in range(n_classes):
            target = prob_target(c, label, class_weight, label_weight, smoothing, n_classes)
            p = np.float64(q[c]) / total
            if target != 0.0 and PROB_EPS <= p <= 1.0 - PROB_EPS:
                weighted -= target  # g_c * p_c = -t_c
        for c in range(n_classes):
            target = prob_target(c, label, class_weight, label_weight, smoothing, n_classes)
            p = np.float64(q[c]) / total
            g = -target / p if (target != 0.0 and PROB_EPS <= p <= 1.0 - PROB_EPS) else 0.0
            grad[row, c] = grad.dtype.type(grad_coef * (g - weighted) / total)
    return loss


@functools.cache
def sparse_rows(short: bool, from_logits: bool) -> RowKernel:
    """The integer-label row loop, for short rows (``short=True``, rows that pass ``is_flat``: statistics of a
    block of rows with SIMD along the flat block, then the block's gradient from the same exps; logits only) or long
    rows (statistics, loss and gradient row by row, so the gradient pass reads the row from L1/L2); for logits or,
    ``from_logits=False``, probabilities (long rows only). Kernels from one source, the flags constants of each:
    each compiles only its own path (the probability path alone was 0.13-0.29 s of every first call, measured).
    """
    if short and not from_logits:
        raise ValueError("probability inputs take the long-row kernel")

    def kernel(
        logits,
        labels,
        class_weight,
        sample_weight,
        ignore_index,
        label_smoothing,
        z_loss,
        grad_scale,
        grad_scale_rows,
        mean_gradient,
        losses,
        grad,
    ):
        """Per-row losses into ``losses`` (float64, length rows) and, unless ``grad`` is None, the gradient.

        ``grad`` may be ``logits`` itself (in place): a row's logits are all read before its gradient is written. The
        gradient of row i is scaled by ``grad_scale_rows[i]`` (if not None) or by ``grad_scale``, divided by the
        weighted mean's denominator when ``mean_gradient`` (computed first, in the blocks the loss adds it in).

        Returns the sum of the row losses and the sum of the kept rows' weights (the denominator of the mean), each
        added in fixed blocks, and the first row whose label is outside [0, C) and not ``ignore_index`` (-1 if none).
        Such rows are skipped, never indexed; the caller raises, and discards what was written. (Callers that write a
        user's ``out=`` buffer check the labels first with ``first_bad_label``.)
        """
        n_rows, n_classes = logits.shape
        block_rows = flat_rows_per_block(n_classes) if short else ROWS_PER_BLOCK
        block_sums = np.empty(n_blocks(n_rows, block_rows))
        block_weights = np.empty(n_blocks(n_rows, block_rows))
        block_bad_rows = np.empty(n_blocks(n_rows, block_rows), np.intp)
        if grad is not None and mean_gradient:
            for block in prange(block_weights.shape[0]):
                first = block * block_rows
                last = min(n_rows, first + block_rows)
                block_weights[block] = kept_weight(
                    labels, first, last, n_classes, class_weight, sample_weight, ignore_index
                )
            grad_scale = mean_scale(grad_scale, sum_in_order(block_weights))
        for block in prange(block_sums.shape[0]):
            first = block * block_rows
            last = min(n_rows, first + block_rows)
            row_max = np.empty(last - first, logits.dtype)
            log_sum = np.empty(last - first)
            nll = np.empty(last - first)
            softmax_coef = np.empty(last - first)
            target_coef = np.empty(last - first)
            block_shifts = np.empty(n_blocks(n_classes, ONLINE_BLOCK), logits.dtype)
            if short:
                exps = np.empty((last - first) * n_classes, logits.dtype)
                label_exps = np.empty(last - first, logits.dtype)
                sums = np.empty(last - first)
                on_own = np.empty(last - first, np.bool_)
                want_log_sum = label_smoothing != 0.0 or z_loss != 0.0
                short_rows_softmax(
                    logits, first, last, labels, exps, label_exps, row_max, log_sum, sums, nll, on_own, want_log_sum
                )
            block_total = 0.0
            block_weight = 0.0
            bad_row = -1
            for row in range(first, last):
                i = row - first
                label = labels[row]
                if label == ignore_index or label < 0 or label >= n_classes:
                    if label != ignore_index and bad_row < 0:
                        bad_row = row
                    losses[row] = 0.0
                    softmax_coef[i] = 0.0
                    if grad is not None:
                        grad[row, :] = 0
                    continue
                label_weight = class_weight_of(label, class_weight)
                sample_scale = sample_weight_of(row, sample_weight)
                block_weight += label_weight * sample_scale
                grad_coef = sample_scale * grad_scale_of(row, grad_scale, grad_scale_rows)
                if not from_logits:
                    loss = sample_scale * probs_row(
                        logits, grad, row, label, class_weight, label_weight, label_smoothing, grad_coef
                    )
                else:
                    gap_sum = 0.0
                    total_class_weight = 0.0
                    if not short:
                        label_logit = logits[row, label]
                        if grad is not None and label_smoothing != 0.0:
                            # The gradient's exps are written over the row if in place: what needs the logits comes
                            # first. The smoothing gaps against the row's max (the statistics find the same max).
                            top = block_max(logits[row], np.intp(0), n_classes)
                            gap_sum, total_class_weight = smoothing_gaps(logits, row, class_weight, top)
                        row_max[i], log_sum[i] = row_stats_into(logits, row, grad, block_shifts)
                        nll[i] = label_nll(label_logit, row_max[i], log_sum[i])
                    if label_smoothing != 0.0 and (short or grad is None):
                        gap_sum, total_class_weight = smoothing_gaps(logits, row, class_weight, row_max[i])
                    smooth_loss = total_class_weight * log_sum[i] + gap_sum
                    loss, coef = row_loss_and_softmax_coef(
                        nll[i],
                        label_weight,
                        label_smoothing,
                        z_loss,
                        row_max[i],
                        log_sum[i],
                        smooth_loss,
                        total_class_weight,
                        n_classes,
                    )
                    loss *= sample_scale
                    softmax_coef[i] = grad_coef * coef
                    target_coef[i] = grad_coef
                    if grad is not None and short:
                        # Its softmax is the exps over their sum: the coefficient of the exps. (The logits are still
                        # intact here, in place or not, for a row done on its own.)
                        if on_own[i]:
                            own_row_exps(logits, row, i, label, row_max[i], log_sum[i], exps, label_exps, sums)
                        softmax_coef[i] /= sums[i]
                    if grad is not None and not short:
                        rescale_exps_row(grad, row, block_shifts, row_max[i], log_sum[i], grad_coef * coef)
                        subtract_targets(grad, row, label, class_weight, label_weight, label_smoothing, grad_coef)
                losses[row] = loss
                block_total += loss
            block_sums[block] = block_total
            block_weights[block] = block_weight
            block_bad_rows[block] = bad_row
            if grad is not None and short:
                # The block's logits were all read above (in place is safe): the softmax part of every row's gradient
                # from the exps the statistics took (each exp computed once), in one flat loop; then each row's
                # label term and targets.
                scaled_exps_block(exps, first, last, softmax_coef, grad)
                for row in range(first, last):
                    i = row - first
                    label = labels[row]
                    if label == ignore_index or label < 0 or label >= n_classes:
                        for c in range(n_classes):
                            grad[row, c] = 0.0  # not just 0 * softmax: a NaN row's gradient is 0 when ignored
                        continue
                    grad[row, label] = logits.dtype.type(softmax_coef[i]) * label_exps[i]
                    label_weight = class_weight_of(label, class_weight)
                    subtract_targets(grad, row, label, class_weight, label_weight, label_smoothing, target_coef[i])
        return sum_in_order(block_sums), sum_in_order(block_weights), first_valid(block_bad_rows)

    return RowKernel(kernel, name=f"sparse_rows(short={short}, from_logits={from_logits})")
