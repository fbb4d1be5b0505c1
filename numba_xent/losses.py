"""Loss objects for NumPy training loops: the options fixed once, then called like a function.

Each object holds validated options and calls the package's public functions with them; it adds no arithmetic of
its own.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .dense import binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_grad
from .sparse import sparse_cross_entropy, sparse_cross_entropy_grad, sparse_cross_entropy_with_grad

__all__ = ["CrossEntropyLoss", "BinaryCrossEntropyLoss"]

Reduction = Literal["mean", "sum", "none"]


def _frozen_weights(weight: ArrayLike | None, name: str) -> NDArray[np.float64] | None:
    """A read-only float64 copy of a 1-D weight vector (so later changes to the caller's array change nothing)."""
    if weight is None:
        return None
    array = np.asarray(weight)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one weight per class), got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real array, got dtype {array.dtype}")
    frozen = np.array(array, dtype=np.float64)
    frozen.flags.writeable = False
    return frozen


def _dummy_input(n_classes: int, axis: Any) -> tuple[np.ndarray, np.ndarray]:
    """Zero logits with n_classes along ``axis`` (in as few dimensions as ``axis`` allows) and zero labels, to
    validate options by running the function once."""
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and -32 <= axis < 32:
        shape = [1] * (int(axis) + 1 if axis >= 0 else -int(axis))
        shape[int(axis)] = n_classes
        batch_shape = shape[: int(axis) % len(shape)] + shape[int(axis) % len(shape) + 1 :]
        return np.zeros(shape), np.zeros(batch_shape, dtype=np.intp)
    return np.zeros(n_classes), np.zeros((), dtype=np.intp)  # the call then rejects the axis itself


def _options_repr(cls_name: str, options: dict[str, Any], defaults: dict[str, Any]) -> str:
    parts = []
    for name, value in options.items():
        default = defaults[name]
        if isinstance(value, np.ndarray):
            parts.append(f"{name}={np.array2string(value, separator=', ', threshold=8)}")
        elif value != default:
            parts.append(f"{name}={value!r}")
    return f"{cls_name}({', '.join(parts)})"


def _options_key(options: dict[str, Any]) -> tuple:
    """The options as a hashable tuple; weight arrays become tuples of floats."""
    return tuple(
        (name, tuple(value.tolist()) if isinstance(value, np.ndarray) else value) for name, value in options.items()
    )


class _LossBase:
    """Equality, hashing, pickling and repr from the ``_options`` dict that subclasses fill in ``__init__``."""

    _options: dict[str, Any]
    _defaults: dict[str, Any]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _options_key(self._options) == _options_key(other._options)

    def __hash__(self) -> int:
        return hash((type(self).__name__, _options_key(self._options)))

    def __repr__(self) -> str:
        return _options_repr(type(self).__name__, self._options, self._defaults)

    def __reduce__(self):
        return (_rebuild, (type(self), self._options))

    def get_options(self) -> dict[str, Any]:
        """The options as keyword arguments of the constructor (weights as read-only float64 arrays)."""
        return dict(self._options)


def _rebuild(cls, options):
    return cls(**options)


class CrossEntropyLoss(_LossBase):
    """Softmax cross-entropy with integer labels, as a reusable object: :func:`~numba_xent.sparse_cross_entropy`
    with its options fixed.

    Options are validated when the object is built, with the errors the functions give. The object pickles,
    compares equal to another with the same options, and hashes accordingly.

    Parameters
    ----------
    class_weight : array_like of shape (C,), optional
        Per-class weights, non-negative. Copied: later changes to the array do not change the loss.
    ignore_index : int, default -100
    reduction : {"mean", "sum", "none"}, default "mean"
    label_smoothing : float in [0, 1], default 0.0
    z_loss : float >= 0, default 0.0
    axis : int, default -1
        The class axis of the logits.
    from_logits : bool, default True

    Notes
    -----
    Keras names, for those coming from ``keras.losses``:

    ====================================================  ==================================================
    Keras                                                 numba_xent
    ====================================================  ==================================================
    ``SparseCategoricalCrossentropy(from_logits=True)``   ``CrossEntropyLoss()``
    ``SparseCategoricalCrossentropy()`` (probabilities)   ``CrossEntropyLoss(from_logits=False)``
    ``ignore_class=k``                                    ``ignore_index=k``
    ``reduction="sum_over_batch_size"`` / ``"sum"`` /     ``reduction="mean"`` / ``"sum"`` / ``"none"``
    ``None``
    ``axis=-1``                                           ``axis=-1``
    ``loss(y_true, y_pred, sample_weight)``               ``loss(logits, labels, sample_weight)`` (logits first)
    ``BinaryCrossentropy(from_logits=True)``              :class:`BinaryCrossEntropyLoss`
    ``CategoricalCrossentropy`` (one-hot targets)         :func:`numba_xent.cross_entropy`
    ====================================================  ==================================================

    With class weights, the mean here divides by the sum of the kept rows' weights (PyTorch's weighted mean).

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import CrossEntropyLoss
    >>> loss_fn = CrossEntropyLoss(label_smoothing=0.1)
    >>> loss_fn
    CrossEntropyLoss(label_smoothing=0.1)
    >>> logits, labels = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]), np.array([0, 2])
    >>> loss, grad = loss_fn.loss_and_grad(logits, labels)
    >>> bool(loss == loss_fn(logits, labels)), grad.shape
    (True, (2, 3))
    """

    _defaults = dict(
        class_weight=None,
        ignore_index=-100,
        reduction="mean",
        label_smoothing=0.0,
        z_loss=0.0,
        axis=-1,
        from_logits=True,
    )

    def __init__(
        self,
        *,
        class_weight: ArrayLike | None = None,
        ignore_index: int = -100,
        reduction: Reduction = "mean",
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        axis: int = -1,
        from_logits: bool = True,
    ) -> None:
        frozen_weight = _frozen_weights(class_weight, "class_weight")
        options: dict[str, Any] = dict(
            class_weight=frozen_weight,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            axis=axis,
            from_logits=bool(from_logits),
        )
        # Validate by running the function once on a tiny input: the same checks, the same messages.
        dummy_logits, dummy_labels = _dummy_input(1 if frozen_weight is None else frozen_weight.shape[0], axis)
        sparse_cross_entropy(dummy_logits, dummy_labels, **options)
        self._options = options

    def __call__(self, logits: ArrayLike, labels: ArrayLike, sample_weight: ArrayLike | None = None) -> Any:
        """The loss: a NumPy scalar, or per-row losses in the labels' shape for ``reduction="none"``."""
        return sparse_cross_entropy(logits, labels, sample_weight=sample_weight, **self._options)

    def grad(
        self,
        logits: ArrayLike,
        labels: ArrayLike,
        sample_weight: ArrayLike | None = None,
        grad_output: ArrayLike = 1.0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The gradient with respect to ``logits``, times ``grad_output`` (see
        :func:`~numba_xent.sparse_cross_entropy_grad`)."""
        return sparse_cross_entropy_grad(
            logits, labels, sample_weight=sample_weight, grad_output=grad_output, out=out, **self._options
        )

    def loss_and_grad(
        self,
        logits: ArrayLike,
        labels: ArrayLike,
        sample_weight: ArrayLike | None = None,
        out: np.ndarray | None = None,
    ) -> tuple[Any, np.ndarray]:
        """(loss, gradient) from one read of the logits; ``out=logits`` writes the gradient in place."""
        return sparse_cross_entropy_with_grad(logits, labels, sample_weight=sample_weight, out=out, **self._options)


class BinaryCrossEntropyLoss(_LossBase):
    """Binary cross-entropy with logits, as a reusable object: :func:`~numba_xent.binary_cross_entropy_with_logits`
    with its options fixed. Keras: ``BinaryCrossentropy(from_logits=True)``.

    Parameters
    ----------
    pos_weight : array_like of shape (C,), optional
        Weight of the positive term per class (the last axis of the logits), non-negative.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" divides by the number of elements.

    Examples
    --------
    >>> import numpy as np
    >>> from numba_xent import BinaryCrossEntropyLoss
    >>> loss_fn = BinaryCrossEntropyLoss(pos_weight=[2.0, 1.0])
    >>> loss_fn
    BinaryCrossEntropyLoss(pos_weight=[2., 1.])
    >>> float(loss_fn(np.zeros((1, 2)), np.array([[1.0, 0.0]])).round(6))
    1.039721
    """

    _defaults = dict(pos_weight=None, reduction="mean")

    def __init__(self, *, pos_weight: ArrayLike | None = None, reduction: Reduction = "mean") -> None:
        frozen_weight = _frozen_weights(pos_weight, "pos_weight")
        options: dict[str, Any] = dict(pos_weight=frozen_weight, reduction=reduction)
        n_classes = 1 if frozen_weight is None else frozen_weight.shape[0]
        binary_cross_entropy_with_logits(np.zeros((1, n_classes)), np.zeros((1, n_classes)), **options)
        self._options = options

    def __call__(self, logits: ArrayLike, targets: ArrayLike, sample_weight: ArrayLike | None = None) -> Any:
        """The loss; ``sample_weight`` (broadcastable to the logits) is PyTorch's ``weight``."""
        return binary_cross_entropy_with_logits(logits, targets, weight=sample_weight, **self._options)

    def grad(
        self,
        logits: ArrayLike,
        targets: ArrayLike,
        sample_weight: ArrayLike | None = None,
        grad_output: ArrayLike = 1.0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The gradient with respect to ``logits``, times ``grad_output``."""
        return binary_cross_entropy_with_logits_grad(
            logits, targets, weight=sample_weight, grad_output=grad_output, out=out, **self._options
        )

    def loss_and_grad(
        self,
        logits: ArrayLike,
        targets: ArrayLike,
        sample_weight: ArrayLike | None = None,
        out: np.ndarray | None = None,
    ) -> tuple[Any, np.ndarray]:
        """(loss, gradient). Two passes: the package has no fused binary kernel in its public API yet."""
        # The gradient goes second, so out=logits (in place) still reads the logits for the loss first.
        loss = self(logits, targets, sample_weight)
        return loss, self.grad(logits, targets, sample_weight, out=out)
