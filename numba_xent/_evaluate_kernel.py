"""The kernel behind :func:`numba_xent.evaluate`: per row, the loss and the label's rank from one read of the row's
memory.

Long rows are walked in L1-sized blocks: each block gets its max and sum of exponentials (``row_max_sum_exp``) and,
while it is still in cache, the count of logits strictly above the label's; block statistics are merged online (the
running sum is rescaled when the max grows). The count is only taken while it can still change an answer (below the
largest k) and in blocks whose max beats the label's logit. Short rows go 64 at a time through a transposed tile,
each SIMD lane one row. Rows are reduced in fixed blocks of rows, summed in order, so the bits do not depend on the
thread count.
"""

import math
from typing import Any

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._vecmath import EXACT, exp_nonpositive, prefer_wide_vectors, row_max_sum_exp

# A log that vectorises across a loop (math.log is a libm call per row: 17 ns, more than a 10-class row's own
# statistics). Not among the _vecmath names promised to stay: if it moves, import it from its new home.
from ._vecmath import log_positive  # isort: skip

JIT: dict[str, Any] = dict(EXACT)
PARALLEL: dict[str, Any] = dict(EXACT, parallel=True)

ROWS_PER_BLOCK = 64
# Elements per block: 8 KiB of float32, so the rank count reads the block from L1 right after its statistics.
ONLINE_BLOCK = 2048


def bits_of(row):
    """The row's memory as integers of the same width, as ``row_max_sum_exp`` takes it (@njit only)."""
    raise NotImplementedError


@overload(bits_of, inline="always", jit_options=JIT)  # type: ignore[arg-type]
def _bits_of_overload(row):
    bits_type = {types.float32: np.int32, types.float64: np.int64}[row.dtype]
    return lambda row: row.view(bits_type)


# Elements counted between checks of whether the count already reached the largest k: short enough to stop early
# on a row whose label is far from the top, long enough for the vectorised count to run at speed.
COUNT_CHUNK = 256


@njit(**JIT)
def count_greater(block, threshold, enough):
    """How many elements of ``block`` are strictly greater than ``threshold`` (NaNs are not), or any count >=
    ``enough`` once it is reached (the rest of the block is then skipped)."""
    prefer_wide_vectors()
    count = np.int32(0)
    for start in range(0, block.shape[0], COUNT_CHUNK):
        chunk = block[start : start + COUNT_CHUNK]
        for j in range(chunk.shape[0]):
            # Kept int32 explicitly (Numba widens int32 + int32 to int64): 16 lanes per vector instead of 8, 0.04
            # against 0.2 ns per element measured. A block is far shorter than 2**31.
            count = np.int32(count + (np.int32(1) if chunk[j] > threshold else np.int32(0)))
        if count >= enough:
            break
    return count


@njit(**JIT)
def row_stats_and_rank(row, label_logit, max_k):
    """(max, sum(exp(row - max)) in float64, min(number of logits > label_logit, >= max_k)) from one pass over the
    row.

    Only ranks below ``max_k`` (the largest k asked for) matter, so a block is counted only while the count is below
    it and when the block's max exceeds the label's logit: a well-trained model's label logit is its row's max (no
    block counted), a poor one's count passes max_k in the first block.
    """
    bits = bits_of(row)
    n_classes = row.shape[0]
    stop = min(n_classes, ONLINE_BLOCK)
    row_max, total = row_max_sum_exp(row[:stop], bits[:stop])
    greater = count_greater(row[:stop], label_logit, max_k) if row_max > label_logit else 0
    for start in range(ONLINE_BLOCK, n_classes, ONLINE_BLOCK):
        stop = min(n_classes, start + ONLINE_BLOCK)
        block_max, block_sum = row_max_sum_exp(row[start:stop], bits[start:stop])
        if greater < max_k and block_max > label_logit:
            greater += count_greater(row[start:stop], label_logit, max_k - greater)
        if block_max > row_max:
            total = total * np.float64(exp_nonpositive(row_max - block_max)) + block_sum
            row_max = block_max
        else:
            total += block_sum * np.float64(exp_nonpositive(block_max - row_max))
    return row_max, total, greater


# Rows of at most this many bytes go through ``short_rows_loss_and_rank`` (SIMD across rows): per row, the
# long-row path's block calls and prefetch cost several times the row itself at 10 classes.
SHORT_ROW_MAX_BYTES = 512
SHORT_ROWS_PER_BLOCK = 256
TILE_ROWS = 64
NEVER_CORRECT = np.int32(2**31 - 1)  # the rank given to ignored rows, above any k


@njit(**JIT)
def short_rows_loss_and_rank(block, labels, nll, rank):
    """``nll[r]`` = lse - x[label] and ``rank[r]`` = the number of logits above the label's, for each row of a block
    of short rows whose label is in range (others get unused values). Each SIMD lane is one row: the block goes
    through a transposed (classes, 64) tile and the lane loops run over rows."""
    prefer_wide_vectors()
    n_rows, n_classes = block.shape
    tile = np.empty((n_classes, TILE_ROWS), block.dtype)
    lane_max = np.empty(TILE_ROWS, block.dtype)
    lane_sum = np.empty(TILE_ROWS, block.dtype)
    lane_label_logit = np.empty(TILE_ROWS, block.dtype)
    lane_greater = np.empty(TILE_ROWS, np.int32)
    lanes = lane_max.shape[0]  # from the array, not the constant: a constant trip count gets unrolled, not vectorised
    for first in range(0, n_rows, lanes):
        used = min(lanes, n_rows - first)
        flat = block[first : first + used].reshape(-1)
        for c in range(n_classes):
            column = flat[c:]
            destination = tile[c]
            for r in range(used):
                destination[r] = column[r * n_classes]  # strided reads: gathers
            for r in range(used, lanes):
                destination[r] = 0.0
        for r in range(used):
            label = labels[first + r]
            lane_label_logit[r] = flat[r * n_classes + label] if 0 <= label < n_classes else 0.0
        for r in range(lanes):
            lane_max[r] = tile[0, r]
            lane_sum[r] = 0.0
            lane_greater[r] = 0
        for c in range(1, n_classes):
            values = tile[c]
            for r in range(lanes):
                lane_max[r] = values[r] if values[r] > lane_max[r] else lane_max[r]  # a NaN poisons the sum below
        for c in range(n_classes):
            values = tile[c]
            for r in range(lanes):
                lane_sum[r] += exp_nonpositive(values[r] - lane_max[r])
                lane_greater[r] += np.int32(1) if values[r] > lane_label_logit[r] else np.int32(0)
        for r in range(used):
            total = np.float64(lane_sum[r])
            log_sum = log_positive(total) if total == total else total  # >= 1, or NaN
            label_logit = lane_label_logit[r]
            # lse - x_y as (max - x_y) + log(sum): max + log(sum) would round the log away for large logits.
            nll[first + r] = (np.float64(lane_max[r]) - np.float64(label_logit)) + log_sum
            rank[first + r] = lane_greater[r] if label_logit == label_logit else n_classes  # NaN: never correct


@njit(**JIT)
def long_rows_loss_and_rank(block, labels, max_k, nll, rank):
    """As ``short_rows_loss_and_rank``, row by row, each row in one pass over its memory; ranks of ``max_k`` or
    more may be reported as any value >= max_k."""
    n_classes = block.shape[1]
    for r in range(block.shape[0]):
        label = labels[r]
        if 0 <= label < n_classes:
            label_logit = block[r, label]
            row_max, sum_exp, greater = row_stats_and_rank(block[r], label_logit, max_k)
            nll[r] = (np.float64(row_max) - np.float64(label_logit)) + math.log(sum_exp)
            rank[r] = greater if label_logit == label_logit else n_classes  # NaN: never correct


@njit(**PARALLEL)
def evaluate_rows(logits, labels, class_weight, ignore_index, top_k, max_k):
    """Weighted sum of the kept rows' losses, the sum of their weights, the kept-row count, the count of rows
    correct at each k of ``top_k`` (a row is correct at k when fewer than k logits exceed the label's), and the
    first row whose label is outside [0, C) and not ``ignore_index`` (-1 if none; such rows are skipped).
    ``max_k`` is ``max(top_k)``.

    No whole-array expressions here (``np.zeros``, ``a[:] = 0``, ``a.max()``, ``a += b``): in a parallel=True function
    each becomes a parallel loop of its own, one more thread launch per call (it doubled the time at 65536x10).
    """
    n_rows, n_classes = logits.shape
    short = n_classes * logits.itemsize <= SHORT_ROW_MAX_BYTES
    block_rows = SHORT_ROWS_PER_BLOCK if short else ROWS_PER_BLOCK
    n_blocks = (n_rows + block_rows - 1) // block_rows
    block_loss = np.empty(n_blocks)
    block_weight = np.empty(n_blocks)
    block_kept = np.empty(n_blocks, np.intp)
    block_bad_row = np.empty(n_blocks, np.intp)
    block_correct = np.empty((n_blocks, top_k.shape[0]), np.intp)
    for block in prange(n_blocks):
        first = block * block_rows
        last = min(n_rows, first + block_rows)
        nll = np.empty(last - first)
        rank = np.empty(last - first, np.int32)
        if short:
            short_rows_loss_and_rank(logits[first:last], labels[first:last], nll, rank)
        else:
            long_rows_loss_and_rank(logits[first:last], labels[first:last], max_k, nll, rank)
        loss = 0.0
        weight = 0.0
        kept = 0
        bad_row = -1
        for row in range(first, last):
            label = labels[row]
            if label == ignore_index or label < 0 or label >= n_classes:
                rank[row - first] = NEVER_CORRECT
                if label != ignore_index and bad_row < 0:
                    bad_row = row
                continue
            row_weight = 1.0 if class_weight is None else class_weight[label]
            loss += row_weight * nll[row - first]
            weight += row_weight
            kept += 1
        # Counted after the row loop, one k at a time: a loop that vectorises, where a per-row update of a count in
        # memory made each row wait for the previous row's store.
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
    total_correct = np.empty(top_k.shape[0], np.intp)
    for j in range(top_k.shape[0]):
        total_correct[j] = 0
    for block in range(n_blocks):
        total_loss += block_loss[block]
        total_weight += block_weight[block]
        total_kept += block_kept[block]
        if first_bad_row < 0:
            first_bad_row = block_bad_row[block]
        for j in range(top_k.shape[0]):
            total_correct[j] += block_correct[block, j]
    return total_loss, total_weight, total_kept, total_correct, first_bad_row
