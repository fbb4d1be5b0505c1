"""One pass over the logits for evaluation: mean loss, rows kept, top-k accuracies and perplexity."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ._kernels.evaluate import evaluate_rows
from ._prepare import as_rows, check_ignore_index, labels_as_rows, raise_bad_label, weights
from ._results import mean_scale

__all__ = ["evaluate", "Evaluation"]


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured.

    Attributes
    ----------
    loss : float
        Mean cross-entropy over the kept rows, weighted as :func:`numba_xent.sparse_cross_entropy`'s mean
        (``sum(w[y] * loss) / sum(w[y])``; 0.0 when that sum is 0).
    n_kept : int
        Rows whose label is not ``ignore_index``.
    top_k_accuracy : dict of int to float
        For each k, the fraction of kept rows (unweighted) whose label is among the k highest logits, ties counted
        in the label's favour (0.0 when no row is kept).
    perplexity : float
        ``exp(loss)``.
    """

    loss: float
    n_kept: int
    top_k_accuracy: Mapping[int, float] = field(hash=False)
    perplexity: float

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy (``top_k_accuracy[1]``; 1 must be among ``top_k``)."""
        return self.top_k_accuracy[1]


def _check_top_k(top_k: int | Iterable[int]) -> tuple[int, ...]:
    ks = (top_k,) if isinstance(top_k, numbers.Integral) else tuple(top_k)  # type: ignore[arg-type]
    if not ks:
        raise ValueError("top_k must name at least one k")
    for k in ks:
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"top_k must hold integers >= 1, got {k!r}")
    return tuple(int(k) for k in ks)


def evaluate(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    ignore_index: int = -100,
    class_weight: ArrayLike | None = None,
    top_k: int | Iterable[int] = (1,),
) -> Evaluation:
    """Loss, kept rows, top-k accuracies and perplexity from one read of the logits.

    Each row's max, sum of exponentials and the number of logits strictly greater than the label's come from the
    same pass over its memory. A row is correct at k when fewer than k classes have a logit strictly greater than
    the label's: ties count in the label's favour. A NaN logit is never greater; a row whose label logit is NaN is
    never correct.

    Parameters
    ----------
    logits : array_like of float16, float32 or float64
        Unnormalised scores, classes along ``axis``.
    labels : array_like of integers
        The logits' shape without ``axis``.
    axis : int, default -1
    ignore_index : int, default -100
        Rows with this label are left out of the loss, the count and the accuracies.
    class_weight : array_like of shape (C,), optional
        Per-class weights of the loss (not of the accuracies).
    top_k : int or iterable of int, default (1,)

    Returns
    -------
    Evaluation

    Raises
    ------
    ValueError, TypeError
        As :func:`numba_xent.sparse_cross_entropy` raises them, and for a ``top_k`` that is empty or not >= 1.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import evaluate
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 3.0, 0.2], [1.0, 1.0, 0.0]])
    >>> result = evaluate(logits, np.array([0, 2, 1]), top_k=(1, 2))
    >>> result.n_kept, result.top_k_accuracy
    (3, {1: 0.6666666666666666, 2: 1.0})
    >>> round(result.loss, 6), round(result.perplexity, 6)
    (1.337636, 3.810025)
    """
    rows = as_rows(logits, axis)
    ignore_index = check_ignore_index(ignore_index)
    ks = _check_top_k(top_k)
    flat_labels = labels_as_rows(labels, rows, ignore_index, check_range=False)
    class_weight = weights(class_weight, (rows.n_classes,), "class_weight", f"logits with {rows.n_classes} classes")
    total_loss, total_weight, n_kept, n_correct, bad_row = evaluate_rows.launch(
        rows.data.size,
        logits=rows.data,
        labels=flat_labels,
        class_weight=class_weight,
        ignore_index=ignore_index,
        top_k=np.array(ks, dtype=np.intp),
        max_k=max(ks),
    )
    if bad_row >= 0:
        raise_bad_label(np.asarray(labels), bad_row, rows, ignore_index)
    loss = float(mean_scale(total_loss, total_weight))
    accuracy = {k: (int(n) / n_kept if n_kept else 0.0) for k, n in zip(ks, n_correct, strict=True)}
    perplexity = math.exp(loss) if loss < 709.0 or loss != loss else math.inf
    return Evaluation(loss=loss, n_kept=int(n_kept), top_k_accuracy=accuracy, perplexity=perplexity)
