"""PyTorch adapter: ``F.cross_entropy`` with integer targets, computed by numba_xent's kernels on CPU tensors.

``import numba_xent`` does not import this module, and this module imports ``torch`` only when first used, so
PyTorch stays optional (``pip install "numba_xent[torch]"``). Absolute imports make ``import torch`` here the
PyTorch package, not this module.

The forward pass computes the loss and, when the input requires grad, the gradient too, from one read of the
logits (``sparse_cross_entropy_with_grad``); backward returns that saved gradient as it is for a unit upstream
gradient (``loss.backward()``, which ``.grad`` then takes without a copy) and scales it otherwise. CPU tensors are
handed to the functions as NumPy views of their memory, and the gradient comes back as a tensor over the kernel's
output array. (For inputs with extra dims, ``(N, C, d1, ...)``, the functions themselves gather each position's
classes into a contiguous row, as they do for any array whose class axis is not last.)
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np

from .sparse import sparse_cross_entropy, sparse_cross_entropy_with_grad

__all__ = ["cross_entropy", "CrossEntropyLoss"]  # noqa: F822 - CrossEntropyLoss comes from __getattr__

Reduction = Literal["mean", "sum", "none"]


def _import_torch():
    try:
        import torch
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('numba_xent.torch needs PyTorch: pip install "numba_xent[torch]"') from error
    return torch


def _check_tensors(torch: Any, input: Any, target: Any, weight: Any) -> None:
    """Clear errors for what the kernels cannot take, before any work."""
    for name, tensor in (("input", input), ("target", target), ("weight", weight)):
        if tensor is None and name == "weight":
            continue
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.device.type != "cpu":
            raise ValueError(f"{name} is on device '{tensor.device}': numba_xent.torch runs on CPU tensors only")
    if input.dtype not in (torch.float16, torch.float32, torch.float64):
        raise TypeError(f"input must be a float16, float32 or float64 tensor, got {input.dtype}")
    if target.requires_grad:
        raise ValueError("target requires grad: class-index targets cannot be differentiated")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"target must be an integer tensor of class indices, got {target.dtype} "
            "(probability targets are not supported by numba_xent.torch)"
        )
    if weight is not None and weight.requires_grad:
        raise ValueError("weight requires grad: the gradient with respect to class weights is not implemented")
    if input.dim() == 0:
        raise ValueError("input must have at least one dimension (the classes), got a scalar tensor")


def _as_numpy(tensor: Any) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (no copy; strided tensors stay strided)."""
    return tensor.detach().resolve_conj().resolve_neg().numpy()


@functools.cache
def _function_class() -> Any:
    """The ``torch.autograd.Function``, defined on first use so that importing this module needs no torch."""
    torch = _import_torch()

    class SparseCrossEntropyFunction(torch.autograd.Function):  # type: ignore[name-defined]
        @staticmethod
        def forward(ctx, input, target, weight, ignore_index, reduction, label_smoothing, want_grad):
            logits = _as_numpy(input)
            labels = _as_numpy(target)
            options = dict(
                axis=1 if input.dim() >= 2 else 0,
                class_weight=None if weight is None else _as_numpy(weight),
                ignore_index=ignore_index,
                reduction=reduction,
                label_smoothing=label_smoothing,
            )
            if want_grad:
                # For "none" this is the gradient of the summed losses: each row's part is scaled by 1, and
                # backward multiplies row i by grad_output[i].
                loss, grad = sparse_cross_entropy_with_grad(logits, labels, **options)
                # Saved through autograd (not as a ctx attribute) so that it is released after a backward without
                # retain_graph, and the gradient accumulator can then take the tensor instead of copying 1 GB.
                ctx.save_for_backward(torch.from_numpy(grad))
                ctx.reduction = reduction
                ctx.class_dim = options["axis"]
            else:
                loss = sparse_cross_entropy(logits, labels, **options)
            return torch.from_numpy(np.asarray(loss)).to(input.dtype)

        @staticmethod
        def backward(ctx, grad_output):
            (grad,) = ctx.saved_tensors
            if grad_output.dim() == 0 and grad_output.item() == 1.0:
                return grad, None, None, None, None, None, None  # loss.backward(): the saved gradient as it is
            if ctx.reduction == "none" and grad_output.dim() > 0:
                grad_output = grad_output.unsqueeze(ctx.class_dim)
            return grad * grad_output.to(grad.dtype), None, None, None, None, None, None

    SparseCrossEntropyFunction.__module__ = __name__
    return SparseCrossEntropyFunction


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Any:
    """``torch.nn.functional.cross_entropy`` with class-index targets, on numba_xent's kernels.

    Parameters
    ----------
    input : torch.Tensor of float16, float32 or float64 on the CPU
        Logits of shape (C,), (N, C) or (N, C, d1, d2, ...): classes along dim 1 (dim 0 for a 1-D input).
    target : torch.Tensor of integers on the CPU
        Class indices, the shape of ``input`` without the class dim.
    weight : torch.Tensor of shape (C,), optional
        Per-class weights (not differentiated).
    ignore_index : int, default -100
    reduction : {"mean", "sum", "none"}, default "mean"
    label_smoothing : float in [0, 1], default 0.0

    Returns
    -------
    torch.Tensor
        A scalar, or per-element losses in the target's shape for ``reduction="none"``, of the input's dtype. It
        is differentiable with respect to ``input``.

    Raises
    ------
    ValueError, TypeError
        As :func:`numba_xent.sparse_cross_entropy` raises them, and for tensors on another device than the CPU, a
        target that requires grad or is not integer, bfloat16 input.

    Notes
    -----
    Deviations from PyTorch are those of :func:`numba_xent.sparse_cross_entropy`: a mean over no kept rows is 0,
    not nan; float16 is computed in float32.

    Examples
    --------
    >>> import torch
    >>> from numba_xent.torch import cross_entropy
    >>> logits = torch.zeros(2, 2, requires_grad=True)
    >>> loss = cross_entropy(logits, torch.tensor([0, 1]))
    >>> loss.backward()
    >>> round(loss.item(), 6), logits.grad
    (0.693147, tensor([[-0.2500,  0.2500],
            [ 0.2500, -0.2500]]))
    """
    torch = _import_torch()
    _check_tensors(torch, input, target, weight)
    # Inside forward grad mode is off, so whether a gradient will be needed is decided here.
    want_grad = torch.is_grad_enabled() and input.requires_grad
    return _function_class().apply(input, target, weight, ignore_index, reduction, label_smoothing, want_grad)


@functools.cache
def _module_class() -> Any:
    torch = _import_torch()

    class CrossEntropyLoss(torch.nn.Module):  # type: ignore[name-defined]
        """``torch.nn.CrossEntropyLoss`` with class-index targets, on numba_xent's kernels (see
        :func:`numba_xent.torch.cross_entropy`)."""

        def __init__(
            self,
            weight: Any = None,
            ignore_index: int = -100,
            reduction: Reduction = "mean",
            label_smoothing: float = 0.0,
        ) -> None:
            super().__init__()
            # Options checked now with the functions' own errors (a one-class dummy batch).
            sparse_cross_entropy(
                np.zeros((1, 1)),
                np.zeros(1, dtype=np.intp),
                ignore_index=ignore_index,
                reduction=reduction,
                label_smoothing=label_smoothing,
            )
            self.register_buffer("weight", weight)
            self.ignore_index = ignore_index
            self.reduction = reduction
            self.label_smoothing = label_smoothing

        def forward(self, input: Any, target: Any) -> Any:
            return cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)

        def extra_repr(self) -> str:
            return (
                f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}"
            )

    CrossEntropyLoss.__module__ = __name__
    CrossEntropyLoss.__qualname__ = "CrossEntropyLoss"  # pickle finds it through this module's __getattr__
    return CrossEntropyLoss


def __getattr__(name: str) -> Any:
    # CrossEntropyLoss subclasses torch.nn.Module, so it is made when first asked for (PEP 562).
    if name == "CrossEntropyLoss":
        return _module_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
