"""The floors every timing is compared with: all cores reading the logits once (the read floor), and all cores
writing an array of the same size, into fresh memory or in place (the copy floors, for calls that write a
gradient).

reassoc is allowed here only: these kernels are yardsticks, their sums are never used.
"""

import numpy as np
from numba import njit, prange


# One scalar accumulator per row; fastmath={"reassoc"} lets LLVM split it into several vector accumulators
# (inspect_asm: the loop unrolled four times with packed vaddps). A hand-unrolled version compiled to scalar code.
@njit(parallel=True, nogil=True, fastmath={"reassoc"})
def _row_sums(logits, zero):
    n_rows, n_classes = logits.shape
    sums = np.empty(n_rows, dtype=logits.dtype)
    for row in prange(n_rows):
        values = logits[row]
        total = zero
        for col in range(n_classes):
            total += values[col]
        sums[row] = total
    return sums


@njit(parallel=True, nogil=True)
def _scale_rows(logits, out, factor):
    n_rows, n_classes = logits.shape
    for row in prange(n_rows):
        source = logits[row]
        target = out[row]
        for col in range(n_classes):
            target[col] = source[col] * factor


def read_floor(logits: np.ndarray) -> np.ndarray:
    """Per-row sums of ``logits`` (C-contiguous, class axis last) on every Numba thread."""
    rows = logits.reshape(-1, logits.shape[-1])
    return _row_sums(rows, logits.dtype.type(0))


def fresh_copy_floor(logits: np.ndarray) -> np.ndarray:
    """``0.5 * logits`` into a new array on every Numba thread: the page faults, zeroing and write stream that a
    freshly allocated gradient costs."""
    rows = logits.reshape(-1, logits.shape[-1])
    out = np.empty_like(rows)
    _scale_rows(rows, out, logits.dtype.type(0.5))
    return out


def in_place_floor(logits: np.ndarray) -> np.ndarray:
    """``logits *= 0.5`` on every Numba thread: one read and one write of each element, as an in-place gradient."""
    rows = logits.reshape(-1, logits.shape[-1])
    _scale_rows(rows, rows, logits.dtype.type(0.5))
    return logits
