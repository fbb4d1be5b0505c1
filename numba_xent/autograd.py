"""HIPS autograd adapter: ``sparse_cross_entropy`` as an autograd primitive whose vjp is numba_xent's gradient.

``autograd.grad`` of a model written in ``autograd.numpy`` then runs the loss and its gradient on the package's
kernels. ``import numba_xent`` does not import this module, and this module imports ``autograd`` only when first
used (``pip install "numba_xent[autograd]"``). Absolute imports make ``import autograd`` here the HIPS package.
"""

from __future__ import annotations

import functools
from typing import Any

from numpy.typing import ArrayLike

from . import sparse

__all__ = ["sparse_cross_entropy"]


@functools.cache
def _primitive() -> Any:
    try:
        from autograd.extend import defvjp, primitive  # type: ignore[import-untyped]
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('numba_xent.autograd needs autograd: pip install "numba_xent[autograd]"') from error

    loss = primitive(sparse.sparse_cross_entropy)

    def logits_vjp(ans, logits, labels, **options):
        # grad_output g is a scalar for "mean"/"sum" and per-row losses' shape for "none": the gradient takes both.
        return lambda g: sparse.sparse_cross_entropy_grad(logits, labels, grad_output=g, **options)

    defvjp(loss, logits_vjp)  # labels get no vjp: they are not differentiable
    return loss


def sparse_cross_entropy(logits: ArrayLike, labels: ArrayLike, **options: Any) -> Any:
    """:func:`numba_xent.sparse_cross_entropy` as an autograd primitive, differentiable in ``logits``.

    Takes the same options (``axis``, ``class_weight``, ``sample_weight``, ``ignore_index``, ``reduction``,
    ``label_smoothing``, ``z_loss``, ``from_logits``). The vjp is
    :func:`numba_xent.sparse_cross_entropy_grad` with ``grad_output`` set to the incoming cotangent; weights are
    constants (not differentiated).

    Examples
    --------
    >>> import autograd.numpy as anp  # doctest: +SKIP
    >>> from autograd import grad  # doctest: +SKIP
    >>> from numba_xent.autograd import sparse_cross_entropy  # doctest: +SKIP
    >>> def loss(weights, features, labels):  # doctest: +SKIP
    ...     return sparse_cross_entropy(anp.dot(features, weights), labels)
    >>> grad(loss)(weights, features, labels)  # doctest: +SKIP
    """
    return _primitive()(logits, labels, **options)
