"""``python -m numba_xent``: every public function against a float64 NumPy reference, then a short timing table.

The references here are written the obvious way (``log_softmax`` then ``take_along_axis``; one-hot targets are
fine in a reference), not from the kernels' formulas.
"""

from __future__ import annotations

import time

import numpy as np

import numba_xent as nx


def _log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def reference_sparse(
    logits,
    labels,
    axis=-1,
    class_weight=None,
    sample_weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    z_loss=0.0,
):
    x = np.moveaxis(np.asarray(logits, np.float64), axis, -1)
    n_classes = x.shape[-1]
    log_p = _log_softmax(x)
    keep = labels != ignore_index
    safe = np.where(keep, labels, 0)
    w = np.ones(n_classes) if class_weight is None else np.asarray(class_weight, np.float64)
    s = np.ones(labels.shape) if sample_weight is None else np.asarray(sample_weight, np.float64)
    nll = -np.take_along_axis(log_p, safe[..., None], -1)[..., 0]
    smooth = -(log_p * w).sum(-1)
    lse = np.log(np.exp(x).sum(-1)) if z_loss else 0.0
    row_weight = w[safe] * s * keep
    loss = (1 - label_smoothing) * w[safe] * nll + label_smoothing / n_classes * smooth + z_loss * w[safe] * lse**2
    loss = loss * s * keep
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / row_weight.sum() if row_weight.sum() else 0.0


def _finite_difference(f, x, step=1e-6):
    grad = np.zeros_like(x)
    flat, out = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + step
        up = f(x)
        flat[i] = keep - step
        down = f(x)
        flat[i] = keep
        out[i] = (up - down) / (2 * step)
    return grad


def _cases(rng):
    """(name, our value, reference value, tolerance) for every public function."""
    logits = rng.standard_normal((6, 5, 11)) * 3
    labels = rng.integers(0, 11, (6, 5))
    labels[0, :2] = -100
    class_weight = rng.uniform(0.5, 2.0, 11)
    options = dict(class_weight=class_weight, label_smoothing=0.1, z_loss=1e-3)
    yield (
        "sparse N-D weighted smoothed z-loss",
        nx.sparse_cross_entropy(logits, labels, **options),
        reference_sparse(logits, labels, **options),
        1e-12,
    )
    yield (
        "sparse float32 none",
        nx.sparse_cross_entropy(logits.astype(np.float32), labels, reduction="none"),
        reference_sparse(logits.astype(np.float32), labels, reduction="none"),
        2e-5,
    )
    moved = np.moveaxis(logits, -1, 1)  # (batch, classes, seq), PyTorch's layout
    yield (
        "sparse axis=1",
        nx.sparse_cross_entropy(moved, labels, axis=1, reduction="sum"),
        reference_sparse(logits, labels, reduction="sum"),
        1e-12,
    )
    small_x, small_y = logits[:2, :2], labels[:2, :2]
    yield (
        "sparse gradient vs finite differences",
        nx.sparse_cross_entropy_grad(small_x, small_y, **options),
        _finite_difference(lambda v: reference_sparse(v, small_y, **options), small_x.copy()),
        1e-7,
    )
    loss, grad = nx.sparse_cross_entropy_with_grad(logits, labels, **options)
    yield "fused loss equals forward", loss, nx.sparse_cross_entropy(logits, labels, **options), 0.0
    yield "fused gradient equals gradient", grad, nx.sparse_cross_entropy_grad(logits, labels, **options), 0.0
    targets = np.exp(_log_softmax(rng.standard_normal(logits.shape)))
    dense_reference = -(targets * _log_softmax(logits)).sum(-1).mean()
    yield "dense cross_entropy", nx.cross_entropy(logits, targets), dense_reference, 1e-12
    yield (
        "dense gradient vs finite differences",
        nx.cross_entropy_grad(small_x, targets[:2, :2]),
        _finite_difference(lambda v: -(targets[:2, :2] * _log_softmax(v)).sum(-1).mean(), small_x.copy()),
        1e-7,
    )
    binary = rng.uniform(0, 1, logits.shape)

    def bce_reference(v, t):
        return np.mean(t * np.logaddexp(0, -v) + (1 - t) * np.logaddexp(0, v))

    yield (
        "binary_cross_entropy_with_logits",
        nx.binary_cross_entropy_with_logits(logits, binary),
        bce_reference(logits, binary),
        1e-12,
    )
    small_binary = binary[:2, :2]
    yield (
        "binary gradient vs finite differences",
        nx.binary_cross_entropy_with_logits_grad(small_x, small_binary),
        _finite_difference(lambda v: bce_reference(v, small_binary), small_x.copy()),
        1e-7,
    )
    yield "log_softmax", nx.log_softmax(logits, axis=1), _log_softmax(logits, axis=1), 1e-12
    yield "softmax", nx.softmax(logits), np.exp(_log_softmax(logits)), 1e-12
    yield "logsumexp", nx.logsumexp(logits), np.log(np.exp(logits).sum(-1)), 1e-12


def self_check(seed: int = 0) -> bool:
    rng = np.random.default_rng(seed)
    passed = True
    print("self-check against float64 NumPy references")
    for name, ours, reference, tolerance in _cases(rng):
        ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
        error = float(np.max(np.abs(ours - reference) / np.maximum(np.abs(reference), 1.0))) if ours.size else 0.0
        ok = ours.shape == reference.shape and error <= tolerance
        passed &= ok
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<42} max error {error:.1e} (tolerance {tolerance:.0e})")
    return passed


def _median_seconds(function, repeats=5):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def timing_table(n_rows: int = 4096, n_classes: int = 1000) -> None:
    """Ours against the float64 NumPy reference; ``python -m benchmarks.table`` (from a clone) adds the floors,
    PyTorch and JAX."""
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((n_rows, n_classes)).astype(np.float32)
    labels = rng.integers(0, n_classes, n_rows)
    rows = [
        ("numba_xent forward", lambda: nx.sparse_cross_entropy(logits, labels)),
        ("numba_xent forward+grad (fused)", lambda: nx.sparse_cross_entropy_with_grad(logits, labels)),
        ("NumPy reference forward (float64)", lambda: reference_sparse(logits, labels)),
    ]
    print(f"\ntimings, {n_rows}x{n_classes} float32, median of 5 (python -m benchmarks.table for the full table)")
    for name, function in rows:
        print(f"  {name:<36} {_median_seconds(function) * 1e3:8.2f} ms")
