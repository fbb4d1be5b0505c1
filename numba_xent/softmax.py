"""softmax, log_softmax and logsumexp along any axis, from the same one-pass row statistics as the losses."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _prepare
from ._kernels.softmax import logsumexp_rows, softmax_rows
from ._results import finish, output_rows
from ._typing import FloatArray

__all__ = ["log_softmax", "softmax", "logsumexp"]


def _softmax(x: ArrayLike, axis: int, out: np.ndarray | None, log: bool) -> FloatArray:
    rows = _prepare.as_rows(x, axis, name="x")
    _prepare.check_out(out, rows)
    result, copy_to_out = output_rows(out, rows)
    softmax_rows.launch(rows.data.size, logits=rows.data, out=result, log=log)
    return finish(result, copy_to_out, out, rows)


def log_softmax(x: ArrayLike, axis: int = -1, out: FloatArray | None = None) -> FloatArray:
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


def softmax(x: ArrayLike, axis: int = -1, out: FloatArray | None = None) -> FloatArray:
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


def logsumexp(x: ArrayLike, axis: int = -1) -> Any:
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
    logsumexp_rows.launch(rows.data.size, logits=rows.data, out=result)
    result = result.astype(rows.data.dtype).reshape(rows.batch_shape)
    return result[()] if result.ndim == 0 else result
