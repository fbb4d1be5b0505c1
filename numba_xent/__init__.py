"""numba_xent: softmax cross-entropy and its gradients as Numba-compiled CPU kernels over NumPy arrays."""

from . import _overloads  # noqa: F401  (registers the @njit versions of the sparse losses)
from .dense import (
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_grad,
    cross_entropy,
    cross_entropy_grad,
)
from .evaluation import Evaluation, evaluate
from .linear import linear_cross_entropy, linear_cross_entropy_with_grad
from .losses import BinaryCrossEntropyLoss, CrossEntropyLoss
from .partials import (
    ClassBlockPartials,
    MergedRows,
    class_block_grad,
    class_block_partials,
    merge_class_block_partials,
)
from .softmax import log_softmax, logsumexp, softmax
from .sparse import sparse_cross_entropy, sparse_cross_entropy_grad, sparse_cross_entropy_with_grad

__version__ = "0.1.0"

__all__ = [
    "BinaryCrossEntropyLoss",
    "CrossEntropyLoss",
    "Evaluation",
    "ClassBlockPartials",
    "MergedRows",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_grad",
    "class_block_grad",
    "class_block_partials",
    "cross_entropy",
    "cross_entropy_grad",
    "evaluate",
    "linear_cross_entropy",
    "linear_cross_entropy_with_grad",
    "log_softmax",
    "logsumexp",
    "merge_class_block_partials",
    "softmax",
    "sparse_cross_entropy",
    "sparse_cross_entropy_grad",
    "sparse_cross_entropy_with_grad",
]
