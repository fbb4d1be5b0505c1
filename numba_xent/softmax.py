"""softmax, log_softmax and logsumexp along any axis, from the same one-pass row statistics as the losses."""

from __future__ import annotations

import numpy as np

from . import _kernels, _prepare

__all__ = ["log_softmax", "softmax", "logsumexp"]


def _softmax(x, axis, out, log):
    rows = _prepare.as_rows(x, axis, name="x")
    _prepare.check_out(out, rows)
    result, copy_to_out = _prepare.result_rows(out, rows)
    with _prepare.parallel_guard():
        _kernels.softmax_rows(rows.data, result, log)
    return _prepare.finish(result, copy_to_out, out, rows)


def log_softmax(x, axis=-1, out=None):
    """Logarithm of the softmax along ``axis``: ``x - logsumexp(x)``, computed stably.

    Parameters
    ----------
    x : ndarray of float16, float32 or float64
    axis : int, default -1
    out : ndarray of the shape and dtype of ``x``, optional
        Where to write the result; may be ``x`` itself.

    Returns
    -------
    ndarray of the shape and dtype of ``x``

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import log_softmax
    >>> log_softmax(np.array([0.0, 0.0])).round(6)
    array([-0.693147, -0.693147])
    """
    return _softmax(x, axis, out, True)


def softmax(x, axis=-1, out=None):
    """Softmax along ``axis``: ``exp(x - logsumexp(x))``.

    Parameters
    ----------
    x : ndarray of float16, float32 or float64
    axis : int, default -1
    out : ndarray of the shape and dtype of ``x``, optional
        Where to write the result; may be ``x`` itself.

    Returns
    -------
    ndarray of the shape and dtype of ``x``

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import softmax
    >>> softmax(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    """
    return _softmax(x, axis, out, False)


def logsumexp(x, axis=-1):
    """``log(sum(exp(x)))`` along ``axis``, computed stably in one pass over each row.

    Parameters
    ----------
    x : ndarray of float16, float32 or float64
    axis : int, default -1

    Returns
    -------
    ndarray of the shape of ``x`` without ``axis`` (a NumPy scalar for 1-D input); float32 for float16 and
    float32 input, float64 for float64.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import logsumexp
    >>> float(logsumexp(np.array([0.0, np.log(3.0)])).round(6))
    1.386294
    """
    rows = _prepare.as_rows(x, axis, name="x")
    result = np.empty(rows.data.shape[0])
    with _prepare.parallel_guard():
        _kernels.logsumexp_rows(rows.data, result)
    result = result.astype(rows.data.dtype).reshape(rows.batch_shape)
    return result[()] if result.ndim == 0 else result
