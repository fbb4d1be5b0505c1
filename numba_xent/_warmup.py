"""``python -m numba_xent warmup``: compile the common kernels into Numba's disk cache ahead of time.

For Docker images and CI: after it, a fresh process's first call loads machine code instead of compiling it (a few
seconds per combination of dtype, row length, serial or parallel, and which options are absent). The cache is
Numba's (``NUMBA_CACHE_DIR`` if set, else next to the package or in the user's cache directory).
"""

from __future__ import annotations

import time

import numpy as np

import numba_xent as nx

from ._launch import PARALLEL_MIN_ELEMENTS


def _calls(dtype, n_rows: int, n_classes: int):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((n_rows, n_classes)).astype(dtype)
    labels = rng.integers(0, n_classes, n_rows)
    class_weight = np.ones(n_classes)
    buffer = np.empty_like(logits)
    probabilities = rng.random((n_rows, n_classes)).astype(dtype) + dtype(0.01)
    return {
        "forward": lambda: nx.sparse_cross_entropy(logits, labels),
        "forward, class_weight": lambda: nx.sparse_cross_entropy(logits, labels, class_weight=class_weight),
        "fused / grad / in place": lambda: nx.sparse_cross_entropy_with_grad(logits, labels, out=buffer),
        "fused, class_weight": lambda: nx.sparse_cross_entropy_with_grad(logits, labels, class_weight=class_weight),
        "grad, per-row grad_output": lambda: nx.sparse_cross_entropy_grad(
            logits, labels, reduction="none", grad_output=np.ones(n_rows)
        ),
        "softmax, log_softmax, logsumexp": lambda: (nx.softmax(logits), nx.log_softmax(logits), nx.logsumexp(logits)),
        "evaluate": lambda: nx.evaluate(logits, labels),
        # Probability inputs (Keras's from_logits=False) run kernels of their own.
        "probabilities: forward, fused": lambda: (
            nx.sparse_cross_entropy(probabilities, labels, from_logits=False),
            nx.sparse_cross_entropy_with_grad(probabilities, labels, from_logits=False),
        ),
    }


def warmup(quick: bool = False) -> int:
    """Compile (or load) the common kernels; returns the number of calls made."""
    dtypes = (np.float32,) if quick else (np.float32, np.float64)
    count = 0
    start = time.perf_counter()
    for dtype in dtypes:
        for n_classes in (10, 1000):  # short rows (across SIMD lanes) and long rows
            for n_rows in (8, 2 * PARALLEL_MIN_ELEMENTS // n_classes):  # the serial twin and the parallel kernel
                for name, call in _calls(dtype, n_rows, n_classes).items():
                    began = time.perf_counter()
                    call()
                    count += 1
                    kind = "parallel" if n_rows * n_classes >= PARALLEL_MIN_ELEMENTS else "serial"
                    print(
                        f"  {np.dtype(dtype).name} C={n_classes} {kind:8s} {name:34s} "
                        f"{time.perf_counter() - began:6.2f} s",
                        flush=True,
                    )
    print(f"warmup: {count} calls in {time.perf_counter() - start:.1f} s")
    return count
