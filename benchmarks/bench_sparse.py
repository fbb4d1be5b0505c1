"""Timings of the integer-label losses: forward, fused forward+grad, grad alone, in place; and the read floor."""

import numba
import numpy as np

import numba_xent

from ._floors import read_floor
from ._shapes import SHAPES, make_inputs


class SparseCrossEntropy:
    """Median time per call; every call allocates its outputs as a user's call would."""

    params = [list(SHAPES)]
    param_names = ["shape"]
    timeout = 600

    def setup(self, shape):
        self.logits, self.labels, self.options = make_inputs(shape)
        # In place overwrites its buffer with the gradient; later calls read gradients as logits, which costs
        # the same (no branch of the kernels depends on the values of finite logits).
        self.work = self.logits.copy()
        # Warm-up: compile (or load from the Numba cache) every kernel timed below, and touch the pages.
        self.time_forward(shape)
        self.time_fwd_grad(shape)
        self.time_grad(shape)
        self.time_in_place(shape)
        self.time_read_floor(shape)

    def time_read_floor(self, shape):
        read_floor(self.logits)

    def time_forward(self, shape):
        numba_xent.sparse_cross_entropy(self.logits, self.labels, **self.options)

    def time_fwd_grad(self, shape):
        numba_xent.sparse_cross_entropy_with_grad(self.logits, self.labels, **self.options)

    def time_grad(self, shape):
        numba_xent.sparse_cross_entropy_grad(self.logits, self.labels, **self.options)

    def time_in_place(self, shape):
        numba_xent.sparse_cross_entropy_with_grad(self.work, self.labels, out=self.work, **self.options)

    def peakmem_forward(self, shape):
        # asv reports the peak RSS of the whole benchmark process, inputs included; the forward pass's own
        # extra memory is tracked by bench_memory.ForwardMemory.
        numba_xent.sparse_cross_entropy(self.logits, self.labels, **self.options)


class Threads:
    """Forward and fused forward+grad on 1024x32000 (8192x32000 with NUMBA_XENT_ASV_SHAPES=full) per thread count."""

    params = [[n for n in (1, 2, 4, 8) if n <= numba.config.NUMBA_NUM_THREADS]]
    param_names = ["threads"]
    timeout = 600

    def setup(self, threads):
        name = "8192x32000" if "8192x32000" in SHAPES else "1024x32000"
        self.logits, self.labels, _ = make_inputs(name)
        numba.set_num_threads(threads)
        self.time_forward(threads)
        self.time_fwd_grad(threads)

    def teardown(self, threads):
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    def time_forward(self, threads):
        numba_xent.sparse_cross_entropy(self.logits, self.labels)

    def time_fwd_grad(self, threads):
        numba_xent.sparse_cross_entropy_with_grad(self.logits, self.labels)


class SmallBatches:
    """Latency of one call on the small batches of NumPy training loops (float32): the fixed cost of a call."""

    params = [["32x10", "128x10", "1024x10", "128x1000"]]
    param_names = ["shape"]

    def setup(self, shape):
        n_rows, n_classes = (int(d) for d in shape.split("x"))
        rng = np.random.default_rng(0)
        self.logits = rng.standard_normal((n_rows, n_classes), dtype=np.float32)
        self.labels = rng.integers(0, n_classes, n_rows)
        self.time_forward(shape)
        self.time_fwd_grad(shape)

    def time_forward(self, shape):
        numba_xent.sparse_cross_entropy(self.logits, self.labels)

    def time_fwd_grad(self, shape):
        numba_xent.sparse_cross_entropy_with_grad(self.logits, self.labels)
