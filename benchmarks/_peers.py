"""The peers numba_xent is timed against: PyTorch (CPU eager) and JAX (jit, optax), when installed.

Each contender returns ``({name: (zero-argument callable, untimed setup or None)}, the loss it computes)`` (the
loss is a sanity check that everyone computes the same thing), or None when the library is missing.
"""

from __future__ import annotations

import numpy as np

from ._shapes import Case


def torch_contender(case: Case, logits, labels, class_weight):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    n_classes = case.n_classes
    x = torch.from_numpy(logits).view(-1, n_classes)
    y = torch.from_numpy(labels).view(-1)
    w = None if class_weight is None else torch.from_numpy(class_weight)
    x_grad = torch.from_numpy(logits).view(-1, n_classes).detach().requires_grad_(True)

    def forward():
        with torch.no_grad():
            return F.cross_entropy(x, y, weight=w, ignore_index=-100)

    def forward_backward():
        x_grad.grad = None  # a fresh gradient buffer per run, as in a training step
        loss = F.cross_entropy(x_grad, y, weight=w, ignore_index=-100)
        loss.backward()
        return loss

    fns = {"torch fwd": (forward, None), "torch fwd+bwd": (forward_backward, None)}
    return fns, float(forward())


def jax_contender(case: Case, logits, labels, class_weight):
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)  # for the float64 shape; float32 inputs stay float32
    x = jax.device_put(logits)
    y = jax.device_put(labels.astype(np.int32))
    w = None if class_weight is None else jax.device_put(class_weight)

    def loss_fn(x, y, w):
        if w is None:
            return optax.softmax_cross_entropy_with_integer_labels(x, y).mean()
        # optax has no ignore_index / weight: torch's weighted mean over non-ignored labels, written out.
        keep = y != -100
        safe = jnp.where(keep, y, 0)
        per_row = optax.softmax_cross_entropy_with_integer_labels(x, safe)
        row_weight = jnp.where(keep, w[safe], 0).astype(per_row.dtype)
        return jnp.sum(per_row * row_weight) / jnp.sum(row_weight)

    forward = jax.jit(loss_fn)
    value_and_grad = jax.jit(jax.value_and_grad(loss_fn))
    fns = {
        "jax fwd": (lambda: jax.block_until_ready(forward(x, y, w)), None),
        "jax v&g": (lambda: jax.block_until_ready(value_and_grad(x, y, w)), None),
    }
    return fns, float(forward(x, y, w))


def numpy_fused(logits, labels):
    """The five-line NumPy cross-entropy a training loop writes by hand: (mean loss, gradient)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    rows = np.arange(logits.shape[0])
    loss = np.log(sums[:, 0]).mean() - shifted[rows, labels].mean()
    grad = exp / sums
    grad[rows, labels] -= 1.0
    grad /= logits.shape[0]
    return loss, grad


def numpy_forward(logits, labels):
    """The NumPy forward alone (the first four lines of ``numpy_fused``)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return np.log(np.exp(shifted).sum(axis=1)).mean() - shifted[np.arange(logits.shape[0]), labels].mean()
