"""The kernel behind :func:`numba_xent.evaluate`: per row, the loss and the label's rank from one read of the row.

Long rows are walked in L1-sized blocks: each block's softmax statistics (``row_softmax_stats``) and, while it is
still in cache, the count of logits strictly above the label's, merged online. The count is only taken while it can
still change an answer (below the largest k) and in blocks whose max beats the label's logit. Short rows get their
statistics across rows (``short_rows_stats``), then their count along each row, still in L1. Rows are reduced in
fixed blocks of rows, summed in order, so the bits do not depend on the thread count.
"""

import math

import numpy as np
from numba import prange

from .._jit import jit, row_kernel
from .._vecmath import ONLINE_BLOCK, exp_nonpositive, prefer_wide_vectors, row_softmax_stats
from .rows import class_weight_of, is_short, label_nll, n_blocks, rows_per_block, short_rows_stats

# Elements counted between checks of whether the count already reached the largest k: short enough to stop early
# on a row whose label is far from the top, long enough for the vectorised count to run at speed.
COUNT_CHUNK = 256
NEVER_CORRECT = np.int32(2**31 - 1)  # the rank given to ignored rows, above any k


@jit
def count_greater(block, threshold, enough):
    """How many elements of ``block`` are strictly greater than ``threshold`` (NaNs are not), or any count >=
    ``enough`` once it is reached (the rest of the block is then skipped)."""
    prefer_wide_vectors()
    count = np.int32(0)
    for start in range(0, block.shape[0], COUNT_CHUNK):
        chunk = block[start : start + COUNT_CHUNK]
        for j in range(chunk.shape[0]):
            # int32 explicitly (Numba widens int32 + int32 to int64): 16 lanes per vector instead of 8.
            count = np.int32(count + (np.int32(1) if chunk[j] > threshold else np.int32(0)))
        if count >= enough:
            break
    return count


@jit
def row_stats_and_rank(row, label_logit, max_k):
    """(max, sum(exp(row - max)) - 1, min(number of logits > label_logit, >= max_k)) from one pass over the row."""
    n_classes = row.shape[0]
    stop = min(n_classes, ONLINE_BLOCK)
    row_max, sum_minus_one = row_softmax_stats(row[:stop])
    greater = count_greater(row[:stop], label_logit, max_k) if row_max > label_logit else 0
    for start in range(ONLINE_BLOCK, n_classes, ONLINE_BLOCK):
        stop = min(n_classes, start + ONLINE_BLOCK)
        block_max, block_sum_minus_one = row_softmax_stats(row[start:stop])
        if greater < max_k and block_max > label_logit:
            greater += count_greater(row[start:stop], label_logit, max_k - greater)
        if block_max > row_max:
            rescale = np.float64(exp_nonpositive(row_max - block_max))
            sum_minus_one = (sum_minus_one + 1.0) * rescale + block_sum_minus_one
            row_max = block_max
        else:
            sum_minus_one += (block_sum_minus_one + 1.0) * np.float64(exp_nonpositive(block_max - row_max))
    return row_max, sum_minus_one, greater


@row_kernel
def evaluate_rows(logits, labels, class_weight, ignore_index, top_k, max_k):
    """Weighted sum of the kept rows' losses, the sum of their weights, the kept-row count, the count of rows
    correct at each k of ``top_k`` (a row is correct at k when fewer than k logits exceed the label's), and the
    first row whose label is outside [0, C) and not ``ignore_index`` (-1 if none; such rows are skipped).
    ``max_k`` is ``max(top_k)``.
    """
    n_rows, n_classes = logits.shape
    short = is_short(n_classes, logits.itemsize)
    block_rows = rows_per_block(short)
    n_block = n_blocks(n_rows, block_rows)
    block_loss = np.empty(n_block)
    block_weight = np.empty(n_block)
    block_kept = np.empty(n_block, np.intp)
    block_bad_row = np.empty(n_block, np.intp)
    block_correct = np.empty((n_block, top_k.shape[0]), np.intp)
    for block in prange(n_block):
        first = block * block_rows
        last = min(n_rows, first + block_rows)
        row_max = np.empty(last - first, logits.dtype)
        log_sum = np.empty(last - first)
        rank = np.empty(last - first, np.int32)
        if short:
            short_rows_stats(logits[first:last], row_max, log_sum)
        loss = 0.0
        weight = 0.0
        kept = 0
        bad_row = -1
        for row in range(first, last):
            i = row - first
            label = labels[row]
            if label == ignore_index or label < 0 or label >= n_classes:
                rank[i] = NEVER_CORRECT
                if label != ignore_index and bad_row < 0:
                    bad_row = row
                continue
            label_logit = logits[row, label]
            if short:
                greater = np.int32(0)
                for c in range(n_classes):
                    greater += np.int32(1) if logits[row, c] > label_logit else np.int32(0)
            else:
                row_max[i], sum_minus_one, greater = row_stats_and_rank(logits[row], label_logit, max_k)
                log_sum[i] = math.log1p(sum_minus_one)
            rank[i] = greater if label_logit == label_logit else n_classes  # a NaN label logit: never correct
            row_weight = class_weight_of(label, class_weight)
            loss += row_weight * label_nll(label_logit, row_max[i], log_sum[i])
            weight += row_weight
            kept += 1
        # Counted after the row loop, one k at a time: a loop that vectorises.
        for j in range(top_k.shape[0]):
            k = top_k[j]
            count = 0
            for i in range(rank.shape[0]):
                count += 1 if rank[i] < k else 0
            block_correct[block, j] = count
        block_loss[block] = loss
        block_weight[block] = weight
        block_kept[block] = kept
        block_bad_row[block] = bad_row
    total_loss = 0.0
    total_weight = 0.0
    total_kept = 0
    first_bad_row = -1
    total_correct = np.zeros(top_k.shape[0], np.intp)
    for block in range(n_block):
        total_loss += block_loss[block]
        total_weight += block_weight[block]
        total_kept += block_kept[block]
        if first_bad_row < 0:
            first_bad_row = block_bad_row[block]
        for j in range(top_k.shape[0]):
            total_correct[j] += block_correct[block, j]
    return total_loss, total_weight, total_kept, total_correct, first_bad_row
