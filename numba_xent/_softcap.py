"""Logit soft-capping (Gemma 2, Liger-Kernel's ``softcap``): ``softcap * tanh(logits / softcap)`` before the loss.

Two in-place kernels over C-contiguous 2-D ``(rows, classes)`` float32/float64 buffers, and the scalar helpers they
are made of (usable from other ``@njit`` code):

* ``apply_softcap(logits, softcap)``: ``logits <- softcap * tanh(logits / softcap)``.
* ``chain_softcap(grad, capped, softcap)``: ``grad <- grad * (1 - (capped / softcap)**2)``, the chain rule through
  the cap, with the derivative ``1 - tanh**2`` recomputed from the capped logits (as PyTorch's autograd of ``tanh``
  does from its output), so the cap writes nothing but the capped logits; the caller keeps them apart from the
  gradient until the chain step.

Both are element-wise (no reduction), so their bits do not depend on the thread count.

The cap is computed in float64 for both dtypes as ``tanh(a) = (1 - e) / (1 + e)`` with ``e = exp(-2 |a|)`` from the
vectorised ``exp_nonpositive`` (libm's ``tanh`` is a scalar call: 25 ns per element measured here, against about
1 ns, both on a loaded 2-core machine). ``1 - e`` cancels for small ``|a|``, so the error is absolute: at most a
few 1e-14 times ``softcap``, far below float32 rounding; a float64 logit near zero keeps ~1e-13 absolute accuracy
rather than full relative accuracy, which the softmax (invariant to shifts, sensitive to absolute errors) does not
see. The slope ``1 - tanh**2`` is recomputed in the buffer's dtype from the stored capped logit, as PyTorch's
autograd of ``tanh`` does.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit, row_kernel
from ._vecmath import exp_nonpositive, prefer_wide_vectors

__all__ = ["apply_softcap", "capped_logit", "capped_slope", "chain_softcap"]


@jit
def capped_logit(logit, softcap):
    """``softcap * tanh(logit / softcap)`` in float64 (``softcap`` a float64)."""
    scaled = np.float64(logit) / softcap
    decay = exp_nonpositive(-2.0 * abs(scaled))
    return np.copysign(softcap * ((1.0 - decay) / (1.0 + decay)), scaled)


@jit
def capped_slope(capped, softcap):
    """d capped / d logit from the capped logit: ``1 - tanh**2``, ``tanh = capped / softcap`` (capped's type)."""
    ratio = capped / softcap
    return 1 - ratio * ratio


@row_kernel
def _apply_softcap_rows(logits, softcap):
    prefer_wide_vectors()
    n_rows, n_classes = logits.shape
    for row in prange(n_rows):
        values = logits[row]
        for col in range(n_classes):
            values[col] = capped_logit(values[col], softcap)


@row_kernel
def _chain_softcap_rows(grad, capped, softcap):
    prefer_wide_vectors()
    n_rows, n_classes = grad.shape
    for row in prange(n_rows):
        grad_row = grad[row]
        capped_row = capped[row]
        for col in range(n_classes):
            value = grad_row[col]
            # A zero gradient (an ignored row) stays zero even where the logit is NaN.
            grad_row[col] = value * capped_slope(capped_row[col], softcap) if value != 0 else value


def _check_buffer(array: np.ndarray, name: str) -> None:
    if not isinstance(array, np.ndarray) or array.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 NumPy array")
    if array.ndim != 2 or not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous 2-D array, got shape {array.shape}")


def check_softcap(softcap) -> float | None:
    """``softcap`` as a float, or None; anything but None or a finite number > 0 is an error."""
    if softcap is None:
        return None
    if isinstance(softcap, bool) or not isinstance(softcap, (int, float, np.integer, np.floating)):
        raise TypeError(f"softcap must be None or a number, got {softcap!r}")
    if not 0.0 < float(softcap) < np.inf:
        raise ValueError(f"softcap must be None or a finite number > 0, got {softcap!r}")
    return float(softcap)


def apply_softcap(logits: np.ndarray, softcap: float) -> None:
    """Cap ``logits`` in place: ``logits <- softcap * tanh(logits / softcap)``.

    Parameters
    ----------
    logits : ndarray of float32 or float64, C-contiguous, shape (rows, classes)
    softcap : float > 0

    Examples
    --------
    >>> import numpy as np
    >>> logits = np.array([[-1.0, 0.0, 1.0, 100.0]])
    >>> apply_softcap(logits, 10.0)
    >>> logits.round(5)
    array([[-0.99668,  0.     ,  0.99668, 10.     ]])
    """
    _check_buffer(logits, "logits")
    _apply_softcap_rows.launch(logits.size, logits=logits, softcap=np.float64(softcap))


def chain_softcap(grad: np.ndarray, capped: np.ndarray, softcap: float) -> None:
    """Turn the gradient with respect to the capped logits into the gradient with respect to the raw logits.

    ``grad <- grad * (1 - (capped / softcap)**2)``, in place. Zeros stay zero (also where ``capped`` is NaN), so
    rows that a loss ignores keep their zero gradient.

    Parameters
    ----------
    grad : ndarray of float32 or float64, C-contiguous, shape (rows, classes)
        The gradient of the loss with respect to the capped logits.
    capped : ndarray of grad's shape and dtype
        The capped logits (``apply_softcap``'s result). A different buffer from ``grad``.
    softcap : float > 0
        The value ``capped`` was made with.

    Examples
    --------
    >>> import numpy as np
    >>> capped = np.array([[0.0, 5.0]])
    >>> grad = np.ones((1, 2))
    >>> chain_softcap(grad, capped, 10.0)
    >>> grad
    array([[1.  , 0.75]])
    """
    _check_buffer(grad, "grad")
    _check_buffer(capped, "capped")
    if capped.shape != grad.shape or capped.dtype != grad.dtype:
        raise ValueError(f"capped ({capped.shape}, {capped.dtype}) must match grad ({grad.shape}, {grad.dtype})")
    if np.may_share_memory(grad, capped):
        raise ValueError("grad and capped must be different buffers")
    _chain_softcap_rows.launch(grad.size, grad=grad, capped=capped, softcap=grad.dtype.type(softcap))
