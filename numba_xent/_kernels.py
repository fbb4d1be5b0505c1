"""The @njit kernels: row loops over C-contiguous 2-D ``(rows, classes)`` arrays.

Kernels validate nothing Python can check cheaply. They take plain arrays and scalars: an absent weight is an
empty float64 array, an absent per-row ``grad_output`` is an empty array. Every loss kernel reduces over rows in
fixed blocks of ``ROWS_PER_BLOCK`` rows (``prange`` over blocks, a serial sum inside each block, then the block
sums added in order), so the bits of a mean or sum do not depend on the thread count.
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._vecmath import EXACT, REASSOC, exp_nonpositive, row_max_sum_exp

ROWS_PER_BLOCK = 64
PARALLEL = dict(EXACT, parallel=True)
# Keras clips probabilities to [PROB_EPS, 1 - PROB_EPS] when from_logits=False.
PROB_EPS = 1e-7


@njit(**EXACT)
def n_blocks(n_rows):
    return (n_rows + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK


@njit(**EXACT)
def sum_in_order(block_sums):
    """Add per-block partial sums in index order (the deterministic last step of every reduction)."""
    total = 0.0
    for block in range(block_sums.shape[0]):
        total += block_sums[block]
    return total


def int_bits(row):
    """The row's memory as integers of the same width, for ``block_max``'s order-key trick (@njit only)."""
    raise NotImplementedError


@overload(int_bits, inline="always", jit_options=EXACT)
def _int_bits_overload(row):
    bits_type = {types.float32: np.int32, types.float64: np.int64}[row.dtype]
    return lambda row: row.view(bits_type)


def like(array, value):
    """``value`` converted to ``array``'s float dtype (@njit only)."""
    raise NotImplementedError


@overload(like, inline="always", jit_options=EXACT)
def _like_overload(array, value):
    scalar_type = {types.float32: np.float32, types.float64: np.float64}[array.dtype]
    return lambda array, value: scalar_type(value)


@njit(**EXACT)
def row_stats(row):
    """(max, log(sum(exp(row - max))), lse) of a logits row, from one pass over its memory."""
    row_max, sum_exp = row_max_sum_exp(row, int_bits(row))
    log_sum = math.log(sum_exp)
    return row_max, log_sum, np.float64(row_max) + log_sum


@njit(**REASSOC)
def weighted_row_sum(row, class_weight):
    """sum_c w_c * row[c] in float64 (w = 1 when ``class_weight`` is empty)."""
    total = 0.0
    if class_weight.shape[0] == 0:
        for c in range(row.shape[0]):
            total += np.float64(row[c])
    else:
        for c in range(row.shape[0]):
            total += class_weight[c] * np.float64(row[c])
    return total


@njit(**EXACT)
def first_bad_label(labels, n_classes, ignore_index):
    """Flat index of the first label outside [0, n_classes) that is not ignore_index, or -1."""
    for i in range(labels.shape[0]):
        label = labels[i]
        if label != ignore_index and (label < 0 or label >= n_classes):
            return i
    return -1


@njit(**PARALLEL)
def total_row_weight(labels, class_weight, sample_weight, ignore_index):
    """sum of w_y * s_i over rows whose label is not ignore_index: the denominator of a weighted mean."""
    n_rows = labels.shape[0]
    block_sums = np.zeros(n_blocks(n_rows))
    for block in prange(block_sums.shape[0]):
        total = 0.0
        for row in range(block * ROWS_PER_BLOCK, min(n_rows, (block + 1) * ROWS_PER_BLOCK)):
            label = labels[row]
            if label != ignore_index:
                total += row_weight(label, row, class_weight, sample_weight)
        block_sums[block] = total
    return sum_in_order(block_sums)


@njit(inline="always", **EXACT)
def row_weight(label, row, class_weight, sample_weight):
    weight = 1.0
    if class_weight.shape[0] != 0:
        weight = class_weight[label]
    if sample_weight.shape[0] != 0:
        weight *= sample_weight[row]
    return weight


@njit(inline="always", **EXACT)
def grad_scale_of(row, grad_scale, grad_scale_rows):
    return grad_scale_rows[row] if grad_scale_rows.shape[0] != 0 else grad_scale


# ---------------------------------------------------------------------------------------------------------------
# Sparse (integer label) cross-entropy: one row loop for the loss, the gradient and both.


@njit(**EXACT)
def _sparse_logits_row(
    x, grad, label, class_weight, label_weight, sample_scale, smoothing, z_loss, want_grad, grad_coef
):
    """Loss of one row from logits (times sample_scale); writes the row's gradient times grad_coef if asked.

    loss = (1-eps) w_y (lse - x_y) + (eps/C) sum_c w_c (lse - x_c) + z w_y lse^2.
    d/dx_c = p_c [(1-eps) w_y + (eps/C) W + 2 z w_y lse] - (1-eps) w_y [c == y] - (eps/C) w_c,  W = sum_c w_c.
    """
    n_classes = x.shape[0]
    label_logit = np.float64(x[label])  # read before an in-place gradient overwrites it
    row_max, log_sum, lse = row_stats(x)
    loss = (1.0 - smoothing) * label_weight * (lse - label_logit) + z_loss * label_weight * lse * lse
    smooth_per_class = smoothing / n_classes
    total_class_weight = np.float64(n_classes)
    if smoothing != 0.0:
        if class_weight.shape[0] != 0:
            total_class_weight = 0.0
            for c in range(n_classes):
                total_class_weight += class_weight[c]
        loss += smooth_per_class * (total_class_weight * lse - weighted_row_sum(x, class_weight))
    if want_grad:
        softmax_coef = grad_coef * (
            (1.0 - smoothing) * label_weight + smooth_per_class * total_class_weight + 2.0 * z_loss * label_weight * lse
        )
        coef = like(x, softmax_coef)
        shift = like(x, log_sum)
        for c in range(n_classes):
            grad[c] = coef * exp_nonpositive((x[c] - row_max) - shift)
        if smoothing != 0.0:
            smooth_coef = grad_coef * smooth_per_class
            if class_weight.shape[0] == 0:
                uniform = like(grad, smooth_coef)
                for c in range(n_classes):
                    grad[c] -= uniform
            else:
                for c in range(n_classes):
                    grad[c] -= like(grad, smooth_coef * class_weight[c])
        grad[label] -= like(grad, grad_coef * (1.0 - smoothing) * label_weight)
    return loss * sample_scale


@njit(**EXACT)
def _sparse_probs_row(q, grad, label, label_weight, sample_scale, smoothing, want_grad, grad_coef):
    """Keras semantics for probability inputs: p = q / sum(q), clipped to [1e-7, 1 - 1e-7], loss -sum t log p
    with t = (1-eps) onehot + eps/C. Gradient with respect to q (the clip passes no gradient outside its range).
    """
    n_classes = q.shape[0]
    total = 0.0
    for c in range(n_classes):
        total += np.float64(q[c])
    label_target = 1.0 - smoothing + smoothing / n_classes
    other_target = smoothing / n_classes
    loss = 0.0
    for c in range(n_classes):
        target = label_target if c == label else other_target
        if target != 0.0:
            loss -= target * math.log(min(max(np.float64(q[c]) / total, PROB_EPS), 1.0 - PROB_EPS))
    if want_grad:
        # dL/dq_j = (g_j - sum_c g_c p_c) / S with g_c = dL/dp_c = -t_c / p_c inside the clip range, else 0.
        weighted = 0.0
        for c in range(n_classes):
            target = label_target if c == label else other_target
            p = np.float64(q[c]) / total
            if target != 0.0 and PROB_EPS <= p <= 1.0 - PROB_EPS:
                weighted -= target  # g_c * p_c = -t_c
        for c in range(n_classes):
            target = label_target if c == label else other_target
            p = np.float64(q[c]) / total
            g = -target / p if (target != 0.0 and PROB_EPS <= p <= 1.0 - PROB_EPS) else 0.0
            grad[c] = like(grad, grad_coef * label_weight * sample_scale * (g - weighted) / total)
    return loss * label_weight * sample_scale


@njit(**PARALLEL)
def sparse_rows(
    logits,
    labels,
    class_weight,
    sample_weight,
    ignore_index,
    smoothing,
    z_loss,
    from_logits,
    want_grad,
    grad_scale,
    grad_scale_rows,
    row_loss,
    grad,
):
    """Per-row losses into ``row_loss`` (float64, length rows) and, if ``want_grad``, the gradient into ``grad``.

    ``grad`` may be ``logits`` itself (in place): each row is read completely before it is written. The gradient
    of row i is scaled by ``grad_scale_rows[i]`` if that array is non-empty, else by ``grad_scale``. Returns the
    sum of the row losses, added in fixed blocks.
    """
    n_rows = logits.shape[0]
    block_sums = np.zeros(n_blocks(n_rows))
    for block in prange(block_sums.shape[0]):
        block_total = 0.0
        for row in range(block * ROWS_PER_BLOCK, min(n_rows, (block + 1) * ROWS_PER_BLOCK)):
            label = labels[row]
            if label == ignore_index:
                row_loss[row] = 0.0
                if want_grad:
                    grad[row, :] = 0
                continue
            label_weight = 1.0 if class_weight.shape[0] == 0 else class_weight[label]
            sample_scale = 1.0 if sample_weight.shape[0] == 0 else sample_weight[row]
            grad_coef = sample_scale * grad_scale_of(row, grad_scale, grad_scale_rows)
            if from_logits:
                loss = _sparse_logits_row(
                    logits[row],
                    grad[row],
                    label,
                    class_weight,
                    label_weight,
                    sample_scale,
                    smoothing,
                    z_loss,
                    want_grad,
                    grad_coef,
                )
            else:
                loss = _sparse_probs_row(
                    logits[row], grad[row], label, label_weight, sample_scale, smoothing, want_grad,
                    grad_scale_of(row, grad_scale, grad_scale_rows),
                )
            row_loss[row] = loss
            block_total += loss
        block_sums[block] = block_total
    return sum_in_order(block_sums)


# ---------------------------------------------------------------------------------------------------------------
# Dense (probability target) cross-entropy.


@njit(**EXACT)
def _dense_row(x, targets, grad, class_weight, smoothing, want_grad, grad_coef):
    """loss = sum_c w_c t_c (lse - x_c) with t = (1-eps) targets + eps/C; d/dx_c = p_c sum_k w_k t_k - w_c t_c."""
    n_classes = x.shape[0]
    uniform = smoothing / n_classes
    target_mass = 0.0  # sum_c w_c t_c
    target_logit = 0.0  # sum_c w_c t_c x_c
    for c in range(n_classes):
        target = (1.0 - smoothing) * np.float64(targets[c]) + uniform
        if class_weight.shape[0] != 0:
            target *= class_weight[c]
        target_mass += target
        target_logit += target * np.float64(x[c])
    row_max, log_sum, lse = row_stats(x)
    if want_grad:
        coef = like(x, grad_coef * target_mass)
        shift = like(x, log_sum)
        for c in range(n_classes):
            target = (1.0 - smoothing) * np.float64(targets[c]) + uniform
            if class_weight.shape[0] != 0:
                target *= class_weight[c]
            grad[c] = coef * exp_nonpositive((x[c] - row_max) - shift) - like(x, grad_coef * target)
    return target_mass * lse - target_logit


@njit(**PARALLEL)
def dense_rows(logits, targets, class_weight, sample_weight, smoothing, want_grad, grad_scale, grad_scale_rows,
               row_loss, grad):
    """Per-row losses of probability targets into ``row_loss``; the gradient into ``grad`` if ``want_grad``."""
    n_rows = logits.shape[0]
    block_sums = np.zeros(n_blocks(n_rows))
    for block in prange(block_sums.shape[0]):
        block_total = 0.0
        for row in range(block * ROWS_PER_BLOCK, min(n_rows, (block + 1) * ROWS_PER_BLOCK)):
            sample_scale = 1.0 if sample_weight.shape[0] == 0 else sample_weight[row]
            grad_coef = sample_scale * grad_scale_of(row, grad_scale, grad_scale_rows)
            loss = sample_scale * _dense_row(
                logits[row], targets[row], grad[row], class_weight, smoothing, want_grad, grad_coef
            )
            row_loss[row] = loss
            block_total += loss
        block_sums[block] = block_total
    return sum_in_order(block_sums)


# ---------------------------------------------------------------------------------------------------------------
# Binary cross-entropy with logits (elementwise; pos_weight per class along the last axis).


@njit(**PARALLEL)
def bce_rows(logits, targets, pos_weight, weight, want_grad, grad_scale, grad_scale_elements, element_loss, grad):
    """loss = w [(1 - t) x + (1 + (pw - 1) t) softplus(-x)], as PyTorch; d/dx = w [(1 - t) - (1 + (pw - 1) t) sigmoid(-x)].

    ``weight`` and ``grad_scale_elements`` are empty or of the logits' 2-D shape; ``element_loss`` is written
    when it has the logits' shape (reduction "none").
    """
    n_rows, n_classes = logits.shape
    keep_elements = element_loss.shape[0] != 0
    block_sums = np.zeros(n_blocks(n_rows))
    for block in prange(block_sums.shape[0]):
        block_total = 0.0
        for row in range(block * ROWS_PER_BLOCK, min(n_rows, (block + 1) * ROWS_PER_BLOCK)):
            for c in range(n_classes):
                x = np.float64(logits[row, c])
                target = np.float64(targets[row, c])
                log_weight = 1.0 if pos_weight.shape[0] == 0 else 1.0 + (pos_weight[c] - 1.0) * target
                element_weight = 1.0 if weight.shape[0] == 0 else weight[row, c]
                # softplus(-x) without overflow: max(-x, 0) + log1p(exp(-|x|))
                softplus_neg = max(-x, 0.0) + math.log1p(math.exp(-abs(x)))
                loss = element_weight * ((1.0 - target) * x + log_weight * softplus_neg)
                block_total += loss
                if keep_elements:
                    element_loss[row, c] = loss
                if want_grad:
                    # sigmoid(-x) = exp(-softplus(x)), computed on the side that does not overflow
                    sigmoid_neg = 1.0 / (1.0 + math.exp(x)) if x <= 0.0 else math.exp(-x) / (1.0 + math.exp(-x))
                    scale = grad_scale if grad_scale_elements.shape[0] == 0 else grad_scale_elements[row, c]
                    grad[row, c] = like(grad, scale * element_weight * ((1.0 - target) - log_weight * sigmoid_neg))
        block_sums[block] = block_total
    return sum_in_order(block_sums)


# ---------------------------------------------------------------------------------------------------------------
# softmax, log_softmax, logsumexp


@njit(**PARALLEL)
def softmax_rows(logits, out, log):
    """softmax (or log_softmax if ``log``) of each row into ``out``, which may be ``logits`` itself."""
    for row in prange(logits.shape[0]):
        x = logits[row]
        row_max, log_sum, lse = row_stats(x)
        shift = like(x, log_sum)
        if log:
            for c in range(x.shape[0]):
                out[row, c] = (x[c] - row_max) - shift
        else:
            for c in range(x.shape[0]):
                out[row, c] = exp_nonpositive((x[c] - row_max) - shift)


@njit(**PARALLEL)
def logsumexp_rows(logits, out):
    for row in prange(logits.shape[0]):
        out[row] = row_stats(logits[row])[2]
