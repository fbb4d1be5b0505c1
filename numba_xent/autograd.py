"""HIPS autograd adapter: ``sparse_cross_entropy`` that autograd differentiates with numba_xent's own gradient.

``autograd.grad`` of a model written in ``autograd.numpy`` then runs the loss and its gradient on the package's
kernels. ``import numba_xent`` does not import this module, and this module imports ``autograd`` only when first
used (``pip install "numba_xent[autograd]"``). Absolute imports make ``import autograd`` here the HIPS package.

When autograd traces the call, the loss and the gradient come from one read of the logits
(``sparse_cross_entropy_with_grad``) and enter the trace as one primitive whose vjp only scales that gradient by
the incoming cotangent; outside a trace the call is the plain loss.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import sparse

__all__ = ["sparse_cross_entropy"]


@functools.cache
def _autograd() -> Any:
    """(isbox, getval, the primitive), made on first use."""
    try:
        from autograd.extend import defvjp, primitive  # type: ignore[import-untyped]
        from autograd.tracer import getval, isbox  # type: ignore[import-untyped]
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('numba_xent.autograd needs autograd: pip install "numba_xent[autograd]"') from error

    @primitive
    def fused_loss(logits, loss, grad, per_row_axis):
        """The loss already computed with its gradient; a primitive so that autograd's vjp is ``scaled_grad``."""
        return loss

    def fused_loss_vjp(ans, logits, loss, grad, per_row_axis):
        def scaled_grad(cotangent):
            cotangent = np.asarray(cotangent)
            if cotangent.ndim > 0:  # reduction="none": row i's part of the gradient times cotangent[i]
                cotangent = np.expand_dims(cotangent, per_row_axis)
            elif cotangent == 1.0:
                return grad  # the gradient of the loss as it is: no multiply, no copy
            return np.multiply(grad, cotangent, dtype=grad.dtype)

        return scaled_grad

    defvjp(fused_loss, fused_loss_vjp)  # only the logits are differentiated
    return isbox, getval, fused_loss


def sparse_cross_entropy(logits: ArrayLike, labels: ArrayLike, **options: Any) -> Any:
    """:func:`numba_xent.sparse_cross_entropy` that ``autograd`` differentiates in ``logits`` with the package's
    gradient.

    Takes the same options (``axis``, ``class_weight``, ``sample_weight``, ``ignore_index``, ``reduction``,
    ``label_smoothing``, ``z_loss``, ``from_logits``). Traced by autograd, the call computes the loss and its
    gradient in one pass (:func:`numba_xent.sparse_cross_entropy_with_grad`) and records one primitive whose vjp
    scales that gradient by the cotangent (per row for ``reduction="none"``). Weights are constants.

    Examples
    --------
    >>> import numpy as np
    >>> import autograd.numpy as anp
    >>> from autograd import grad
    >>> from numba_xent.autograd import sparse_cross_entropy
    >>> def loss(weights, features, labels):
    ...     return sparse_cross_entropy(anp.dot(features, weights), labels)
    >>> features, labels = np.eye(3), np.array([0, 1, 2])
    >>> grad(loss)(np.zeros((3, 3)), features, labels).round(4)
    array([[-0.2222,  0.1111,  0.1111],
           [ 0.1111, -0.2222,  0.1111],
           [ 0.1111,  0.1111, -0.2222]])
    """
    isbox, getval, fused_loss = _autograd()
    options = {name: getval(value) for name, value in options.items()}
    if not isbox(logits):
        return sparse.sparse_cross_entropy(logits, getval(labels), **options)
    logits_value = getval(logits)
    # For "none" the gradient is that of the summed per-row losses; the vjp scales row i by its cotangent.
    loss, grad = sparse.sparse_cross_entropy_with_grad(logits_value, getval(labels), **options)
    per_row_axis = int(options.get("axis", -1)) % np.ndim(logits_value)
    return fused_loss(logits, loss, grad, per_row_axis)
