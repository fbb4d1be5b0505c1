"""Resident memory stays flat over many calls of every public function.

The normal run makes 10**4 calls of each; the deep run (``NUMBA_XENT_LEAK_CALLS=100000 python -m pytest -m slow
tests/test_leaks.py``) makes 10**5. After a warm-up (compilation, allocator pools), the resident set may not grow by
more than ``ALLOWED_GROWTH``: a leak of one 64x10 float64 gradient per call (5 KiB) would add 50 MB over 10**4 calls.
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import numba_xent as nx

ALLOWED_GROWTH = 4 * 2**20
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def _calls():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 10))
    x32 = x.astype(np.float32)
    y = rng.integers(0, 10, 64)
    y[:3] = -100
    w = rng.uniform(0.5, 2.0, 10)
    targets = nx.softmax(x[::-1])
    out = np.empty_like(x)
    bad = y.copy()
    bad[5] = 99

    def bad_label():
        try:
            nx.sparse_cross_entropy_with_grad(x, bad, out=out)
        except ValueError:
            pass

    loss_fn = nx.CrossEntropyLoss(class_weight=w, label_smoothing=0.1)
    binary_fn = nx.BinaryCrossEntropyLoss()
    calls = {
        "sparse_cross_entropy": lambda: nx.sparse_cross_entropy(x32, y, class_weight=w, label_smoothing=0.1),
        "sparse_cross_entropy_grad": lambda: nx.sparse_cross_entropy_grad(x, y, reduction="none", grad_output=x[:, 0]),
        "sparse_cross_entropy_with_grad": lambda: nx.sparse_cross_entropy_with_grad(x, y, out=out),
        "cross_entropy": lambda: nx.cross_entropy(x, targets),
        "cross_entropy_grad": lambda: nx.cross_entropy_grad(x, targets),
        "binary_cross_entropy_with_logits": lambda: nx.binary_cross_entropy_with_logits(x, targets),
        "binary_cross_entropy_with_logits_grad": lambda: nx.binary_cross_entropy_with_logits_grad(x, targets),
        "log_softmax": lambda: nx.log_softmax(x, axis=0),
        "softmax": lambda: nx.softmax(x32),
        "logsumexp": lambda: nx.logsumexp(x),
        "a rejected bad label": bad_label,
        "CrossEntropyLoss": lambda: loss_fn(x, y),
        "CrossEntropyLoss.loss_and_grad": lambda: loss_fn.loss_and_grad(x, y, out=out),
        "BinaryCrossEntropyLoss.loss_and_grad": lambda: binary_fn.loss_and_grad(x, targets),
        "evaluate": lambda: nx.evaluate(x, y, top_k=(1, 3)),
    }
    try:
        import torch

        from numba_xent.torch import cross_entropy

        logits = torch.from_numpy(x).requires_grad_(True)
        target = torch.from_numpy(y)

        def torch_step():
            logits.grad = None
            cross_entropy(logits, target).backward()

        calls["torch adapter forward+backward"] = torch_step
    except ImportError:
        pass
    try:
        import autograd

        from numba_xent.autograd import sparse_cross_entropy

        value_and_grad = autograd.value_and_grad(lambda z: sparse_cross_entropy(z, y))
        calls["autograd adapter value_and_grad"] = lambda: value_and_grad(x)
    except ImportError:
        pass
    return calls


CALLS = _calls()


def _check(name, n_calls):
    call = CALLS[name]
    for _ in range(200):
        call()
    before = _rss()
    for _ in range(n_calls):
        call()
    growth = _rss() - before
    assert growth <= ALLOWED_GROWTH, f"{name}: resident memory grew by {growth / 2**20:.1f} MiB over {n_calls} calls"
    return growth


@pytest.mark.parametrize("name", CALLS)
def test_flat_memory(name):
    _check(name, 10_000)


@pytest.mark.slow
@pytest.mark.parametrize("name", CALLS)
def test_flat_memory_deep(name):
    growth = _check(name, int(os.environ.get("NUMBA_XENT_LEAK_CALLS", "100000")))
    print(f"{name}: {growth / 2**20:+.2f} MiB")
