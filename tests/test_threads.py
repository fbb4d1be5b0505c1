"""Concurrency and determinism: calls from many Python threads at once, and results that do not depend on the
Numba thread count (bit for bit)."""

from __future__ import annotations

import threading

import numba
import numpy as np
import pytest
from helpers import make_labels, make_logits, make_probs

import numba_xent as nx

N_THREADS = 6
N_ROUNDS = 4


def _workload(rng):
    logits = make_logits(rng, (300, 37), np.float32)
    labels = make_labels(rng, (300,), 37, ignore_frac=0.1)
    targets = make_probs(rng, (300, 37), dtype=np.float32)
    bce_targets = rng.random((300, 37)).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, 37)
    kw = {"class_weight": weights, "label_smoothing": 0.1, "z_loss": 1e-3}

    def run():
        loss_none = nx.sparse_cross_entropy(logits, labels, reduction="none", **kw)
        loss_mean = nx.sparse_cross_entropy(logits, labels, **kw)
        grad = nx.sparse_cross_entropy_grad(logits, labels, **kw)
        wg_loss, wg_grad = nx.sparse_cross_entropy_with_grad(logits, labels, reduction="sum", **kw)
        dense = nx.cross_entropy(logits, targets, class_weight=weights)
        dense_grad = nx.cross_entropy_grad(logits, targets, class_weight=weights)
        bce = nx.binary_cross_entropy_with_logits(logits, bce_targets, pos_weight=weights)
        bce_grad = nx.binary_cross_entropy_with_logits_grad(logits, bce_targets, pos_weight=weights)
        lsm = nx.log_softmax(logits)
        sm = nx.softmax(logits)
        lse = nx.logsumexp(logits)
        return [loss_none, loss_mean, grad, wg_loss, wg_grad, dense, dense_grad, bce, bce_grad, lsm, sm, lse]

    return run


def assert_bitwise_equal(results, expected):
    assert len(results) == len(expected)
    for i, (a, b) in enumerate(zip(results, expected, strict=True)):
        a = np.asarray(a)
        b = np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, i
        assert a.tobytes() == b.tobytes(), f"result {i} differs"


def test_concurrent_calls_from_python_threads(rng):
    run = _workload(rng)
    serial = run()  # also compiles everything before the threads start
    barrier = threading.Barrier(N_THREADS)
    outputs: list = [None] * N_THREADS
    errors: list = []

    def worker(index):
        try:
            results = []
            for _ in range(N_ROUNDS):
                barrier.wait(timeout=60)
                results.append(run())
            outputs[index] = results
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert not errors, errors
    for per_thread in outputs:
        assert per_thread is not None and len(per_thread) == N_ROUNDS
        for results in per_thread:
            assert_bitwise_equal(results, serial)


@pytest.fixture
def restore_num_threads():
    original = numba.get_num_threads()
    yield
    numba.set_num_threads(original)


def _deterministic_outputs(logits, labels, targets):
    results = []
    for reduction in ["mean", "sum", "none"]:
        results.append(nx.sparse_cross_entropy(logits, labels, reduction=reduction, label_smoothing=0.1))
        loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, reduction=reduction, z_loss=1e-4)
        results += [loss, grad]
    results.append(nx.sparse_cross_entropy_grad(logits, labels, label_smoothing=0.05))
    results.append(nx.cross_entropy(logits, targets))
    results.append(nx.cross_entropy_grad(logits, targets))
    results.append(nx.binary_cross_entropy_with_logits(logits, targets))
    results.append(nx.binary_cross_entropy_with_logits_grad(logits, targets))
    results.append(nx.logsumexp(logits))
    return results


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs a Numba pool of at least 2 threads")
@pytest.mark.parametrize(
    ("shape", "dtype"), [((10_000, 37), np.float32), ((10_000, 37), np.float64), ((64, 40_000), np.float32)]
)
def test_bitwise_identical_across_thread_counts(rng, restore_num_threads, shape, dtype):
    logits = make_logits(rng, shape, dtype)
    labels = make_labels(rng, shape[:1], shape[1], ignore_frac=0.1)
    targets = make_probs(rng, shape, dtype=dtype)
    numba.set_num_threads(1)
    one = _deterministic_outputs(logits, labels, targets)
    numba.set_num_threads(2)
    two = _deterministic_outputs(logits, labels, targets)
    assert_bitwise_equal(two, one)
